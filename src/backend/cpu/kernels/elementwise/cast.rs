//! `Op::Cast` between any two dtypes.
//!
//! Every source converts through one canonical wide value (i64, u64, f32 or f64), so
//! 13 × 13 dtype pairs need two small traits rather than 169 hand-written loops:
//! - float → int truncates toward zero and saturates (NaN → 0), as Rust's `as` does;
//! - int → int wraps (two's complement), like numpy's `astype`;
//! - to f16 / bf16 rounds to nearest even (the `half` crate), directly from f64 for
//!   f64 sources so there is no double rounding;
//! - to bool is `x != 0` (so NaN → true); from bool is 0 / 1.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use super::loops::{expect_len, map, out0, single_output};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::numeric::par_chunks;
use crate::error::{Error, Result};
use crate::ir::ops::Op;
use crate::tensor::{DType, Slice, SliceMut, View, ViewMut};

const NAME: &str = "Cast";

pub fn prepare(
    to: DType,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let out = single_output(NAME, outputs)?;
    if out.dtype != to || out.shape != x.shape {
        return Err(Error::shape(
            Op::Cast { to }.name(),
            format!(
                "output {} {:?} for a cast of {:?} to {to}",
                out.dtype, out.shape, x.shape
            ),
        ));
    }
    Ok(Box::new(Cast))
}

struct Cast;

/// A destination element, built from one of the canonical wide values.
trait Dst: Copy + Send + Sync {
    fn from_i64(v: i64) -> Self;
    fn from_u64(v: u64) -> Self;
    fn from_f32(v: f32) -> Self;
    fn from_f64(v: f64) -> Self;
}

/// A source element, converted through the widest value of its own kind.
trait Src: Copy + Send + Sync {
    fn put<D: Dst>(self) -> D;
    fn nonzero(self) -> bool;
}

macro_rules! impl_dst_prim {
    ($($t:ty),*) => {$(
        impl Dst for $t {
            #[inline(always)] fn from_i64(v: i64) -> Self { v as $t }
            #[inline(always)] fn from_u64(v: u64) -> Self { v as $t }
            #[inline(always)] fn from_f32(v: f32) -> Self { v as $t }
            #[inline(always)] fn from_f64(v: f64) -> Self { v as $t }
        }
    )*};
}
impl_dst_prim!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! impl_dst_half {
    ($($t:ident),*) => {$(
        impl Dst for $t {
            #[inline(always)] fn from_i64(v: i64) -> Self { $t::from_f64(v as f64) }
            #[inline(always)] fn from_u64(v: u64) -> Self { $t::from_f64(v as f64) }
            #[inline(always)] fn from_f32(v: f32) -> Self { $t::from_f32(v) }
            #[inline(always)] fn from_f64(v: f64) -> Self { $t::from_f64(v) }
        }
    )*};
}
impl_dst_half!(f16, bf16);

macro_rules! impl_src {
    ($via:ident, $wide:ty, $($t:ty),*) => {$(
        impl Src for $t {
            #[inline(always)] fn put<D: Dst>(self) -> D { D::$via(self as $wide) }
            #[inline(always)] fn nonzero(self) -> bool { self != (0 as $t) }
        }
    )*};
}
impl_src!(from_i64, i64, i8, i16, i32, i64);
impl_src!(from_u64, u64, u8, u16, u32, u64);
impl_src!(from_f32, f32, f32);
impl_src!(from_f64, f64, f64);

macro_rules! impl_src_half {
    ($($t:ident),*) => {$(
        impl Src for $t {
            #[inline(always)] fn put<D: Dst>(self) -> D { D::from_f32(self.to_f32()) }
            #[inline(always)] fn nonzero(self) -> bool { self.to_f32() != 0.0 }
        }
    )*};
}
impl_src_half!(f16, bf16);

fn cast_from<S: Src>(x: &[S], out: &mut SliceMut<'_>) -> Result<()> {
    match out {
        SliceMut::F32(y) => map(NAME, x, y, 1, S::put),
        SliceMut::F64(y) => map(NAME, x, y, 1, S::put),
        SliceMut::F16(y) => map(NAME, x, y, 1, S::put),
        SliceMut::BF16(y) => map(NAME, x, y, 1, S::put),
        SliceMut::I8(y) => map(NAME, x, y, 1, S::put),
        SliceMut::I16(y) => map(NAME, x, y, 1, S::put),
        SliceMut::I32(y) => map(NAME, x, y, 1, S::put),
        SliceMut::I64(y) => map(NAME, x, y, 1, S::put),
        SliceMut::U8(y) => map(NAME, x, y, 1, S::put),
        SliceMut::U16(y) => map(NAME, x, y, 1, S::put),
        SliceMut::U32(y) => map(NAME, x, y, 1, S::put),
        SliceMut::U64(y) => map(NAME, x, y, 1, S::put),
        SliceMut::Bool(y) => map(NAME, x, y, 1, |v: S| v.nonzero() as u8),
    }
}

/// Chunked, threaded use of `half`'s slice converters (SIMD where the CPU has it).
fn convert_chunks<S: Sync, D: Send>(
    x: &[S],
    y: &mut [D],
    f: impl Fn(&[S], &mut [D]) + Sync + Send,
) -> Result<()> {
    expect_len(NAME, "output", y.len(), x.len())?;
    par_chunks(y, 1, 1, |start, chunk| f(&x[start..start + chunk.len()], chunk));
    Ok(())
}

impl Kernel for Cast {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?;
        let y = out0(NAME, outputs)?;
        if x.dtype() == y.data.dtype() {
            let dst = y.data.as_bytes_mut();
            let src = x.data.as_bytes();
            expect_len(NAME, "output bytes", dst.len(), src.len())?;
            dst.copy_from_slice(src);
            return Ok(());
        }
        match (x.data, &mut y.data) {
            (Slice::F32(x), SliceMut::F16(y)) => convert_chunks(x, y, |s, d| d.convert_from_f32_slice(s)),
            (Slice::F32(x), SliceMut::BF16(y)) => convert_chunks(x, y, |s, d| d.convert_from_f32_slice(s)),
            (Slice::F16(x), SliceMut::F32(y)) => convert_chunks(x, y, |s, d| s.convert_to_f32_slice(d)),
            (Slice::BF16(x), SliceMut::F32(y)) => convert_chunks(x, y, |s, d| s.convert_to_f32_slice(d)),
            (Slice::F32(x), y) => cast_from(x, y),
            (Slice::F64(x), y) => cast_from(x, y),
            (Slice::F16(x), y) => cast_from(x, y),
            (Slice::BF16(x), y) => cast_from(x, y),
            (Slice::I8(x), y) => cast_from(x, y),
            (Slice::I16(x), y) => cast_from(x, y),
            (Slice::I32(x), y) => cast_from(x, y),
            (Slice::I64(x), y) => cast_from(x, y),
            // Bool is stored as 0 / 1 bytes, which convert like u8.
            (Slice::U8(x) | Slice::Bool(x), y) => cast_from(x, y),
            (Slice::U16(x), y) => cast_from(x, y),
            (Slice::U32(x), y) => cast_from(x, y),
            (Slice::U64(x), y) => cast_from(x, y),
        }
    }

    fn label(&self) -> &'static str {
        NAME
    }
}
