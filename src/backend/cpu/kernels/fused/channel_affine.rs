//! `ChannelAffine`: `y = act(x * scale[c] + shift[c])` over channel axis 1.

use super::{planes, Param};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::float_io::{expect_f32, output_f32};
use crate::backend::cpu::kernels::numeric::par::par_chunks;
use crate::error::{Error, Result};
use crate::ir::ops::Activation;
use crate::tensor::{View, ViewMut};

const NAME: &str = "ChannelAffine";

struct ChannelAffine {
    channels: usize,
    plane: usize,
    scale: Param,
    shift: Param,
    activation: Activation,
}

pub(super) fn prepare(
    activation: Activation,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    expect_f32(NAME, inputs, &[0, 1, 2], outputs)?;
    let x = required_desc(inputs, 0)?;
    let (_, channels, plane) = planes(NAME, x.shape)?;
    let scale = Param::prepare(NAME, inputs, 1, channels)?;
    let shift = Param::prepare(NAME, inputs, 2, channels)?;
    if matches!(scale, Param::Absent) || matches!(shift, Param::Absent) {
        return Err(Error::shape(NAME, "scale and shift are required"));
    }
    Ok(Box::new(ChannelAffine {
        channels,
        plane,
        scale,
        shift,
        activation,
    }))
}

impl Kernel for ChannelAffine {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?.typed::<f32>()?;
        let y = output_f32(NAME, outputs)?;
        if x.len() != y.len() || (self.plane > 0 && x.len() % (self.channels * self.plane) != 0) {
            return Err(Error::shape(NAME, "input and output sizes differ from the plan"));
        }
        let (Some(scale), Some(shift)) = (
            self.scale.get(inputs, self.channels)?,
            self.shift.get(inputs, self.channels)?,
        ) else {
            return Err(Error::shape(NAME, "scale and shift are required"));
        };
        let plane = self.plane.max(1);
        par_chunks(y, plane, 2, |start, chunk| {
            for (i, out) in chunk.chunks_mut(plane).enumerate() {
                let p = start / plane + i;
                let c = p % self.channels;
                let (s, b) = (scale[c], shift[c]);
                out.iter_mut()
                    .zip(&x[p * plane..])
                    .for_each(|(o, &v)| *o = v * s + b);
                self.activation.apply_slice(out);
            }
        });
        Ok(())
    }
}
