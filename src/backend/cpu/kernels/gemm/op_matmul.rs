//! The ONNX `MatMul` op: numpy `matmul` semantics (1-D operands are promoted to a
//! matrix and the added axis is dropped again; batch axes broadcast).

use rayon::prelude::*;

use super::driver::{gemm, LhsSource, RhsSource};
use super::epilogue::Epilogue;
use super::mat::MatRef;
use super::pack::PackedB;
use super::PARALLEL_MIN_MACS;
use crate::backend::cpu::kernel::{
    multiply_add_flops, required, required_desc, InputDesc, Kernel, OutputDesc,
};
use crate::backend::cpu::kernels::float_io::{const_f32, expect_f32, numel, output};
use crate::error::{Error, Result};
use crate::tensor::{View, ViewMut};

const NAME: &str = "MatMul";

enum Plan {
    /// B has no real batch axes: all of A's batches stack into one `[batch * M, K]`
    /// GEMM (one big call, B packed once, possibly at preparation).
    Folded { rows: usize, b_packed: Option<PackedB> },
    /// One GEMM per output batch; element offsets of A and B for each.
    Batched { offsets: Vec<(usize, usize)> },
}

struct MatMulKernel {
    m: usize,
    n: usize,
    k: usize,
    plan: Plan,
    /// Of one run: `2 * k` per output element.
    flops: Option<u64>,
}

pub(super) fn prepare(inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    expect_f32(NAME, inputs, &[0, 1], outputs)?;
    let (a, b) = (required_desc(inputs, 0)?, required_desc(inputs, 1)?);
    let (ra, rb) = (a.shape.len(), b.shape.len());
    if ra == 0 || rb == 0 {
        return Err(Error::shape(NAME, "operands must have rank >= 1"));
    }
    let (m, k) = if ra == 1 {
        (1, a.shape[0])
    } else {
        (a.shape[ra - 2], a.shape[ra - 1])
    };
    let (kb, n) = if rb == 1 {
        (b.shape[0], 1)
    } else {
        (b.shape[rb - 2], b.shape[rb - 1])
    };
    let batch_a = &a.shape[..ra.saturating_sub(2)];
    let batch_b = &b.shape[..rb.saturating_sub(2)];
    let batch = broadcast(batch_a, batch_b)?;
    let mut expected = batch.clone();
    expected.extend((ra > 1).then_some(m));
    expected.extend((rb > 1).then_some(n));
    if k != kb || output(NAME, outputs, 0)?.shape != expected {
        return Err(Error::shape(
            NAME,
            format!(
                "{:?} x {:?} does not give output {:?}",
                a.shape, b.shape, outputs[0].shape
            ),
        ));
    }
    // Every size product below is bounded by one of these.
    numel(NAME, &outputs[0].shape)?;
    numel(NAME, a.shape)?;
    numel(NAME, b.shape)?;
    let plan = if numel(NAME, batch_b)? == 1 {
        let rows = numel(NAME, batch_a)?
            .checked_mul(m)
            .ok_or_else(|| Error::shape(NAME, "size overflows"))?;
        let b_packed = match const_f32(&b) {
            Some(data) => Some(PackedB::new(MatRef::row_major(data, k, n)?)),
            None => None,
        };
        Plan::Folded { rows, b_packed }
    } else {
        Plan::Batched {
            offsets: batch_offsets(&batch, batch_a, batch_b, m * k, k * n)?,
        }
    };
    let flops = multiply_add_flops(&[k, numel(NAME, &outputs[0].shape)?]);
    Ok(Box::new(MatMulKernel { m, n, k, plan, flops }))
}

/// numpy broadcast of two batch shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() < rank {
            1
        } else {
            s[i + s.len() - rank]
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(Error::shape(
                NAME,
                format!("batch dims {a:?} and {b:?} do not broadcast"),
            )),
        })
        .collect()
}

/// For each output batch index (row-major), the offsets of its A and B matrices.
fn batch_offsets(
    batch: &[usize],
    batch_a: &[usize],
    batch_b: &[usize],
    a_size: usize,
    b_size: usize,
) -> Result<Vec<(usize, usize)>> {
    let rank = batch.len();
    // Element strides of each operand's batch axes, 0 where the axis is broadcast.
    let strides = |dims: &[usize], size: usize| {
        let mut s = vec![0; rank];
        let mut step = size;
        for (i, &d) in dims.iter().enumerate().rev() {
            s[i + rank - dims.len()] = if d == 1 { 0 } else { step };
            step *= d;
        }
        s
    };
    let (sa, sb) = (strides(batch_a, a_size), strides(batch_b, b_size));
    let total = numel(NAME, batch)?;
    let mut offsets = Vec::with_capacity(total);
    let mut index = vec![0; rank];
    for _ in 0..total {
        let dot = |s: &[usize]| index.iter().zip(s).map(|(i, s)| i * s).sum::<usize>();
        offsets.push((dot(&sa), dot(&sb)));
        for axis in (0..rank).rev() {
            index[axis] += 1;
            if index[axis] < batch[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(offsets)
}

impl Kernel for MatMulKernel {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let (m, n, k) = (self.m, self.n, self.k);
        let y = outputs
            .get_mut(0)
            .ok_or_else(|| Error::shape(NAME, "missing output"))?
            .typed::<f32>()?;
        let a = required(inputs, 0)?.typed::<f32>()?;
        let none = Epilogue::default();
        match &self.plan {
            Plan::Folded { rows, b_packed } => {
                let lhs = LhsSource::Mat(MatRef::row_major(a, *rows, k)?);
                let rhs = match b_packed {
                    Some(p) => RhsSource::Packed(p),
                    None => RhsSource::Mat(MatRef::row_major(required(inputs, 1)?.typed::<f32>()?, k, n)?),
                };
                gemm(lhs, rhs, y, n, 1.0, 0.0, &none, true)
            }
            Plan::Batched { offsets } => {
                let b = required(inputs, 1)?.typed::<f32>()?;
                if m * n == 0 {
                    return Ok(());
                }
                let one = |(y, &(ao, bo)): (&mut [f32], &(usize, usize)), parallel: bool| {
                    let lhs = MatRef::row_major(a.get(ao..).unwrap_or(&[]), m, k)?;
                    let rhs = MatRef::row_major(b.get(bo..).unwrap_or(&[]), k, n)?;
                    gemm(
                        LhsSource::Mat(lhs),
                        RhsSource::Mat(rhs),
                        y,
                        n,
                        1.0,
                        0.0,
                        &none,
                        parallel,
                    )
                };
                if y.len() != m * n * offsets.len() {
                    return Err(Error::shape(NAME, "output has an unexpected size"));
                }
                // Small matrices: one sequential GEMM per rayon task. Large ones: each
                // GEMM splits itself.
                if m * n * k < PARALLEL_MIN_MACS {
                    y.par_chunks_mut(m * n)
                        .zip(offsets)
                        .try_for_each(|job| one(job, false))
                } else {
                    y.chunks_mut(m * n)
                        .zip(offsets)
                        .try_for_each(|job| one(job, true))
                }
            }
        }
    }

    fn flops(&self) -> Option<u64> {
        self.flops
    }

    fn label(&self) -> &'static str {
        match &self.plan {
            Plan::Folded {
                b_packed: Some(_), ..
            } => "gemm(packed B)",
            Plan::Folded { .. } => "gemm",
            Plan::Batched { .. } => "batched gemm",
        }
    }
}
