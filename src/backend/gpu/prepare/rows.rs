//! Row reductions (shaders/rows.wgsl), one workgroup per row: global pooling,
//! softmax, layer normalization.

use crate::error::{Error, Result};
use crate::ir::ops::PoolKind;
use crate::ir::shape::norm_axis;
use crate::plan::{OutputDesc, KERNEL_NODE};

use super::Inputs;
use crate::backend::gpu::program::{grid_1d, u32_param, Bind, Dispatch, GpuKernel};
use crate::backend::gpu::Entry;

/// `RowParams` in shaders/rows.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct RowParams {
    pub rows: u32,
    pub len: u32,
    pub inner: u32,
    pub mode: u32,
    pub epsilon: f32,
    pub has_bias: u32,
    pub has_stats: u32,
}

impl RowParams {
    pub fn new(rows: usize, len: usize, inner: usize) -> Result<RowParams> {
        Ok(RowParams {
            rows: u32_param(rows)?,
            len: u32_param(len)?,
            inner: u32_param(inner)?,
            ..RowParams::default()
        })
    }
}

/// A dispatch averaging (or maxing) each row of `len` contiguous elements.
pub(super) fn pool_rows(
    kind: PoolKind,
    rows: usize,
    len: usize,
    input: Bind,
    output: Bind,
) -> Result<Dispatch> {
    let mut p = RowParams::new(rows, len, 1)?;
    p.mode = u32::from(kind == PoolKind::Max);
    Ok(Dispatch::new(
        Entry::GlobalPool,
        &p,
        vec![input],
        vec![output],
        grid_1d(rows, 1)?,
    ))
}

pub(super) fn global_pool(kind: PoolKind, ins: &Inputs, _outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    if matches!(kind, PoolKind::Lp { .. }) {
        return Err(ins.unsupported("GlobalLpPool is not implemented by the GPU backends".into()));
    }
    if x.shape.len() < 2 {
        return Err(Error::shape(
            KERNEL_NODE,
            "global pooling needs an N x C x ... input",
        ));
    }
    let rows = x.shape[0] * x.shape[1];
    let len: usize = x.shape[2..].iter().product();
    let mut k = GpuKernel::new("global pool");
    k.push(pool_rows(kind, rows, len, Bind::Input(0), Bind::Output(0))?);
    Ok(k)
}

pub(super) fn softmax(
    axis: i64,
    legacy: bool,
    log: bool,
    ins: &Inputs,
    outputs: &[OutputDesc],
) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    let s = x.shape;
    let a = norm_axis(axis, s.len().max(1)).map_err(|e| Error::shape(KERNEL_NODE, e))?;
    let outer: usize = s[..a.min(s.len())].iter().product();
    // Opset < 13 coerces the input to 2-D at `axis`.
    let (len, inner) = if legacy || s.is_empty() {
        (s[a.min(s.len())..].iter().product(), 1)
    } else {
        (s[a], s[a + 1..].iter().product())
    };
    let mut p = RowParams::new(outer * inner, len, inner)?;
    p.mode = log.into();
    let mut k = GpuKernel::new("softmax");
    if outputs[0].shape.iter().product::<usize>() > 0 {
        k.push(Dispatch::new(
            Entry::Softmax,
            &p,
            vec![Bind::Input(0)],
            vec![Bind::Output(0)],
            grid_1d(outer * inner, 1)?,
        ));
    }
    Ok(k)
}

pub(super) fn layer_norm(axis: i64, epsilon: f32, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    let scale = ins.tensor(1)?;
    let a = norm_axis(axis, x.shape.len()).map_err(|e| Error::shape(KERNEL_NODE, e))?;
    let rows: usize = x.shape[..a].iter().product();
    let len: usize = x.shape[a..].iter().product();
    let same = |s: &[usize]| s.iter().product::<usize>() == len;
    if !same(scale.shape) {
        return Err(ins.unsupported(
            "LayerNormalization with a broadcast scale is not implemented by the GPU backends".into(),
        ));
    }
    let mut p = RowParams::new(rows, len, 1)?;
    p.epsilon = epsilon;
    let mut k = GpuKernel::new("layer norm");
    let bias = match ins.get(2) {
        Some(b) => {
            ins.tensor(2)?;
            if !same(b.shape) {
                return Err(ins.unsupported(
                    "LayerNormalization with a broadcast bias is not implemented by the GPU backends".into(),
                ));
            }
            p.has_bias = 1;
            Bind::Input(2)
        }
        None => Bind::Unused,
    };
    p.has_stats = u32::from(outputs.len() > 1);
    let mut stat = |i: usize| {
        if i < outputs.len() {
            Bind::Output(i)
        } else {
            k.scratch(rows.max(1))
        }
    };
    let writes = vec![Bind::Output(0), stat(1), stat(2)];
    if rows * len > 0 {
        k.push(Dispatch::new(
            Entry::LayerNorm,
            &p,
            vec![Bind::Input(0), Bind::Input(1), bias],
            writes,
            grid_1d(rows, 1)?,
        ));
    }
    Ok(k)
}
