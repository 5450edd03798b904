//! Axis arguments: normalizing negative axes and splitting a shape around one axis.

use crate::error::{Error, Result};
use crate::tensor::{DType, Element, Slice, SliceMut, View, ViewMut};

/// `axis` in `[-rank, rank)` as an index in `[0, rank)`.
pub fn normalize_axis(node: &str, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..r).contains(&a) {
        return Err(Error::shape(
            node,
            format!("axis {axis} out of range for rank {rank}"),
        ));
    }
    Ok(a as usize)
}

/// `(outer, n, inner)`: the products of the dims before, at and after `axis`.
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// The single integer in a scalar (or one-element) tensor, such as CumSum's axis.
pub fn scalar_i64(node: &str, view: View<'_>) -> Result<i64> {
    match view.to_i64_vec().as_deref() {
        Some([a]) => Ok(*a),
        _ => Err(Error::shape(
            node,
            format!("expected one integer, got {} {:?}", view.dtype(), view.shape),
        )),
    }
}

/// Typed input access that also reads bool tensors as `u8` (their storage).
pub fn typed_in<'a, T: Element>(node: &str, v: View<'a>) -> Result<&'a [T]> {
    match v.data {
        Slice::Bool(b) if T::DTYPE == DType::U8 => {
            bytemuck::try_cast_slice(b).map_err(|e| Error::shape(node, format!("bool input: {e}")))
        }
        _ => v.typed::<T>(),
    }
}

/// Typed output access that also writes bool tensors as `u8`.
pub fn typed_out<'a, T: Element>(node: &str, v: &'a mut ViewMut<'_>) -> Result<&'a mut [T]> {
    if T::DTYPE == DType::U8 && v.data.dtype() == DType::Bool {
        return match &mut v.data {
            SliceMut::Bool(b) => {
                bytemuck::try_cast_slice_mut(b).map_err(|e| Error::shape(node, format!("bool output: {e}")))
            }
            other => Err(Error::shape(
                node,
                format!("expected a bool output, got {}", other.dtype()),
            )),
        };
    }
    v.typed::<T>()
}
