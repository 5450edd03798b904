//! The wgpu backend against the CPU backend (tests/gpu/kernel_cases.rs, in f32 and
//! f16), plus what is wgpu's own. Runs on whatever adapter wgpu finds (lavapipe
//! in CI); skipped, saying why, when there is none.
#![cfg(feature = "wgpu")]

mod common;
#[path = "gpu/kernel_cases.rs"]
mod kernel_cases;

use kiln::{Backend, Precision};

const BACKEND: Backend = Backend::Wgpu;
const PRECISIONS: &[Precision] = &[Precision::F32, Precision::F16];

/// Whether a GPU adapter exists; prints why not when it does not.
fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| match kiln::backend::wgpu::Gpu::open(Precision::F32) {
        Ok(gpu) => {
            println!("wgpu adapter: {}", kiln::backend::wgpu::describe(&gpu.info));
            true
        }
        Err(e) => {
            println!("skipped: {e}");
            false
        }
    })
}

#[test]
fn every_shader_compiles_in_both_precisions() {
    if !available() {
        return;
    }
    for precision in [Precision::F32, Precision::F16] {
        let gpu = match kiln::backend::wgpu::Gpu::open(precision) {
            Ok(gpu) => gpu,
            Err(e) => {
                println!("{precision:?} skipped: {e}");
                continue;
            }
        };
        for shader in kiln::backend::wgpu::Entry::ALL {
            gpu.pipeline(shader)
                .unwrap_or_else(|e| panic!("{} [{precision:?}]: {e}", shader.name()));
        }
    }
}

#[test]
fn a_missing_adapter_is_a_clear_cli_error() {
    // In a child process, so the variable cannot reach the other tests' sessions.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bench", "resnet18", "--backend", "wgpu", "--runs", "1"])
        .env(kiln::backend::wgpu::ADAPTER_ENV, "no-such-gpu")
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no GPU adapter"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
