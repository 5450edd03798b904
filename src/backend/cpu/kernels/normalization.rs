//! Normalization kernels (inference): BatchNormalization, InstanceNormalization and
//! LayerNormalization. Statistics are accumulated in f64 over blocks of vectorized
//! lanes (see [`sums`](super::numeric::sums)); the per-element work is one
//! multiply-add in the input's compute type (f32 for f32/f16/bf16, f64 for f64).

mod batch_norm;

pub(crate) use batch_norm::fold as batch_norm_affine;
mod instance_norm;
mod layer_norm;

#[cfg(test)]
mod tests;

use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::elementwise::loops::single_output;
use crate::backend::cpu::kernels::numeric::floats_to_f64;
use crate::error::{Error, Result};
use crate::ir::ops::Op;
use crate::tensor::{checked_numel, View};

/// Prepares a kernel for `Op::BatchNorm`, `Op::InstanceNorm` or `Op::LayerNorm`.
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match *op {
        Op::BatchNorm { epsilon } => batch_norm::prepare(epsilon, inputs, outputs),
        Op::InstanceNorm { epsilon } => instance_norm::prepare(epsilon, inputs, outputs),
        Op::LayerNorm { axis, epsilon } => layer_norm::prepare(axis, epsilon, inputs, outputs),
        ref other => Err(Error::shape(other.name(), "not a normalization op")),
    }
}

/// Checks `x` is a float `[N, C, ...]` tensor and the one output matches it; returns
/// `(x, channels, elements per (n, c) plane)`. Shared by BatchNorm and InstanceNorm.
fn channel_input<'a>(
    node: &str,
    inputs: &[Option<InputDesc<'a>>],
    outputs: &[OutputDesc],
) -> Result<(InputDesc<'a>, usize, usize)> {
    let x = required_desc(inputs, 0)?;
    let out = single_output(node, outputs)?;
    if x.shape.len() < 2 || !x.dtype.is_float() || out.dtype != x.dtype || out.shape != x.shape {
        return Err(Error::shape(
            node,
            format!(
                "x must be a float [N, C, ...] tensor, got {} {:?}",
                x.dtype, x.shape
            ),
        ));
    }
    let inner = checked_numel(x.shape)
        .and(checked_numel(&x.shape[2..]))
        .ok_or_else(|| Error::shape(node, "shape overflows"))?;
    Ok((x, x.shape[1], inner))
}

/// A per-channel parameter: checks it has `len` elements and reads it when constant.
fn channel_param(node: &str, what: &str, desc: &InputDesc<'_>, len: usize) -> Result<Option<Vec<f64>>> {
    if !desc.dtype.is_float() || checked_numel(desc.shape) != Some(len) {
        return Err(Error::shape(
            node,
            format!(
                "{what} must be a float tensor of {len} elements, got {} {:?}",
                desc.dtype, desc.shape
            ),
        ));
    }
    // A constant whose contents disagree with its description is read at run time
    // instead, where lengths are checked, rather than trusted here.
    let value = desc
        .value
        .map(|t| floats_to_f64(t.view().data, node))
        .transpose()?;
    Ok(value.filter(|v| v.len() == len))
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
