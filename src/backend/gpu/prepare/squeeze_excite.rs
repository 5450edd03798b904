//! Squeeze-excitation in four dispatches: pool each plane, the two small dense
//! layers, then scale the planes by their gates. The two intermediate vectors
//! live in scratch buffers.

use crate::error::{Error, Result};
use crate::ir::ops::{Activation, PoolKind};
use crate::plan::{OutputDesc, KERNEL_NODE};

use super::elementwise::AffineParams;
use super::rows::pool_rows;
use super::Inputs;
use crate::backend::gpu::codes::UnaryCode;
use crate::backend::gpu::program::{grid_1d, u32_param, Bind, Dispatch, GpuKernel};
use crate::backend::gpu::Entry;

/// `DenseParams` in shaders/squeeze_excite.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct DenseParams {
    outputs: u32,
    inputs: u32,
    images: u32,
    has_bias: u32,
    act: u32,
    act_a: f32,
    act_b: f32,
}

fn dense(
    outputs: usize,
    inputs: usize,
    images: usize,
    act: Activation,
    reads: Vec<Bind>,
    out: Bind,
) -> Result<Dispatch> {
    let f = UnaryCode::activation(act);
    let p = DenseParams {
        outputs: u32_param(outputs)?,
        inputs: u32_param(inputs)?,
        images: u32_param(images)?,
        has_bias: u32::from(reads[2] != Bind::Unused),
        act: f.code,
        act_a: f.a,
        act_b: f.b,
    };
    Ok(Dispatch::new(
        Entry::Dense,
        &p,
        reads,
        vec![out],
        grid_1d(outputs * images, 64)?,
    ))
}

pub(super) fn prepare(
    hidden: Activation,
    gate: Activation,
    ins: &Inputs,
    outputs: &[OutputDesc],
) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    let w1 = ins.tensor(1)?;
    let w2 = ins.tensor(3)?;
    if x.shape.len() < 2 || w1.shape.len() < 2 || w2.shape.len() < 2 {
        return Err(Error::shape(
            KERNEL_NODE,
            "squeeze-excitation needs N x C x ... input and 1x1 conv weights",
        ));
    }
    let (images, channels) = (x.shape[0], x.shape[1]);
    let plane: usize = x.shape[2..].iter().product();
    let reduced = w1.shape[0];
    if w1.shape[1] != channels || w2.shape[0] != channels || w2.shape[1] != reduced {
        return Err(Error::shape(
            KERNEL_NODE,
            format!(
                "weights {:?} and {:?} do not fit {channels} channels",
                w1.shape, w2.shape
            ),
        ));
    }
    let bias = |i: usize| -> Result<Bind> {
        Ok(match ins.get(i) {
            Some(_) => {
                ins.tensor(i)?;
                Bind::Input(i)
            }
            None => Bind::Unused,
        })
    };
    let (b1, b2) = (bias(2)?, bias(4)?);
    let mut k = GpuKernel::new("squeeze-excite");
    let mean = k.scratch(images * channels);
    let hid = k.scratch(images * reduced);
    let gates = k.scratch(images * channels);
    k.push(pool_rows(
        PoolKind::Avg {
            count_include_pad: false,
        },
        images * channels,
        plane,
        Bind::Input(0),
        mean,
    )?);
    k.push(dense(
        reduced,
        channels,
        images,
        hidden,
        vec![mean, Bind::Input(1), b1],
        hid,
    )?);
    k.push(dense(
        channels,
        reduced,
        images,
        gate,
        vec![hid, Bind::Input(3), b2],
        gates,
    )?);
    let len: usize = outputs[0].shape.iter().product();
    let scale = AffineParams {
        len: u32_param(len)?,
        inner: u32_param(plane.max(1))?,
        ..AffineParams::default()
    };
    k.push(Dispatch::new(
        Entry::ScalePlanes,
        &scale,
        vec![Bind::Input(0), gates],
        vec![Bind::Output(0)],
        grid_1d(len, 256)?,
    ));
    Ok(k)
}
