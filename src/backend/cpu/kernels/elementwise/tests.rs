//! Tests of the elementwise family against f64 reference implementations.

mod binary;
mod misc;
mod unary;

use super::prepare;
use crate::backend::cpu::kernels::numeric::testing::{run1, In};
use crate::ir::ops::Op;
use crate::tensor::DType;

/// Runs an elementwise op with a single output.
fn ew(op: &Op, inputs: &[Option<In>], dtype: DType, shape: &[usize]) -> Vec<f64> {
    run1(prepare, op, inputs, dtype, shape)
}
