//! CumSum: `[x, axis]`, inclusive or exclusive, forward or reverse.
//!
//! The axis is a scalar input, read once at preparation when constant and otherwise
//! per run. Along the axis, rows of `inner` elements are added in turn, so the loop
//! is a vectorizable row-plus-row.

use super::axes::{normalize_axis, scalar_i64, split_at_axis};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::elementwise::loops::{bad_dtypes, expect_len, out0, single_output};
use crate::backend::cpu::kernels::numeric::{par_chunks, Num};
use crate::error::Result;
use crate::tensor::{DType, Element, View, ViewMut};

const NAME: &str = "CumSum";

pub fn prepare(
    exclusive: bool,
    reverse: bool,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let axis_desc = required_desc(inputs, 1)?;
    let out = single_output(NAME, outputs)?;
    if out.dtype != x.dtype || out.shape != x.shape || x.dtype == DType::Bool {
        return Err(bad_dtypes(NAME, &[x.dtype, out.dtype]));
    }
    let axis = match axis_desc.value {
        Some(t) => Some(normalize_axis(NAME, scalar_i64(NAME, t.view())?, x.shape.len())?),
        None => None,
    };
    Ok(Box::new(CumSum {
        exclusive,
        reverse,
        shape: x.shape.to_vec(),
        axis,
    }))
}

struct CumSum {
    exclusive: bool,
    reverse: bool,
    shape: Vec<usize>,
    /// The normalized axis when it was a constant.
    axis: Option<usize>,
}

impl CumSum {
    fn run_typed<T: Num + Element>(&self, axis: usize, x: &[T], y: &mut [T]) -> Result<()> {
        let (outer, n, inner) = split_at_axis(&self.shape, axis);
        expect_len(NAME, "input", x.len(), outer * n * inner)?;
        expect_len(NAME, "output", y.len(), x.len())?;
        if y.is_empty() {
            return Ok(());
        }
        let block = n * inner;
        let (exclusive, reverse) = (self.exclusive, self.reverse);
        par_chunks(y, block, 1, |start, chunk| {
            for (b, yb) in chunk.chunks_mut(block).enumerate() {
                let xb = &x[start + b * block..start + (b + 1) * block];
                // Step k of the scan writes row `order(k)` from the previous output row
                // and either the same input row (inclusive) or the previous one.
                let row = |k: usize| if reverse { n - 1 - k } else { k };
                let first = row(0) * inner;
                if exclusive {
                    yb[first..first + inner].fill(T::ZERO);
                } else {
                    yb[first..first + inner].copy_from_slice(&xb[first..first + inner]);
                }
                for k in 1..n {
                    let (prev, cur) = (row(k - 1) * inner, row(k) * inner);
                    let src = if exclusive { prev } else { cur };
                    let (p, c) = if reverse {
                        let (lo, hi) = yb.split_at_mut(prev);
                        (&hi[..inner], &mut lo[cur..cur + inner])
                    } else {
                        let (lo, hi) = yb.split_at_mut(cur);
                        (&lo[prev..prev + inner], &mut hi[..inner])
                    };
                    for ((o, &a), &v) in c.iter_mut().zip(p).zip(&xb[src..src + inner]) {
                        *o = a.add(v);
                    }
                }
            }
        });
        Ok(())
    }
}

impl Kernel for CumSum {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let axis = match self.axis {
            Some(a) => a,
            None => normalize_axis(NAME, scalar_i64(NAME, required(inputs, 1)?)?, self.shape.len())?,
        };
        let x = required(inputs, 0)?;
        let y = out0(NAME, outputs)?;
        match x.dtype() {
            DType::F32 => self.run_typed(axis, x.typed::<f32>()?, y.typed()?),
            DType::F64 => self.run_typed(axis, x.typed::<f64>()?, y.typed()?),
            DType::F16 => self.run_typed(axis, x.typed::<half::f16>()?, y.typed()?),
            DType::BF16 => self.run_typed(axis, x.typed::<half::bf16>()?, y.typed()?),
            DType::I8 => self.run_typed(axis, x.typed::<i8>()?, y.typed()?),
            DType::I16 => self.run_typed(axis, x.typed::<i16>()?, y.typed()?),
            DType::I32 => self.run_typed(axis, x.typed::<i32>()?, y.typed()?),
            DType::I64 => self.run_typed(axis, x.typed::<i64>()?, y.typed()?),
            DType::U8 => self.run_typed(axis, x.typed::<u8>()?, y.typed()?),
            DType::U16 => self.run_typed(axis, x.typed::<u16>()?, y.typed()?),
            DType::U32 => self.run_typed(axis, x.typed::<u32>()?, y.typed()?),
            DType::U64 => self.run_typed(axis, x.typed::<u64>()?, y.typed()?),
            DType::Bool => Err(bad_dtypes(NAME, &[DType::Bool])),
        }
    }

    fn label(&self) -> &'static str {
        NAME
    }
}
