//! CPU kernels, one file per op family.

#[cfg(test)]
mod compute_tests;
pub mod conv;
pub(crate) mod float_io;
pub mod gemm;
pub mod pool;
pub mod resize;
pub mod window;
