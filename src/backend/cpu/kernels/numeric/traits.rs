//! Scalar traits the kernels are generic over.
//!
//! [`Num`] is every numeric element type with the semantics the ONNX reference
//! implementation (numpy) gives each op: integers wrap on overflow, and integer
//! division or remainder by zero yields 0 (numpy warns and returns 0) rather than
//! trapping, because a model's data must never be able to panic kiln.
//! [`Float`] is a type math is computed in (f32, f64); [`FloatStore`] maps each float
//! storage type to it (f16 and bf16 compute in f32).

use std::ops::{Add, Div, Mul, Neg, Sub};

use half::{bf16, f16};

use super::fmath;
use crate::error::{Error, Result};
use crate::tensor::Slice;

pub trait Num: Copy + Send + Sync + PartialOrd + Default + std::fmt::Debug + 'static {
    const IS_FLOAT: bool;
    const ZERO: Self;
    const ONE: Self;
    /// -inf for floats, the minimum for integers: the identity of `max`.
    const LOWEST: Self;
    /// +inf for floats, the maximum for integers: the identity of `min`.
    const HIGHEST: Self;

    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Integers truncate toward zero, like C.
    fn div(self, o: Self) -> Self;
    /// `Mod` with `fmod = 0`: the result takes the sign of the divisor (Python's `%`).
    fn rem_floor(self, o: Self) -> Self;
    /// `Mod` with `fmod = 1`: the result takes the sign of the dividend (C's `fmod`).
    fn rem_trunc(self, o: Self) -> Self;
    fn pow(self, e: Self) -> Self;
    fn neg(self) -> Self;
    fn abs(self) -> Self;
    /// -1, 0 or 1 (NaN stays NaN).
    fn signum(self) -> Self;
    fn is_nan(self) -> bool;
    fn to_f64(self) -> f64;
    /// Floats round to nearest; integers truncate toward zero and saturate (NaN → 0).
    fn from_f64(v: f64) -> Self;
    /// Two's-complement reinterpretation for integers (wrapping).
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;

    /// numpy's `maximum`: NaN wins.
    #[inline(always)]
    fn max_nan(self, o: Self) -> Self {
        if self.is_nan() || self > o {
            self
        } else {
            o
        }
    }

    /// numpy's `minimum`: NaN wins.
    #[inline(always)]
    fn min_nan(self, o: Self) -> Self {
        if self.is_nan() || self < o {
            self
        } else {
            o
        }
    }
}

/// A type float math is computed in.
pub trait Float:
    Num + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> + Neg<Output = Self>
{
    fn lit(v: f64) -> Self;
    fn exp(self) -> Self;
    fn exp_m1(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn erf(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn round_even(self) -> Self;
    fn powf(self, e: Self) -> Self;
}

/// A float storage type and the type its math is computed in.
pub trait FloatStore: Num {
    type C: Float;
    fn load(self) -> Self::C;
    fn store(c: Self::C) -> Self;
}

/// Integer power by squaring, wrapping like numpy. A negative exponent gives the
/// truncated real result (numpy raises instead; an error per element is not an option).
#[inline]
pub fn ipow<T: Num>(base: T, negative: bool, mut e: u64) -> T {
    if negative {
        return if base == T::ONE {
            T::ONE
        } else if base == T::ONE.neg() && T::ZERO > T::ONE.neg() {
            if e % 2 == 1 {
                base
            } else {
                T::ONE
            }
        } else {
            T::ZERO
        };
    }
    let (mut acc, mut b) = (T::ONE, base);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.mul(b);
        }
        e >>= 1;
        if e > 0 {
            b = b.mul(b);
        }
    }
    acc
}

macro_rules! impl_signed {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const IS_FLOAT: bool = false;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            #[inline(always)] fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline(always)] fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            #[inline(always)] fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[inline(always)] fn div(self, o: Self) -> Self { if o == 0 { 0 } else { self.wrapping_div(o) } }
            #[inline(always)]
            fn rem_floor(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(o);
                if r != 0 && ((r < 0) != (o < 0)) { r.wrapping_add(o) } else { r }
            }
            #[inline(always)] fn rem_trunc(self, o: Self) -> Self { if o == 0 { 0 } else { self.wrapping_rem(o) } }
            #[inline(always)] fn pow(self, e: Self) -> Self { ipow(self, e < 0, e.unsigned_abs() as u64) }
            #[inline(always)] fn neg(self) -> Self { self.wrapping_neg() }
            #[inline(always)] fn abs(self) -> Self { self.wrapping_abs() }
            #[inline(always)] fn signum(self) -> Self { <$t>::signum(self) }
            #[inline(always)] fn is_nan(self) -> bool { false }
            #[inline(always)] fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)] fn from_f64(v: f64) -> Self { v as $t }
            #[inline(always)] fn to_i64(self) -> i64 { self as i64 }
            #[inline(always)] fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
impl_signed!(i8, i16, i32, i64);

macro_rules! impl_unsigned {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const IS_FLOAT: bool = false;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = 0;
            const HIGHEST: Self = <$t>::MAX;
            #[inline(always)] fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline(always)] fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            #[inline(always)] fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[inline(always)] fn div(self, o: Self) -> Self { if o == 0 { 0 } else { self / o } }
            #[inline(always)] fn rem_floor(self, o: Self) -> Self { if o == 0 { 0 } else { self % o } }
            #[inline(always)] fn rem_trunc(self, o: Self) -> Self { if o == 0 { 0 } else { self % o } }
            #[inline(always)] fn pow(self, e: Self) -> Self { ipow(self, false, e as u64) }
            #[inline(always)] fn neg(self) -> Self { self.wrapping_neg() }
            #[inline(always)] fn abs(self) -> Self { self }
            #[inline(always)] fn signum(self) -> Self { (self != 0) as $t }
            #[inline(always)] fn is_nan(self) -> bool { false }
            #[inline(always)] fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)] fn from_f64(v: f64) -> Self { v as $t }
            #[inline(always)] fn to_i64(self) -> i64 { self as i64 }
            #[inline(always)] fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
impl_unsigned!(u8, u16, u32, u64);

macro_rules! impl_float {
    ($($t:ident),*) => {$(
        impl Num for $t {
            const IS_FLOAT: bool = true;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = $t::NEG_INFINITY;
            const HIGHEST: Self = $t::INFINITY;
            #[inline(always)] fn add(self, o: Self) -> Self { self + o }
            #[inline(always)] fn sub(self, o: Self) -> Self { self - o }
            #[inline(always)] fn mul(self, o: Self) -> Self { self * o }
            #[inline(always)] fn div(self, o: Self) -> Self { self / o }
            #[inline(always)]
            fn rem_floor(self, o: Self) -> Self {
                let r = self % o;
                if r != 0.0 && ((r < 0.0) != (o < 0.0)) { r + o } else { r }
            }
            #[inline(always)] fn rem_trunc(self, o: Self) -> Self { self % o }
            #[inline(always)] fn pow(self, e: Self) -> Self { self.powf(e) }
            #[inline(always)] fn neg(self) -> Self { -self }
            #[inline(always)] fn abs(self) -> Self { $t::abs(self) }
            #[inline(always)]
            fn signum(self) -> Self {
                // std's signum maps ±0 to ±1; ONNX Sign maps 0 to 0.
                if self == 0.0 { 0.0 } else { $t::signum(self) }
            }
            #[inline(always)] fn is_nan(self) -> bool { $t::is_nan(self) }
            #[inline(always)] fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)] fn from_f64(v: f64) -> Self { v as $t }
            #[inline(always)] fn to_i64(self) -> i64 { self as i64 }
            #[inline(always)] fn from_i64(v: i64) -> Self { v as $t }
        }

        impl FloatStore for $t {
            type C = $t;
            #[inline(always)] fn load(self) -> $t { self }
            #[inline(always)] fn store(c: $t) -> $t { c }
        }
    )*};
}
impl_float!(f32, f64);

impl Float for f32 {
    #[inline(always)]
    fn lit(v: f64) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn exp(self) -> f32 {
        fmath::exp_f32(self)
    }
    #[inline(always)]
    fn exp_m1(self) -> f32 {
        f32::exp_m1(self)
    }
    #[inline(always)]
    fn ln(self) -> f32 {
        f32::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> f32 {
        f32::ln_1p(self)
    }
    #[inline(always)]
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn tanh(self) -> f32 {
        fmath::tanh_f32(self)
    }
    #[inline(always)]
    fn erf(self) -> f32 {
        fmath::erf_f32(self)
    }
    #[inline(always)]
    fn sin(self) -> f32 {
        f32::sin(self)
    }
    #[inline(always)]
    fn cos(self) -> f32 {
        f32::cos(self)
    }
    #[inline(always)]
    fn floor(self) -> f32 {
        f32::floor(self)
    }
    #[inline(always)]
    fn ceil(self) -> f32 {
        f32::ceil(self)
    }
    #[inline(always)]
    fn round_even(self) -> f32 {
        f32::round_ties_even(self)
    }
    #[inline(always)]
    fn powf(self, e: f32) -> f32 {
        f32::powf(self, e)
    }
}

impl Float for f64 {
    #[inline(always)]
    fn lit(v: f64) -> f64 {
        v
    }
    #[inline(always)]
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    #[inline(always)]
    fn exp_m1(self) -> f64 {
        f64::exp_m1(self)
    }
    #[inline(always)]
    fn ln(self) -> f64 {
        f64::ln(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> f64 {
        f64::ln_1p(self)
    }
    #[inline(always)]
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    #[inline(always)]
    fn tanh(self) -> f64 {
        f64::tanh(self)
    }
    #[inline(always)]
    fn erf(self) -> f64 {
        fmath::erf_f64(self)
    }
    #[inline(always)]
    fn sin(self) -> f64 {
        f64::sin(self)
    }
    #[inline(always)]
    fn cos(self) -> f64 {
        f64::cos(self)
    }
    #[inline(always)]
    fn floor(self) -> f64 {
        f64::floor(self)
    }
    #[inline(always)]
    fn ceil(self) -> f64 {
        f64::ceil(self)
    }
    #[inline(always)]
    fn round_even(self) -> f64 {
        f64::round_ties_even(self)
    }
    #[inline(always)]
    fn powf(self, e: f64) -> f64 {
        f64::powf(self, e)
    }
}

/// f16 and bf16: every op is computed in f32 and rounded back once.
macro_rules! impl_half {
    ($($t:ident),*) => {$(
        impl Num for $t {
            const IS_FLOAT: bool = true;
            const ZERO: Self = $t::ZERO;
            const ONE: Self = $t::ONE;
            const LOWEST: Self = $t::NEG_INFINITY;
            const HIGHEST: Self = $t::INFINITY;
            #[inline(always)] fn add(self, o: Self) -> Self { Self::store(self.load() + o.load()) }
            #[inline(always)] fn sub(self, o: Self) -> Self { Self::store(self.load() - o.load()) }
            #[inline(always)] fn mul(self, o: Self) -> Self { Self::store(self.load() * o.load()) }
            #[inline(always)] fn div(self, o: Self) -> Self { Self::store(self.load() / o.load()) }
            #[inline(always)] fn rem_floor(self, o: Self) -> Self { Self::store(self.load().rem_floor(o.load())) }
            #[inline(always)] fn rem_trunc(self, o: Self) -> Self { Self::store(self.load() % o.load()) }
            #[inline(always)] fn pow(self, e: Self) -> Self { Self::store(self.load().powf(e.load())) }
            #[inline(always)] fn neg(self) -> Self { -self }
            #[inline(always)] fn abs(self) -> Self { Self::store(f32::abs(self.load())) }
            #[inline(always)] fn signum(self) -> Self { Self::store(Num::signum(self.load())) }
            #[inline(always)] fn is_nan(self) -> bool { $t::is_nan(self) }
            #[inline(always)] fn to_f64(self) -> f64 { $t::to_f64(self) }
            #[inline(always)] fn from_f64(v: f64) -> Self { $t::from_f64(v) }
            #[inline(always)] fn to_i64(self) -> i64 { self.load() as i64 }
            #[inline(always)] fn from_i64(v: i64) -> Self { $t::from_f64(v as f64) }
        }

        impl FloatStore for $t {
            type C = f32;
            #[inline(always)] fn load(self) -> f32 { self.to_f32() }
            #[inline(always)] fn store(c: f32) -> $t { $t::from_f32(c) }
        }
    )*};
}
impl_half!(f16, bf16);

/// A small float tensor (a parameter, a scalar bound) converted to f64.
pub fn floats_to_f64(data: Slice<'_>, what: &str) -> Result<Vec<f64>> {
    Ok(match data {
        Slice::F32(s) => s.iter().map(|&v| v as f64).collect(),
        Slice::F64(s) => s.to_vec(),
        Slice::F16(s) => s.iter().map(|v| v.to_f64()).collect(),
        Slice::BF16(s) => s.iter().map(|v| v.to_f64()).collect(),
        other => {
            return Err(Error::shape(
                what,
                format!("expected a float tensor, got {}", other.dtype()),
            ))
        }
    })
}
