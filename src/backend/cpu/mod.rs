//! The CPU backend: kernels written in Rust, parallelised with rayon.

pub mod executor;
pub mod kernel;
pub mod kernels;
