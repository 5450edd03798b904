//! The CUDA C kernels (kernels/*.cu) as one NVRTC program per storage precision,
//! and their compilation. Compiling needs NVRTC only, no GPU, so the kernels are
//! checked wherever libnvrtc is installed.

use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

use super::libraries::unavailable;
use super::Precision;
use crate::error::{Error, Result};

/// The kernel files, in compilation order (helpers first).
const FILES: [(&str, &str); 8] = [
    ("common.cuh", include_str!("../../../kernels/common.cuh")),
    ("gemm.cu", include_str!("../../../kernels/gemm.cu")),
    ("window.cu", include_str!("../../../kernels/window.cu")),
    ("rows.cu", include_str!("../../../kernels/rows.cu")),
    ("elementwise.cu", include_str!("../../../kernels/elementwise.cu")),
    ("copy.cu", include_str!("../../../kernels/copy.cu")),
    (
        "squeeze_excite.cu",
        include_str!("../../../kernels/squeeze_excite.cu"),
    ),
    ("epilogue.cu", include_str!("../../../kernels/epilogue.cu")),
];

/// Kernels the CUDA backend has beyond the shared library's entry points.
pub const EPILOGUE: &str = "epilogue";

/// The program text for `precision`: `KILN_F16` selects half-precision storage.
pub fn program(precision: Precision) -> String {
    let mut s = String::new();
    if precision.stores_f16() {
        s.push_str("#define KILN_F16 1\n");
    }
    for (name, text) in FILES {
        s.push_str(&format!("// ---- kernels/{name}\n"));
        s.push_str(text);
        s.push('\n');
    }
    // The C structs must match their Rust mirrors byte for byte: any drift is a
    // compile error, found wherever NVRTC runs (no GPU needed).
    s.push_str("// ---- parameter block sizes, from the Rust side\n");
    let blocks = crate::backend::gpu::param_blocks();
    let epilogue = (
        "EpilogueParams",
        std::mem::size_of::<super::executor::EpilogueParams>(),
    );
    for (name, bytes) in blocks.into_iter().chain([epilogue]) {
        s.push_str(&format!(
            "static_assert(sizeof({name}) == {bytes}, \"{name} differs from its Rust mirror\");\n"
        ));
    }
    s
}

/// Compiles the kernels to PTX for compute capability `major.minor` (the driver
/// finishes the job for the exact GPU when the module loads).
pub fn compile(precision: Precision, (major, minor): (i32, i32)) -> Result<Ptx> {
    // SAFETY: only dlopens libnvrtc to see whether it loads.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(unavailable("NVRTC (libnvrtc.so.13) was not found".into()));
    }
    let opts = CompileOptions {
        options: vec![
            format!("--gpu-architecture=compute_{major}{minor}"),
            "--std=c++17".into(),
            "-lineinfo".into(),
        ],
        name: Some(format!(
            "kiln_{}.cu",
            if precision.stores_f16() { "f16" } else { "f32" }
        )),
        ..CompileOptions::default()
    };
    compile_ptx_with_opts(program(precision), opts).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => Error::invalid(format!(
            "NVRTC rejected kiln's CUDA kernels:\n{}",
            log.to_string_lossy()
        )),
        other => Error::Device(format!("NVRTC failed: {other}")),
    })
}
