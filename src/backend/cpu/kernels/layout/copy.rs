//! Reshape, Flatten, Squeeze, Unsqueeze, Identity and Dropout: the output holds input
//! 0's elements in the same order. The planner normally aliases these, so this kernel
//! only runs when it cannot (e.g. a graph output that is also an input).

use rayon::prelude::*;

use super::params::{expect_same_dtype, numel, output};
use super::strided::PARALLEL_MIN_BYTES;
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::tensor::{DType, View, ViewMut};

/// Bytes each rayon task copies in a large copy.
const PARALLEL_CHUNK_BYTES: usize = 1 << 16;

/// Prepares the copy for any reshape-like op; `kernel` names it in errors and
/// `dropout` allows Dropout's optional second output, the mask.
pub(crate) fn prepare(
    kernel: &'static str,
    dropout: bool,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let y = output(outputs, 0, kernel)?;
    expect_same_dtype(x.dtype, y.dtype, kernel)?;
    let len = numel(x.shape, kernel)?;
    if numel(&y.shape, kernel)? != len {
        return Err(Error::shape(
            kernel,
            format!(
                "cannot copy {:?} into {:?}: element counts differ",
                x.shape, y.shape
            ),
        ));
    }
    // Dropout's optional mask: inference-mode dropout keeps every element.
    let mask = match outputs.get(1) {
        Some(m) if dropout => {
            if m.dtype != DType::Bool || m.shape != x.shape {
                return Err(Error::shape(
                    kernel,
                    "mask output must be bool with the input's shape",
                ));
            }
            true
        }
        Some(_) => return Err(Error::shape(kernel, "unexpected second output")),
        None => false,
    };
    Ok(Box::new(CopyKernel {
        kernel,
        bytes: len * x.dtype.size(),
        mask,
    }))
}

struct CopyKernel {
    kernel: &'static str,
    bytes: usize,
    mask: bool,
}

impl Kernel for CopyKernel {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let src = required(inputs, 0)?.data.as_bytes();
        let (first, rest) = outputs
            .split_first_mut()
            .ok_or_else(|| Error::shape(self.kernel, "missing output 0"))?;
        copy_bytes(self.kernel, src, first.data.as_bytes_mut(), self.bytes)?;
        if self.mask {
            let mask = rest
                .first_mut()
                .ok_or_else(|| Error::shape(self.kernel, "missing mask output"))?;
            mask.data.as_bytes_mut().fill(1);
        }
        Ok(())
    }

    fn label(&self) -> &'static str {
        "copy"
    }
}

/// `dst.copy_from_slice(src)` after checking both hold `bytes`, split across threads
/// when large.
pub(crate) fn copy_bytes(kernel: &str, src: &[u8], dst: &mut [u8], bytes: usize) -> Result<()> {
    if src.len() != bytes || dst.len() != bytes {
        return Err(Error::shape(
            kernel,
            format!(
                "copy of {} into {} bytes, prepared for {bytes}",
                src.len(),
                dst.len()
            ),
        ));
    }
    if bytes < PARALLEL_MIN_BYTES {
        dst.copy_from_slice(src);
    } else {
        dst.par_chunks_mut(PARALLEL_CHUNK_BYTES)
            .zip(src.par_chunks(PARALLEL_CHUNK_BYTES))
            .for_each(|(d, s)| d.copy_from_slice(s));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::cpu::kernels::layout;
    use crate::ir::Op;
    use crate::tensor::DType;

    #[test]
    fn reshape_likes_copy_every_dtype() {
        let mut rng = Rng::new(1);
        for (i, &dtype) in DTYPES.iter().enumerate() {
            for shape in [vec![2usize, 3, 4], vec![0, 5], vec![], vec![1]] {
                let x = random_tensor(&mut rng, dtype, &shape);
                let n: usize = shape.iter().product();
                let shape_in = vec_i64(&[n as i64]);
                let ops = [
                    Op::Reshape { allowzero: false },
                    Op::Flatten { axis: 0 },
                    Op::Squeeze,
                    Op::Unsqueeze,
                    Op::Identity,
                ];
                let op = &ops[i % ops.len()];
                let out = run_const(
                    layout::prepare,
                    op,
                    &[Some(&x), Some(&shape_in)],
                    &[(dtype, vec![n])],
                )
                .unwrap();
                assert_eq!(bytes(&out[0]), bytes(&x));
            }
        }
    }

    #[test]
    fn big_copies_split_across_threads() {
        let mut rng = Rng::new(2);
        let x = random_tensor(&mut rng, DType::F32, &[3, 100_000]);
        let out = run_const(
            layout::prepare,
            &Op::Identity,
            &[Some(&x)],
            &[(DType::F32, vec![300_000])],
        )
        .unwrap();
        assert_eq!(bytes(&out[0]), bytes(&x));
    }

    #[test]
    fn dropout_mask_is_all_true() {
        let mut rng = Rng::new(3);
        let x = random_tensor(&mut rng, DType::F16, &[2, 3]);
        let outs = [(DType::F16, vec![2, 3]), (DType::Bool, vec![2, 3])];
        let out = run_const(layout::prepare, &Op::Dropout, &[Some(&x)], &outs).unwrap();
        assert_eq!(bytes(&out[0]), bytes(&x));
        assert_eq!(bytes(&out[1]), &[1u8; 6]);
        let only_y = run_const(layout::prepare, &Op::Dropout, &[Some(&x)], &outs[..1]).unwrap();
        assert_eq!(bytes(&only_y[0]), bytes(&x));
    }

    #[test]
    fn mismatched_sizes_are_errors() {
        let x = vec_i64(&[1, 2, 3]);
        assert!(run_const(
            layout::prepare,
            &Op::Identity,
            &[Some(&x)],
            &[(DType::I64, vec![4])]
        )
        .is_err());
        assert!(run_const(
            layout::prepare,
            &Op::Identity,
            &[Some(&x)],
            &[(DType::F32, vec![3])]
        )
        .is_err());
    }
}
