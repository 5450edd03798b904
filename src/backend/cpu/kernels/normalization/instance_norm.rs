//! InstanceNormalization: every (n, c) plane of `[N, C, ...]` is normalized by its own
//! mean and variance, then scaled and shifted per channel. Planes are independent, so
//! they are the unit of parallel work.

use super::{channel_input, channel_param, runtime_param};
use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::elementwise::loops::expect_len;
use crate::backend::cpu::kernels::numeric::sums::mean_var;
use crate::backend::cpu::kernels::numeric::{par_chunks, Float, FloatStore};
use crate::error::{Error, Result};
use crate::tensor::{DType, Element, View, ViewMut};

const NAME: &str = "InstanceNormalization";

pub fn prepare(
    epsilon: f32,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let (x, channels, inner) = channel_input(NAME, inputs, outputs)?;
    let scale = channel_param(NAME, "scale", &required_desc(inputs, 1)?, channels)?;
    let bias = channel_param(NAME, "bias", &required_desc(inputs, 2)?, channels)?;
    let params = scale.zip(bias);
    let eps = epsilon as f64;
    Ok(match x.dtype {
        DType::F32 => Box::new(InstanceNorm::<f32>::new(eps, channels, inner, params)),
        DType::F64 => Box::new(InstanceNorm::<f64>::new(eps, channels, inner, params)),
        DType::F16 => Box::new(InstanceNorm::<half::f16>::new(eps, channels, inner, params)),
        _ => Box::new(InstanceNorm::<half::bf16>::new(eps, channels, inner, params)),
    })
}

struct InstanceNorm<T> {
    eps: f64,
    channels: usize,
    inner: usize,
    /// Constant `(scale, bias)`.
    params: Option<(Vec<f64>, Vec<f64>)>,
    _t: std::marker::PhantomData<T>,
}

impl<T> InstanceNorm<T> {
    fn new(eps: f64, channels: usize, inner: usize, params: Option<(Vec<f64>, Vec<f64>)>) -> Self {
        InstanceNorm {
            eps,
            channels,
            inner,
            params,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: FloatStore + Element> Kernel for InstanceNorm<T> {
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
        let (scale, bias) = match &self.params {
            Some((s, b)) => (s, b),
            None => {
                let s = runtime_param(NAME, inputs.get(1).copied().flatten(), c)?;
                let b = runtime_param(NAME, inputs.get(2).copied().flatten(), c)?;
                computed = (s, b);
                (&computed.0, &computed.1)
            }
        };
        let eps = self.eps;
        par_chunks(y, inner, 3, |start, chunk| {
            for (p, plane) in chunk.chunks_mut(inner).enumerate() {
                let first = start + p * inner;
                let ch = (first / inner) % c;
                let xs = &x[first..first + inner];
                let (mean, var) = mean_var(xs);
                let a = scale[ch] / (var + eps).sqrt();
                let (a, b) = (<T::C as Float>::lit(a), <T::C as Float>::lit(bias[ch] - mean * a));
                for (o, &v) in plane.iter_mut().zip(xs) {
                    *o = T::store(v.load() * a + b);
                }
            }
        });
        Ok(())
    }

    fn label(&self) -> &'static str {
        NAME
    }
}
