//! CPU kernels, one file per op family.

#[cfg(test)]
mod compute_tests;
pub(crate) mod float_io;
pub mod conv;
pub mod gemm;
pub mod window;
