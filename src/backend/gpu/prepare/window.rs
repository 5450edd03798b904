//! Window geometry for the GPU kernels (convolutions, depthwise, pooling), which
//! work on 2-D planes: 1-D windows run as planes of height 1.

use crate::error::Result;
use crate::ir::ops::{Pool, PoolKind};
use crate::ir::window::Geometry;
use crate::plan::OutputDesc;

use super::Inputs;
use crate::backend::gpu::codes::UnaryCode;
use crate::backend::gpu::program::{grid_1d, u32_param, Bind, Dispatch, GpuKernel};
use crate::backend::gpu::Entry;

/// A 2-D window in the shaders' terms: the block of fields that the `Window`
/// (window.wgsl) and `ConvParams` (conv.wgsl) uniforms share, in their order.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Plane {
    pub h: u32,
    pub w: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub dil_h: u32,
    pub dil_w: u32,
    /// Extent of the padded input (begin pad + input + end pad).
    pub padded_h: u32,
    pub padded_w: u32,
}

impl Plane {
    /// `None` for windows of more than two spatial axes.
    pub fn of(g: &Geometry) -> Result<Option<Plane>> {
        let axis = |i: usize| -> Result<[u32; 7]> {
            Ok([
                u32_param(g.input[i])?,
                u32_param(g.output[i])?,
                u32_param(g.kernel[i])?,
                u32_param(g.strides[i])?,
                u32_param(g.pads_begin[i])?,
                u32_param(g.dilations[i])?,
                u32_param(g.pads_begin[i] + g.input[i] + g.pads_end[i])?,
            ])
        };
        let unit = [1, 1, 1, 1, 0, 1, 1];
        let (y, x) = match g.rank() {
            1 => (unit, axis(0)?),
            2 => (axis(0)?, axis(1)?),
            _ => return Ok(None),
        };
        Ok(Some(Plane {
            h: y[0],
            w: x[0],
            oh: y[1],
            ow: x[1],
            kh: y[2],
            kw: x[2],
            stride_h: y[3],
            stride_w: x[3],
            pad_h: y[4],
            pad_w: x[4],
            dil_h: y[5],
            dil_w: x[5],
            padded_h: y[6],
            padded_w: x[6],
        }))
    }
}

/// `Window` in shaders/window.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct WindowParams {
    pub planes: u32,
    pub plane: Plane,
    pub channels: u32,
    pub multiplier: u32,
    pub has_bias: u32,
    pub has_residual: u32,
    pub act: u32,
    pub act_a: f32,
    pub act_b: f32,
    pub kind: u32,
    pub count_include_pad: u32,
}

impl WindowParams {
    pub fn new(planes: usize, plane: &Plane) -> Result<WindowParams> {
        Ok(WindowParams {
            planes: u32_param(planes)?,
            plane: *plane,
            act: UnaryCode::IDENTITY.code,
            ..WindowParams::default()
        })
    }
}

/// MaxPool / AveragePool, one invocation per output element.
pub(super) fn pool(pool: &Pool, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    if outputs.len() > 1 {
        return Err(ins.unsupported("MaxPool's indices output is not implemented by the GPU backends".into()));
    }
    let y = &outputs[0];
    if x.shape.len() < 3 {
        return Err(crate::error::Error::shape(
            crate::plan::KERNEL_NODE,
            "pooling needs an N x C x spatial input",
        ));
    }
    let geom = Geometry::new(
        &pool.window,
        &x.shape[2..],
        &pool.window.kernel_shape,
        pool.ceil_mode,
        &y.shape[2..],
    )?;
    let plane = Plane::of(&geom)?
        .ok_or_else(|| ins.unsupported("3-D pooling is not implemented by the GPU backends".into()))?;
    let planes = x.shape[0] * x.shape[1];
    let mut params = WindowParams::new(planes, &plane)?;
    match pool.kind {
        PoolKind::Max => params.kind = 0,
        PoolKind::Avg { count_include_pad } => {
            params.kind = 1;
            params.count_include_pad = count_include_pad.into();
        }
        PoolKind::Lp { .. } => {
            return Err(ins.unsupported("LpPool is not implemented by the GPU backends".into()))
        }
    }
    let mut k = GpuKernel::new("pool");
    let groups = grid_1d(planes * geom.output_len(), 256)?;
    k.push(Dispatch::new(
        Entry::Pool,
        &params,
        vec![Bind::Input(0)],
        vec![Bind::Output(0)],
        groups,
    ));
    Ok(k)
}
