//! The CUDA backend. Without a GPU (CI): the kernels compile with NVRTC (when
//! libnvrtc is installed: scripts/test.sh installs it from PyPI) with every C
//! parameter block checked against its Rust mirror, plans route convolutions to
//! cuDNN and Gemm to cuBLAS, and asking for the backend is a clear error. With
//! one: every kernel family against the CPU backend (tests/gpu/kernel_cases.rs)
//! in f32, TF32 and f16.
#![cfg(feature = "cuda")]

mod common;
#[path = "gpu/kernel_cases.rs"]
mod kernel_cases;

use kiln::backend::cuda::{self, CudaKernel, CudaPrepare, Libraries};
use kiln::{Backend, Error, Precision, Session, SessionOptions};

const BACKEND: Backend = Backend::Cuda;
const PRECISIONS: &[Precision] = &[Precision::F32, Precision::Tf32, Precision::F16];

/// Whether a CUDA GPU is usable; prints why not when it is not.
fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| match cuda::Cuda::open(Precision::F32) {
        Ok(gpu) => {
            println!("CUDA device: {}", gpu.describe());
            true
        }
        Err(e) => {
            println!("skipped: {e}");
            false
        }
    })
}

#[test]
fn kernels_compile_with_nvrtc_for_every_precision_and_architecture() {
    if !Libraries::probe().nvrtc {
        println!("skipped: libnvrtc.so.13 not found (scripts/test.sh installs nvidia-cuda-nvrtc)");
        return;
    }
    // Turing (the oldest with every instruction used), Ampere, Hopper.
    for arch in [(7, 5), (8, 0), (9, 0)] {
        for precision in [Precision::F32, Precision::F16] {
            let ptx = cuda::compile(precision, arch)
                .unwrap_or_else(|e| panic!("sm_{}{} {precision:?}: {e}", arch.0, arch.1));
            let text = ptx.to_src();
            for entry in kiln::backend::gpu::Entry::ALL {
                assert!(
                    text.contains(&format!(".entry {}(", entry.name())),
                    "sm_{}{} {precision:?}: no kernel {}",
                    arch.0,
                    arch.1,
                    entry.name()
                );
            }
            assert!(text.contains(".entry epilogue("));
        }
    }
}

#[test]
fn a_drifted_parameter_block_fails_to_compile() {
    if !Libraries::probe().nvrtc {
        println!("skipped: libnvrtc.so.13 not found");
        return;
    }
    // The static_asserts are live: an extra field in a C mirror is caught.
    let program = cuda::program(Precision::F32).replace(
        "struct FillParams {\n    unsigned len;",
        "struct FillParams {\n    unsigned len, extra;",
    );
    assert!(program.contains("unsigned len, extra;"));
    let opts = cudarc::nvrtc::CompileOptions {
        options: vec!["--gpu-architecture=compute_90".into(), "--std=c++17".into()],
        ..Default::default()
    };
    let err = cudarc::nvrtc::compile_ptx_with_opts(program, opts).unwrap_err();
    assert!(
        format!("{err:?}").contains("FillParams differs from its Rust mirror"),
        "{err:?}"
    );
}

/// The optimized graph of a zoo model and a random input for it.
fn zoo_graph(name: &str, batch: usize) -> (Session, Vec<kiln::Tensor>) {
    let zoo = kiln::zoo::build(name).unwrap();
    let [_, c, h, w] = zoo.input_shape;
    let session = Session::from_bytes(zoo.onnx, SessionOptions::default()).unwrap();
    (session, vec![common::random_tensor(&[batch, c, h, w], 7)])
}

#[test]
fn plans_send_convolutions_to_cudnn_and_gemm_to_cublas() {
    for name in ["resnet18", "mobilenet_v2", "regnet_x_400mf"] {
        let (session, inputs) = zoo_graph(name, 2);
        let convs = session
            .graph()
            .nodes
            .iter()
            .filter(|n| matches!(n.op, kiln::ir::ops::Op::Conv(_) | kiln::ir::ops::Op::FusedConv(_)))
            .count();
        let limits = kiln::onnx::Limits::default();
        let with = CudaPrepare {
            cudnn: true,
            cublas: true,
        };
        let plan = kiln::plan::build(session.graph(), &inputs, &limits, &with).unwrap();
        let count = |f: &dyn Fn(&CudaKernel) -> bool| plan.steps.iter().filter(|s| f(&s.kernel)).count();
        assert_eq!(
            count(&|k| matches!(k, CudaKernel::Conv(_))),
            convs,
            "{name}: convs on cuDNN"
        );
        assert_eq!(
            count(&|k| matches!(k, CudaKernel::Gemm(_))),
            1,
            "{name}: the classifier on cuBLAS"
        );
        // The stem of resnet18: 7x7 / 2, pad 3, 3 -> 64 channels, batch 2.
        if name == "resnet18" {
            let Some(CudaKernel::Conv(stem)) = plan
                .steps
                .iter()
                .map(|s| &s.kernel)
                .find(|k| matches!(k, CudaKernel::Conv(_)))
            else {
                panic!("no conv");
            };
            assert_eq!(
                (
                    stem.batch,
                    stem.in_channels,
                    stem.out_channels,
                    stem.kernel,
                    stem.strides,
                    stem.pads
                ),
                (2, 3, 64, [7, 7], [2, 2], [3, 3])
            );
            assert_eq!(stem.out_hw, [112, 112]);
            assert!(
                stem.has_bias && stem.activation.code == 1,
                "folded BatchNorm bias + ReLU"
            );
        }
        // Without the libraries every node runs on kiln's own kernels.
        let without = CudaPrepare {
            cudnn: false,
            cublas: false,
        };
        let plan = kiln::plan::build(session.graph(), &inputs, &limits, &without).unwrap();
        assert!(plan
            .steps
            .iter()
            .all(|s| matches!(s.kernel, CudaKernel::Library(_))));
    }
}

#[test]
fn without_a_gpu_the_backend_is_unavailable_not_a_panic() {
    if Libraries::probe().driver {
        println!("skipped: this machine has a CUDA driver");
        return;
    }
    let zoo = kiln::zoo::build("resnet18").unwrap();
    let options = SessionOptions {
        backend: Backend::Cuda,
        ..SessionOptions::default()
    };
    let err = Session::from_bytes(zoo.onnx, options).err().expect("no GPU here");
    assert!(matches!(err, Error::BackendUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("libcuda"), "{err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bench", "resnet18", "--backend", "cuda", "--runs", "1"])
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("backend 'cuda' unavailable"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
