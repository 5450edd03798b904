//! Tests of the normalization family against f64 reference implementations.

#![allow(clippy::type_complexity, clippy::map_flatten)]

use super::prepare;
use crate::backend::cpu::kernels::numeric::testing::{
    assert_close, konst, ravel_broadcast, run, tensor, unravel, values, var, In, Rng,
};
use crate::ir::ops::Op;
use crate::tensor::{DType, Tensor};

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-10, 1e-10),
        DType::F32 => (1e-5, 1e-5),
        _ => (4e-3, 4e-3),
    }
}

fn param(rng: &mut Rng, dtype: DType, shape: &[usize], lo: f64, hi: f64, constant: bool) -> Option<In> {
    let t = tensor(dtype, shape, &rng.floats(shape.iter().product(), lo, hi));
    if constant {
        konst(t)
    } else {
        var(t)
    }
}

#[test]
fn batch_norm_any_rank_constant_or_runtime_params() {
    let mut rng = Rng::new(30);
    let shapes: [&[usize]; 6] = [
        &[3, 4],
        &[2, 5, 7],
        &[2, 3, 4, 5],
        &[1, 2, 3, 2, 3],
        &[2, 16, 64, 65],
        &[1, 1, 1, 1],
    ];
    for shape in shapes {
        for dtype in [DType::F32, DType::F64, DType::F16] {
            for constant in [true, false] {
                let c = shape[1];
                let x = tensor(dtype, shape, &rng.floats(shape.iter().product(), -3.0, 3.0));
                // opset 15 lets the parameters have another float dtype than x.
                let pd = if dtype == DType::F16 { DType::F32 } else { dtype };
                let params: Vec<Option<In>> = [(-2.0, 2.0), (-1.0, 1.0), (-1.0, 1.0), (0.1, 2.0)]
                    .iter()
                    .map(|&(lo, hi)| param(&mut rng, pd, &[c], lo, hi, constant))
                    .collect();
                let pv: Vec<Vec<f64>> = params.iter().map(|p| values(&p.as_ref().unwrap().t)).collect();
                let eps = 1e-3f32;
                let inner: usize = shape[2..].iter().product();
                let want: Vec<f64> = values(&x)
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let ch = (i / inner) % c;
                        (v - pv[2][ch]) / (pv[3][ch] + eps as f64).sqrt() * pv[0][ch] + pv[1][ch]
                    })
                    .collect();
                let mut inputs = vec![var(x)];
                inputs.extend(params);
                let out = run(
                    prepare,
                    &Op::BatchNorm { epsilon: eps },
                    &inputs,
                    &[(dtype, shape.to_vec())],
                )
                .unwrap();
                let (rtol, atol) = tol(dtype);
                assert_close(
                    &values(&out[0]),
                    &want,
                    rtol,
                    atol,
                    &format!("BatchNorm {shape:?} {dtype} const={constant}"),
                );
            }
        }
    }
}

#[test]
fn instance_norm_per_plane_statistics() {
    let mut rng = Rng::new(31);
    let shapes: [&[usize]; 4] = [&[2, 3, 7], &[1, 4, 5, 6], &[2, 2, 3, 3, 3], &[1, 8, 100, 90]];
    for shape in shapes {
        for dtype in [DType::F32, DType::F64, DType::F16] {
            for constant in [true, false] {
                let c = shape[1];
                let x = tensor(dtype, shape, &rng.floats(shape.iter().product(), -2.0, 5.0));
                let scale = param(&mut rng, dtype, &[c], -2.0, 2.0, constant);
                let bias = param(&mut rng, dtype, &[c], -1.0, 1.0, constant);
                let (sv, bv) = (
                    values(&scale.as_ref().unwrap().t),
                    values(&bias.as_ref().unwrap().t),
                );
                let inner: usize = shape[2..].iter().product();
                let xv = values(&x);
                let eps = 1e-5f32 as f64;
                let mut want = vec![0.0; xv.len()];
                for (p, plane) in xv.chunks(inner).enumerate() {
                    let m = plane.iter().sum::<f64>() / inner as f64;
                    let var = plane.iter().map(|v| (v - m).powi(2)).sum::<f64>() / inner as f64;
                    for (k, &v) in plane.iter().enumerate() {
                        want[p * inner + k] = (v - m) / (var + eps).sqrt() * sv[p % c] + bv[p % c];
                    }
                }
                let op = Op::InstanceNorm { epsilon: 1e-5 };
                let out = run(prepare, &op, &[var(x), scale, bias], &[(dtype, shape.to_vec())]).unwrap();
                let (rtol, atol) = tol(dtype);
                // f16 outputs of magnitude ~4 are rounded at 2e-3.
                let atol = if dtype == DType::F16 { 1e-2 } else { atol };
                assert_close(
                    &values(&out[0]),
                    &want,
                    rtol,
                    atol,
                    &format!("InstanceNorm {shape:?} {dtype}"),
                );
            }
        }
    }
}

/// f64 LayerNorm reference: y, mean, inv_std_dev.
fn layer_norm_ref(x: &Tensor, axis: usize, scale: &Tensor, bias: Option<&Tensor>, eps: f64) -> [Vec<f64>; 3] {
    let shape = x.shape();
    let norm = &shape[axis..];
    let cols: usize = norm.iter().product();
    let xv = values(x);
    let (sv, bv) = (values(scale), bias.map(values));
    let (mut y, mut means, mut invs) = (vec![0.0; xv.len()], vec![], vec![]);
    for (r, row) in xv.chunks(cols).enumerate() {
        let m = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - m).powi(2)).sum::<f64>() / cols as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for (j, &v) in row.iter().enumerate() {
            let idx = unravel(j, norm);
            let s = sv[ravel_broadcast(&idx, scale.shape())];
            let b = bv
                .as_ref()
                .map_or(0.0, |b| b[ravel_broadcast(&idx, bias.unwrap().shape())]);
            y[r * cols + j] = (v - m) * inv * s + b;
        }
        means.push(m);
        invs.push(inv);
    }
    [y, means, invs]
}

#[test]
fn layer_norm_axes_broadcast_params_and_statistics() {
    let mut rng = Rng::new(32);
    let cases: [(&[usize], i64, &[usize], Option<&[usize]>); 7] = [
        (&[2, 3, 8], -1, &[8], Some(&[8])),
        (&[2, 3, 8], 1, &[3, 8], Some(&[1, 8])),
        (&[2, 3, 8], -3, &[1], None),
        (&[4, 5], 1, &[5], Some(&[5])),
        (&[7], 0, &[7], Some(&[1])),
        (&[3, 2, 4, 5], 2, &[1, 5], Some(&[4, 1])),
        (&[64, 50, 64], -1, &[64], Some(&[64])),
    ];
    for (shape, axis, sshape, bshape) in cases {
        for dtype in [DType::F32, DType::F64, DType::F16] {
            for constant in [true, false] {
                for with_stats in [false, true] {
                    let x = tensor(dtype, shape, &rng.floats(shape.iter().product(), -3.0, 3.0));
                    let scale = param(&mut rng, dtype, sshape, -2.0, 2.0, constant);
                    let bias = bshape
                        .map(|b| param(&mut rng, dtype, b, -1.0, 1.0, constant))
                        .flatten();
                    let a = if axis < 0 { axis + shape.len() as i64 } else { axis } as usize;
                    let eps = 1e-5f32 as f64;
                    let want = layer_norm_ref(
                        &x,
                        a,
                        &scale.as_ref().unwrap().t,
                        bias.as_ref().map(|b| &b.t),
                        eps,
                    );
                    let stat_shape: Vec<usize> = shape
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| if i < a { d } else { 1 })
                        .collect();
                    let stat_dtype = if dtype == DType::F64 {
                        DType::F64
                    } else {
                        DType::F32
                    };
                    let mut outs = vec![(dtype, shape.to_vec())];
                    if with_stats {
                        outs.push((stat_dtype, stat_shape.clone()));
                        outs.push((stat_dtype, stat_shape));
                    }
                    let op = Op::LayerNorm { axis, epsilon: 1e-5 };
                    let inputs = [var(x), scale, bias];
                    let got = run(prepare, &op, &inputs, &outs).unwrap();
                    let (rtol, atol) = tol(dtype);
                    let atol = if dtype == DType::F16 { 1e-2 } else { atol };
                    let what = format!("LayerNorm {shape:?} axis {axis} {dtype} const={constant}");
                    assert_close(&values(&got[0]), &want[0], rtol, atol, &what);
                    if with_stats {
                        let (rtol, atol) = tol(stat_dtype);
                        assert_close(&values(&got[1]), &want[1], rtol, atol, &format!("{what} mean"));
                        assert_close(&values(&got[2]), &want[2], rtol, 1e-4, &format!("{what} inv_std"));
                    }
                }
            }
        }
    }
}

#[test]
fn bad_normalization_inputs_are_errors() {
    let x = tensor(DType::F32, &[2, 3, 4], &[0.0; 24]);
    let p3 = tensor(DType::F32, &[3], &[1.0; 3]);
    let p4 = tensor(DType::F32, &[4], &[1.0; 4]);
    let bn = Op::BatchNorm { epsilon: 1e-5 };
    let out = [(DType::F32, vec![2, 3, 4])];
    let four = |p: &Tensor| {
        [
            var(x.clone()),
            konst(p.clone()),
            konst(p.clone()),
            konst(p.clone()),
            konst(p.clone()),
        ]
    };
    assert!(run(prepare, &bn, &four(&p3), &out).is_ok());
    assert!(run(prepare, &bn, &four(&p4), &out).is_err());
    assert!(run(prepare, &bn, &[var(x.clone())], &out).is_err());
    let xi = tensor(DType::I32, &[2, 3, 4], &[0.0; 24]);
    assert!(run(
        prepare,
        &Op::InstanceNorm { epsilon: 1e-5 },
        &[var(xi), var(p3.clone()), var(p3.clone())],
        &out
    )
    .is_err());
    assert!(run(
        prepare,
        &Op::LayerNorm {
            axis: 3,
            epsilon: 1e-5
        },
        &[var(x.clone()), var(p4.clone())],
        &out
    )
    .is_err());
    assert!(run(
        prepare,
        &Op::LayerNorm {
            axis: -1,
            epsilon: 1e-5
        },
        &[var(x), var(p3)],
        &out
    )
    .is_err());
}
