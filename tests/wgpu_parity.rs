//! End-to-end parity of the wgpu backend with onnxruntime (tests/gpu/parity_cases.rs)
//! in f32 and f16, on whatever adapter wgpu finds (lavapipe in CI: two zoo models,
//! as software Vulkan is slow).
#![cfg(feature = "wgpu")]

mod common;
#[path = "gpu/parity_cases.rs"]
mod parity_cases;

use kiln::{Backend, Precision};

const BACKEND: Backend = Backend::Wgpu;
const PRECISIONS: &[Precision] = &[Precision::F32, Precision::F16];
/// Zoo models checked against ORT.
const ZOO: &[&str] = &["resnet18", "mobilenet_v2"];
