//! Convolutions: a direct kernel for depthwise ones, an implicit GEMM for the rest.

use crate::error::{Error, Result};
use crate::ir::ops::FusedConv;
use crate::ir::window::{conv_kernel_shape, Geometry};
use crate::plan::{OutputDesc, KERNEL_NODE};

use super::copy::{copy_box, Side};
use super::window::{Plane, WindowParams};
use super::Inputs;
use crate::backend::gpu::codes::UnaryCode;
use crate::backend::gpu::program::{grid_1d, u32_param, Bind, Dispatch, GpuKernel};
use crate::backend::gpu::Entry;

/// Output tile of the implicit GEMM (shaders/tile.wgsl).
const TILE: usize = 64;

/// `ConvParams` in shaders/conv.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct ConvParams {
    batch: u32,
    groups: u32,
    in_channels: u32,
    group_in: u32,
    group_out: u32,
    plane: Plane,
    pointwise: u32,
    has_bias: u32,
    has_residual: u32,
    act: u32,
    act_a: f32,
    act_b: f32,
}

/// A convolution's checked shapes, for every GPU implementation of it.
pub(crate) struct ConvShape {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub geometry: Geometry,
}

impl ConvShape {
    /// Image (input 0), weights (input 1) and output shapes, checked to fit.
    pub(crate) fn of(op: &FusedConv, ins: &Inputs, outputs: &[OutputDesc]) -> Result<ConvShape> {
        let x = ins.tensor(0)?;
        let w = ins.tensor(1)?;
        let y = &outputs[0];
        if x.shape.len() < 3 || w.shape.len() != x.shape.len() || y.shape.len() != x.shape.len() {
            return Err(Error::shape(
                KERNEL_NODE,
                format!("conv input {:?} and weights {:?} do not fit", x.shape, w.shape),
            ));
        }
        let kernel = conv_kernel_shape(&op.conv.window, w.shape)?;
        let geometry = Geometry::new(&op.conv.window, &x.shape[2..], &kernel, false, &y.shape[2..])?;
        let (batch, in_channels, out_channels) = (x.shape[0], x.shape[1], w.shape[0]);
        let groups = op.conv.group;
        if groups == 0
            || in_channels % groups != 0
            || out_channels % groups != 0
            || w.shape[1] * groups != in_channels
        {
            return Err(Error::shape(
                KERNEL_NODE,
                format!("{groups} groups do not divide the conv's channels"),
            ));
        }
        Ok(ConvShape {
            batch,
            in_channels,
            out_channels,
            groups,
            geometry,
        })
    }
}

pub(super) fn prepare(op: &FusedConv, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let ConvShape {
        batch,
        in_channels,
        out_channels,
        groups,
        geometry: geom,
    } = ConvShape::of(op, ins, outputs)?;
    let w = ins.tensor(1)?;
    let y = &outputs[0];
    let plane = Plane::of(&geom)?
        .ok_or_else(|| ins.unsupported("3-D convolution is not implemented by the GPU backends".into()))?;
    let has_bias = ins.get(2).is_some();
    if has_bias {
        ins.tensor(2)?;
    }
    if op.residual {
        ins.tensor(3)?;
    }
    let act = UnaryCode::activation(op.activation);
    let reads = vec![
        Bind::Input(0),
        Bind::Unused,
        if has_bias { Bind::Input(2) } else { Bind::Unused },
        if op.residual { Bind::Input(3) } else { Bind::Unused },
    ];
    let mut k = GpuKernel::new("");
    let group_in = in_channels / groups;
    let group_out = out_channels / groups;
    if group_in == 1 && groups == in_channels {
        k.label = "depthwise";
        let mut p = WindowParams::new(batch * out_channels, &plane)?;
        p.channels = u32_param(out_channels)?;
        p.multiplier = u32_param(group_out)?;
        p.has_bias = has_bias.into();
        p.has_residual = op.residual.into();
        (p.act, p.act_a, p.act_b) = (act.code, act.a, act.b);
        let mut reads = reads;
        // ONNX's [channels][1][kh][kw] is already the layout the kernel reads.
        reads[1] = Bind::Input(1);
        let groups = grid_1d(batch * out_channels * geom.output_len(), 256)?;
        k.push(Dispatch::new(
            Entry::Depthwise,
            &p,
            reads,
            vec![Bind::Output(0)],
            groups,
        ));
        return Ok(k);
    }
    k.label = if geom.is_pointwise() {
        "pointwise gemm"
    } else {
        "implicit gemm"
    };
    let p = ConvParams {
        batch: u32_param(batch)?,
        groups: u32_param(groups)?,
        in_channels: u32_param(in_channels)?,
        group_in: u32_param(group_in)?,
        group_out: u32_param(group_out)?,
        plane,
        pointwise: geom.is_pointwise().into(),
        has_bias: has_bias.into(),
        has_residual: op.residual.into(),
        act: act.code,
        act_a: act.a,
        act_b: act.b,
    };
    let mut reads = reads;
    let taps = group_in * geom.kernel_len();
    reads[1] = match w.value {
        Some(_) => k.weight(pack_weights(&ins.constant_f32(1)?, groups, group_out, taps)),
        // Weights computed at run time are repacked on the GPU, by a strided copy.
        None => {
            let packed = k.scratch(w.shape.iter().product());
            let (m, kk) = (group_out as isize, taps as isize);
            let from = Side {
                offset: 0,
                strides: vec![m * kk, 1, kk],
            };
            let copy = copy_box(
                &[groups, taps, group_out],
                &from,
                &Side::dense(&[groups, taps, group_out], 0),
                Bind::Input(1),
                packed,
            )?;
            k.dispatches.extend(copy);
            packed
        }
    };
    let grid = [
        u32_param(geom.output_len().div_ceil(TILE))?,
        u32_param(group_out.div_ceil(TILE))?,
        u32_param(batch * groups)?,
    ];
    if grid
        .iter()
        .any(|&g| g > crate::backend::gpu::program::MAX_GROUPS_PER_DIM)
    {
        return Err(Error::Limit(format!(
            "conv of shape {:?} is too large for one GPU dispatch",
            y.shape
        )));
    }
    k.push(Dispatch::new(Entry::Conv, &p, reads, vec![Bind::Output(0)], grid));
    Ok(k)
}

/// ONNX weights `[groups * m][k]` -> `[groups][k][m]`: the GEMM's A tiles are read
/// along m, so that is the contiguous axis.
fn pack_weights(w: &[f32], groups: usize, m: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for g in 0..groups {
        for mi in 0..m {
            for ki in 0..k {
                out[(g * k + ki) * m + mi] = w[(g * m + mi) * k + ki];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn weights_are_packed_k_major_per_group() {
        // 2 groups, m = 2, k = 3.
        let w: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let p = super::pack_weights(&w, 2, 2, 3);
        assert_eq!(p, [0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]);
    }
}
