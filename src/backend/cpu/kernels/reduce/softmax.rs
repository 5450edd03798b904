//! Softmax and LogSoftmax, numerically stable (the maximum is subtracted first).
//!
//! Opset ≥ 13 normalizes along one axis: the input is `[outer, n, inner]`. Older
//! opsets (`legacy`) coerce the input to 2-D at `axis` and normalize each row of
//! `prod(shape[axis..])` elements, which is the same computation with `inner = 1`.
//! With `inner = 1` rows are contiguous; otherwise the axis is strided and columns
//! are processed in tiles of [`TILE`] so every inner loop runs over contiguous
//! memory. Exponentials are computed in f32 for f32/f16/bf16 and in f64 for f64.

use super::axes::{normalize_axis, split_at_axis};
use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::elementwise::loops::{bad_dtypes, expect_len, single_output};
use crate::backend::cpu::kernels::numeric::sums::{extremum, sum_map};
use crate::backend::cpu::kernels::numeric::{par_chunks, Float, FloatStore, Num};
use crate::error::{Error, Result};
use crate::ir::ops::Op;
use crate::tensor::{DType, Element, View, ViewMut};

/// Columns processed together when the softmax axis is not the innermost one.
const TILE: usize = 64;

pub fn prepare(
    axis: i64,
    legacy: bool,
    log: bool,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let name = Op::Softmax { axis, legacy, log }.name();
    let x = required_desc(inputs, 0)?;
    let out = single_output(name, outputs)?;
    if out.dtype != x.dtype || out.shape != x.shape {
        return Err(bad_dtypes(name, &[x.dtype, out.dtype]));
    }
    // A scalar is treated as one element along a size-1 axis.
    let shape: &[usize] = if x.shape.is_empty() { &[1] } else { x.shape };
    let a = normalize_axis(name, axis, shape.len())?;
    let (outer, n, inner) = if legacy {
        let outer = shape[..a].iter().product::<usize>();
        (outer, shape[a..].iter().product::<usize>(), 1)
    } else {
        split_at_axis(shape, a)
    };
    let geom = Geometry {
        name,
        log,
        outer,
        n,
        inner,
    };
    Ok(match x.dtype {
        DType::F32 => Box::new(Softmax::<f32>::new(geom)),
        DType::F64 => Box::new(Softmax::<f64>::new(geom)),
        DType::F16 => Box::new(Softmax::<half::f16>::new(geom)),
        DType::BF16 => Box::new(Softmax::<half::bf16>::new(geom)),
        other => return Err(Error::shape(name, format!("requires a float input, got {other}"))),
    })
}

#[derive(Clone, Copy)]
struct Geometry {
    name: &'static str,
    log: bool,
    outer: usize,
    n: usize,
    inner: usize,
}

struct Softmax<T> {
    g: Geometry,
    _t: std::marker::PhantomData<T>,
}

impl<T> Softmax<T> {
    fn new(g: Geometry) -> Self {
        Softmax {
            g,
            _t: std::marker::PhantomData,
        }
    }
}

/// When storage and compute types are the same, exponentials are stored and then
/// rescaled; otherwise (f16, bf16) they are recomputed in the last pass so that the
/// output is rounded once.
fn stores_exactly<T: FloatStore>() -> bool {
    std::mem::size_of::<T>() == std::mem::size_of::<T::C>()
}

/// One contiguous row.
fn row<T: FloatStore>(log: bool, x: &[T], y: &mut [T]) {
    let m = extremum(x, true);
    if log {
        // (x - m) - ln(sum): folding m into ln(sum) first would round away the small
        // outputs next to the maximum.
        let ls = <T::C as Float>::lit(sum_map(x, |v| (v - m).exp()).ln());
        for (o, &v) in y.iter_mut().zip(x) {
            *o = T::store((v.load() - m) - ls);
        }
    } else if stores_exactly::<T>() {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = T::store((v.load() - m).exp());
        }
        let inv = <T::C as Float>::lit(1.0 / sum_map(y, |v| v));
        for o in y.iter_mut() {
            *o = T::store(o.load() * inv);
        }
    } else {
        let inv = <T::C as Float>::lit(1.0 / sum_map(x, |v| (v - m).exp()));
        for (o, &v) in y.iter_mut().zip(x) {
            *o = T::store((v.load() - m).exp() * inv);
        }
    }
}

/// One `[n, inner]` block, normalizing along `n` for a tile of `w <= TILE` columns
/// starting at column `c0`.
fn tile<T: FloatStore>(log: bool, n: usize, inner: usize, c0: usize, w: usize, x: &[T], y: &mut [T]) {
    let mut m = [<T::C as Num>::LOWEST; TILE];
    for k in 0..n {
        let xs = &x[k * inner + c0..k * inner + c0 + w];
        for (m, &v) in m.iter_mut().zip(xs) {
            *m = m.max_nan(v.load());
        }
    }
    // Sums in f64, as in `sum_map`, so that ln(1 + tiny) keeps its digits.
    let mut s = [0.0f64; TILE];
    for k in 0..n {
        let xs = &x[k * inner + c0..k * inner + c0 + w];
        for ((s, &m), &v) in s.iter_mut().zip(&m).zip(xs) {
            *s += (v.load() - m).exp().to_f64();
        }
    }
    let mut scale = [<T::C as Num>::ZERO; TILE];
    for (f, &s) in scale.iter_mut().zip(&s) {
        *f = <T::C as Float>::lit(if log { s.ln() } else { 1.0 / s });
    }
    for k in 0..n {
        let span = k * inner + c0..k * inner + c0 + w;
        for ((o, &v), (&f, &m)) in y[span.clone()].iter_mut().zip(&x[span]).zip(scale.iter().zip(&m)) {
            *o = T::store(if log {
                (v.load() - m) - f
            } else {
                (v.load() - m).exp() * f
            });
        }
    }
}

impl<T: FloatStore + Element> Kernel for Softmax<T> {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let Geometry {
            name,
            log,
            outer,
            n,
            inner,
        } = self.g;
        let x = inputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| Error::shape(name, "missing x"))?
            .typed::<T>()?;
        let y = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(name, "missing output"))?
            .typed::<T>()?;
        expect_len(name, "input", x.len(), outer * n * inner)?;
        expect_len(name, "output", y.len(), x.len())?;
        if y.is_empty() {
            return Ok(());
        }
        let block = n * inner;
        par_chunks(y, block, 8, |start, chunk| {
            for (b, yb) in chunk.chunks_mut(block).enumerate() {
                let xb = &x[start + b * block..start + (b + 1) * block];
                if inner == 1 {
                    row(log, xb, yb);
                } else {
                    for c0 in (0..inner).step_by(TILE) {
                        tile(log, n, inner, c0, TILE.min(inner - c0), xb, yb);
                    }
                }
            }
        });
        Ok(())
    }

    fn label(&self) -> &'static str {
        if self.g.inner == 1 {
            "rows"
        } else {
            "tiled"
        }
    }
}
