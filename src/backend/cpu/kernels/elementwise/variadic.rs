//! `Op::Variadic`: ONNX `Sum`, `Mean`, `Max` and `Min` over any number of inputs,
//! all broadcast together. The first two inputs are combined in one broadcast pass
//! into the output; each further input is folded into it in place.

use super::loops::{accumulate, bad_dtypes, expand, out0, single_output, zip};
use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::broadcast::Broadcast;
use crate::backend::cpu::kernels::numeric::{par_chunks, Num};
use crate::error::{Error, Result};
use crate::ir::ops::{BinaryOp, Op};
use crate::tensor::{DType, Element, SliceMut, View, ViewMut};

pub fn prepare(
    op: BinaryOp,
    mean: bool,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let name = Op::Variadic { op, mean }.name();
    let out = single_output(name, outputs)?;
    let descs = inputs
        .iter()
        .enumerate()
        .map(|(i, d)| d.ok_or_else(|| Error::shape(name, format!("input {i} is missing"))))
        .collect::<Result<Vec<_>>>()?;
    if descs.is_empty() {
        return Err(Error::shape(name, "needs at least one input"));
    }
    let float = matches!(out.dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16);
    let op_ok = matches!(op, BinaryOp::Add | BinaryOp::Max | BinaryOp::Min) && (!mean || op == BinaryOp::Add);
    if !op_ok || out.dtype == DType::Bool || (mean && !float) || descs.iter().any(|d| d.dtype != out.dtype) {
        let mut dtypes: Vec<DType> = descs.iter().map(|d| d.dtype).collect();
        dtypes.push(out.dtype);
        return Err(bad_dtypes(name, &dtypes));
    }
    let pair = match &descs[..] {
        [a, b, ..] => Some(Broadcast::new(name, &out.shape, [a.shape, b.shape])?),
        _ => None,
    };
    let skip = if pair.is_some() { 2 } else { 0 };
    let rest = descs[skip..]
        .iter()
        .map(|d| Broadcast::new(name, &out.shape, [d.shape]))
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(Variadic {
        op,
        mean,
        name,
        count: descs.len(),
        pair,
        rest,
    }))
}

struct Variadic {
    op: BinaryOp,
    mean: bool,
    name: &'static str,
    count: usize,
    /// Plan for inputs 0 and 1 combined into the output (when there are two or more).
    pair: Option<Broadcast<2>>,
    /// Plans for the inputs after those (all of them when there is only one).
    rest: Vec<Broadcast<1>>,
}

impl Kernel for Variadic {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let y = out0(self.name, outputs)?;
        match &mut y.data {
            SliceMut::F32(y) => self.run_typed(inputs, y),
            SliceMut::F64(y) => self.run_typed(inputs, y),
            SliceMut::F16(y) => self.run_typed(inputs, y),
            SliceMut::BF16(y) => self.run_typed(inputs, y),
            SliceMut::I8(y) => self.run_typed(inputs, y),
            SliceMut::I16(y) => self.run_typed(inputs, y),
            SliceMut::I32(y) => self.run_typed(inputs, y),
            SliceMut::I64(y) => self.run_typed(inputs, y),
            SliceMut::U8(y) => self.run_typed(inputs, y),
            SliceMut::U16(y) => self.run_typed(inputs, y),
            SliceMut::U32(y) => self.run_typed(inputs, y),
            SliceMut::U64(y) => self.run_typed(inputs, y),
            SliceMut::Bool(_) => Err(bad_dtypes(self.name, &[DType::Bool])),
        }
    }

    fn label(&self) -> &'static str {
        self.name
    }
}

impl Variadic {
    fn run_typed<T: Num + Element>(&self, inputs: &[Option<View<'_>>], y: &mut [T]) -> Result<()> {
        let n = self.name;
        if inputs.len() != self.count {
            return Err(Error::shape(
                n,
                format!("{} inputs, prepared for {}", inputs.len(), self.count),
            ));
        }
        let xs = inputs
            .iter()
            .map(|v| v.ok_or_else(|| Error::shape(n, "missing input"))?.typed::<T>())
            .collect::<Result<Vec<&[T]>>>()?;
        match self.op {
            BinaryOp::Add => self.fold(&xs, y, T::add)?,
            BinaryOp::Max => self.fold(&xs, y, T::max_nan)?,
            _ => self.fold(&xs, y, T::min_nan)?,
        }
        if self.mean {
            let count = T::from_f64(self.count as f64);
            par_chunks(y, 1, 1, |_, chunk| {
                for v in chunk.iter_mut() {
                    *v = v.div(count);
                }
            });
        }
        Ok(())
    }

    fn fold<T: Num>(
        &self,
        xs: &[&[T]],
        y: &mut [T],
        f: impl Fn(T, T) -> T + Sync + Send + Copy,
    ) -> Result<()> {
        let n = self.name;
        let rest = match &self.pair {
            Some(pair) => {
                zip(n, pair, xs[0], xs[1], y, 1, f)?;
                &xs[2..]
            }
            None => {
                expand(n, &self.rest[0], xs[0], y)?;
                &xs[1..]
            }
        };
        let plans = &self.rest[self.rest.len() - rest.len()..];
        for (plan, x) in plans.iter().zip(rest) {
            accumulate(n, plan, x, y, f)?;
        }
        Ok(())
    }
}
