//! `FusedElementwise`: a chain of f32 elementwise steps in one pass over memory.
//!
//! The output is produced a block at a time: the block is loaded from `x` once, every
//! step runs over it while it sits in L1, and it is stored once. Unfused, each step
//! would read and write the whole tensor.

use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::elementwise::unary::float_op;
use crate::backend::cpu::kernels::float_io::{expect_f32, output_f32};
use crate::backend::cpu::kernels::numeric::par::par_chunks;
use crate::error::{Error, Result};
use crate::ir::ops::{BinaryOp, ChainStep};
use crate::tensor::{View, ViewMut};

const NAME: &str = "FusedElementwise";

/// Elements per block: small enough for L1 with a scratch copy, large enough that
/// each step's loop vectorizes well.
const BLOCK: usize = 512;

struct Chain {
    steps: Vec<ChainStep>,
    len: usize,
    /// Per input: whether it holds one element (broadcast) rather than `len`.
    scalar: Vec<bool>,
    /// Relative per-element cost, for the parallel split.
    cost: usize,
}

/// `v = f(v, other)` (or `f(other, v)` when `swapped`) over a block; monomorphized per
/// op so each loop vectorizes.
#[inline(always)]
fn zip_step(out: &mut [f32], other: &[f32], scalar: bool, swapped: bool, f: impl Fn(f32, f32) -> f32) {
    match (scalar, swapped) {
        (true, false) => out.iter_mut().for_each(|v| *v = f(*v, other[0])),
        (true, true) => out.iter_mut().for_each(|v| *v = f(other[0], *v)),
        (false, false) => out.iter_mut().zip(other).for_each(|(v, &o)| *v = f(*v, o)),
        (false, true) => out.iter_mut().zip(other).for_each(|(v, &o)| *v = f(o, *v)),
    }
}

pub(super) fn prepare(
    steps: &[ChainStep],
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let all: Vec<usize> = (0..inputs.len()).collect();
    expect_f32(NAME, inputs, &all, outputs)?;
    let x = required_desc(inputs, 0)?;
    let len: usize = x.shape.iter().product();
    let mut scalar = Vec::with_capacity(inputs.len());
    for i in 0..inputs.len() {
        let d = required_desc(inputs, i)?;
        let n: usize = d.shape.iter().product();
        if n != len && n != 1 {
            return Err(Error::shape(
                NAME,
                format!(
                    "operand {i} {:?} is neither {:?} nor a single element",
                    d.shape, x.shape
                ),
            ));
        }
        scalar.push(n == 1 && len != 1);
    }
    let mut cost = 0;
    for step in steps {
        cost += match *step {
            ChainStep::Unary(u) if ChainStep::allows_unary(u) => 4,
            ChainStep::Binary { op, operand, .. }
                if ChainStep::allows_binary(op) && operand < inputs.len() =>
            {
                1
            }
            _ => return Err(Error::shape(NAME, format!("unsupported chain step {step:?}"))),
        };
    }
    Ok(Box::new(Chain {
        steps: steps.to_vec(),
        len,
        scalar,
        cost,
    }))
}

impl Kernel for Chain {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let operands: Vec<&[f32]> = (0..self.scalar.len())
            .map(|i| required(inputs, i)?.typed::<f32>())
            .collect::<Result<_>>()?;
        for (v, &scalar) in operands.iter().zip(&self.scalar) {
            if v.len() != if scalar { 1 } else { self.len } {
                return Err(Error::shape(NAME, "operand size differs from the plan"));
            }
        }
        let y = output_f32(NAME, outputs)?;
        if y.len() != self.len {
            return Err(Error::shape(NAME, "output size differs from the plan"));
        }
        let mut failed = None;
        let failure = std::sync::Mutex::new(&mut failed);
        par_chunks(y, BLOCK, self.cost, |start, chunk| {
            let mut scratch = [0.0f32; BLOCK];
            for (b, out) in chunk.chunks_mut(BLOCK).enumerate() {
                if let Err(e) = self.block(&operands, start + b * BLOCK, out, &mut scratch) {
                    if let Ok(mut f) = failure.lock() {
                        **f = Some(e);
                    }
                }
            }
        });
        failed.map_or(Ok(()), Err)
    }
}

impl Chain {
    /// Runs every step over `out`, the block at offset `at`.
    fn block(
        &self,
        operands: &[&[f32]],
        at: usize,
        out: &mut [f32],
        scratch: &mut [f32; BLOCK],
    ) -> Result<()> {
        let n = out.len();
        out.copy_from_slice(&operands[0][at..at + n]);
        for step in &self.steps {
            match *step {
                ChainStep::Unary(op) => {
                    scratch[..n].copy_from_slice(out);
                    float_op::<f32>(op, NAME, &scratch[..n], out)?;
                }
                ChainStep::Binary { op, operand, swapped } => {
                    let scalar = self.scalar[operand];
                    let other = if scalar {
                        operands[operand]
                    } else {
                        &operands[operand][at..at + n]
                    };
                    let nan_max = |a: f32, b: f32| {
                        if a.is_nan() || b.is_nan() {
                            f32::NAN
                        } else {
                            a.max(b)
                        }
                    };
                    let nan_min = |a: f32, b: f32| {
                        if a.is_nan() || b.is_nan() {
                            f32::NAN
                        } else {
                            a.min(b)
                        }
                    };
                    match op {
                        BinaryOp::Add => zip_step(out, other, scalar, swapped, |a, b| a + b),
                        BinaryOp::Sub => zip_step(out, other, scalar, swapped, |a, b| a - b),
                        BinaryOp::Mul => zip_step(out, other, scalar, swapped, |a, b| a * b),
                        BinaryOp::Div => zip_step(out, other, scalar, swapped, |a, b| a / b),
                        BinaryOp::Max => zip_step(out, other, scalar, swapped, nan_max),
                        BinaryOp::Min => zip_step(out, other, scalar, swapped, nan_min),
                        BinaryOp::PRelu => {
                            zip_step(
                                out,
                                other,
                                scalar,
                                swapped,
                                |a, b| if a < 0.0 { a * b } else { a },
                            )
                        }
                        _ => return Err(Error::shape(NAME, "unsupported binary step")),
                    }
                }
            }
        }
        Ok(())
    }
}
