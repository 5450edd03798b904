//! Execution backends. Each consumes the same optimized IR and plan.

pub mod cpu;

#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod gpu;

#[cfg(feature = "wgpu")]
pub mod wgpu;

#[cfg(feature = "cuda")]
pub mod cuda;

/// Number format a GPU backend stores and multiplies tensors in; arithmetic
/// accumulates in f32 either way. The CPU backend is f32 only.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    F32,
    /// f32 storage, convolutions and matrix products on TF32 Tensor Cores (10-bit
    /// mantissa inputs, f32 accumulation). CUDA only, opt-in.
    Tf32,
    /// Half-precision storage (activations and weights), f32 accumulation.
    F16,
}

impl Precision {
    /// Whether tensors are stored as f16 (two bytes an element).
    pub fn stores_f16(self) -> bool {
        self == Precision::F16
    }

    /// Bytes one stored element takes.
    pub fn element_bytes(self) -> usize {
        if self.stores_f16() {
            2
        } else {
            4
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Precision> {
        match s {
            "f32" | "fp32" => Ok(Precision::F32),
            "tf32" => Ok(Precision::Tf32),
            "f16" | "fp16" => Ok(Precision::F16),
            other => Err(crate::error::Error::Usage(format!(
                "unknown precision '{other}' (known: f32, tf32, f16)"
            ))),
        }
    }
}
