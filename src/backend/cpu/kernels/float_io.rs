//! Preparation-time checks shared by the f32 compute kernels (GEMM, Conv, pooling,
//! Resize): dtypes, output descriptions, constant operands; and their f32 output.

use crate::backend::cpu::kernel::{InputDesc, OutputDesc};
use crate::error::{Error, Result};
use crate::tensor::{DType, ViewMut};

/// Fails unless every present input among `which` and every output is f32.
pub(crate) fn expect_f32(
    op: &str,
    inputs: &[Option<InputDesc<'_>>],
    which: &[usize],
    outputs: &[OutputDesc],
) -> Result<()> {
    for &i in which {
        if let Some(Some(d)) = inputs.get(i) {
            if d.dtype != DType::F32 {
                return Err(Error::shape(
                    op,
                    format!("input {i} is {}, only float32 is supported", d.dtype),
                ));
            }
        }
    }
    for (i, o) in outputs.iter().enumerate() {
        if o.dtype != DType::F32 {
            return Err(Error::shape(
                op,
                format!("output {i} is {}, only float32 is supported", o.dtype),
            ));
        }
    }
    Ok(())
}

/// Output `i`'s planned description.
pub(crate) fn output<'o>(op: &str, outputs: &'o [OutputDesc], i: usize) -> Result<&'o OutputDesc> {
    outputs
        .get(i)
        .ok_or_else(|| Error::shape(op, format!("missing output {i}")))
}

/// The contents of a constant f32 input, if it is one. A value whose shape disagrees
/// with the description is ignored (the input is then read at run time, where its
/// size is checked), so callers may slice by the described shape without panicking.
pub(crate) fn const_f32<'a>(desc: &InputDesc<'a>) -> Option<&'a [f32]> {
    desc.value
        .filter(|t| t.shape() == desc.shape)
        .and_then(|t| t.as_slice::<f32>())
}

/// Product of dims, or an error naming `op` if it overflows.
pub(crate) fn numel(op: &str, shape: &[usize]) -> Result<usize> {
    crate::tensor::checked_numel(shape).ok_or_else(|| Error::shape(op, format!("shape {shape:?} overflows")))
}

/// Output 0 of a running f32 kernel.
pub(crate) fn output_f32<'o>(op: &str, outputs: &'o mut [ViewMut<'_>]) -> Result<&'o mut [f32]> {
    outputs
        .get_mut(0)
        .ok_or_else(|| Error::shape(op, "missing output"))?
        .typed::<f32>()
}
