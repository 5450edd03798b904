//! `GlobalAveragePool` / `GlobalMaxPool` / `GlobalLpPool`: one value per
//! (image, channel) plane over all spatial positions, `[N, C, ...] -> [N, C, 1, ...]`.

use rayon::prelude::*;

use super::{max_dtype_supported, Lp, MaxElem};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::float_io::{numel, output};
use crate::error::{Error, Result};
use crate::ir::ops::PoolKind;
use crate::tensor::{DType, View, ViewMut};

struct GlobalPoolKernel {
    name: &'static str,
    kind: PoolKind,
    planes: usize,
    plane_len: usize,
    dtype: DType,
}

pub(super) fn prepare(
    kind: PoolKind,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let name = match kind {
        PoolKind::Max => "GlobalMaxPool",
        PoolKind::Avg { .. } => "GlobalAveragePool",
        PoolKind::Lp { .. } => "GlobalLpPool",
    };
    let x = required_desc(inputs, 0)?;
    let y = output(name, outputs, 0)?;
    let supported = match kind {
        PoolKind::Max => max_dtype_supported(x.dtype),
        _ => x.dtype == DType::F32,
    };
    if !supported || y.dtype != x.dtype {
        return Err(Error::shape(name, format!("dtype {} is not supported", x.dtype)));
    }
    if let PoolKind::Lp { p: 0 } = kind {
        return Err(Error::shape(name, "p must be positive"));
    }
    let ok_shape = x.shape.len() >= 3
        && y.shape.len() == x.shape.len()
        && y.shape[..2] == x.shape[..2]
        && y.shape[2..].iter().all(|&d| d == 1);
    if !ok_shape {
        return Err(Error::shape(
            name,
            format!("input {:?} and output {:?} do not fit", x.shape, y.shape),
        ));
    }
    Ok(Box::new(GlobalPoolKernel {
        name,
        kind,
        planes: numel(name, &x.shape[..2])?,
        plane_len: numel(name, &x.shape[2..])?,
        dtype: x.dtype,
    }))
}

impl Kernel for GlobalPoolKernel {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?;
        let y = outputs
            .get_mut(0)
            .ok_or_else(|| Error::shape(self.name, "missing output"))?;
        match (self.kind, self.dtype) {
            (PoolKind::Max, DType::F32) => self.max(x.typed::<f32>()?, y.typed()?),
            (PoolKind::Max, DType::F64) => self.max(x.typed::<f64>()?, y.typed()?),
            (PoolKind::Max, DType::F16) => self.max(x.typed::<half::f16>()?, y.typed()?),
            (PoolKind::Max, DType::I8) => self.max(x.typed::<i8>()?, y.typed()?),
            (PoolKind::Max, DType::U8) => self.max(x.typed::<u8>()?, y.typed()?),
            (PoolKind::Avg { .. }, _) => {
                let len = self.plane_len as f32;
                self.reduce(x.typed()?, y.typed()?, |p| lane_sum(p, |v| v) / len)
            }
            (PoolKind::Lp { p }, _) => {
                let lp = Lp(p);
                self.reduce(x.typed()?, y.typed()?, |s| lp.finish(lane_sum(s, |v| lp.term(v))))
            }
            _ => Err(Error::shape(self.name, "unsupported dtype")),
        }
    }

    fn label(&self) -> &'static str {
        self.name
    }
}

impl GlobalPoolKernel {
    fn reduce<T: Copy + Send + Sync, U: Send>(
        &self,
        x: &[T],
        y: &mut [U],
        f: impl Fn(&[T]) -> U + Sync,
    ) -> Result<()> {
        if x.len() != self.planes * self.plane_len || y.len() != self.planes {
            return Err(Error::shape(self.name, "input or output has an unexpected size"));
        }
        if self.plane_len == 0 {
            // No elements: run `f` on empty planes (mean -> NaN, max -> lowest).
            y.iter_mut().for_each(|v| *v = f(&[]));
            return Ok(());
        }
        y.par_iter_mut()
            .zip(x.par_chunks(self.plane_len))
            .for_each(|(v, plane)| *v = f(plane));
        Ok(())
    }

    fn max<T: MaxElem>(&self, x: &[T], y: &mut [T]) -> Result<()> {
        self.reduce(x, y, |plane| {
            plane.iter().fold(T::LOWEST, |m, &v| if v > m { v } else { m })
        })
    }
}

/// `sum term(x)` over 8 independent lanes: vectorisable (a single running sum is a
/// serial dependency LLVM may not reorder) and with less rounding drift on big planes.
#[inline(always)]
fn lane_sum(xs: &[f32], term: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| term(v)).sum();
    for c in chunks {
        lanes.iter_mut().zip(c).for_each(|(l, &v)| *l += term(v));
    }
    lanes.iter().sum::<f32>() + tail
}
