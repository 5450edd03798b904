//! LayerNormalization: `[x, scale, bias?] -> [y, mean?, inv_std_dev?]`, normalizing
//! over the trailing axes `axis..rank`. `x` is viewed as `rows × cols`; `scale` and
//! `bias` broadcast to the normalized shape and are expanded to `cols` values once
//! (at preparation when constant). Rows are independent and split across threads;
//! when the optional statistics outputs are wanted (training exports, tests), rows
//! run on one thread so that the three outputs can be written together.

use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::broadcast::Broadcast;
use crate::backend::cpu::kernels::elementwise::loops::{expand, expect_len};
use crate::backend::cpu::kernels::numeric::sums::mean_var;
use crate::backend::cpu::kernels::numeric::{floats_to_f64, par_chunks, Float, FloatStore, Num};
use crate::error::{Error, Result};
use crate::tensor::{checked_numel, DType, Element, SliceMut, View, ViewMut};

const NAME: &str = "LayerNormalization";

pub fn prepare(
    axis: i64,
    epsilon: f32,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let rank = x.shape.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&axis) {
        return Err(Error::shape(
            NAME,
            format!("axis {axis} out of range for rank {rank}"),
        ));
    }
    let axis = axis as usize;
    let norm_shape = &x.shape[axis..];
    let rows = checked_numel(&x.shape[..axis]).ok_or_else(|| Error::shape(NAME, "shape overflows"))?;
    let cols = checked_numel(norm_shape).ok_or_else(|| Error::shape(NAME, "shape overflows"))?;
    let y = outputs
        .first()
        .ok_or_else(|| Error::shape(NAME, "missing output"))?;
    if !x.dtype.is_float() || y.dtype != x.dtype || y.shape != x.shape || outputs.len() > 3 {
        return Err(Error::shape(
            NAME,
            format!(
                "bad x / y: {} {:?} -> {} {:?}",
                x.dtype, x.shape, y.dtype, y.shape
            ),
        ));
    }
    for stat in &outputs[1..] {
        if !stat.dtype.is_float() || checked_numel(&stat.shape) != Some(rows) {
            return Err(Error::shape(
                NAME,
                format!(
                    "statistics output {} {:?} for {rows} rows",
                    stat.dtype, stat.shape
                ),
            ));
        }
    }
    let scale = Param::new("scale", Some(required_desc(inputs, 1)?), norm_shape, cols)?;
    let bias = Param::new("bias", inputs.get(2).copied().flatten(), norm_shape, cols)?;
    let eps = epsilon as f64;
    Ok(match x.dtype {
        DType::F32 => Box::new(LayerNorm::<f32>::new(eps, rows, cols, scale, bias)),
        DType::F64 => Box::new(LayerNorm::<f64>::new(eps, rows, cols, scale, bias)),
        DType::F16 => Box::new(LayerNorm::<half::f16>::new(eps, rows, cols, scale, bias)),
        _ => Box::new(LayerNorm::<half::bf16>::new(eps, rows, cols, scale, bias)),
    })
}

/// `scale` or `bias`: absent, a constant expanded to `cols` values, or a runtime input
/// with the plan that expands it.
enum Param {
    Absent,
    Const(Vec<f64>),
    Runtime(Broadcast<1>),
}

impl Param {
    fn new(what: &str, desc: Option<InputDesc<'_>>, norm_shape: &[usize], cols: usize) -> Result<Param> {
        let Some(desc) = desc else {
            return Ok(Param::Absent);
        };
        if !desc.dtype.is_float() {
            return Err(Error::shape(
                NAME,
                format!("{what} must be float, got {}", desc.dtype),
            ));
        }
        let plan = Broadcast::new(NAME, norm_shape, [desc.shape])?;
        match desc.value {
            Some(t) => Ok(Param::Const(expand_f64(&plan, t.view(), cols)?)),
            None => Ok(Param::Runtime(plan)),
        }
    }

    /// The `cols` values, or `None` when absent.
    fn values(&self, view: Option<View<'_>>, cols: usize) -> Result<Option<Vec<f64>>> {
        match self {
            Param::Absent => Ok(None),
            Param::Const(v) => Ok(Some(v.clone())),
            Param::Runtime(plan) => {
                let view = view.ok_or_else(|| Error::shape(NAME, "missing scale / bias input"))?;
                expand_f64(plan, view, cols).map(Some)
            }
        }
    }
}

fn expand_f64(plan: &Broadcast<1>, view: View<'_>, cols: usize) -> Result<Vec<f64>> {
    let v = floats_to_f64(view.data, NAME)?;
    let mut out = vec![0.0; cols];
    expand(NAME, plan, &v, &mut out)?;
    Ok(out)
}

struct LayerNorm<T: FloatStore> {
    eps: f64,
    rows: usize,
    cols: usize,
    scale: Param,
    bias: Param,
    /// Constant scale and bias in the compute type, when both are known.
    fixed: Option<ScaleBias<T::C>>,
}

/// Scale and optional bias, expanded to `cols` values.
type ScaleBias<C> = (Vec<C>, Option<Vec<C>>);

fn to_compute<C: Float>(v: &[f64]) -> Vec<C> {
    v.iter().map(|&x| C::lit(x)).collect()
}

impl<T: FloatStore> LayerNorm<T> {
    fn new(eps: f64, rows: usize, cols: usize, scale: Param, bias: Param) -> Self {
        let fixed = match (&scale, &bias) {
            (Param::Const(s), Param::Const(b)) => Some((to_compute(s), Some(to_compute(b)))),
            (Param::Const(s), Param::Absent) => Some((to_compute(s), None)),
            _ => None,
        };
        LayerNorm {
            eps,
            rows,
            cols,
            scale,
            bias,
            fixed,
        }
    }
}

/// Normalizes one row; returns its mean and 1 / sqrt(var + eps).
#[inline]
fn norm_row<T: FloatStore>(
    x: &[T],
    y: &mut [T],
    scale: &[T::C],
    bias: Option<&[T::C]>,
    eps: f64,
) -> (f64, f64) {
    let (mean, var) = mean_var(x);
    let inv = 1.0 / (var + eps).sqrt();
    let (m, i) = (<T::C as Float>::lit(mean), <T::C as Float>::lit(inv));
    match bias {
        Some(bias) => {
            for (((o, &v), &s), &b) in y.iter_mut().zip(x).zip(scale).zip(bias) {
                *o = T::store((v.load() - m) * i * s + b);
            }
        }
        None => {
            for ((o, &v), &s) in y.iter_mut().zip(x).zip(scale) {
                *o = T::store((v.load() - m) * i * s);
            }
        }
    }
    (mean, inv)
}

/// Writes `v` into element `i` of a float output of any dtype.
fn put(out: &mut SliceMut<'_>, i: usize, v: f64) -> Result<()> {
    match out {
        SliceMut::F32(s) => s[i] = f32::from_f64(v),
        SliceMut::F64(s) => s[i] = v,
        SliceMut::F16(s) => s[i] = half::f16::from_f64(v),
        SliceMut::BF16(s) => s[i] = half::bf16::from_f64(v),
        other => {
            return Err(Error::shape(
                NAME,
                format!("statistics output must be float, got {}", other.dtype()),
            ))
        }
    }
    Ok(())
}

fn out_len(out: &mut SliceMut<'_>) -> usize {
    out.as_bytes_mut().len() / out.dtype().size()
}

impl<T: FloatStore + Element> Kernel for LayerNorm<T> {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = inputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| Error::shape(NAME, "missing x"))?
            .typed::<T>()?;
        let (y, stats) = outputs
            .split_first_mut()
            .ok_or_else(|| Error::shape(NAME, "missing output"))?;
        let y = y.typed::<T>()?;
        let (rows, cols, eps) = (self.rows, self.cols, self.eps);
        expect_len(NAME, "x", x.len(), rows * cols)?;
        expect_len(NAME, "y", y.len(), rows * cols)?;
        let runtime;
        let (scale, bias) = match &self.fixed {
            Some((s, b)) => (s, b),
            None => {
                let s = self
                    .scale
                    .values(inputs.get(1).copied().flatten(), cols)?
                    .unwrap_or_default();
                let b = self.bias.values(inputs.get(2).copied().flatten(), cols)?;
                runtime = (to_compute(&s), b.as_deref().map(to_compute));
                (&runtime.0, &runtime.1)
            }
        };
        let bias = bias.as_deref();
        if stats.is_empty() {
            if cols > 0 {
                par_chunks(y, cols, 3, |start, chunk| {
                    for (r, row) in chunk.chunks_mut(cols).enumerate() {
                        let first = start + r * cols;
                        norm_row(&x[first..first + cols], row, scale, bias, eps);
                    }
                });
            }
            return Ok(());
        }
        for s in stats.iter_mut() {
            expect_len(NAME, "statistics output", out_len(&mut s.data), rows)?;
        }
        for r in 0..rows {
            let span = r * cols..(r + 1) * cols;
            let (mean, inv) = norm_row(&x[span.clone()], &mut y[span], scale, bias, eps);
            for (s, v) in stats.iter_mut().zip([mean, inv]) {
                put(&mut s.data, r, v)?;
            }
        }
        Ok(())
    }

    fn label(&self) -> &'static str {
        NAME
    }
}
