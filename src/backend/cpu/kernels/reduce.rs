//! Reduction kernels: the ten `Reduce*` ops, ArgMax/ArgMin, Softmax/LogSoftmax and
//! CumSum. All of them see their input as groups of axes that are either reduced
//! (or scanned) or kept; see [`layout`].

mod arg_extreme;
mod axes;
mod cumsum;
mod layout;
mod reduce_op;
mod softmax;

#[cfg(test)]
mod tests;

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::ir::ops::Op;

/// Prepares a kernel for `Op::Reduce`, `Op::ArgExtreme`, `Op::Softmax` or `Op::CumSum`.
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match op {
        Op::Reduce(r) => reduce_op::prepare(r, inputs, outputs),
        &Op::ArgExtreme {
            max,
            axis,
            keepdims: _,
            select_last_index,
        } => arg_extreme::prepare(max, axis, select_last_index, inputs, outputs),
        &Op::Softmax { axis, legacy, log } => softmax::prepare(axis, legacy, log, inputs, outputs),
        &Op::CumSum { exclusive, reverse } => cumsum::prepare(exclusive, reverse, inputs, outputs),
        other => Err(Error::shape(other.name(), "not a reduction op")),
    }
}
