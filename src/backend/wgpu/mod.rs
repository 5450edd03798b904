//! The portable GPU backend: the optimized IR and execution plan of the CPU
//! backend, run through wgpu (Vulkan, Metal, DX12, GL) by the WGSL kernels in
//! `shaders/`.
//!
//! Layers, in order:
//! - `prepare/`: IR op -> [`GpuKernel`], a host-side list of dispatches (shader,
//!   uniform parameters, bindings, grid) plus packed weights. No GPU involved, so
//!   plans for this backend can be built and inspected anywhere.
//! - `shader.rs`: the entry points and the WGSL text for a precision.
//! - `device.rs`: adapter and device, the pipeline cache, errors.
//! - `executor.rs`: a plan made resident (buffers, bind groups) and run with one
//!   submit and one readback.
//!
//! Shapes and strides travel in uniform buffers, so pipelines exist per entry point
//! and precision, never per shape.

mod codes;
mod device;
mod executor;
mod prepare;
mod program;
mod shader;

pub use device::{describe, Gpu, ADAPTER_ENV};
pub use executor::{GpuPlan, GpuProgram};
pub use prepare::{claims, WgpuPrepare};
pub use program::GpuKernel;
pub use shader::Shader;

pub use super::Precision;
