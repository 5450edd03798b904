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

impl std::str::FromStr for Precision {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Precision> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "f16" | "fp16" => Ok(Precision::F16),
            other => Err(crate::error::Error::Usage(format!(
                "unknown precision '{other}' (known: f32, f16)"
            ))),
        }
    }
}
