//! Expand and Tile: both repeat input elements, so both are strided copies with
//! stride-0 axes. Expand broadcasts size-1 (and missing leading) axes; Tile views
//! output axis `i` of size `r_i * d_i` as two axes `[r_i, d_i]` with strides
//! `[0, stride_i]`. The output shapes, already inferred, fully determine either
//! copy, so the `shape`/`repeats` inputs are only cross-checked when constant.

use super::params::{contiguous_strides, expect_same_dtype, int_param, numel, output, IntParam};
use super::strided::{StridedCopy, StridedKernel};
use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};

/// Prepares `Op::Expand` from `[x, shape]`.
pub(crate) fn prepare_expand(
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    const NAME: &str = "Expand";
    let x = required_desc(inputs, 0)?;
    let y = output(outputs, 0, NAME)?;
    expect_same_dtype(x.dtype, y.dtype, NAME)?;
    if let IntParam::Known(shape) = int_param(inputs, 1, NAME)? {
        let want = broadcast(x.shape, &shape)?;
        if want != y.shape {
            return Err(Error::shape(
                NAME,
                format!("expanding to {shape:?} gives {want:?}, output is {:?}", y.shape),
            ));
        }
    }
    let (rx, ry) = (x.shape.len(), y.shape.len());
    if rx > ry {
        return Err(Error::shape(
            NAME,
            format!("cannot expand {:?} to lower rank {:?}", x.shape, y.shape),
        ));
    }
    let in_strides = contiguous_strides(x.shape);
    let mut strides = vec![0isize; ry];
    for j in ry - rx..ry {
        let (d_in, d_out) = (x.shape[j + rx - ry], y.shape[j]);
        strides[j] = if d_in == d_out {
            in_strides[j + rx - ry] as isize
        } else if d_in == 1 {
            0
        } else {
            return Err(Error::shape(
                NAME,
                format!("cannot broadcast {:?} to {:?}", x.shape, y.shape),
            ));
        };
    }
    let plan = StridedCopy::new(NAME, x.dtype.size(), &y.shape, &strides, 0, numel(x.shape, NAME)?)?;
    Ok(Box::new(StridedKernel {
        in_shape: x.shape.to_vec(),
        plan,
        label: "broadcast",
    }))
}

/// numpy broadcast of `x` with the requested shape (ONNX Expand allows either side
/// to be 1).
fn broadcast(x: &[usize], shape: &[i64]) -> Result<Vec<usize>> {
    let rank = x.len().max(shape.len());
    let mut out = vec![0usize; rank];
    for (j, o) in out.iter_mut().enumerate() {
        let a = if j + x.len() >= rank {
            x[j + x.len() - rank] as i64
        } else {
            1
        };
        let b = if j + shape.len() >= rank {
            shape[j + shape.len() - rank]
        } else {
            1
        };
        *o = match (a, b) {
            (a, b) if a == b || b == 1 => a as usize,
            (1, b) if b >= 0 => b as usize,
            _ => {
                return Err(Error::shape(
                    "Expand",
                    format!("cannot broadcast {x:?} with {shape:?}"),
                ))
            }
        };
    }
    Ok(out)
}

/// Prepares `Op::Tile` from `[x, repeats]`.
pub(crate) fn prepare_tile(
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    const NAME: &str = "Tile";
    let x = required_desc(inputs, 0)?;
    let y = output(outputs, 0, NAME)?;
    expect_same_dtype(x.dtype, y.dtype, NAME)?;
    let rank = x.shape.len();
    if y.shape.len() != rank {
        return Err(Error::shape(
            NAME,
            format!("output rank {} differs from input rank {rank}", y.shape.len()),
        ));
    }
    let known = match int_param(inputs, 1, NAME)? {
        IntParam::Known(r) if r.len() != rank || r.iter().any(|&v| v < 0) => {
            return Err(Error::shape(
                NAME,
                format!("repeats {r:?} must be {rank} non-negative values"),
            ));
        }
        IntParam::Known(r) => Some(r),
        _ => None,
    };
    let in_strides = contiguous_strides(x.shape);
    let (mut dims, mut strides) = (Vec::with_capacity(2 * rank), Vec::with_capacity(2 * rank));
    for j in 0..rank {
        let (d, out) = (x.shape[j], y.shape[j]);
        let reps = out.checked_div(d).unwrap_or(0);
        let fits = if d == 0 { out == 0 } else { out % d == 0 };
        let agrees = !matches!(&known, Some(r) if (r[j] as u128) * (d as u128) != out as u128);
        if !fits || !agrees {
            return Err(Error::shape(
                NAME,
                format!("cannot tile {:?} into {:?}", x.shape, y.shape),
            ));
        }
        dims.extend([reps, d]);
        strides.extend([0, in_strides[j] as isize]);
    }
    let plan = StridedCopy::new(NAME, x.dtype.size(), &dims, &strides, 0, numel(x.shape, NAME)?)?;
    Ok(Box::new(StridedKernel {
        in_shape: x.shape.to_vec(),
        plan,
        label: "broadcast",
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::cpu::kernels::layout;
    use crate::ir::Op;
    use crate::tensor::{DType, Tensor};

    /// Gathers `x` at the input index `f(output index)` for every output element.
    fn reference(x: &Tensor, out_shape: &[usize], f: impl Fn(&[usize]) -> Vec<usize>) -> Vec<u8> {
        let es = x.dtype().size();
        let n: usize = out_shape.iter().product();
        let mut out = Vec::new();
        for lin in 0..n {
            let mut idx = vec![0; out_shape.len()];
            let mut rem = lin;
            for d in (0..out_shape.len()).rev() {
                idx[d] = rem % out_shape[d];
                rem /= out_shape[d];
            }
            let src = f(&idx);
            let off = src.iter().zip(x.shape()).fold(0, |acc, (&i, &d)| acc * d + i);
            out.extend_from_slice(&bytes(x)[off * es..(off + 1) * es]);
        }
        out
    }

    #[test]
    fn random_expands_match_the_reference() {
        let mut rng = Rng::new(51);
        for case in 0..200 {
            let dtype = DTYPES[case % DTYPES.len()];
            let ry = rng.below(5);
            let y_shape = rng.shape(ry, 4);
            let rx = rng.below(ry + 1);
            let x_shape: Vec<usize> = y_shape[ry - rx..]
                .iter()
                .map(|&d| if rng.below(2) == 0 { 1 } else { d })
                .collect();
            // The requested shape may itself hold 1s where x is larger.
            let req: Vec<i64> = y_shape
                .iter()
                .enumerate()
                .map(|(j, &d)| {
                    if j >= ry - rx && x_shape[j + rx - ry] == d && rng.below(3) == 0 {
                        1
                    } else {
                        d as i64
                    }
                })
                .collect();
            let x = random_tensor(&mut rng, dtype, &x_shape);
            let want = reference(&x, &y_shape, |idx| {
                idx[ry - rx..]
                    .iter()
                    .zip(&x_shape)
                    .map(|(&i, &d)| if d == 1 { 0 } else { i })
                    .collect()
            });
            let shape = vec_i64(&req);
            let out = run_const(
                layout::prepare,
                &Op::Expand,
                &[Some(&x), Some(&shape)],
                &[(dtype, y_shape.clone())],
            )
            .unwrap();
            assert_eq!(bytes(&out[0]), &want[..], "{x_shape:?} -> {y_shape:?}");
            let out = run_dynamic(
                layout::prepare,
                &Op::Expand,
                &[Some(&x), Some(&shape)],
                &[(dtype, y_shape)],
            )
            .unwrap();
            assert_eq!(bytes(&out[0]), &want[..]);
        }
    }

    #[test]
    fn random_tiles_match_the_reference() {
        let mut rng = Rng::new(52);
        for case in 0..200 {
            let dtype = DTYPES[case % DTYPES.len()];
            let rank = rng.below(4) + 1;
            let x_shape = rng.shape(rank, 4);
            let reps: Vec<usize> = (0..rank).map(|_| rng.below(4)).collect();
            let y_shape: Vec<usize> = x_shape.iter().zip(&reps).map(|(d, r)| d * r).collect();
            let x = random_tensor(&mut rng, dtype, &x_shape);
            let want = reference(&x, &y_shape, |idx| {
                idx.iter().zip(&x_shape).map(|(&i, &d)| i % d).collect()
            });
            let r = vec_i64(&reps.iter().map(|&r| r as i64).collect::<Vec<_>>());
            let out = run_const(
                layout::prepare,
                &Op::Tile,
                &[Some(&x), Some(&r)],
                &[(dtype, y_shape)],
            )
            .unwrap();
            assert_eq!(bytes(&out[0]), &want[..]);
        }
    }

    #[test]
    fn big_broadcast_runs_in_parallel() {
        let mut rng = Rng::new(53);
        let x = random_tensor(&mut rng, DType::F32, &[8, 64, 1, 1]);
        let y_shape = vec![8, 64, 20, 20];
        let want = reference(&x, &y_shape, |idx| vec![idx[0], idx[1], 0, 0]);
        let shape = vec_i64(&[8, 64, 20, 20]);
        let out = run_const(
            layout::prepare,
            &Op::Expand,
            &[Some(&x), Some(&shape)],
            &[(DType::F32, y_shape)],
        );
        assert_eq!(bytes(&out.unwrap()[0]), &want[..]);
    }

    #[test]
    fn inconsistent_shapes_are_errors() {
        let x = i64s(&[2, 3], &[0; 6]);
        let bad = vec_i64(&[4, 3]);
        let op = Op::Expand;
        assert!(run_const(
            layout::prepare,
            &op,
            &[Some(&x), Some(&bad)],
            &[(DType::I64, vec![4, 3])]
        )
        .is_err());
        let shape = vec_i64(&[2, 3]);
        assert!(run_const(
            layout::prepare,
            &op,
            &[Some(&x), Some(&shape)],
            &[(DType::I64, vec![3])]
        )
        .is_err());
        let reps = vec_i64(&[2, -1]);
        let op = Op::Tile;
        assert!(run_const(
            layout::prepare,
            &op,
            &[Some(&x), Some(&reps)],
            &[(DType::I64, vec![4, 3])]
        )
        .is_err());
        let reps = vec_i64(&[2, 2]);
        assert!(run_const(
            layout::prepare,
            &op,
            &[Some(&x), Some(&reps)],
            &[(DType::I64, vec![4, 3])]
        )
        .is_err());
        assert!(run_dynamic(
            layout::prepare,
            &op,
            &[Some(&x), Some(&reps)],
            &[(DType::I64, vec![4, 4])]
        )
        .is_err());
    }
}
