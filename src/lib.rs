//! kiln: a pure-Rust inference engine for ONNX vision models.
//!
//! Pipeline, one module per stage (see `ARCHITECTURE.md`):
//! [`onnx`] (load) → [`ir`] (typed graph, shape inference) → [`passes`] (optimizer)
//! → [`plan`] (per-shape schedule and memory plan) → [`backend`] (kernels)
//! → [`session`] (public API). [`zoo`] builds reference models in Rust. With the
//! `ort` feature, `reference` runs ONNX Runtime beside kiln for benchmarks.

pub mod backend;
pub mod error;
pub mod ir;
pub mod onnx;
pub mod passes;
pub mod plan;
#[cfg(feature = "ort")]
pub mod reference;
pub mod session;
pub mod tensor;
pub mod zoo;

pub use backend::cpu::affinity::Pinning;
pub use backend::cpu::CpuOptions;
pub use backend::Precision;
pub use error::{Error, Result};
pub use session::{Backend, Session, SessionOptions, StepProfile};
pub use tensor::{DType, Tensor};
