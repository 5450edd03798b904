//! Elementwise kernels: unary and broadcasting binary ops, fused chains, and
//! per-channel affine maps (BatchNorm, `ChannelAffine`).

use crate::backend::cpu::kernels::broadcast::Broadcast;
use crate::error::{Error, Result};
use crate::ir::ops::{Activation, BinaryOp, ChainStep, UnaryOp};
use crate::plan::{OutputDesc, KERNEL_NODE};

use super::Inputs;
use crate::backend::gpu::codes::{binary_code, UnaryCode};
use crate::backend::gpu::program::{grid_1d, u32_param, Bind, Dispatch, GpuKernel};
use crate::backend::gpu::Entry;

/// `UnaryParams` in shaders/elementwise.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct UnaryParams {
    len: u32,
    code: u32,
    a: f32,
    b: f32,
}

/// Broadcasting over at most this many dimensions.
const MAX_RANK: usize = 8;

/// `BinaryParams` in shaders/elementwise.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct BinaryParams {
    dims: [u32; MAX_RANK],
    a_strides: [u32; MAX_RANK],
    b_strides: [u32; MAX_RANK],
    len: u32,
    code: u32,
    mode: u32,
    _pad: u32,
}

/// Chains of at most this many steps and operands (the shader's binding count).
const MAX_STEPS: usize = 16;
const MAX_OPERANDS: usize = 6;

/// `ChainParams` in shaders/elementwise.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct ChainParams {
    steps: [[u32; 4]; MAX_STEPS],
    len: u32,
    count: u32,
    scalar_mask: u32,
    _pad: u32,
}

/// `AffineParams` in shaders/elementwise.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct AffineParams {
    pub len: u32,
    pub inner: u32,
    pub channels: u32,
    pub act: u32,
    pub act_a: f32,
    pub act_b: f32,
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn unary_dispatch(f: UnaryCode, len: usize, input: Bind, output: Bind) -> Result<Dispatch> {
    let p = UnaryParams {
        len: u32_param(len)?,
        code: f.code,
        a: f.a,
        b: f.b,
    };
    Ok(Dispatch::new(
        Entry::Unary,
        &p,
        vec![input],
        vec![output],
        grid_1d(len, 256)?,
    ))
}

fn unary_kernel(f: UnaryCode, len: usize) -> Result<GpuKernel> {
    let mut k = GpuKernel::new("unary");
    k.push(unary_dispatch(f, len, Bind::Input(0), Bind::Output(0))?);
    Ok(k)
}

pub(super) fn unary(op: UnaryOp, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    ins.tensor(0)?;
    let f = UnaryCode::of(op).ok_or_else(|| ins.unsupported("not a float function".into()))?;
    unary_kernel(f, numel(&outputs[0].shape))
}

/// `Clip` with constant bounds (the optimizer turns most into `Unary(Clamp)`).
pub(super) fn clip(ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    ins.tensor(0)?;
    let bound = |i: usize, default: f32| -> Result<f32> {
        if ins.get(i).is_none() {
            return Ok(default);
        }
        let v = ins.constant_f32(i)?;
        v.first()
            .copied()
            .ok_or_else(|| Error::shape(KERNEL_NODE, "empty Clip bound"))
    };
    let f = UnaryCode::of(UnaryOp::Clamp {
        min: bound(1, f32::NEG_INFINITY)?,
        max: bound(2, f32::INFINITY)?,
    })
    .ok_or_else(|| ins.unsupported("Clip".into()))?;
    unary_kernel(f, numel(&outputs[0].shape))
}

/// `y = a op b` with `a` and `b` (of the given shapes) broadcast to `y`.
fn binary_dispatch(
    code: u32,
    a: (&[usize], Bind),
    b: (&[usize], Bind),
    y: (&[usize], Bind),
) -> Result<Dispatch> {
    let out = y.0;
    // Merged axes: `[N,C,H,W] + [1,C,1,1]` walks as `[N, C, H·W]`.
    let plan = Broadcast::new(KERNEL_NODE, out, [a.0, b.0])?;
    let rank = plan.dims().len();
    if rank > MAX_RANK {
        return Err(Error::Limit(format!(
            "broadcasting over more than {MAX_RANK} dimensions"
        )));
    }
    let mut p = BinaryParams {
        dims: [1; MAX_RANK],
        len: u32_param(plan.numel())?,
        code,
        mode: (a.0 == out && b.0 == out).into(),
        ..BinaryParams::default()
    };
    for (i, (&d, s)) in plan.dims().iter().zip(plan.strides()).enumerate() {
        let slot = MAX_RANK - rank + i;
        p.dims[slot] = u32_param(d)?;
        p.a_strides[slot] = u32_param(s[0])?;
        p.b_strides[slot] = u32_param(s[1])?;
    }
    Ok(Dispatch::new(
        Entry::Binary,
        &p,
        vec![a.1, b.1],
        vec![y.1],
        grid_1d(plan.numel(), 256)?,
    ))
}

fn arithmetic(op: BinaryOp, ins: &Inputs) -> Result<u32> {
    binary_code(op).ok_or_else(|| ins.unsupported("not a float arithmetic op".into()))
}

pub(super) fn binary(op: BinaryOp, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let (a, b) = (ins.tensor(0)?, ins.tensor(1)?);
    let y = &outputs[0].shape;
    let mut k = GpuKernel::new("binary");
    k.push(binary_dispatch(
        arithmetic(op, ins)?,
        (a.shape, Bind::Input(0)),
        (b.shape, Bind::Input(1)),
        (y, Bind::Output(0)),
    )?);
    Ok(k)
}

/// `Sum` / `Mean` / `Max` / `Min` of any number of broadcast inputs: a binary
/// dispatch per extra input, the running result in scratch buffers (a dispatch may
/// not read the buffer it writes), then Mean's division.
pub(super) fn variadic(op: BinaryOp, mean: bool, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let code = arithmetic(op, ins)?;
    let y = outputs[0].shape.as_slice();
    let len = numel(y);
    let n = ins.len();
    let mut k = GpuKernel::new("variadic");
    if n == 0 {
        return Err(Error::shape(KERNEL_NODE, "no inputs"));
    }
    let scratch = [k.scratch(len), k.scratch(len)];
    // The buffer the step writing the `i`-th partial result targets.
    let finishing = |i: usize| i + 1 == n && !mean;
    let target = |i: usize| {
        if finishing(i) {
            Bind::Output(0)
        } else {
            scratch[i % 2]
        }
    };
    let first = ins.tensor(0)?;
    if n == 1 {
        // Sum, Mean, Max or Min of one tensor: the tensor itself.
        if first.shape != y {
            return Err(Error::shape(
                KERNEL_NODE,
                format!("{:?} is not the output shape {y:?}", first.shape),
            ));
        }
        k.push(unary_dispatch(
            UnaryCode::IDENTITY,
            len,
            Bind::Input(0),
            Bind::Output(0),
        )?);
        return Ok(k);
    }
    let mut acc = (first.shape, Bind::Input(0));
    for i in 1..n {
        let x = ins.tensor(i)?;
        k.push(binary_dispatch(
            code,
            acc,
            (x.shape, Bind::Input(i)),
            (y, target(i)),
        )?);
        acc = (y, target(i));
    }
    if mean {
        k.push(unary_dispatch(
            UnaryCode::affine(1.0 / n as f32, 0.0),
            len,
            acc.1,
            Bind::Output(0),
        )?);
    }
    Ok(k)
}

pub(super) fn chain(steps: &[ChainStep], ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let x = ins.tensor(0)?;
    let operands = ins.len() - 1;
    if steps.len() > MAX_STEPS || operands > MAX_OPERANDS {
        return Err(ins.unsupported(format!(
            "chains of more than {MAX_STEPS} steps or {MAX_OPERANDS} operands"
        )));
    }
    let len = numel(&outputs[0].shape);
    let mut p = ChainParams {
        steps: [[0; 4]; MAX_STEPS],
        len: u32_param(len)?,
        count: steps.len() as u32,
        scalar_mask: 0,
        _pad: 0,
    };
    let mut reads = vec![Bind::Input(0)];
    for i in 0..MAX_OPERANDS {
        if i < operands {
            let o = ins.tensor(i + 1)?;
            let n = numel(o.shape);
            if n == 1 {
                p.scalar_mask |= 1 << i;
            } else if n != numel(x.shape) {
                return Err(Error::shape(
                    KERNEL_NODE,
                    format!("chain operand {:?} is not a scalar or {:?}", o.shape, x.shape),
                ));
            }
            reads.push(Bind::Input(i + 1));
        } else {
            reads.push(Bind::Unused);
        }
    }
    for (slot, step) in p.steps.iter_mut().zip(steps) {
        *slot = match *step {
            ChainStep::Unary(u) => {
                let f = UnaryCode::of(u).ok_or_else(|| ins.unsupported("not a float function".into()))?;
                [f.code, 0, f.a.to_bits(), f.b.to_bits()]
            }
            ChainStep::Binary { op, operand, swapped } => {
                let code = arithmetic(op, ins)?;
                if operand == 0 || operand > operands {
                    return Err(Error::shape(
                        KERNEL_NODE,
                        format!("chain operand {operand} does not exist"),
                    ));
                }
                [code + if swapped { 512 } else { 256 }, (operand - 1) as u32, 0, 0]
            }
        };
    }
    let mut k = GpuKernel::new("chain");
    k.push(Dispatch::new(
        Entry::Chain,
        &p,
        reads,
        vec![Bind::Output(0)],
        grid_1d(len, 256)?,
    ));
    Ok(k)
}

/// Elements per channel plane, and channels, of an `N x C x ...` tensor.
fn channel_layout(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::shape(
            KERNEL_NODE,
            format!("{shape:?} has no channel axis"),
        ));
    }
    Ok((shape[2..].iter().product(), shape[1]))
}

fn affine_kernel(act: Activation, shape: &[usize], scale: Bind, shift: Bind) -> Result<GpuKernel> {
    let (inner, channels) = channel_layout(shape)?;
    let f = UnaryCode::activation(act);
    let len = numel(shape);
    let p = AffineParams {
        len: u32_param(len)?,
        inner: u32_param(inner.max(1))?,
        channels: u32_param(channels.max(1))?,
        act: f.code,
        act_a: f.a,
        act_b: f.b,
    };
    let mut k = GpuKernel::new("channel affine");
    k.push(Dispatch::new(
        Entry::ChannelAffine,
        &p,
        vec![Bind::Input(0), scale, shift],
        vec![Bind::Output(0)],
        grid_1d(len, 256)?,
    ));
    Ok(k)
}

pub(super) fn channel_affine(act: Activation, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    ins.tensor(0)?;
    ins.tensor(1)?;
    ins.tensor(2)?;
    affine_kernel(act, &outputs[0].shape, Bind::Input(1), Bind::Input(2))
}

/// Inference BatchNorm with constant statistics, folded into a scale and a shift
/// (in f64) at prepare.
pub(super) fn batch_norm(epsilon: f32, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    ins.tensor(0)?;
    let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| ins.constant_f32(i));
    let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
    let (_, channels) = channel_layout(&outputs[0].shape)?;
    if [&scale, &bias, &mean, &var].iter().any(|v| v.len() != channels) {
        return Err(Error::shape(
            KERNEL_NODE,
            "BatchNorm parameters do not match the channels",
        ));
    }
    let s: Vec<f32> = (0..channels)
        .map(|c| (scale[c] as f64 / (var[c] as f64 + epsilon as f64).sqrt()) as f32)
        .collect();
    let t: Vec<f32> = (0..channels)
        .map(|c| (bias[c] as f64 - mean[c] as f64 * s[c] as f64) as f32)
        .collect();
    let mut k = GpuKernel::new("");
    let (s, t) = (k.weight(s), k.weight(t));
    let folded = affine_kernel(Activation::None, &outputs[0].shape, s, t)?;
    k.label = folded.label;
    k.dispatches = folded.dispatches;
    Ok(k)
}
