//! Pooling kernels: `MaxPool` / `AveragePool` / `LpPool` over any spatial rank
//! ([`local`]), and their global variants ([`global`]).

mod global;
mod interior;
mod local;
#[cfg(test)]
mod tests;
pub(crate) mod windows;

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::ir::ops::Op;
use crate::tensor::{DType, Element};

/// Prepares `Pool` and `GlobalPool`.
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match op {
        Op::Pool(p) => local::prepare(p, inputs, outputs),
        Op::GlobalPool(kind) => global::prepare(*kind, inputs, outputs),
        other => Err(Error::shape(other.name(), "not a pooling op")),
    }
}

/// Element types max pooling supports: ordered, with a value below every other.
pub(crate) trait MaxElem: Element + PartialOrd + Send + Sync {
    /// What an empty window (all padding) yields.
    const LOWEST: Self;
}

impl MaxElem for f32 {
    const LOWEST: f32 = f32::NEG_INFINITY;
}
impl MaxElem for f64 {
    const LOWEST: f64 = f64::NEG_INFINITY;
}
impl MaxElem for half::f16 {
    const LOWEST: half::f16 = half::f16::NEG_INFINITY;
}
impl MaxElem for i8 {
    const LOWEST: i8 = i8::MIN;
}
impl MaxElem for u8 {
    const LOWEST: u8 = u8::MIN;
}

/// Data types accepted by max pooling; average and Lp pooling are f32 only.
fn max_dtype_supported(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::F32 | DType::F64 | DType::F16 | DType::I8 | DType::U8
    )
}

/// `(sum |x|^p)^(1/p)` finishing step and per-element term of Lp pooling.
#[derive(Copy, Clone, Debug)]
struct Lp(u32);

impl Lp {
    #[inline(always)]
    fn term(self, x: f32) -> f32 {
        match self.0 {
            1 => x.abs(),
            2 => x * x,
            p => x.abs().powi(p as i32),
        }
    }

    #[inline(always)]
    fn finish(self, sum: f32) -> f32 {
        match self.0 {
            1 => sum,
            2 => sum.sqrt(),
            p => sum.powf(1.0 / p as f32),
        }
    }
}
