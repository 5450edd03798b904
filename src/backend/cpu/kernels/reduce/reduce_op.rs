//! `Op::Reduce`: ReduceSum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp and
//! SumSquare over a constant set of axes.
//!
//! Floats are accumulated in f64 (the output is rounded once), integers in their own
//! type with wrapping arithmetic like numpy, except Mean/L2/LogSum/LogSumExp which
//! go through f64 and truncate. Reducing an empty set gives the op's identity, as in
//! the ONNX reference: 0 for sums, 1 for Prod, -inf / the minimum for Max, +inf /
//! the maximum for Min, -inf for the logs, NaN for a float Mean.
//! When each output reduces one contiguous run (`[N,C,H,W]` over H,W) float sums and
//! extrema use vectorized lane accumulators.

use super::axes::{normalize_axis, typed_in, typed_out};
use super::layout::{Lattice, Layout};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::elementwise::loops::{bad_dtypes, expect_len, out0, single_output};
use crate::backend::cpu::kernels::numeric::sums::{extremum, sum_map};
use crate::backend::cpu::kernels::numeric::{par_chunks, FloatStore, Num};
use crate::error::{Error, Result};
use crate::ir::ops::{Op, Reduce, ReduceKind};
use crate::tensor::{checked_numel, DType, Element, View, ViewMut};

pub fn prepare(
    r: &Reduce,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let name = Op::Reduce(r.clone()).name();
    let x = required_desc(inputs, 0)?;
    let out = single_output(name, outputs)?;
    let out_len = checked_numel(&out.shape).ok_or_else(|| Error::shape(name, "output shape overflows"))?;
    let bool_ok = matches!(r.kind, ReduceKind::Max | ReduceKind::Min);
    if out.dtype != x.dtype || (x.dtype == DType::Bool && !bool_ok) {
        return Err(bad_dtypes(name, &[x.dtype, out.dtype]));
    }
    let axes = match inputs.get(1).copied().flatten() {
        None => Vec::new(),
        Some(d) => d
            .value
            .ok_or_else(|| Error::shape(name, "axes must be a constant"))?
            .to_i64_vec()
            .ok_or_else(|| Error::shape(name, "axes must be integers"))?,
    };
    let rank = x.shape.len();
    if axes.is_empty() && r.noop_with_empty_axes {
        expect_len(
            name,
            "output",
            out_len,
            checked_numel(x.shape).unwrap_or(usize::MAX),
        )?;
        return Ok(Box::new(Identity { name }));
    }
    let mut reduced = vec![axes.is_empty(); rank];
    for &a in &axes {
        reduced[normalize_axis(name, a, rank)?] = true;
    }
    let layout = Layout::new(name, x.shape, &reduced)?;
    expect_len(name, "output", out_len, layout.kept.count())?;
    let kind = r.kind;
    Ok(match x.dtype {
        DType::F32 => Box::new(ReduceKernel::<f32> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::F64 => Box::new(ReduceKernel::<f64> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::F16 => Box::new(ReduceKernel::<half::f16> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::BF16 => Box::new(ReduceKernel::<half::bf16> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::I8 => Box::new(ReduceKernel::<i8> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::I16 => Box::new(ReduceKernel::<i16> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::I32 => Box::new(ReduceKernel::<i32> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::I64 => Box::new(ReduceKernel::<i64> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::U8 | DType::Bool => Box::new(ReduceKernel::<u8> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::U16 => Box::new(ReduceKernel::<u16> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::U32 => Box::new(ReduceKernel::<u32> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
        DType::U64 => Box::new(ReduceKernel::<u64> {
            kind,
            name,
            layout,
            _t: Default::default(),
        }),
    })
}

/// `noop_with_empty_axes` with no axes: the output is the input.
struct Identity {
    name: &'static str,
}

impl Kernel for Identity {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?;
        let y = out0(self.name, outputs)?;
        let dst = y.data.as_bytes_mut();
        let src = x.data.as_bytes();
        expect_len(self.name, "output bytes", dst.len(), src.len())?;
        dst.copy_from_slice(src);
        Ok(())
    }

    fn label(&self) -> &'static str {
        "identity"
    }
}

struct ReduceKernel<T> {
    kind: ReduceKind,
    name: &'static str,
    layout: Layout,
    _t: std::marker::PhantomData<T>,
}

/// Element types, with a vectorized path over a contiguous row for floats.
trait RowReduce: Num + Element {
    fn row(_kind: ReduceKind, _row: &[Self]) -> Option<Self> {
        None
    }
}

impl RowReduce for i8 {}
impl RowReduce for i16 {}
impl RowReduce for i32 {}
impl RowReduce for i64 {}
impl RowReduce for u8 {}
impl RowReduce for u16 {}
impl RowReduce for u32 {}
impl RowReduce for u64 {}

macro_rules! float_rows {
    ($($t:ty),*) => {$(
        impl RowReduce for $t {
            fn row(kind: ReduceKind, row: &[Self]) -> Option<Self> {
                float_row(kind, row)
            }
        }
    )*};
}
float_rows!(f32, f64, half::f16, half::bf16);

/// Turns the f64 sum a kind accumulates into its result.
fn finish(kind: ReduceKind, sum: f64, count: usize) -> f64 {
    match kind {
        ReduceKind::Mean => sum / count as f64,
        ReduceKind::L2 => sum.sqrt(),
        ReduceKind::LogSum => sum.ln(),
        _ => sum,
    }
}

fn float_row<T: FloatStore>(kind: ReduceKind, row: &[T]) -> Option<T> {
    use ReduceKind::*;
    let sum = match kind {
        Sum | Mean | LogSum => sum_map(row, |v| v),
        SumSquare | L2 => sum_map(row, |v| v * v),
        L1 => sum_map(row, |v| v.abs()),
        Max => return Some(T::store(extremum(row, true))),
        Min => return Some(T::store(extremum(row, false))),
        Prod | LogSumExp => return None,
    };
    Some(T::from_f64(finish(kind, sum, row.len())))
}

/// Folds `f` over the reduced elements of the output element at `base`.
#[inline(always)]
fn fold<T: Copy, S: Copy>(x: &[T], red: &Lattice, base: usize, init: S, f: impl Fn(S, T) -> S) -> S {
    let mut s = init;
    red.visit(base, |off| s = f(s, x[off]));
    s
}

/// One output element, by the general (strided) path.
fn reduce_one<T: Num>(kind: ReduceKind, x: &[T], red: &Lattice, base: usize, count: usize) -> T {
    use ReduceKind::*;
    match kind {
        Max => fold(x, red, base, T::LOWEST, T::max_nan),
        Min => fold(x, red, base, T::HIGHEST, T::min_nan),
        Sum if !T::IS_FLOAT => fold(x, red, base, T::ZERO, T::add),
        SumSquare if !T::IS_FLOAT => fold(x, red, base, T::ZERO, |s, v| s.add(v.mul(v))),
        L1 if !T::IS_FLOAT => fold(x, red, base, T::ZERO, |s, v| s.add(v.abs())),
        Prod if !T::IS_FLOAT => fold(x, red, base, T::ONE, T::mul),
        Prod => T::from_f64(fold(x, red, base, 1.0, |s, v| s * v.to_f64())),
        LogSumExp => {
            // Shift by the maximum so that exp cannot overflow; ±inf and NaN maxima are
            // the answer themselves (and -inf is the empty-set value).
            let m = fold(x, red, base, f64::NEG_INFINITY, |m, v| m.max_nan(v.to_f64()));
            if !m.is_finite() {
                return T::from_f64(m);
            }
            let s = fold(x, red, base, 0.0, |s, v| s + (v.to_f64() - m).exp());
            T::from_f64(m + s.ln())
        }
        SumSquare | L2 => T::from_f64(finish(
            kind,
            fold(x, red, base, 0.0, |s, v| s + v.to_f64() * v.to_f64()),
            count,
        )),
        L1 => T::from_f64(fold(x, red, base, 0.0, |s, v| s + v.to_f64().abs())),
        Sum | Mean | LogSum => T::from_f64(finish(
            kind,
            fold(x, red, base, 0.0, |s, v| s + v.to_f64()),
            count,
        )),
    }
}

impl<T: RowReduce> Kernel for ReduceKernel<T> {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let n = self.name;
        let x = typed_in::<T>(n, required(inputs, 0)?)?;
        let y = typed_out::<T>(n, out0(n, outputs)?)?;
        let (kept, red) = (&self.layout.kept, &self.layout.reduced);
        expect_len(n, "input", x.len(), self.layout.in_len)?;
        expect_len(n, "output", y.len(), kept.count())?;
        let count = red.count();
        let rows = self.layout.trailing();
        let kind = self.kind;
        par_chunks(y, 1, count.max(1), |start, chunk| {
            for (j, o) in chunk.iter_mut().enumerate() {
                let base = kept.offset_of(start + j);
                let fast = if rows {
                    T::row(kind, &x[base..base + count])
                } else {
                    None
                };
                *o = fast.unwrap_or_else(|| reduce_one(kind, x, red, base, count));
            }
        });
        Ok(())
    }

    fn label(&self) -> &'static str {
        if self.layout.trailing() {
            "rows"
        } else {
            "strided"
        }
    }
}
