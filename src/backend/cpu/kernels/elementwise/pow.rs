//! `Pow`: the output has the base's dtype; the exponent may have any numeric dtype.
//!
//! A constant scalar exponent on a float base (`x ** 2` in a decomposed LayerNorm) is
//! a unary map, with 1, 2 and 3 as plain multiplications. Same-dtype inputs use the
//! broadcast loop; mixed dtypes read the exponent through a per-element dtype switch,
//! which is slow but only meets small tensors in practice.

use super::loops::{bad_dtypes, fmap, out0, zip};
use crate::backend::cpu::kernel::{required, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::broadcast::Broadcast;
use crate::backend::cpu::kernels::numeric::traits::ipow;
use crate::backend::cpu::kernels::numeric::{floats_to_f64, Float, FloatStore, Num};
use crate::error::{Error, Result};
use crate::tensor::{DType, Slice, SliceMut, View, ViewMut};

use super::binary::same_numeric;

pub fn prepare(
    name: &'static str,
    a: InputDesc<'_>,
    b: InputDesc<'_>,
    out: &OutputDesc,
) -> Result<Box<dyn Kernel>> {
    if a.dtype == DType::Bool || b.dtype == DType::Bool || out.dtype != a.dtype {
        return Err(bad_dtypes(name, &[a.dtype, b.dtype, out.dtype]));
    }
    let plan = Broadcast::new(name, &out.shape, [a.shape, b.shape])?;
    let float_base = matches!(a.dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16);
    let scalar_exp = match b.value {
        Some(t) if t.len() == 1 && float_base && out.shape == a.shape => Some(scalar_f64(t.view().data)?),
        _ => None,
    };
    Ok(Box::new(Pow {
        name,
        plan,
        scalar_exp,
    }))
}

fn scalar_f64(data: Slice<'_>) -> Result<f64> {
    let v = match data {
        Slice::F32(_) | Slice::F64(_) | Slice::F16(_) | Slice::BF16(_) => floats_to_f64(data, "Pow")?,
        _ => View { shape: &[], data }
            .to_i64_vec()
            .unwrap_or_default()
            .iter()
            .map(|&i| i as f64)
            .collect(),
    };
    v.first()
        .copied()
        .ok_or_else(|| Error::shape("Pow", "empty exponent"))
}

struct Pow {
    name: &'static str,
    plan: Broadcast<2>,
    /// A constant scalar exponent applied to a float base.
    scalar_exp: Option<f64>,
}

impl Kernel for Pow {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let a = required(inputs, 0)?;
        let b = required(inputs, 1)?;
        let y = out0(self.name, outputs)?;
        let n = self.name;
        if let Some(e) = self.scalar_exp {
            return match (a.data, &mut y.data) {
                (Slice::F32(a), SliceMut::F32(y)) => pow_scalar(n, e, a, y),
                (Slice::F64(a), SliceMut::F64(y)) => pow_scalar(n, e, a, y),
                (Slice::F16(a), SliceMut::F16(y)) => pow_scalar(n, e, a, y),
                (Slice::BF16(a), SliceMut::BF16(y)) => pow_scalar(n, e, a, y),
                (a, y) => Err(bad_dtypes(n, &[a.dtype(), y.dtype()])),
            };
        }
        if a.dtype() == b.dtype() {
            return same_numeric!(n, a.data, b.data, &mut y.data, same(n, &self.plan));
        }
        match (a.data, &mut y.data) {
            (Slice::F32(a), SliceMut::F32(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::F64(a), SliceMut::F64(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::F16(a), SliceMut::F16(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::BF16(a), SliceMut::BF16(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::I8(a), SliceMut::I8(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::I16(a), SliceMut::I16(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::I32(a), SliceMut::I32(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::I64(a), SliceMut::I64(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::U8(a), SliceMut::U8(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::U16(a), SliceMut::U16(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::U32(a), SliceMut::U32(y)) => mixed(n, &self.plan, a, b.data, y),
            (Slice::U64(a), SliceMut::U64(y)) => mixed(n, &self.plan, a, b.data, y),
            (a, y) => Err(bad_dtypes(n, &[a.dtype(), b.dtype(), y.dtype()])),
        }
    }

    fn label(&self) -> &'static str {
        "Pow"
    }
}

fn pow_scalar<T: FloatStore>(n: &str, e: f64, a: &[T], y: &mut [T]) -> Result<()> {
    if e == 1.0 {
        fmap(n, a, y, 1, |v| v)
    } else if e == 2.0 {
        fmap(n, a, y, 1, |v| v * v)
    } else if e == 3.0 {
        fmap(n, a, y, 1, |v| v * v * v)
    } else {
        let e = <T::C as Float>::lit(e);
        fmap(n, a, y, 8, |v| v.powf(e))
    }
}

fn same<T: Num>(n: &str, p: &Broadcast<2>, a: &[T], b: &[T], y: &mut [T]) -> Result<()> {
    zip(n, p, a, b, y, 8, T::pow)
}

/// An exponent element read from a slice of any dtype.
#[derive(Copy, Clone)]
enum Expo {
    Int(i64),
    Float(f64),
}

fn expo_at(e: Slice<'_>, i: usize) -> Expo {
    match e {
        Slice::F32(s) => Expo::Float(s[i] as f64),
        Slice::F64(s) => Expo::Float(s[i]),
        Slice::F16(s) => Expo::Float(s[i].to_f64()),
        Slice::BF16(s) => Expo::Float(s[i].to_f64()),
        Slice::I8(s) => Expo::Int(s[i] as i64),
        Slice::I16(s) => Expo::Int(s[i] as i64),
        Slice::I32(s) => Expo::Int(s[i] as i64),
        Slice::I64(s) => Expo::Int(s[i]),
        Slice::U8(s) | Slice::Bool(s) => Expo::Int(s[i] as i64),
        Slice::U16(s) => Expo::Int(s[i] as i64),
        Slice::U32(s) => Expo::Int(s[i] as i64),
        // Exponents past i64::MAX saturate; any base but 0 and ±1 overflows long before.
        Slice::U64(s) => Expo::Int(i64::try_from(s[i]).unwrap_or(i64::MAX)),
    }
}

/// Like numpy: integer powers of integers are exact (wrapping); anything involving a
/// float is computed in f64 and converted to the base's dtype (truncating for ints).
fn pow_any<T: Num>(x: T, e: Expo) -> T {
    match e {
        Expo::Int(i) if !T::IS_FLOAT => ipow(x, i < 0, i.unsigned_abs()),
        Expo::Int(i) => T::from_f64(x.to_f64().powf(i as f64)),
        Expo::Float(f) => T::from_f64(x.to_f64().powf(f)),
    }
}

fn mixed<T: Num>(n: &str, p: &Broadcast<2>, a: &[T], e: Slice<'_>, y: &mut [T]) -> Result<()> {
    p.check_lens(n, [a.len(), e.len()], y.len())?;
    let [sa, se] = p.run_strides();
    p.for_each_run(0, y.len(), |o, [ia, ie], len| {
        for (i, d) in y[o..o + len].iter_mut().enumerate() {
            *d = pow_any(a[ia + i * sa], expo_at(e, ie + i * se));
        }
    });
    Ok(())
}
