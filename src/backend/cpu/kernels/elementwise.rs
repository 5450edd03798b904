//! Elementwise kernels: unary math and activations, broadcasting binary ops, the
//! variadic Sum/Mean/Max/Min, Clip, Where and Cast.
//!
//! Each op compiles to a tight loop per dtype over contiguous runs of memory (see
//! [`broadcast`](super::broadcast)), split across threads above
//! [`PAR_THRESHOLD`](super::numeric::PAR_THRESHOLD) elements.

mod binary;
mod cast;
mod clip;
pub(crate) mod loops;
mod pow;
mod select;
pub(crate) mod unary;
mod variadic;

#[cfg(test)]
mod tests;

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::ir::ops::Op;

/// Prepares a kernel for `Op::Unary`, `Op::Binary`, `Op::Variadic`, `Op::Clip`,
/// `Op::Where` or `Op::Cast`.
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match op {
        Op::Unary(u) => unary::prepare(*u, inputs, outputs),
        Op::Binary(b) => binary::prepare(*b, inputs, outputs),
        Op::Variadic { op, mean } => variadic::prepare(*op, *mean, inputs, outputs),
        Op::Clip => clip::prepare(inputs, outputs),
        Op::Where => select::prepare(inputs, outputs),
        Op::Cast { to } => cast::prepare(*to, inputs, outputs),
        other => Err(Error::shape(other.name(), "not an elementwise op")),
    }
}
