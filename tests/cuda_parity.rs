//! End-to-end parity of the CUDA backend with onnxruntime (tests/gpu/parity_cases.rs)
//! in f32, TF32 and f16, on every zoo model. Skipped, saying why, without an NVIDIA
//! GPU and its libraries.
#![cfg(feature = "cuda")]

mod common;
#[path = "gpu/parity_cases.rs"]
mod parity_cases;

use kiln::{Backend, Precision};

const BACKEND: Backend = Backend::Cuda;
const PRECISIONS: &[Precision] = &[Precision::F32, Precision::Tf32, Precision::F16];
/// Zoo models checked against ORT.
const ZOO: &[&str] = &["resnet18", "resnet50", "mobilenet_v2", "regnet_x_400mf"];
