//! ArgMax / ArgMin along one axis, producing int64 indices.
//!
//! Ties keep the first index, or the last with `select_last_index`. NaN counts as the
//! extreme value for both, as numpy's `argmax` / `argmin` do.

use super::axes::{normalize_axis, split_at_axis, typed_in};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::elementwise::loops::{bad_dtypes, expect_len, out0, single_output};
use crate::backend::cpu::kernels::numeric::{par_chunks, Num};
use crate::error::{Error, Result};
use crate::ir::ops::Op;
use crate::tensor::{DType, Element, View, ViewMut};

pub fn prepare(
    max: bool,
    axis: i64,
    select_last: bool,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let name = Op::ArgExtreme {
        max,
        axis,
        keepdims: true,
        select_last_index: select_last,
    }
    .name();
    let x = required_desc(inputs, 0)?;
    let out = single_output(name, outputs)?;
    if out.dtype != DType::I64 || x.dtype == DType::Bool {
        return Err(bad_dtypes(name, &[x.dtype, out.dtype]));
    }
    let axis = normalize_axis(name, axis, x.shape.len())?;
    let (outer, n, inner) = split_at_axis(x.shape, axis);
    if n == 0 {
        return Err(Error::shape(name, "cannot take the arg-extreme of an empty axis"));
    }
    Ok(Box::new(ArgExtreme {
        name,
        max,
        select_last,
        outer,
        n,
        inner,
    }))
}

struct ArgExtreme {
    name: &'static str,
    max: bool,
    select_last: bool,
    outer: usize,
    n: usize,
    inner: usize,
}

impl ArgExtreme {
    fn run_typed<T: Num + Element>(&self, x: &[T], y: &mut [i64]) -> Result<()> {
        let (n, inner) = (self.n, self.inner);
        expect_len(self.name, "input", x.len(), self.outer * n * inner)?;
        expect_len(self.name, "output", y.len(), self.outer * inner)?;
        let (max, last) = (self.max, self.select_last);
        par_chunks(y, 1, n, |start, chunk| {
            for (j, o) in chunk.iter_mut().enumerate() {
                let (outer, i) = ((start + j) / inner, (start + j) % inner);
                let base = outer * n * inner + i;
                let (mut best, mut at) = (x[base], 0usize);
                for k in 1..n {
                    let v = x[base + k * inner];
                    if best.is_nan() {
                        // The first NaN wins, or the last one with select_last_index.
                        if last && v.is_nan() {
                            at = k;
                        }
                        continue;
                    }
                    let better = if max { v > best } else { v < best };
                    if v.is_nan() || better || (last && v == best) {
                        best = v;
                        at = k;
                    }
                }
                *o = at as i64;
            }
        });
        Ok(())
    }
}

impl Kernel for ArgExtreme {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?;
        let y = out0(self.name, outputs)?.typed::<i64>()?;
        let n = self.name;
        match x.dtype() {
            DType::F32 => self.run_typed(typed_in::<f32>(n, x)?, y),
            DType::F64 => self.run_typed(typed_in::<f64>(n, x)?, y),
            DType::F16 => self.run_typed(typed_in::<half::f16>(n, x)?, y),
            DType::BF16 => self.run_typed(typed_in::<half::bf16>(n, x)?, y),
            DType::I8 => self.run_typed(typed_in::<i8>(n, x)?, y),
            DType::I16 => self.run_typed(typed_in::<i16>(n, x)?, y),
            DType::I32 => self.run_typed(typed_in::<i32>(n, x)?, y),
            DType::I64 => self.run_typed(typed_in::<i64>(n, x)?, y),
            DType::U8 => self.run_typed(typed_in::<u8>(n, x)?, y),
            DType::U16 => self.run_typed(typed_in::<u16>(n, x)?, y),
            DType::U32 => self.run_typed(typed_in::<u32>(n, x)?, y),
            DType::U64 => self.run_typed(typed_in::<u64>(n, x)?, y),
            DType::Bool => Err(bad_dtypes(n, &[DType::Bool])),
        }
    }

    fn label(&self) -> &'static str {
        self.name
    }
}
