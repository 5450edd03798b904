//! ConstantOfShape (one value repeated) and Range (an arithmetic sequence).

use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::layout::params::{int_param, numel, output, IntParam};
use crate::backend::cpu::kernels::layout::strided::{by_elem_size, elems, elems_mut};
use crate::error::{Error, Result};
use crate::tensor::{DType, Element, Tensor, View, ViewMut};

/// Prepares `Op::ConstantOfShape { value }`: `value` (one element) gives the dtype and
/// the fill; the output shape is the inferred one.
pub(crate) fn prepare_constant_of_shape(
    value: &Tensor,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    const NAME: &str = "ConstantOfShape";
    let y = output(outputs, 0, NAME)?;
    if value.len() != 1 || value.dtype() != y.dtype {
        return Err(Error::shape(
            NAME,
            format!(
                "value must be one {} element, got {} of {}",
                y.dtype,
                value.len(),
                value.dtype()
            ),
        ));
    }
    if let IntParam::Known(shape) = int_param(inputs, 0, NAME)? {
        if !shape.iter().copied().eq(y.shape.iter().map(|&d| d as i64)) {
            return Err(Error::shape(
                NAME,
                format!("shape input {shape:?} differs from output {:?}", y.shape),
            ));
        }
    }
    Ok(Box::new(Fill {
        value: value.data().slice().as_bytes().to_vec(),
        len: numel(&y.shape, NAME)?,
    }))
}

struct Fill {
    /// One element's bytes.
    value: Vec<u8>,
    len: usize,
}

impl Kernel for Fill {
    fn run(&self, _inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        const NAME: &str = "ConstantOfShape";
        let dst = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(NAME, "missing output 0"))?
            .data
            .as_bytes_mut();
        if dst.len() != self.len * self.value.len() {
            return Err(Error::shape(NAME, "output differs from the prepared shape"));
        }
        by_elem_size!(self.value.len(), NAME, fill(&self.value, dst))
    }

    fn label(&self) -> &'static str {
        "fill"
    }
}

fn fill<const N: usize>(value: &[u8], dst: &mut [u8]) -> Result<()>
where
    [u8; N]: bytemuck::Pod,
{
    let v = elems::<N>(value, "ConstantOfShape")?[0];
    elems_mut::<N>(dst, "ConstantOfShape")?.fill(v);
    Ok(())
}

const RANGE: &str = "Range";

/// Element types Range is defined for, with ONNX's length rule
/// `max(ceil((limit - start) / delta), 0)` and values `start + i * delta`.
trait RangeElem: Element {
    fn count(start: Self, limit: Self, delta: Self) -> Result<usize>;
    fn at(start: Self, delta: Self, i: usize) -> Self;
}

macro_rules! float_range {
    ($($t:ty),*) => {$(
        impl RangeElem for $t {
            fn count(start: Self, limit: Self, delta: Self) -> Result<usize> {
                let n = ((limit - start) / delta).ceil();
                if delta == 0.0 || n.is_nan() {
                    return Err(Error::shape(RANGE, format!("no sequence from {start} to {limit} by {delta}")));
                }
                // Saturating float-to-int cast: a huge count is caught by the length check.
                Ok(if n <= 0.0 { 0 } else { n as usize })
            }
            fn at(start: Self, delta: Self, i: usize) -> Self {
                start + i as $t * delta
            }
        }
    )*};
}
float_range!(f32, f64);

macro_rules! int_range {
    ($($t:ty),*) => {$(
        impl RangeElem for $t {
            fn count(start: Self, limit: Self, delta: Self) -> Result<usize> {
                if delta == 0 {
                    return Err(Error::shape(RANGE, "delta must not be 0"));
                }
                let (diff, d) = (limit as i128 - start as i128, delta as i128);
                let n = if (diff > 0) == (d > 0) && diff != 0 { (diff + d - d.signum()) / d } else { 0 };
                usize::try_from(n).map_err(|_| Error::shape(RANGE, "sequence too long"))
            }
            fn at(start: Self, delta: Self, i: usize) -> Self {
                // Stays between start and limit, so it fits the type.
                (start as i128 + i as i128 * delta as i128) as $t
            }
        }
    )*};
}
int_range!(i16, i32, i64);

/// Prepares `Op::Range` from scalar `[start, limit, delta]`.
pub(crate) fn prepare_range(
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let y = output(outputs, 0, RANGE)?;
    if !matches!(
        y.dtype,
        DType::F32 | DType::F64 | DType::I16 | DType::I32 | DType::I64
    ) {
        return Err(Error::shape(RANGE, format!("unsupported dtype {}", y.dtype)));
    }
    let len = match y.shape[..] {
        [n] => n,
        _ => {
            return Err(Error::shape(
                RANGE,
                format!("output must be 1-D, got {:?}", y.shape),
            ))
        }
    };
    let mut all_known = true;
    for i in 0..3 {
        let d = required_desc(inputs, i)?;
        if d.dtype != y.dtype || d.shape.iter().product::<usize>() != 1 {
            return Err(Error::shape(
                RANGE,
                format!("input {i} must be one {} value", y.dtype),
            ));
        }
        all_known &= d.value.is_some();
    }
    if all_known {
        // Constant bounds: check the inferred length now rather than on every run.
        let views: Vec<Option<View<'_>>> = (0..3)
            .map(|i| {
                inputs
                    .get(i)
                    .copied()
                    .flatten()
                    .and_then(|d| d.value)
                    .map(Tensor::view)
            })
            .collect();
        count_any(y.dtype, &views, len)?;
    }
    Ok(Box::new(Range { dtype: y.dtype, len }))
}

struct Range {
    dtype: DType,
    len: usize,
}

fn scalars<T: Element>(inputs: &[Option<View<'_>>]) -> Result<(T, T, T)> {
    let get = |i| -> Result<T> {
        required(inputs, i)?
            .typed::<T>()?
            .first()
            .copied()
            .ok_or_else(|| Error::shape(RANGE, "empty input"))
    };
    Ok((get(0)?, get(1)?, get(2)?))
}

fn check_count<T: RangeElem>(inputs: &[Option<View<'_>>], len: usize) -> Result<(T, T)> {
    let (start, limit, delta) = scalars::<T>(inputs)?;
    let n = T::count(start, limit, delta)?;
    if n != len {
        return Err(Error::shape(
            RANGE,
            format!("sequence has {n} elements, output has {len}"),
        ));
    }
    Ok((start, delta))
}

fn count_any(dtype: DType, inputs: &[Option<View<'_>>], len: usize) -> Result<()> {
    match dtype {
        DType::F32 => check_count::<f32>(inputs, len).map(drop),
        DType::F64 => check_count::<f64>(inputs, len).map(drop),
        DType::I16 => check_count::<i16>(inputs, len).map(drop),
        DType::I32 => check_count::<i32>(inputs, len).map(drop),
        DType::I64 => check_count::<i64>(inputs, len).map(drop),
        d => Err(Error::shape(RANGE, format!("unsupported dtype {d}"))),
    }
}

fn fill_range<T: RangeElem>(inputs: &[Option<View<'_>>], y: &mut ViewMut<'_>, len: usize) -> Result<()> {
    let (start, delta) = check_count::<T>(inputs, len)?;
    let dst = y.typed::<T>()?;
    if dst.len() != len {
        return Err(Error::shape(RANGE, "output differs from the prepared shape"));
    }
    for (i, v) in dst.iter_mut().enumerate() {
        *v = T::at(start, delta, i);
    }
    Ok(())
}

impl Kernel for Range {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let y = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(RANGE, "missing output 0"))?;
        match self.dtype {
            DType::F32 => fill_range::<f32>(inputs, y, self.len),
            DType::F64 => fill_range::<f64>(inputs, y, self.len),
            DType::I16 => fill_range::<i16>(inputs, y, self.len),
            DType::I32 => fill_range::<i32>(inputs, y, self.len),
            DType::I64 => fill_range::<i64>(inputs, y, self.len),
            d => Err(Error::shape(RANGE, format!("unsupported dtype {d}"))),
        }
    }

    fn label(&self) -> &'static str {
        "sequence"
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::kernels::generate::prepare;
    use crate::backend::cpu::kernels::layout::testutil::*;
    use crate::ir::Op;
    use crate::tensor::{DType, Tensor};
    use half::f16;

    #[test]
    fn constant_of_shape_fills_any_dtype() {
        let shape = vec_i64(&[2, 0, 3]);
        for value in [
            Tensor::scalar(1.5f32),
            Tensor::scalar(-7i64),
            Tensor::scalar(f16::from_f32(2.0)),
        ] {
            let op = Op::ConstantOfShape { value: value.clone() };
            for dims in [vec![2usize, 3], vec![0], vec![]] {
                let shape_in = vec_i64(&dims.iter().map(|&d| d as i64).collect::<Vec<_>>());
                let out =
                    run_const(prepare, &op, &[Some(&shape_in)], &[(value.dtype(), dims.clone())]).unwrap();
                let n: usize = dims.iter().product();
                assert_eq!(bytes(&out[0]), bytes(&value).repeat(n));
            }
            assert!(run_const(prepare, &op, &[Some(&shape)], &[(value.dtype(), vec![2, 3])]).is_err());
        }
        let bools = Tensor::from_bools(vec![1], &[true]).unwrap();
        let op = Op::ConstantOfShape { value: bools };
        let out = run_dynamic(prepare, &op, &[Some(&shape)], &[(DType::Bool, vec![4])]).unwrap();
        assert_eq!(bytes(&out[0]), &[1, 1, 1, 1]);
        let op = Op::ConstantOfShape {
            value: Tensor::scalar(0f32),
        };
        assert!(run_dynamic(prepare, &op, &[Some(&shape)], &[(DType::I64, vec![4])]).is_err());
    }

    fn range<T: crate::tensor::Element>(s: T, l: T, d: T, len: usize) -> crate::Result<Vec<T>> {
        let (s, l, d) = (Tensor::scalar(s), Tensor::scalar(l), Tensor::scalar(d));
        let a = run_const(
            prepare,
            &Op::Range,
            &[Some(&s), Some(&l), Some(&d)],
            &[(s.dtype(), vec![len])],
        );
        let b = run_dynamic(
            prepare,
            &Op::Range,
            &[Some(&s), Some(&l), Some(&d)],
            &[(s.dtype(), vec![len])],
        );
        assert_eq!(a.is_ok(), b.is_ok());
        Ok(b?[0].as_slice::<T>().unwrap().to_vec())
    }

    #[test]
    fn range_follows_the_onnx_length_rule() {
        assert_eq!(range(3i32, 9, 3, 2).unwrap(), vec![3, 6]);
        assert_eq!(range(10i64, 4, -3, 2).unwrap(), vec![10, 7]);
        assert_eq!(range(10i64, 3, -3, 3).unwrap(), vec![10, 7, 4]);
        assert_eq!(range(0i16, 0, 1, 0).unwrap(), Vec::<i16>::new());
        assert_eq!(range(5i64, 1, 1, 0).unwrap(), Vec::<i64>::new());
        assert_eq!(
            range(i64::MIN, i64::MAX, i64::MAX, 3).unwrap(),
            vec![i64::MIN, -1, i64::MAX - 1]
        );
        assert_eq!(range(1.0f32, 2.0, 0.25, 4).unwrap(), vec![1.0, 1.25, 1.5, 1.75]);
        assert_eq!(
            range(1.0f64, 0.0, -0.4, 3).unwrap(),
            vec![1.0, 0.6, 1.0 - 2.0 * 0.4]
        );
        assert!(range(0i32, 5, 0, 0).is_err(), "zero delta");
        assert!(range(0.0f32, 5.0, 0.0, 0).is_err(), "zero delta");
        assert!(range(0i32, 5, 1, 4).is_err(), "wrong length");
        assert!(range(0.0f32, f32::NAN, 1.0, 0).is_err(), "NaN limit");
    }
}
