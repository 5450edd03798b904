//! Kernels for the ops only the optimizer creates: a per-channel affine (a BatchNorm
//! with no conv to fold into), squeeze-excitation, and elementwise chains. `FusedConv`
//! lives with the other convolutions (`conv`), since it is a conv with an epilogue.

mod chain;
mod channel_affine;
mod squeeze_excite;
#[cfg(test)]
mod tests;

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::ir::Op;

pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match op {
        Op::ChannelAffine { activation } => channel_affine::prepare(*activation, inputs, outputs),
        Op::SqueezeExcite { hidden, gate } => squeeze_excite::prepare(*hidden, *gate, inputs, outputs),
        Op::FusedElementwise { steps } => chain::prepare(steps, inputs, outputs),
        other => Err(Error::shape(other.name(), "not a fused op")),
    }
}

/// `[N, C, rest...]` split into (images, channels, elements per channel plane).
fn planes(op: &str, shape: &[usize]) -> Result<(usize, usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::shape(op, format!("input {shape:?} has no channel axis")));
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// A per-channel parameter vector: constant (copied at preparation) or read at run time.
enum Param {
    Const(Vec<f32>),
    Input(usize),
    Absent,
}

impl Param {
    /// Input `i`, which must hold exactly `len` elements when present.
    fn prepare(op: &str, inputs: &[Option<InputDesc<'_>>], i: usize, len: usize) -> Result<Param> {
        let Some(Some(d)) = inputs.get(i) else {
            return Ok(Param::Absent);
        };
        if d.shape.iter().product::<usize>() != len {
            return Err(Error::shape(
                op,
                format!("input {i} has shape {:?}, expected {len} elements", d.shape),
            ));
        }
        Ok(match super::float_io::const_f32(d) {
            Some(v) => Param::Const(v.to_vec()),
            None => Param::Input(i),
        })
    }

    fn get<'a>(
        &'a self,
        inputs: &[Option<crate::tensor::View<'a>>],
        len: usize,
    ) -> Result<Option<&'a [f32]>> {
        let v = match self {
            Param::Absent => return Ok(None),
            Param::Const(v) => v.as_slice(),
            Param::Input(i) => crate::backend::cpu::kernel::required(inputs, *i)?.typed::<f32>()?,
        };
        if v.len() != len {
            return Err(Error::shape("kernel", "parameter has the wrong length"));
        }
        Ok(Some(v))
    }
}
