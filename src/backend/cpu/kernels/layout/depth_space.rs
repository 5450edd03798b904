//! DepthToSpace and SpaceToDepth. ONNX defines both as reshape → transpose → reshape
//! of an `[N, C, H, W]` tensor, so each is one strided copy over a 6-D view.

use super::params::{contiguous_strides, expect_same_dtype, numel, output};
use super::strided::{StridedCopy, StridedKernel};
use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};

/// Prepares `Op::DepthToSpace { blocksize, crd }`.
pub(crate) fn prepare_depth_to_space(
    blocksize: usize,
    crd: bool,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    const NAME: &str = "DepthToSpace";
    let (x, [n, c, h, w]) = nchw(NAME, inputs)?;
    let b = blocksize;
    if b == 0 || c % (b * b) != 0 {
        return Err(Error::shape(
            NAME,
            format!("{c} channels are not divisible by blocksize² ({b}²)"),
        ));
    }
    let c2 = c / (b * b);
    // DCR: x viewed as [N, b, b, C', H, W], transposed by [0, 3, 4, 1, 5, 2].
    // CRD: x viewed as [N, C', b, b, H, W], transposed by [0, 1, 4, 2, 5, 3].
    let (view, perm) = if crd {
        ([n, c2, b, b, h, w], [0, 1, 4, 2, 5, 3])
    } else {
        ([n, b, b, c2, h, w], [0, 3, 4, 1, 5, 2])
    };
    let out_shape = [n, c2, h * b, w * b];
    finish(NAME, x, &view, &perm, &out_shape, outputs)
}

/// Prepares `Op::SpaceToDepth { blocksize }`.
pub(crate) fn prepare_space_to_depth(
    blocksize: usize,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    const NAME: &str = "SpaceToDepth";
    let (x, [n, c, h, w]) = nchw(NAME, inputs)?;
    let b = blocksize;
    if b == 0 || h % b != 0 || w % b != 0 {
        return Err(Error::shape(
            NAME,
            format!("spatial size {h}x{w} is not divisible by blocksize {b}"),
        ));
    }
    // x viewed as [N, C, H/b, b, W/b, b], transposed by [0, 3, 5, 1, 2, 4].
    let view = [n, c, h / b, b, w / b, b];
    let out_shape = [n, c * b * b, h / b, w / b];
    finish(NAME, x, &view, &[0, 3, 5, 1, 2, 4], &out_shape, outputs)
}

fn nchw<'a>(name: &str, inputs: &[Option<InputDesc<'a>>]) -> Result<(InputDesc<'a>, [usize; 4])> {
    let x = required_desc(inputs, 0)?;
    match *x.shape {
        [n, c, h, w] => Ok((x, [n, c, h, w])),
        _ => Err(Error::shape(
            name,
            format!("input must be 4-D, got {:?}", x.shape),
        )),
    }
}

fn finish(
    name: &'static str,
    x: InputDesc<'_>,
    view: &[usize; 6],
    perm: &[usize; 6],
    out_shape: &[usize; 4],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let y = output(outputs, 0, name)?;
    expect_same_dtype(x.dtype, y.dtype, name)?;
    if y.shape != out_shape {
        return Err(Error::shape(
            name,
            format!("output shape {:?}, expected {out_shape:?}", y.shape),
        ));
    }
    let strides = contiguous_strides(view);
    let dims: Vec<usize> = perm.iter().map(|&p| view[p]).collect();
    let strides: Vec<isize> = perm.iter().map(|&p| strides[p] as isize).collect();
    let plan = StridedCopy::new(name, x.dtype.size(), &dims, &strides, 0, numel(x.shape, name)?)?;
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
    use crate::tensor::DType;

    #[test]
    fn depth_to_space_matches_the_onnx_examples() {
        // The DCR and CRD examples of the ONNX operator documentation.
        let x = i64s(&[1, 8, 2, 3], &(0..48).collect::<Vec<_>>());
        let out = run_const(
            layout::prepare,
            &Op::DepthToSpace {
                blocksize: 2,
                crd: false,
            },
            &[Some(&x)],
            &[(DType::I64, vec![1, 2, 4, 6])],
        )
        .unwrap();
        let dcr: Vec<i64> = vec![
            0, 12, 1, 13, 2, 14, 24, 36, 25, 37, 26, 38, 3, 15, 4, 16, 5, 17, 27, 39, 28, 40, 29, 41, 6, 18,
            7, 19, 8, 20, 30, 42, 31, 43, 32, 44, 9, 21, 10, 22, 11, 23, 33, 45, 34, 46, 35, 47,
        ];
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &dcr[..]);
        let out = run_const(
            layout::prepare,
            &Op::DepthToSpace {
                blocksize: 2,
                crd: true,
            },
            &[Some(&x)],
            &[(DType::I64, vec![1, 2, 4, 6])],
        )
        .unwrap();
        let crd: Vec<i64> = vec![
            0, 6, 1, 7, 2, 8, 12, 18, 13, 19, 14, 20, 3, 9, 4, 10, 5, 11, 15, 21, 16, 22, 17, 23, 24, 30, 25,
            31, 26, 32, 36, 42, 37, 43, 38, 44, 27, 33, 28, 34, 29, 35, 39, 45, 40, 46, 41, 47,
        ];
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &crd[..]);
    }

    #[test]
    fn depth_to_space_matches_the_index_formula() {
        // DCR: y[n, c, h*b+i, w*b+j] = x[n, (i*b+j)*C' + c, h, w]
        // CRD: y[n, c, h*b+i, w*b+j] = x[n, c*b*b + i*b + j, h, w]
        let mut rng = Rng::new(20);
        for case in 0..24 {
            let dtype = DTYPES[case % DTYPES.len()];
            let b = rng.below(3) + 1;
            let (n, c2, h, w) = (rng.below(2) + 1, rng.below(3) + 1, rng.below(4), rng.below(4) + 1);
            let c = c2 * b * b;
            let x = random_tensor(&mut rng, dtype, &[n, c, h, w]);
            let es = dtype.size();
            for crd in [false, true] {
                let mut want = Vec::new();
                for ni in 0..n {
                    for ci in 0..c2 {
                        for yh in 0..h * b {
                            for yw in 0..w * b {
                                let (hh, i, ww, j) = (yh / b, yh % b, yw / b, yw % b);
                                let ch = if crd {
                                    ci * b * b + i * b + j
                                } else {
                                    (i * b + j) * c2 + ci
                                };
                                let off = ((ni * c + ch) * h + hh) * w + ww;
                                want.extend_from_slice(&bytes(&x)[off * es..(off + 1) * es]);
                            }
                        }
                    }
                }
                let op = Op::DepthToSpace { blocksize: b, crd };
                let outs = [(dtype, vec![n, c2, h * b, w * b])];
                let out = run_const(layout::prepare, &op, &[Some(&x)], &outs).unwrap();
                assert_eq!(bytes(&out[0]), &want[..]);
            }
        }
    }

    #[test]
    fn space_to_depth_inverts_depth_to_space_dcr() {
        let mut rng = Rng::new(21);
        for &dtype in &DTYPES {
            let x = random_tensor(&mut rng, dtype, &[2, 3, 6, 4]);
            let s2d = Op::SpaceToDepth { blocksize: 2 };
            let mid = run_const(layout::prepare, &s2d, &[Some(&x)], &[(dtype, vec![2, 12, 3, 2])]).unwrap();
            let d2s = Op::DepthToSpace {
                blocksize: 2,
                crd: false,
            };
            let back = run_const(
                layout::prepare,
                &d2s,
                &[Some(&mid[0])],
                &[(dtype, vec![2, 3, 6, 4])],
            )
            .unwrap();
            assert_eq!(back[0], x);
        }
    }

    #[test]
    fn space_to_depth_element_order() {
        // [1, 1, 2, 2] -> [1, 4, 1, 1]: the block's elements become channels in row order.
        let x = i64s(&[1, 1, 2, 2], &[1, 2, 3, 4]);
        let op = Op::SpaceToDepth { blocksize: 2 };
        let out = run_const(
            layout::prepare,
            &op,
            &[Some(&x)],
            &[(DType::I64, vec![1, 4, 1, 1])],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &[1, 2, 3, 4]);
    }

    #[test]
    fn indivisible_shapes_are_errors() {
        let x = i64s(&[1, 3, 2, 2], &[0; 12]);
        let d2s = Op::DepthToSpace {
            blocksize: 2,
            crd: false,
        };
        assert!(run_const(
            layout::prepare,
            &d2s,
            &[Some(&x)],
            &[(DType::I64, vec![1, 1, 4, 4])]
        )
        .is_err());
        let s2d = Op::SpaceToDepth { blocksize: 0 };
        assert!(run_const(
            layout::prepare,
            &s2d,
            &[Some(&x)],
            &[(DType::I64, vec![1, 3, 2, 2])]
        )
        .is_err());
    }
}
