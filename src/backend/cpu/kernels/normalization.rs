//! Normalization kernels (inference): BatchNormalization, InstanceNormalization and
//! LayerNormalization. Statistics are accumulated in f64 over blocks of vectorized
//! lanes (see [`sums`](super::numeric::sums)); the per-element work is one
//! multiply-add in the input's compute type (f32 for f32/f16/bf16, f64 for f64).

mod batch_norm;
mod instance_norm;
mod layer_norm;

#[cfg(test)]
mod tests;

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::numeric::floats_to_f64;
use crate::error::{Error, Result};
use crate::ir::ops::Op;
use crate::tensor::{checked_numel, DType, View};

/// Prepares a kernel for `Op::BatchNorm`, `Op::InstanceNorm` or `Op::LayerNorm`.
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match *op {
        Op::BatchNorm { epsilon } => batch_norm::prepare(epsilon, inputs, outputs),
        Op::InstanceNorm { epsilon } => instance_norm::prepare(epsilon, inputs, outputs),
        Op::LayerNorm { axis, epsilon } => layer_norm::prepare(axis, epsilon, inputs, outputs),
        ref other => Err(Error::shape(other.name(), "not a normalization op")),
    }
}

fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// A per-channel parameter: checks it has `len` elements and reads it when constant.
fn channel_param(node: &str, what: &str, desc: &InputDesc<'_>, len: usize) -> Result<Option<Vec<f64>>> {
    if !is_float(desc.dtype) || checked_numel(desc.shape) != Some(len) {
        return Err(Error::shape(
            node,
            format!(
                "{what} must be a float tensor of {len} elements, got {} {:?}",
                desc.dtype, desc.shape
            ),
        ));
    }
    desc.value.map(|t| floats_to_f64(t.view().data, node)).transpose()
}

/// A per-channel parameter at run time, checked against the prepared length.
fn runtime_param(node: &str, view: Option<View<'_>>, len: usize) -> Result<Vec<f64>> {
    let view = view.ok_or_else(|| Error::shape(node, "missing parameter input"))?;
    let v = floats_to_f64(view.data, node)?;
    if v.len() != len {
        return Err(Error::shape(
            node,
            format!("parameter has {} elements, expected {len}", v.len()),
        ));
    }
    Ok(v)
}
