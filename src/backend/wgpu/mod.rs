//! The portable GPU backend: the optimized IR and execution plan of the CPU
//! backend, run through wgpu (Vulkan, Metal, DX12, GL) by the WGSL kernels in
//! `shaders/`.
//!
//! Layers, in order:
//! - `backend::gpu` (shared with CUDA): IR op -> [`GpuKernel`], a host-side list
//!   of launches (entry point, parameter block, bindings, grid) plus packed
//!   weights. No GPU involved, so plans for this backend can be built anywhere.
//! - `shader.rs`: the WGSL text of each entry point for a precision.
//! - `device.rs`: adapter and device, the pipeline cache, errors.
//! - `executor.rs`: a plan made resident (buffers, bind groups) and run with one
//!   submit and one readback.
//!
//! Shapes and strides travel in uniform buffers, so pipelines exist per entry point
//! and precision, never per shape.

mod device;
mod executor;
mod shader;

pub use crate::backend::gpu::{claims, Entry, GpuKernel, GpuPrepare};
pub use device::{describe, Gpu, ADAPTER_ENV};
pub use executor::{GpuPlan, GpuProgram};
pub use shader::source;

pub use super::Precision;
