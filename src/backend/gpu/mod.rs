//! What the GPU backends share: the kernel library's entry points and the host-side
//! preparation of IR ops into launches of them. wgpu runs these kernels as WGSL
//! (`shaders/`), CUDA as CUDA C (`kernels/`); the parameter blocks, bindings and
//! grids are computed once, here, for both.
//!
//! - `entry.rs`: the entry points, their bindings and workgroup sizes.
//! - `prepare/`: IR op -> [`GpuKernel`] (launches, packed weights, scratch). No GPU
//!   involved, so GPU plans can be built and inspected anywhere.
//! - `program.rs`: what a prepared kernel is.
//! - `codes.rs`: how unary and binary functions are numbered in the kernels.

pub mod codes;
mod entry;
mod prepare;
pub mod program;

pub use entry::Entry;
pub use prepare::{claims, param_blocks, GpuPrepare};
#[cfg(feature = "cuda")]
pub(crate) use prepare::{
    conv::ConvShape,
    gemm::{c_strides, gemm_dims},
    Inputs,
};
pub use program::{Bind, BufferId, Dispatch, GpuKernel};
