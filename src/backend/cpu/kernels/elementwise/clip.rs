//! `Op::Clip` with bounds given as (possibly runtime) scalar inputs `[x, min?, max?]`.
//! An absent or empty bound means no bound. NaN passes through, and when `min > max`
//! every element becomes `max`, as the ONNX spec says.

use super::loops::{bad_dtypes, map, out0, single_output};
use super::unary::clamp;
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::numeric::Num;
use crate::error::{Error, Result};
use crate::tensor::{DType, Element, Slice, SliceMut, View, ViewMut};

const NAME: &str = "Clip";

pub fn prepare(inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let out = single_output(NAME, outputs)?;
    let bounds_ok = inputs
        .iter()
        .skip(1)
        .flatten()
        .all(|b| b.dtype == x.dtype && b.shape.iter().product::<usize>() <= 1);
    if x.dtype == DType::Bool || out.dtype != x.dtype || out.shape != x.shape || !bounds_ok {
        return Err(Error::shape(
            NAME,
            format!(
                "bad inputs: x {} {:?}, bounds must be scalars of its dtype",
                x.dtype, x.shape
            ),
        ));
    }
    Ok(Box::new(Clip))
}

struct Clip;

/// The bound in input `i`, or `default` when it is absent or empty.
fn bound<T: Element>(inputs: &[Option<View<'_>>], i: usize, default: T) -> Result<T> {
    match inputs.get(i).copied().flatten() {
        None => Ok(default),
        Some(v) => match v.typed::<T>()? {
            [] => Ok(default),
            [b] => Ok(*b),
            _ => Err(Error::shape(NAME, "min and max must be scalars")),
        },
    }
}

fn clip<T: Num + Element>(inputs: &[Option<View<'_>>], x: &[T], y: &mut [T]) -> Result<()> {
    let lo = bound(inputs, 1, T::LOWEST)?;
    let hi = bound(inputs, 2, T::HIGHEST)?;
    map(NAME, x, y, 1, |v| clamp(v, lo, hi))
}

impl Kernel for Clip {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?;
        let y = out0(NAME, outputs)?;
        match (x.data, &mut y.data) {
            (Slice::F32(x), SliceMut::F32(y)) => clip(inputs, x, y),
            (Slice::F64(x), SliceMut::F64(y)) => clip(inputs, x, y),
            (Slice::F16(x), SliceMut::F16(y)) => clip(inputs, x, y),
            (Slice::BF16(x), SliceMut::BF16(y)) => clip(inputs, x, y),
            (Slice::I8(x), SliceMut::I8(y)) => clip(inputs, x, y),
            (Slice::I16(x), SliceMut::I16(y)) => clip(inputs, x, y),
            (Slice::I32(x), SliceMut::I32(y)) => clip(inputs, x, y),
            (Slice::I64(x), SliceMut::I64(y)) => clip(inputs, x, y),
            (Slice::U8(x), SliceMut::U8(y)) => clip(inputs, x, y),
            (Slice::U16(x), SliceMut::U16(y)) => clip(inputs, x, y),
            (Slice::U32(x), SliceMut::U32(y)) => clip(inputs, x, y),
            (Slice::U64(x), SliceMut::U64(y)) => clip(inputs, x, y),
            (x, y) => Err(bad_dtypes(NAME, &[x.dtype(), y.dtype()])),
        }
    }

    fn label(&self) -> &'static str {
        NAME
    }
}
