//! BatchNormalization in inference mode: `y = (x - mean) / sqrt(var + eps) * scale + bias`
//! folded into one per-channel multiply-add `y = x * a + b`, with `a` and `b`
//! computed once at preparation when the four parameters are constants (the usual
//! case) and per run otherwise.

use super::{channel_input, channel_param, runtime_param};
use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::elementwise::loops::expect_len;
use crate::backend::cpu::kernels::numeric::{par_chunks, Float, FloatStore};
use crate::error::{Error, Result};
use crate::tensor::{DType, Element, View, ViewMut};

const NAME: &str = "BatchNormalization";

pub fn prepare(
    epsilon: f32,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let (x, channels, inner) = channel_input(NAME, inputs, outputs)?;
    let mut params = Vec::with_capacity(4);
    for (i, what) in ["scale", "bias", "mean", "var"].iter().enumerate() {
        params.push(channel_param(
            NAME,
            what,
            &required_desc(inputs, i + 1)?,
            channels,
        )?);
    }
    let folded = match &params[..] {
        [Some(s), Some(b), Some(m), Some(v)] => Some(fold(s, b, m, v, epsilon as f64)),
        _ => None,
    };
    let eps = epsilon as f64;
    Ok(match x.dtype {
        DType::F32 => Box::new(BatchNorm::<f32>::new(eps, channels, inner, folded)),
        DType::F64 => Box::new(BatchNorm::<f64>::new(eps, channels, inner, folded)),
        DType::F16 => Box::new(BatchNorm::<half::f16>::new(eps, channels, inner, folded)),
        _ => Box::new(BatchNorm::<half::bf16>::new(eps, channels, inner, folded)),
    })
}

/// Per-channel `(a, b)` such that `y = x * a + b`, in f64. The optimizer folds
/// BatchNorm into convolutions with this same function.
pub(crate) fn fold(scale: &[f64], bias: &[f64], mean: &[f64], var: &[f64], eps: f64) -> Vec<(f64, f64)> {
    (0..scale.len())
        .map(|c| {
            let a = scale[c] / (var[c] + eps).sqrt();
            (a, bias[c] - mean[c] * a)
        })
        .collect()
}

struct BatchNorm<T: FloatStore> {
    eps: f64,
    channels: usize,
    /// Elements per (n, c) plane: the product of the spatial dims (1 with none).
    inner: usize,
    folded: Option<Vec<(T::C, T::C)>>,
}

fn to_compute<C: Float>(ab: &[(f64, f64)]) -> Vec<(C, C)> {
    ab.iter().map(|&(a, b)| (C::lit(a), C::lit(b))).collect()
}

impl<T: FloatStore> BatchNorm<T> {
    fn new(eps: f64, channels: usize, inner: usize, folded: Option<Vec<(f64, f64)>>) -> Self {
        BatchNorm {
            eps,
            channels,
            inner,
            folded: folded.as_deref().map(to_compute),
        }
    }
}

impl<T: FloatStore + Element> Kernel for BatchNorm<T> {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = inputs
            .first()
            .copied()
            .flatten()
            .ok_or_else(|| Error::shape(NAME, "missing x"))?
            .typed::<T>()?;
        let y = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(NAME, "missing output"))?
            .typed::<T>()?;
        expect_len(NAME, "output", y.len(), x.len())?;
        let (c, inner) = (self.channels, self.inner);
        if y.is_empty() {
            return Ok(());
        }
        expect_len(NAME, "input", x.len() % (c * inner), 0)?;
        let computed;
        let ab = match &self.folded {
            Some(ab) => ab,
            None => {
                let p: Vec<Vec<f64>> = (1..5)
                    .map(|i| runtime_param(NAME, inputs.get(i).copied().flatten(), c))
                    .collect::<Result<_>>()?;
                computed = to_compute(&fold(&p[0], &p[1], &p[2], &p[3], self.eps));
                &computed
            }
        };
        if inner == 1 {
            // [N, C]: one row of channels per sample.
            par_chunks(y, c, 1, |start, chunk| {
                for (r, row) in chunk.chunks_mut(c).enumerate() {
                    let xr = &x[start + r * c..start + (r + 1) * c];
                    for ((o, &v), &(a, b)) in row.iter_mut().zip(xr).zip(ab) {
                        *o = T::store(v.load() * a + b);
                    }
                }
            });
        } else {
            par_chunks(y, inner, 1, |start, chunk| {
                for (p, plane) in chunk.chunks_mut(inner).enumerate() {
                    let first = start + p * inner;
                    let (a, b) = ab[(first / inner) % c];
                    for (o, &v) in plane.iter_mut().zip(&x[first..first + inner]) {
                        *o = T::store(v.load() * a + b);
                    }
                }
            });
        }
        Ok(())
    }

    fn label(&self) -> &'static str {
        if self.folded.is_some() {
            "folded"
        } else {
            "runtime-params"
        }
    }
}
