//! `Op::Unary`: activations and elementwise math with one input.
//!
//! Float ops run on f32, f64, f16 and bf16 (the last two computed in f32). Abs, Neg,
//! Sign, Relu and Clamp also run on every integer dtype, Not on bool.

use super::loops::{bad_dtypes, fmap, map, out0, single_output, COST_TRANSCENDENTAL};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::numeric::{Float, FloatStore, Num};
use crate::error::{Error, Result};
use crate::ir::ops::{Op, UnaryOp};
use crate::tensor::{DType, Slice, SliceMut, View, ViewMut};

pub fn prepare(
    op: UnaryOp,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let name = Op::Unary(op).name();
    let x = required_desc(inputs, 0)?;
    let out = single_output(name, outputs)?;
    if out.dtype != x.dtype || out.shape != x.shape {
        return Err(Error::shape(
            name,
            format!(
                "output {} {:?} does not match input {} {:?}",
                out.dtype, out.shape, x.dtype, x.shape
            ),
        ));
    }
    if !supports(op, x.dtype) {
        return Err(bad_dtypes(name, &[x.dtype]));
    }
    Ok(Box::new(Unary { op, name }))
}

fn supports(op: UnaryOp, dtype: DType) -> bool {
    let float = matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16);
    match op {
        UnaryOp::Not => dtype == DType::Bool,
        UnaryOp::Abs | UnaryOp::Neg | UnaryOp::Sign | UnaryOp::Relu | UnaryOp::Clamp { .. } => {
            dtype != DType::Bool
        }
        _ => float,
    }
}

struct Unary {
    op: UnaryOp,
    name: &'static str,
}

impl Kernel for Unary {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?;
        let y = out0(self.name, outputs)?;
        let (op, n) = (self.op, self.name);
        match (x.data, &mut y.data) {
            (Slice::F32(x), SliceMut::F32(y)) => float_op(op, n, x, y),
            (Slice::F64(x), SliceMut::F64(y)) => float_op(op, n, x, y),
            (Slice::F16(x), SliceMut::F16(y)) => float_op(op, n, x, y),
            (Slice::BF16(x), SliceMut::BF16(y)) => float_op(op, n, x, y),
            (Slice::I8(x), SliceMut::I8(y)) => int_op(op, n, x, y),
            (Slice::I16(x), SliceMut::I16(y)) => int_op(op, n, x, y),
            (Slice::I32(x), SliceMut::I32(y)) => int_op(op, n, x, y),
            (Slice::I64(x), SliceMut::I64(y)) => int_op(op, n, x, y),
            (Slice::U8(x), SliceMut::U8(y)) => int_op(op, n, x, y),
            (Slice::U16(x), SliceMut::U16(y)) => int_op(op, n, x, y),
            (Slice::U32(x), SliceMut::U32(y)) => int_op(op, n, x, y),
            (Slice::U64(x), SliceMut::U64(y)) => int_op(op, n, x, y),
            (Slice::Bool(x), SliceMut::Bool(y)) if op == UnaryOp::Not => {
                map(n, x, y, 1, move |v| (v == 0) as u8)
            }
            (x, y) => Err(bad_dtypes(n, &[x.dtype(), y.dtype()])),
        }
    }

    fn label(&self) -> &'static str {
        self.name
    }
}

/// Clamps with NaN passing through, and `max` winning when `min > max` (ONNX Clip).
#[inline(always)]
pub fn clamp<T: PartialOrd>(v: T, lo: T, hi: T) -> T {
    let v = if v < lo { lo } else { v };
    if v > hi {
        hi
    } else {
        v
    }
}

pub(crate) fn float_op<T: FloatStore>(op: UnaryOp, n: &str, x: &[T], y: &mut [T]) -> Result<()> {
    let lit = <T::C as Float>::lit;
    let (zero, one) = (<T::C as Num>::ZERO, <T::C as Num>::ONE);
    let heavy = COST_TRANSCENDENTAL;
    match op {
        UnaryOp::Relu => fmap(n, x, y, 1, move |v| if v < zero { zero } else { v }),
        UnaryOp::Sigmoid => fmap(n, x, y, heavy, move |v| one / (one + (-v).exp())),
        UnaryOp::Tanh => fmap(n, x, y, heavy, move |v| v.tanh()),
        UnaryOp::Exp => fmap(n, x, y, heavy, move |v| v.exp()),
        UnaryOp::Log => fmap(n, x, y, heavy, move |v| v.ln()),
        UnaryOp::Sqrt => fmap(n, x, y, 1, move |v| v.sqrt()),
        UnaryOp::Abs => fmap(n, x, y, 1, move |v| v.abs()),
        UnaryOp::Neg => fmap(n, x, y, 1, move |v| -v),
        UnaryOp::Erf => fmap(n, x, y, heavy, move |v| v.erf()),
        UnaryOp::Reciprocal => fmap(n, x, y, 1, move |v| one / v),
        UnaryOp::Floor => fmap(n, x, y, 1, move |v| v.floor()),
        UnaryOp::Ceil => fmap(n, x, y, 1, move |v| v.ceil()),
        UnaryOp::Round => fmap(n, x, y, 1, move |v| v.round_even()),
        UnaryOp::Sign => fmap(n, x, y, 1, move |v| v.signum()),
        UnaryOp::Sin => fmap(n, x, y, heavy, move |v| v.sin()),
        UnaryOp::Cos => fmap(n, x, y, heavy, move |v| v.cos()),
        // ln(1 + e^x) without overflow for large x.
        UnaryOp::Softplus => fmap(n, x, y, heavy, move |v| {
            if v > zero {
                v + (-v).exp().ln_1p()
            } else {
                v.exp().ln_1p()
            }
        }),
        UnaryOp::Softsign => fmap(n, x, y, 1, move |v| v / (one + v.abs())),
        UnaryOp::HardSwish => {
            let (sixth, half) = (lit(1.0 / 6.0), lit(0.5));
            fmap(n, x, y, 1, move |v| v * clamp(v * sixth + half, zero, one))
        }
        UnaryOp::HardSigmoid { alpha, beta } => {
            let (a, b) = (lit(alpha as f64), lit(beta as f64));
            fmap(n, x, y, 1, move |v| clamp(a * v + b, zero, one))
        }
        UnaryOp::LeakyRelu { alpha } => {
            let a = lit(alpha as f64);
            fmap(n, x, y, 1, move |v| if v < zero { a * v } else { v })
        }
        UnaryOp::Elu { alpha } => {
            let a = lit(alpha as f64);
            fmap(n, x, y, heavy, move |v| if v < zero { a * v.exp_m1() } else { v })
        }
        UnaryOp::Selu { alpha, gamma } => {
            let (a, g) = (lit(alpha as f64), lit(gamma as f64));
            fmap(n, x, y, heavy, move |v| {
                if v > zero {
                    g * v
                } else {
                    g * (a * v.exp() - a)
                }
            })
        }
        UnaryOp::Celu { alpha } => {
            let a = lit(alpha as f64);
            fmap(
                n,
                x,
                y,
                heavy,
                move |v| if v > zero { v } else { a * (v / a).exp_m1() },
            )
        }
        UnaryOp::Silu => fmap(n, x, y, heavy, move |v| v / (one + (-v).exp())),
        UnaryOp::Gelu { tanh_approx: false } => {
            // 0.5 x (1 + erf(x/√2)) = 0.5 x erfc(-x/√2): erfc keeps the left tail,
            // where 1 + erf would cancel, accurate.
            let (half, k) = (lit(0.5), lit(std::f64::consts::FRAC_1_SQRT_2));
            fmap(n, x, y, 2 * heavy, move |v| half * v * (-(v * k)).erfc())
        }
        UnaryOp::Gelu { tanh_approx: true } => {
            // 0.5 x (1 + tanh z) = x · sigmoid(2z), which has no cancellation for x << 0.
            let (k, c) = (lit((2.0 / std::f64::consts::PI).sqrt()), lit(0.044_715));
            let two = lit(2.0);
            fmap(n, x, y, heavy, move |v| {
                let z = k * (v + c * v * v * v);
                v / (one + (-(two * z)).exp())
            })
        }
        UnaryOp::Clamp { min, max } => {
            let (lo, hi) = (lit(min as f64), lit(max as f64));
            fmap(n, x, y, 1, move |v| clamp(v, lo, hi))
        }
        UnaryOp::Not => Err(Error::shape(n, "requires a bool input")),
    }
}

fn int_op<T: Num>(op: UnaryOp, n: &str, x: &[T], y: &mut [T]) -> Result<()> {
    match op {
        UnaryOp::Relu => map(n, x, y, 1, move |v| if v < T::ZERO { T::ZERO } else { v }),
        UnaryOp::Abs => map(n, x, y, 1, move |v| v.abs()),
        UnaryOp::Neg => map(n, x, y, 1, move |v| v.neg()),
        UnaryOp::Sign => map(n, x, y, 1, move |v| v.signum()),
        UnaryOp::Clamp { min, max } => {
            // Float bounds saturate into the integer range (±inf → MIN / MAX).
            let (lo, hi) = (T::from_f64(min as f64), T::from_f64(max as f64));
            map(n, x, y, 1, move |v| clamp(v, lo, hi))
        }
        _ => Err(Error::shape(n, "requires a float input")),
    }
}
