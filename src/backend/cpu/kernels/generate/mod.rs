//! Kernels that produce values rather than move them: Shape, Size, ConstantOfShape,
//! Range and TopK.

pub(crate) mod fill;
pub(crate) mod shape;
pub(crate) mod topk;

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::ir::Op;

/// Prepares a kernel for Shape, Size, ConstantOfShape, Range or TopK.
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match op {
        Op::Shape { start, end } => shape::prepare_shape(*start, *end, inputs, outputs),
        Op::Size => shape::prepare_size(inputs, outputs),
        Op::ConstantOfShape { value } => fill::prepare_constant_of_shape(value, inputs, outputs),
        Op::Range => fill::prepare_range(inputs, outputs),
        Op::TopK {
            axis,
            largest,
            sorted: _,
        } => topk::prepare(*axis, *largest, inputs, outputs),
        _ => Err(Error::shape(op.name(), "not a generator op")),
    }
}
