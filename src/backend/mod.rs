//! Execution backends. Each consumes the same optimized IR and plan.

pub mod cpu;

#[cfg(feature = "wgpu")]
pub mod wgpu;

/// Number format a GPU backend stores tensors in; arithmetic accumulates in f32
/// either way. The CPU backend is f32 only.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    /// Half-precision storage (activations and weights), f32 accumulation.
    F16,
}
