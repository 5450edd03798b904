//! Gemm and MatMul on the tiled GEMM kernel (shaders/gemm.wgsl), operands read
//! through strides so transposes and broadcast batches are free.

use crate::backend::cpu::kernels::broadcast::{broadcast_shape, Broadcast};
use crate::error::{Error, Result};
use crate::ir::ops::Gemm;
use crate::plan::{OutputDesc, KERNEL_NODE};

use super::Inputs;
use crate::backend::gpu::codes::UnaryCode;
use crate::backend::gpu::program::{u32_param, Bind, Dispatch, GpuKernel, MAX_GROUPS_PER_DIM};
use crate::backend::gpu::Entry;

/// Output tile of the GEMM kernel (shaders/tile.wgsl).
const TILE: usize = 64;
/// Batch dimensions the kernel walks (MatMul's leading axes).
const MAX_BATCH_RANK: usize = 4;

/// `GemmParams` in shaders/gemm.wgsl.
#[repr(C)]
#[derive(Copy, Clone, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct GemmParams {
    batch_dims: [u32; MAX_BATCH_RANK],
    a_batch_strides: [u32; MAX_BATCH_RANK],
    b_batch_strides: [u32; MAX_BATCH_RANK],
    m: u32,
    n: u32,
    k: u32,
    a_sm: u32,
    a_sk: u32,
    b_sk: u32,
    b_sn: u32,
    c_sm: u32,
    c_sn: u32,
    has_c: u32,
    alpha: f32,
    beta: f32,
    act: u32,
    act_a: f32,
    act_b: f32,
    _pad: u32,
}

impl GemmParams {
    fn new(m: usize, n: usize, k: usize) -> Result<GemmParams> {
        Ok(GemmParams {
            batch_dims: [1; MAX_BATCH_RANK],
            a_batch_strides: [0; MAX_BATCH_RANK],
            b_batch_strides: [0; MAX_BATCH_RANK],
            m: u32_param(m)?,
            n: u32_param(n)?,
            k: u32_param(k)?,
            a_sm: u32_param(k)?,
            a_sk: 1,
            b_sk: u32_param(n)?,
            b_sn: 1,
            c_sm: 0,
            c_sn: 0,
            has_c: 0,
            alpha: 1.0,
            beta: 0.0,
            act: UnaryCode::IDENTITY.code,
            act_a: 0.0,
            act_b: 0.0,
            _pad: 0,
        })
    }
}

fn grid(m: usize, n: usize, batch: usize) -> Result<[u32; 3]> {
    let g = [n.div_ceil(TILE).max(1), m.div_ceil(TILE).max(1), batch.max(1)];
    if g.iter().any(|&v| v > MAX_GROUPS_PER_DIM as usize) {
        return Err(Error::Limit(format!(
            "a {m}x{n} product over {batch} batches is too large for one GPU dispatch"
        )));
    }
    Ok(g.map(|v| v as u32))
}

/// ONNX Gemm's (m, n, k), checked: A and B are matrices whose inner sizes agree
/// and the output is m x n.
pub(crate) fn gemm_dims(g: &Gemm, a: &[usize], b: &[usize], y: &[usize]) -> Result<(usize, usize, usize)> {
    if a.len() != 2 || b.len() != 2 {
        return Err(Error::shape(KERNEL_NODE, "Gemm operands must be matrices"));
    }
    let (m, k) = if g.trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
    let (kb, n) = if g.trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
    if kb != k || y != [m, n] {
        return Err(Error::shape(
            KERNEL_NODE,
            format!("Gemm of {a:?} and {b:?} into {y:?}"),
        ));
    }
    Ok((m, n, k))
}

/// The (row, column) element strides that broadcast Gemm's C of `shape` (a
/// scalar, a row, a column or a matrix) to m x n: 0 along broadcast axes.
pub(crate) fn c_strides(shape: &[usize], m: usize, n: usize) -> [usize; 2] {
    let last = shape.last().copied().unwrap_or(1);
    let col = usize::from(last == n && n != 1);
    let row = if shape.len() == 2 && shape[0] == m && m != 1 {
        last
    } else {
        0
    };
    [row, col]
}

pub(super) fn gemm(g: &Gemm, ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let (a, b) = (ins.tensor(0)?, ins.tensor(1)?);
    let (m, n, k) = gemm_dims(g, a.shape, b.shape, &outputs[0].shape)?;
    let mut p = GemmParams::new(m, n, k)?;
    p.alpha = g.alpha;
    p.beta = g.beta;
    if g.trans_a {
        (p.a_sm, p.a_sk) = (1, u32_param(m)?);
    }
    let mut kernel = GpuKernel::new("gemm");
    // A constant transposed B (a classifier's weights) is stored untransposed, so
    // the tile loads read along n, contiguously.
    let b_bind = match (g.trans_b, b.value.is_some()) {
        (true, true) => {
            let w = ins.constant_f32(1)?;
            let mut t = vec![0.0; w.len()];
            for ni in 0..n {
                for ki in 0..k {
                    t[ki * n + ni] = w[ni * k + ki];
                }
            }
            kernel.weight(t)
        }
        (true, false) => {
            (p.b_sk, p.b_sn) = (1, u32_param(k)?);
            Bind::Input(1)
        }
        (false, _) => Bind::Input(1),
    };
    let c_bind = match ins.get(2) {
        Some(c) if g.beta != 0.0 => {
            ins.tensor(2)?;
            let [row, col] = c_strides(c.shape, m, n);
            (p.c_sm, p.c_sn) = (u32_param(row)?, u32_param(col)?);
            p.has_c = 1;
            Bind::Input(2)
        }
        _ => Bind::Unused,
    };
    kernel.push(Dispatch::new(
        Entry::Gemm,
        &p,
        vec![Bind::Input(0), b_bind, c_bind],
        vec![Bind::Output(0)],
        grid(m, n, 1)?,
    ));
    Ok(kernel)
}

pub(super) fn matmul(ins: &Inputs, outputs: &[OutputDesc]) -> Result<GpuKernel> {
    let (a, b) = (ins.tensor(0)?, ins.tensor(1)?);
    if a.shape.is_empty() || b.shape.is_empty() {
        return Err(Error::shape(
            KERNEL_NODE,
            "MatMul operands must have at least one dimension",
        ));
    }
    // 1-D operands are a row (A) or a column (B) vector.
    let (m, k) = match a.shape.len() {
        1 => (1, a.shape[0]),
        r => (a.shape[r - 2], a.shape[r - 1]),
    };
    let n = match b.shape.len() {
        1 => 1,
        r => b.shape[r - 1],
    };
    let a_batch = &a.shape[..a.shape.len().saturating_sub(2)];
    let b_batch = &b.shape[..b.shape.len().saturating_sub(2)];
    let out_batch = broadcast_shape(&[a_batch, b_batch]).ok_or_else(|| {
        Error::shape(
            KERNEL_NODE,
            format!("batches {a_batch:?} and {b_batch:?} do not broadcast"),
        )
    })?;
    let y = &outputs[0].shape;
    let batch: usize = out_batch.iter().product();
    if y.iter().product::<usize>() != batch * m * n {
        return Err(Error::shape(
            KERNEL_NODE,
            format!("MatMul output {y:?} does not fit {m}x{k} by {k}x{n}"),
        ));
    }
    // Merged batch axes, each operand's stride counted in whole matrices.
    let plan = Broadcast::new(KERNEL_NODE, &out_batch, [a_batch, b_batch])?;
    let rank = plan.dims().len();
    if rank > MAX_BATCH_RANK {
        return Err(Error::Limit(format!(
            "MatMul with more than {MAX_BATCH_RANK} batch dimensions"
        )));
    }
    let mut p = GemmParams::new(m, n, k)?;
    for (i, (&d, s)) in plan.dims().iter().zip(plan.strides()).enumerate() {
        let slot = MAX_BATCH_RANK - rank + i;
        p.batch_dims[slot] = u32_param(d)?;
        p.a_batch_strides[slot] = u32_param(s[0] * m * k)?;
        p.b_batch_strides[slot] = u32_param(s[1] * k * n)?;
    }
    let mut kernel = GpuKernel::new("gemm");
    kernel.push(Dispatch::new(
        Entry::Gemm,
        &p,
        vec![Bind::Input(0), Bind::Input(1), Bind::Unused],
        vec![Bind::Output(0)],
        grid(m, n, batch)?,
    ));
    Ok(kernel)
}
