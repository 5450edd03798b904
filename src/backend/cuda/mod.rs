//! The NVIDIA backend: cuDNN convolutions, cuBLAS products, and kiln's CUDA C
//! kernels (kernels/*.cu, compiled at run time by NVRTC) for everything else, on
//! the same optimized IR and plan as the other backends. cudarc opens the CUDA 13
//! libraries at run time, so building needs no CUDA toolkit and a machine without
//! them gets `BackendUnavailable`, never a panic.
//!
//! Layers, in order:
//! - `libraries.rs`: which CUDA libraries the loader finds (asked before any call).
//! - `prepare.rs`: IR op -> [`CudaKernel`]: cuDNN, cuBLAS, or the GPU kernel
//!   library shared with wgpu (`backend::gpu`). Host-only, so CUDA plans are
//!   built and tested anywhere.
//! - `source.rs`: the kernels' program text and its NVRTC compilation.
//! - `device.rs`, `memory.rs`: context, stream, handles, device and pinned memory.
//! - `cudnn.rs`, `cublas.rs`: the library calls.
//! - `executor.rs`: a plan made resident (one arena, pinned staging, chosen cuDNN
//!   algorithms) and run as one replayed CUDA graph.

mod cublas;
mod cudnn;
mod device;
mod executor;
mod libraries;
mod memory;
mod prepare;
mod source;

pub use device::{Cuda, DEVICE_ENV};
pub use executor::{CudaPlan, CudaProgram};
pub use libraries::Libraries;
pub use prepare::{conv_route, ConvCall, ConvRoute, CudaKernel, CudaPrepare, GemmCall};
pub use source::{compile, program};

pub use super::Precision;

/// Whether the CUDA backend can run `op` (everything the shared GPU kernel
/// library claims; cuDNN and cuBLAS only take over some of it).
pub fn claims(op: &crate::ir::ops::Op) -> bool {
    crate::backend::gpu::claims(op)
}
