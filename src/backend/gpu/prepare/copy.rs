//! Data movement as strided copies of boxes (shaders/copy.wgsl): Concat, Split,
//! Slice, Transpose, Expand, Pad, Identity. No arithmetic, so every one of them is
//! exact in either precision.

use crate::backend::cpu::kernels::broadcast::Broadcast;
use crate::error::{Error, Result};
use crate::ir::shape::{norm_axis, slice_params};
use crate::plan::{OutputDesc, KERNEL_NODE};

use super::Inputs;
use crate::backend::gpu::program::{grid_1d, u32_param, Bind, Dispatch, GpuKernel};
use crate::backend::gpu::Entry;

/// Boxes of at most this many dimensions.
const MAX_RANK: usize = 8;

/// `CopyParams` in shaders/copy.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct CopyParams {
    dims: [u32; MAX_RANK],
    x_strides: [i32; MAX_RANK],
    o_strides: [i32; MAX_RANK],
    len: u32,
    x_off: i32,
    o_off: i32,
    _pad: u32,
}

/// `FillParams` in shaders/copy.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct FillParams {
    len: u32,
    value: f32,
}

/// One side of a copy: where the box starts and how its axes step, in elements.
pub(super) struct Side {
    pub offset: isize,
    pub strides: Vec<isize>,
}

impl Side {
    /// The whole of a contiguous tensor of `shape`, starting at `offset`.
    pub fn dense(shape: &[usize], offset: isize) -> Side {
        Side {
            offset,
            strides: contiguous_strides(shape),
        }
    }
}

fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut step = 1isize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = step;
        step = step.saturating_mul(d as isize);
    }
    strides
}

fn i32_param(v: isize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Limit(format!("offset {v} does not fit the GPU's 32-bit indices")))
}

/// A dispatch copying the box `dims` from `input` (read through `x`) to `output`
/// (written through `o`). Empty boxes need no dispatch.
pub(super) fn copy_box(
    dims: &[usize],
    x: &Side,
    o: &Side,
    input: Bind,
    output: Bind,
) -> Result<Option<Dispatch>> {
    let len: usize = dims.iter().product();
    if len == 0 {
        return Ok(None);
    }
    if dims.len() > MAX_RANK {
        return Err(Error::Limit(format!("copies of more than {MAX_RANK} dimensions")));
    }
    let mut p = CopyParams {
        dims: [1; MAX_RANK],
        x_strides: [0; MAX_RANK],
        o_strides: [0; MAX_RANK],
        len: u32_param(len)?,
        x_off: i32_param(x.offset)?,
        o_off: i32_param(o.offset)?,
        _pad: 0,
    };
    let first = MAX_RANK - dims.len();
    for (i, &d) in dims.iter().enumerate() {
        p.dims[first + i] = u32_param(d)?;
        p.x_strides[first + i] = i32_param(x.strides[i])?;
        p.o_strides[first + i] = i32_param(o.strides[i])?;
    }
    Ok(Some(Dispatch::new(
        Entry::Copy,
        &p,
        vec![input],
        vec![output],
        grid_1d(len, 256)?,
    )))
}

fn kernel(label: &'static str, dispatches: impl IntoIterator<Item = Option<Dispatch>>) -> GpuKernel {
    let mut k = GpuKernel::new(label);
    k.dispatches.extend(dispatches.into_iter().flatten());
    k
}

pub(super) fn identity(ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    // Dropout's mask output is a bool tensor, which the planner already refused.
    let y = &outputs[0].shape;
    let copy = copy_box(
        y,
        &Side::dense(x.shape, 0),
        &Side::dense(y, 0),
        Bind::Input(0),
        Bind::Output(0),
    )?;
    Ok(kernel("copy", [copy]))
}

pub(super) fn concat(axis: i64, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let y = &outputs[0].shape;
    let axis = norm_axis(axis, y.len()).map_err(|e| Error::shape(KERNEL_NODE, e))?;
    let out_strides = contiguous_strides(y);
    let mut at = 0usize;
    let mut copies = Vec::new();
    for i in 0..ins.len() {
        let x = ins.tensor(i)?;
        let o = Side {
            offset: (at as isize).saturating_mul(out_strides[axis]),
            strides: out_strides.clone(),
        };
        copies.push(copy_box(
            x.shape,
            &Side::dense(x.shape, 0),
            &o,
            Bind::Input(i),
            Bind::Output(0),
        )?);
        at += x.shape.get(axis).copied().unwrap_or(0);
    }
    Ok(kernel("concat", copies))
}

pub(super) fn split(axis: i64, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    let axis = norm_axis(axis, x.shape.len()).map_err(|e| Error::shape(KERNEL_NODE, e))?;
    let in_strides = contiguous_strides(x.shape);
    let mut at = 0usize;
    let mut copies = Vec::new();
    for (j, y) in outputs.iter().enumerate() {
        let from = Side {
            offset: (at as isize).saturating_mul(in_strides[axis]),
            strides: in_strides.clone(),
        };
        copies.push(copy_box(
            &y.shape,
            &from,
            &Side::dense(&y.shape, 0),
            Bind::Input(0),
            Bind::Output(j),
        )?);
        at += y.shape.get(axis).copied().unwrap_or(0);
    }
    Ok(kernel("split", copies))
}

pub(super) fn transpose(perm: Option<&[usize]>, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    let rank = x.shape.len();
    let perm: Vec<usize> = perm.map_or_else(|| (0..rank).rev().collect(), <[usize]>::to_vec);
    if perm.len() != rank || perm.iter().any(|&p| p >= rank) {
        return Err(Error::shape(KERNEL_NODE, format!("bad permutation {perm:?}")));
    }
    let in_strides = contiguous_strides(x.shape);
    let from = Side {
        offset: 0,
        strides: perm.iter().map(|&p| in_strides[p]).collect(),
    };
    let y = &outputs[0].shape;
    let copy = copy_box(y, &from, &Side::dense(y, 0), Bind::Input(0), Bind::Output(0))?;
    Ok(kernel("transpose", [copy]))
}

pub(super) fn slice(ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    let rank = x.shape.len();
    let starts = ins.constant_ints(1)?.unwrap_or_default();
    let ends = ins.constant_ints(2)?.unwrap_or_default();
    let axes = ins
        .constant_ints(3)?
        .unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = ins.constant_ints(4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(Error::shape(
            KERNEL_NODE,
            "Slice starts/ends/axes/steps differ in length",
        ));
    }
    let in_strides = contiguous_strides(x.shape);
    let mut from = Side {
        offset: 0,
        strides: in_strides.clone(),
    };
    for k in 0..starts.len() {
        let a = norm_axis(axes[k], rank).map_err(|e| Error::shape(KERNEL_NODE, e))?;
        let (start, step, _) = slice_params(x.shape[a], starts[k], ends[k], steps[k])
            .map_err(|e| Error::shape(KERNEL_NODE, e))?;
        // Saturating: an absurd step becomes an offset `i32_param` refuses.
        from.offset = from
            .offset
            .saturating_add((start as isize).saturating_mul(in_strides[a]));
        from.strides[a] = (step as isize).saturating_mul(in_strides[a]);
    }
    let y = &outputs[0].shape;
    let copy = copy_box(y, &from, &Side::dense(y, 0), Bind::Input(0), Bind::Output(0))?;
    Ok(kernel("slice", [copy]))
}

pub(super) fn expand(ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    let plan = Broadcast::new(KERNEL_NODE, &outputs[0].shape, [x.shape])?;
    let from = Side {
        offset: 0,
        strides: plan.strides().iter().map(|s| s[0] as isize).collect(),
    };
    let dims = plan.dims();
    let copy = copy_box(
        dims,
        &from,
        &Side::dense(dims, 0),
        Bind::Input(0),
        Bind::Output(0),
    )?;
    Ok(kernel("expand", [copy]))
}

/// Constant-mode Pad: fill the output, then copy the input's surviving box into it
/// (negative pads crop).
pub(super) fn pad(ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    let rank = x.shape.len();
    let pads = ins
        .constant_ints(1)?
        .ok_or_else(|| Error::shape(KERNEL_NODE, "pads are required"))?;
    let value = match ins.get(2) {
        Some(_) => ins.constant_f32(2)?.first().copied().unwrap_or(0.0),
        None => 0.0,
    };
    let axes: Vec<usize> = match ins.constant_ints(3)? {
        Some(a) => a
            .iter()
            .map(|&a| norm_axis(a, rank))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::shape(KERNEL_NODE, e))?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(Error::shape(
            KERNEL_NODE,
            "pads must hold a begin and an end per axis",
        ));
    }
    let mut begin = vec![0i64; rank];
    let mut end = vec![0i64; rank];
    for (k, &a) in axes.iter().enumerate() {
        begin[a] = pads[k];
        end[a] = pads[axes.len() + k];
    }
    let y = &outputs[0].shape;
    let in_strides = contiguous_strides(x.shape);
    let out_strides = contiguous_strides(y);
    let mut dims = Vec::with_capacity(rank);
    let (mut x_off, mut o_off) = (0isize, 0isize);
    for a in 0..rank {
        // Saturating throughout: pads are the model's, and may be absurd.
        let crop_begin = usize::try_from(begin[a].saturating_neg()).unwrap_or(0);
        let crop_end = usize::try_from(end[a].saturating_neg()).unwrap_or(0);
        dims.push(x.shape[a].saturating_sub(crop_begin.saturating_add(crop_end)));
        let grow_begin = isize::try_from(begin[a].max(0)).unwrap_or(isize::MAX);
        x_off = x_off.saturating_add(
            isize::try_from(crop_begin)
                .unwrap_or(isize::MAX)
                .saturating_mul(in_strides[a]),
        );
        o_off = o_off.saturating_add(grow_begin.saturating_mul(out_strides[a]));
    }
    let len: usize = y.iter().product();
    let fill = FillParams {
        len: u32_param(len)?,
        value,
    };
    let mut k = GpuKernel::new("pad");
    if len > 0 {
        k.push(Dispatch::new(
            Entry::Fill,
            &fill,
            vec![],
            vec![Bind::Output(0)],
            grid_1d(len, 256)?,
        ));
    }
    let from = Side {
        offset: x_off,
        strides: in_strides,
    };
    let to = Side {
        offset: o_off,
        strides: out_strides,
    };
    k.dispatches
        .extend(copy_box(&dims, &from, &to, Bind::Input(0), Bind::Output(0))?);
    Ok(k)
}
