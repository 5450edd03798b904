//! Numeric building blocks shared by the elementwise, normalization and reduction
//! kernel families: scalar traits with ONNX (numpy) semantics, vectorizable f32 math,
//! blocked sums, and the rule for when work is split across threads.

pub mod fmath;
pub mod par;
pub mod sums;
pub mod traits;
#[cfg(target_arch = "x86_64")]
pub mod vector_activation;

pub use par::{par_chunks, PAR_THRESHOLD};
pub use traits::{floats_to_f64, Float, FloatStore, Num};

#[cfg(test)]
pub mod testing;
