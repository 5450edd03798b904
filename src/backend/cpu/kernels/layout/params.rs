//! Small helpers shared by the data-movement kernels: integer parameters that ONNX
//! passes as tensors (starts, pads, axes, k), axis normalisation and shape arithmetic.
//! Everything here validates, because these values come straight from the model.

use crate::backend::cpu::kernel::{InputDesc, OutputDesc};
use crate::error::{Error, Result};
use crate::tensor::{checked_numel, DType, View};

/// Where an integer-tensor parameter of a kernel comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum IntParam {
    /// The optional input was omitted.
    Absent,
    /// A constant, read at preparation time.
    Known(Vec<i64>),
    /// Computed by the graph: only available when the kernel runs.
    Runtime,
}

/// Classifies input `i` at preparation time.
pub(crate) fn int_param(inputs: &[Option<InputDesc<'_>>], i: usize, kernel: &str) -> Result<IntParam> {
    match inputs.get(i).copied().flatten() {
        None => Ok(IntParam::Absent),
        Some(desc) => match desc.value {
            Some(t) => Ok(IntParam::Known(ints_of(t.view(), i, kernel)?)),
            None => Ok(IntParam::Runtime),
        },
    }
}

/// Reads input `i` at run time; `None` when the optional input is omitted.
pub(crate) fn runtime_ints(inputs: &[Option<View<'_>>], i: usize, kernel: &str) -> Result<Option<Vec<i64>>> {
    match inputs.get(i).copied().flatten() {
        None => Ok(None),
        Some(v) => Ok(Some(ints_of(v, i, kernel)?)),
    }
}

/// Resolves a parameter: the constant seen at preparation, else the run-time input.
pub(crate) fn resolve_ints(
    param: &IntParam,
    inputs: &[Option<View<'_>>],
    i: usize,
    kernel: &str,
) -> Result<Option<Vec<i64>>> {
    match param {
        IntParam::Absent => Ok(None),
        IntParam::Known(v) => Ok(Some(v.clone())),
        IntParam::Runtime => runtime_ints(inputs, i, kernel),
    }
}

fn ints_of(v: View<'_>, i: usize, kernel: &str) -> Result<Vec<i64>> {
    v.to_i64_vec().ok_or_else(|| {
        Error::shape(
            kernel,
            format!("input {i} must be an integer tensor, got {}", v.dtype()),
        )
    })
}

/// Maps a possibly negative axis into `0..rank`.
pub(crate) fn normalize_axis(axis: i64, rank: usize, kernel: &str) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis.saturating_add(r) } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(Error::shape(
            kernel,
            format!("axis {axis} is out of range for rank {rank}"),
        ))
    }
}

/// Row-major element strides of a contiguous tensor.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1].saturating_mul(shape[i + 1]);
    }
    strides
}

/// Element count, or a limit error when it does not fit in `usize`.
pub(crate) fn numel(shape: &[usize], kernel: &str) -> Result<usize> {
    checked_numel(shape).ok_or_else(|| Error::Limit(format!("{kernel}: shape {shape:?} overflows")))
}

/// Checks that a run-time view has the shape the kernel was prepared for.
pub(crate) fn expect_shape(got: &[usize], want: &[usize], what: &str, kernel: &str) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::shape(
            kernel,
            format!("{what} has shape {got:?}, prepared for {want:?}"),
        ))
    }
}

/// Fails unless two dtypes agree (data-movement ops never convert).
pub(crate) fn expect_same_dtype(a: DType, b: DType, kernel: &str) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::shape(
            kernel,
            format!("output dtype {b} differs from input dtype {a}"),
        ))
    }
}

/// The single output's description, or an error.
pub(crate) fn output<'a>(outputs: &'a [OutputDesc], i: usize, kernel: &str) -> Result<&'a OutputDesc> {
    outputs
        .get(i)
        .ok_or_else(|| Error::shape(kernel, format!("missing output {i}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_wrap_once_and_reject_out_of_range() {
        assert_eq!(normalize_axis(-1, 4, "t").unwrap(), 3);
        assert_eq!(normalize_axis(0, 1, "t").unwrap(), 0);
        assert!(normalize_axis(4, 4, "t").is_err());
        assert!(normalize_axis(-5, 4, "t").is_err());
        assert!(normalize_axis(i64::MIN, 4, "t").is_err());
        assert!(normalize_axis(0, 0, "t").is_err());
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(contiguous_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(contiguous_strides(&[]), Vec::<usize>::new());
        assert_eq!(contiguous_strides(&[5, 0, 2]), vec![0, 2, 1]);
    }
}
