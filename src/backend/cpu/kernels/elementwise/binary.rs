//! `Op::Binary`: two-input elementwise ops with multidirectional broadcasting.
//!
//! Arithmetic runs on every numeric dtype with numpy semantics (see
//! [`Num`](crate::backend::cpu::kernels::numeric::Num)); comparisons produce bool
//! (`Equal` also compares bools); And/Or/Xor take bools; BitShift takes integers
//! (signed ones since opset 28). `Pow`, whose exponent may have another dtype, is in [`super::pow`].

use super::loops::{bad_dtypes, out0, single_output, zip};
use super::pow;
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::broadcast::Broadcast;
use crate::backend::cpu::kernels::numeric::Num;
use crate::error::{Error, Result};
use crate::ir::ops::{BinaryOp, Op};
use crate::tensor::{DType, Slice, SliceMut, View, ViewMut};

pub fn prepare(
    op: BinaryOp,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let name = Op::Binary(op).name();
    let a = required_desc(inputs, 0)?;
    let b = required_desc(inputs, 1)?;
    let out = single_output(name, outputs)?;
    if op == BinaryOp::Pow {
        return pow::prepare(name, a, b, out);
    }
    let plan = Broadcast::new(name, &out.shape, [a.shape, b.shape])?;
    let want_out = if op.returns_bool() { DType::Bool } else { a.dtype };
    if a.dtype != b.dtype || out.dtype != want_out || !supports(op, a.dtype) {
        return Err(bad_dtypes(name, &[a.dtype, b.dtype, out.dtype]));
    }
    Ok(Box::new(Binary { op, name, plan }))
}

fn supports(op: BinaryOp, dtype: DType) -> bool {
    use BinaryOp::*;
    match op {
        And | Or | Xor => dtype == DType::Bool,
        Equal => true,
        BitShiftLeft | BitShiftRight => !matches!(
            dtype,
            DType::Bool | DType::F32 | DType::F64 | DType::F16 | DType::BF16
        ),
        _ => dtype != DType::Bool,
    }
}

struct Binary {
    op: BinaryOp,
    name: &'static str,
    plan: Broadcast<2>,
}

/// Matches three slices of one numeric dtype and calls `$f(args.., a, b, y)`.
macro_rules! same_numeric {
    ($n:expr, $a:expr, $b:expr, $y:expr, $f:ident($($arg:expr),*)) => {
        match ($a, $b, $y) {
            (Slice::F32(a), Slice::F32(b), SliceMut::F32(y)) => $f($($arg,)* a, b, y),
            (Slice::F64(a), Slice::F64(b), SliceMut::F64(y)) => $f($($arg,)* a, b, y),
            (Slice::F16(a), Slice::F16(b), SliceMut::F16(y)) => $f($($arg,)* a, b, y),
            (Slice::BF16(a), Slice::BF16(b), SliceMut::BF16(y)) => $f($($arg,)* a, b, y),
            (Slice::I8(a), Slice::I8(b), SliceMut::I8(y)) => $f($($arg,)* a, b, y),
            (Slice::I16(a), Slice::I16(b), SliceMut::I16(y)) => $f($($arg,)* a, b, y),
            (Slice::I32(a), Slice::I32(b), SliceMut::I32(y)) => $f($($arg,)* a, b, y),
            (Slice::I64(a), Slice::I64(b), SliceMut::I64(y)) => $f($($arg,)* a, b, y),
            (Slice::U8(a), Slice::U8(b), SliceMut::U8(y)) => $f($($arg,)* a, b, y),
            (Slice::U16(a), Slice::U16(b), SliceMut::U16(y)) => $f($($arg,)* a, b, y),
            (Slice::U32(a), Slice::U32(b), SliceMut::U32(y)) => $f($($arg,)* a, b, y),
            (Slice::U64(a), Slice::U64(b), SliceMut::U64(y)) => $f($($arg,)* a, b, y),
            (a, b, y) => Err(bad_dtypes($n, &[a.dtype(), b.dtype(), y.dtype()])),
        }
    };
}
pub(crate) use same_numeric;

impl Kernel for Binary {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let a = required(inputs, 0)?;
        let b = required(inputs, 1)?;
        let y = out0(self.name, outputs)?;
        let (op, n, p) = (self.op, self.name, &self.plan);
        if op.returns_bool() {
            let SliceMut::Bool(o) = &mut y.data else {
                return Err(bad_dtypes(n, &[a.dtype(), b.dtype(), y.data.dtype()]));
            };
            return compare(op, n, p, a.data, b.data, o);
        }
        match (op, a.data, b.data, &mut y.data) {
            (BinaryOp::BitShiftLeft | BinaryOp::BitShiftRight, a, b, y) => {
                let left = op == BinaryOp::BitShiftLeft;
                match (a, b, y) {
                    (Slice::U8(a), Slice::U8(b), SliceMut::U8(y)) => shift(left, n, p, a, b, y),
                    (Slice::U16(a), Slice::U16(b), SliceMut::U16(y)) => shift(left, n, p, a, b, y),
                    (Slice::U32(a), Slice::U32(b), SliceMut::U32(y)) => shift(left, n, p, a, b, y),
                    (Slice::U64(a), Slice::U64(b), SliceMut::U64(y)) => shift(left, n, p, a, b, y),
                    (Slice::I8(a), Slice::I8(b), SliceMut::I8(y)) => shift(left, n, p, a, b, y),
                    (Slice::I16(a), Slice::I16(b), SliceMut::I16(y)) => shift(left, n, p, a, b, y),
                    (Slice::I32(a), Slice::I32(b), SliceMut::I32(y)) => shift(left, n, p, a, b, y),
                    (Slice::I64(a), Slice::I64(b), SliceMut::I64(y)) => shift(left, n, p, a, b, y),
                    (a, b, y) => Err(bad_dtypes(n, &[a.dtype(), b.dtype(), y.dtype()])),
                }
            }
            (_, a, b, y) => same_numeric!(n, a, b, y, arith(op, n, p)),
        }
    }

    fn label(&self) -> &'static str {
        self.name
    }
}

fn arith<T: Num>(op: BinaryOp, n: &str, p: &Broadcast<2>, a: &[T], b: &[T], y: &mut [T]) -> Result<()> {
    match op {
        BinaryOp::Add => zip(n, p, a, b, y, 1, T::add),
        BinaryOp::Sub => zip(n, p, a, b, y, 1, T::sub),
        BinaryOp::Mul => zip(n, p, a, b, y, 1, T::mul),
        BinaryOp::Div => zip(n, p, a, b, y, 1, T::div),
        BinaryOp::Max => zip(n, p, a, b, y, 1, T::max_nan),
        BinaryOp::Min => zip(n, p, a, b, y, 1, T::min_nan),
        BinaryOp::Mod { fmod: false } => zip(n, p, a, b, y, 1, T::rem_floor),
        BinaryOp::Mod { fmod: true } => zip(n, p, a, b, y, 1, T::rem_trunc),
        BinaryOp::Pow => zip(n, p, a, b, y, 8, T::pow),
        BinaryOp::PRelu => zip(n, p, a, b, y, 1, |x, s| if x < T::ZERO { x.mul(s) } else { x }),
        _ => Err(Error::shape(n, "not an arithmetic op")),
    }
}

fn compare(op: BinaryOp, n: &str, p: &Broadcast<2>, a: Slice<'_>, b: Slice<'_>, o: &mut [u8]) -> Result<()> {
    match (a, b) {
        (Slice::F32(a), Slice::F32(b)) => cmp(op, n, p, a, b, o),
        (Slice::F64(a), Slice::F64(b)) => cmp(op, n, p, a, b, o),
        (Slice::F16(a), Slice::F16(b)) => cmp(op, n, p, a, b, o),
        (Slice::BF16(a), Slice::BF16(b)) => cmp(op, n, p, a, b, o),
        (Slice::I8(a), Slice::I8(b)) => cmp(op, n, p, a, b, o),
        (Slice::I16(a), Slice::I16(b)) => cmp(op, n, p, a, b, o),
        (Slice::I32(a), Slice::I32(b)) => cmp(op, n, p, a, b, o),
        (Slice::I64(a), Slice::I64(b)) => cmp(op, n, p, a, b, o),
        (Slice::U8(a), Slice::U8(b)) => cmp(op, n, p, a, b, o),
        (Slice::U16(a), Slice::U16(b)) => cmp(op, n, p, a, b, o),
        (Slice::U32(a), Slice::U32(b)) => cmp(op, n, p, a, b, o),
        (Slice::U64(a), Slice::U64(b)) => cmp(op, n, p, a, b, o),
        (Slice::Bool(a), Slice::Bool(b)) => logic(op, n, p, a, b, o),
        (a, b) => Err(bad_dtypes(n, &[a.dtype(), b.dtype()])),
    }
}

fn cmp<T: PartialOrd + Copy + Sync>(
    op: BinaryOp,
    n: &str,
    p: &Broadcast<2>,
    a: &[T],
    b: &[T],
    o: &mut [u8],
) -> Result<()> {
    match op {
        BinaryOp::Equal => zip(n, p, a, b, o, 1, |x, y| (x == y) as u8),
        BinaryOp::Less => zip(n, p, a, b, o, 1, |x, y| (x < y) as u8),
        BinaryOp::LessOrEqual => zip(n, p, a, b, o, 1, |x, y| (x <= y) as u8),
        BinaryOp::Greater => zip(n, p, a, b, o, 1, |x, y| (x > y) as u8),
        BinaryOp::GreaterOrEqual => zip(n, p, a, b, o, 1, |x, y| (x >= y) as u8),
        _ => Err(Error::shape(n, "requires bool inputs")),
    }
}

/// Bool ops; any nonzero byte counts as true so stray values cannot leak through.
fn logic(op: BinaryOp, n: &str, p: &Broadcast<2>, a: &[u8], b: &[u8], o: &mut [u8]) -> Result<()> {
    match op {
        BinaryOp::And => zip(n, p, a, b, o, 1, |x, y| ((x != 0) & (y != 0)) as u8),
        BinaryOp::Or => zip(n, p, a, b, o, 1, |x, y| ((x != 0) | (y != 0)) as u8),
        BinaryOp::Xor => zip(n, p, a, b, o, 1, |x, y| ((x != 0) ^ (y != 0)) as u8),
        BinaryOp::Equal => zip(n, p, a, b, o, 1, |x, y| ((x != 0) == (y != 0)) as u8),
        _ => Err(Error::shape(n, "not defined on bool inputs")),
    }
}

/// Shifts that never trap. A shift by the bit width or more, or (signed types, opset
/// 28) by a negative amount, shifts everything out: left gives 0, right gives the sign
/// fill (0, or -1 for a negative signed value). Signed right shifts are arithmetic.
trait Shift: Copy + Send + Sync {
    fn shl(self, s: Self) -> Self;
    fn shr(self, s: Self) -> Self;
}

macro_rules! impl_shift {
    ($($t:ty),*) => {$(
        impl Shift for $t {
            #[inline(always)]
            fn shl(self, s: Self) -> Self {
                u32::try_from(s).ok().and_then(|s| self.checked_shl(s)).unwrap_or(0)
            }
            #[inline(always)]
            fn shr(self, s: Self) -> Self {
                u32::try_from(s).ok().and_then(|s| self.checked_shr(s)).unwrap_or(0)
            }
        }
    )*};
}
impl_shift!(u8, u16, u32, u64);

macro_rules! impl_shift_signed {
    ($($t:ty),*) => {$(
        impl Shift for $t {
            #[inline(always)]
            fn shl(self, s: Self) -> Self {
                u32::try_from(s).ok().and_then(|s| self.checked_shl(s)).unwrap_or(0)
            }
            #[inline(always)]
            fn shr(self, s: Self) -> Self {
                let fill = if self < 0 { -1 } else { 0 };
                u32::try_from(s).ok().and_then(|s| self.checked_shr(s)).unwrap_or(fill)
            }
        }
    )*};
}
impl_shift_signed!(i8, i16, i32, i64);

fn shift<T: Shift>(left: bool, n: &str, p: &Broadcast<2>, a: &[T], b: &[T], y: &mut [T]) -> Result<()> {
    if left {
        zip(n, p, a, b, y, 1, T::shl)
    } else {
        zip(n, p, a, b, y, 1, T::shr)
    }
}
