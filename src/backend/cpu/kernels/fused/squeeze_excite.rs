//! `SqueezeExcite`: per image, `s = mean_hw(x)`, `h = hidden(W1 s + b1)`,
//! `g = gate(W2 h + b2)`, `y = x * g[c]`.
//!
//! Two passes over `x` (the mean must be complete before any channel is scaled)
//! and two small matrix-vector products in between, instead of the five ops and four
//! intermediate tensors of the unfused pattern.

use rayon::prelude::*;

use super::{planes, Param};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::float_io::{expect_f32, output_f32};
use crate::backend::cpu::kernels::numeric::par::{par_chunks, PAR_THRESHOLD};
use crate::backend::cpu::kernels::numeric::sums::sum_map;
use crate::error::{Error, Result};
use crate::ir::ops::Activation;
use crate::tensor::{View, ViewMut};

const NAME: &str = "SqueezeExcite";

struct SqueezeExcite {
    channels: usize,
    reduced: usize,
    plane: usize,
    w1: Param,
    b1: Param,
    w2: Param,
    b2: Param,
    hidden: Activation,
    gate: Activation,
}

/// The `[rows, cols, 1, ...]` shape of a 1x1 conv weight, as `(rows, cols)`.
fn matrix(desc: &InputDesc<'_>) -> Result<(usize, usize)> {
    match desc.shape {
        [rows, cols, rest @ ..] if rest.iter().all(|&d| d == 1) => Ok((*rows, *cols)),
        s => Err(Error::shape(
            NAME,
            format!("weight {s:?} is not a 1x1 convolution"),
        )),
    }
}

pub(super) fn prepare(
    hidden: Activation,
    gate: Activation,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    expect_f32(NAME, inputs, &[0, 1, 2, 3, 4], outputs)?;
    let x = required_desc(inputs, 0)?;
    let (_, channels, plane) = planes(NAME, x.shape)?;
    let (reduced, c1) = matrix(&required_desc(inputs, 1)?)?;
    let (c2, r2) = matrix(&required_desc(inputs, 3)?)?;
    if c1 != channels || c2 != channels || r2 != reduced {
        return Err(Error::shape(
            NAME,
            format!("weights [{reduced}, {c1}] and [{c2}, {r2}] do not fit {channels} channels"),
        ));
    }
    Ok(Box::new(SqueezeExcite {
        channels,
        reduced,
        plane,
        w1: Param::prepare(NAME, inputs, 1, reduced * channels)?,
        b1: Param::prepare(NAME, inputs, 2, reduced)?,
        w2: Param::prepare(NAME, inputs, 3, channels * reduced)?,
        b2: Param::prepare(NAME, inputs, 4, channels)?,
        hidden,
        gate,
    }))
}

/// `out[r] = act(bias[r] + w[r, :] · v)`, rows in parallel when the product is large.
fn mat_vec(w: &[f32], v: &[f32], bias: Option<&[f32]>, act: Activation, out: &mut [f32]) {
    let cols = v.len();
    let row = |(r, o): (usize, &mut f32)| {
        let dot: f32 = w[r * cols..][..cols].iter().zip(v).map(|(a, b)| a * b).sum();
        *o = dot + bias.map_or(0.0, |b| b[r]);
    };
    if out.len() * cols >= PAR_THRESHOLD {
        out.par_iter_mut().enumerate().for_each(row);
    } else {
        out.iter_mut().enumerate().for_each(row);
    }
    act.apply_slice(out);
}

impl Kernel for SqueezeExcite {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?.typed::<f32>()?;
        let y = output_f32(NAME, outputs)?;
        let image = self.channels * self.plane;
        if x.len() != y.len() || image == 0 || x.len() % image != 0 {
            return Err(Error::shape(NAME, "input and output sizes differ from the plan"));
        }
        let (c, r) = (self.channels, self.reduced);
        let missing = || Error::shape(NAME, "weights are required");
        let w1 = self.w1.get(inputs, r * c)?.ok_or_else(missing)?;
        let w2 = self.w2.get(inputs, c * r)?.ok_or_else(missing)?;
        let (b1, b2) = (self.b1.get(inputs, r)?, self.b2.get(inputs, c)?);

        // Squeeze: one mean per (image, channel) plane.
        let images = x.len() / image;
        let mut gates = vec![0.0f32; images * c];
        let plane = self.plane;
        par_chunks(&mut gates, 1, plane, |start, chunk| {
            for (i, g) in chunk.iter_mut().enumerate() {
                let p = start + i;
                *g = (sum_map(&x[p * plane..][..plane], |v| v) / plane as f64) as f32;
            }
        });
        // Excite: two matrix-vector products per image turn the means into gates.
        let mut hidden = vec![0.0f32; r];
        for means in gates.chunks_mut(c) {
            mat_vec(w1, means, b1, self.hidden, &mut hidden);
            mat_vec(w2, &hidden, b2, self.gate, means);
        }
        // Scale every plane by its gate.
        par_chunks(y, plane, 1, |start, chunk| {
            for (i, out) in chunk.chunks_mut(plane).enumerate() {
                let p = start / plane + i;
                let g = gates[p];
                out.iter_mut().zip(&x[p * plane..]).for_each(|(o, &v)| *o = v * g);
            }
        });
        Ok(())
    }
}
