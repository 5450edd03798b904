//! Transpose: output axis `i` is input axis `perm[i]`, i.e. a strided copy whose
//! source strides are the input's strides permuted. The strided engine merges axes
//! that stay adjacent and tiles the rest, which covers NCHW<->NHWC and 2-D cases.

use super::params::{contiguous_strides, expect_same_dtype, numel, output};
use super::strided::{StridedCopy, StridedKernel};
use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};

const NAME: &str = "Transpose";

/// Prepares `Op::Transpose { perm }`; `None` reverses the axes.
pub(crate) fn prepare(
    perm: Option<&[usize]>,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let y = output(outputs, 0, NAME)?;
    expect_same_dtype(x.dtype, y.dtype, NAME)?;
    let rank = x.shape.len();
    let perm: Vec<usize> = match perm {
        Some(p) => p.to_vec(),
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        return Err(Error::shape(
            NAME,
            format!("perm {perm:?} is not a permutation of 0..{rank}"),
        ));
    }
    let dims: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    if dims != y.shape {
        return Err(Error::shape(
            NAME,
            format!("output shape {:?}, expected {dims:?}", y.shape),
        ));
    }
    let in_strides = contiguous_strides(x.shape);
    let strides: Vec<isize> = perm.iter().map(|&p| in_strides[p] as isize).collect();
    let plan = StridedCopy::new(NAME, x.dtype.size(), &dims, &strides, 0, numel(x.shape, NAME)?)?;
    Ok(Box::new(StridedKernel {
        in_shape: x.shape.to_vec(),
        plan,
        label: "strided",
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::cpu::kernels::layout;
    use crate::ir::Op;
    use crate::tensor::{DType, Tensor};

    fn reference(x: &Tensor, perm: &[usize]) -> (Vec<usize>, Vec<u8>) {
        let es = x.dtype().size();
        let shape = x.shape();
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let n: usize = out_shape.iter().product();
        let strides = layout::params::contiguous_strides(shape);
        let mut out = Vec::new();
        for lin in 0..n {
            let (mut rem, mut off) = (lin, 0);
            for (i, &p) in perm.iter().enumerate().rev() {
                off += (rem % out_shape[i]) * strides[p];
                rem /= out_shape[i];
            }
            out.extend_from_slice(&bytes(x)[off * es..(off + 1) * es]);
        }
        (out_shape, out)
    }

    #[test]
    fn random_permutations_match_the_reference() {
        let mut rng = Rng::new(11);
        for case in 0..200 {
            let dtype = DTYPES[case % DTYPES.len()];
            let rank = rng.below(6);
            let shape = rng.shape(rank, 5);
            let x = random_tensor(&mut rng, dtype, &shape);
            let mut perm: Vec<usize> = (0..rank).collect();
            rng.shuffle(&mut perm);
            let (out_shape, want) = reference(&x, &perm);
            let op = Op::Transpose {
                perm: Some(perm.clone()),
            };
            let out = run_const(layout::prepare, &op, &[Some(&x)], &[(dtype, out_shape)]).unwrap();
            assert_eq!(bytes(&out[0]), &want[..], "shape {shape:?} perm {perm:?}");
        }
    }

    #[test]
    fn default_perm_reverses_and_big_nchw_to_nhwc_works() {
        let mut rng = Rng::new(12);
        let x = random_tensor(&mut rng, DType::F32, &[2, 3, 4]);
        let (s, want) = reference(&x, &[2, 1, 0]);
        let out = run_const(
            layout::prepare,
            &Op::Transpose { perm: None },
            &[Some(&x)],
            &[(DType::F32, s)],
        );
        assert_eq!(bytes(&out.unwrap()[0]), &want[..]);
        for perm in [[0usize, 2, 3, 1], [0, 3, 1, 2], [1, 0, 2, 3]] {
            let x = random_tensor(&mut rng, DType::F32, &[2, 67, 31, 29]);
            let (s, want) = reference(&x, &perm);
            let op = Op::Transpose {
                perm: Some(perm.to_vec()),
            };
            let out = run_const(layout::prepare, &op, &[Some(&x)], &[(DType::F32, s)]).unwrap();
            assert_eq!(bytes(&out[0]), &want[..], "perm {perm:?}");
        }
    }

    #[test]
    fn bad_perms_are_errors() {
        let x = vec_i64(&[1, 2, 3, 4]).reshaped(vec![2, 2]).unwrap();
        for perm in [vec![0, 0], vec![0], vec![0, 2], vec![1, 0, 2]] {
            let op = Op::Transpose { perm: Some(perm) };
            assert!(run_const(layout::prepare, &op, &[Some(&x)], &[(DType::I64, vec![2, 2])]).is_err());
        }
    }
}
