//! Pooling against a direct-definition reference: 1-D/2-D/3-D, strides, dilations,
//! asymmetric and auto pads, ceil_mode, both `count_include_pad`, MaxPool indices in
//! both storage orders, other dtypes, and the global variants.

use super::prepare;
use crate::backend::cpu::kernels::compute_tests::{assert_close, run_op, Rng};
use crate::ir::ops::{AutoPad, Op, Pool, PoolKind, Window};
use crate::ir::window::{output_spatial, resolve_pads};
use crate::tensor::{DType, Tensor};

fn unflatten(mut p: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for axis in (0..dims.len()).rev() {
        idx[axis] = p % dims[axis];
        p /= dims[axis];
    }
    idx
}

/// Reference pooling of one plane: (value, row-major index of the max) per output.
fn naive_plane(
    x: &[f64],
    input: &[usize],
    out: &[usize],
    w: &Window,
    pads: &[usize],
    kind: PoolKind,
) -> Vec<(f64, i64)> {
    let rank = input.len();
    let k_len: usize = w.kernel_shape.iter().product();
    let mut res = Vec::new();
    for o in 0..out.iter().product() {
        let oi = unflatten(o, out);
        let (mut vals, mut padded) = (Vec::new(), 0usize);
        for t in 0..k_len {
            let ti = unflatten(t, &w.kernel_shape);
            let (mut flat, mut valid, mut in_padded) = (0usize, true, true);
            for a in 0..rank {
                let pos = (oi[a] * w.strides[a] + ti[a] * w.dilations[a]) as isize - pads[a] as isize;
                valid &= pos >= 0 && pos < input[a] as isize;
                in_padded &= pos < (input[a] + pads[rank + a]) as isize;
                flat = flat * input[a] + pos.clamp(0, input[a] as isize - 1) as usize;
            }
            padded += in_padded as usize;
            if valid {
                vals.push((x[flat], flat));
            }
        }
        res.push(match kind {
            PoolKind::Max => {
                let mut best: Option<(f64, usize)> = None;
                for &(v, i) in &vals {
                    let better = match best {
                        None => true,
                        Some((b, _)) => v > b,
                    };
                    if better {
                        best = Some((v, i));
                    }
                }
                best.map_or((f64::NEG_INFINITY, -1), |(v, i)| (v, i as i64))
            }
            PoolKind::Avg { count_include_pad } => {
                let sum: f64 = vals.iter().map(|v| v.0).sum();
                (
                    sum / if count_include_pad { padded } else { vals.len() } as f64,
                    0,
                )
            }
            PoolKind::Lp { p } => {
                let sum: f64 = vals.iter().map(|v| v.0.abs().powi(p as i32)).sum();
                (sum.powf(1.0 / p as f64), 0)
            }
        });
    }
    res
}

/// Column-major spatial index of row-major index `i`.
fn col_major(i: usize, dims: &[usize]) -> usize {
    let idx = unflatten(i, dims);
    let (mut col, mut stride) = (0, 1);
    for (a, &d) in dims.iter().enumerate() {
        col += idx[a] * stride;
        stride *= d;
    }
    col
}

fn random_pool(rng: &mut Rng, rank: usize) -> (Pool, Vec<usize>) {
    let kernel: Vec<usize> = (0..rank).map(|_| rng.range(1, 3)).collect();
    let dilations: Vec<usize> = (0..rank).map(|_| rng.range(1, 2)).collect();
    let auto_pad = rng.pick(&[
        AutoPad::NotSet,
        AutoPad::NotSet,
        AutoPad::NotSet,
        AutoPad::SameUpper,
        AutoPad::SameLower,
        AutoPad::Valid,
    ]);
    let pads = (0..2 * rank)
        .map(|i| rng.range(0, kernel[i % rank] - 1))
        .collect();
    let window = Window {
        kernel_shape: kernel.clone(),
        strides: (0..rank).map(|_| rng.range(1, 3)).collect(),
        dilations,
        pads: if auto_pad == AutoPad::NotSet { pads } else { vec![] },
        auto_pad,
    };
    let input = (0..rank)
        .map(|i| (kernel[i] - 1) * window.dilations[i] + 1 + rng.range(0, 6))
        .collect();
    let kind = rng.pick(&[
        PoolKind::Max,
        PoolKind::Max,
        PoolKind::Avg {
            count_include_pad: false,
        },
        PoolKind::Avg {
            count_include_pad: true,
        },
        PoolKind::Lp { p: 1 },
        PoolKind::Lp { p: 2 },
        PoolKind::Lp { p: 3 },
    ]);
    let pool = Pool {
        kind,
        window,
        ceil_mode: rng.range(0, 1) == 1,
        column_major_indices: rng.range(0, 1) == 1,
    };
    (pool, input)
}

#[test]
fn pooling_matches_direct_definition() {
    let mut rng = Rng::new(20);
    for trial in 0..500 {
        let rank = [1, 2, 2, 3][trial % 4];
        let (pool, input) = random_pool(&mut rng, rank);
        let k = &pool.window.kernel_shape;
        let out = output_spatial(&pool.window, &input, k, pool.ceil_mode).unwrap();
        let pads = resolve_pads(&pool.window, &input, k).unwrap();
        let (n, c) = (rng.range(1, 2), rng.range(1, 3));
        let x = rng.tensor(&[&[n, c][..], &input].concat());
        let y_shape = [&[n, c][..], &out].concat();
        let with_indices = pool.kind == PoolKind::Max && rng.range(0, 1) == 1;
        let mut outs = vec![(DType::F32, y_shape.clone())];
        if with_indices {
            outs.push((DType::I64, y_shape.clone()));
        }
        let got = run_op(prepare, &Op::Pool(pool.clone()), &[Some(x.clone())], &[], &outs).unwrap();
        let xv: Vec<f64> = x.as_slice::<f32>().unwrap().iter().map(|&v| v as f64).collect();
        let (in_len, out_len) = (input.iter().product::<usize>(), out.iter().product::<usize>());
        let (mut want, mut want_idx) = (Vec::new(), Vec::new());
        for plane in 0..n * c {
            for (v, i) in naive_plane(
                &xv[plane * in_len..][..in_len],
                &input,
                &out,
                &pool.window,
                &pads,
                pool.kind,
            ) {
                want.push(v);
                let spatial = if pool.column_major_indices {
                    col_major(i as usize, &input)
                } else {
                    i as usize
                };
                want_idx.push((plane * in_len + spatial) as i64);
            }
        }
        let what = format!("pool trial {trial}: {pool:?} input {input:?}");
        assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-5, &what);
        if with_indices {
            assert_eq!(got[1].as_slice::<i64>().unwrap(), &want_idx[..], "{what}");
        }
        assert_eq!(want.len(), n * c * out_len);
    }
}

#[test]
fn onnx_examples() {
    // averagepool_2d_ceil: 4x4 of 1..16, kernel 3, stride 2, ceil_mode.
    let x = Tensor::from_vec(vec![1, 1, 4, 4], (1..=16).map(|v| v as f32).collect()).unwrap();
    let window = Window {
        kernel_shape: vec![3, 3],
        strides: vec![2, 2],
        dilations: vec![1, 1],
        pads: vec![0; 4],
        auto_pad: AutoPad::NotSet,
    };
    let avg = Pool {
        kind: PoolKind::Avg {
            count_include_pad: false,
        },
        window: window.clone(),
        ceil_mode: true,
        column_major_indices: false,
    };
    let got = run_op(
        prepare,
        &Op::Pool(avg),
        &[Some(x.clone())],
        &[],
        &[(DType::F32, vec![1, 1, 2, 2])],
    )
    .unwrap();
    assert_close(
        got[0].as_slice::<f32>().unwrap(),
        &[6.0, 7.5, 12.0, 13.5],
        1e-6,
        "averagepool_2d_ceil",
    );
    // maxpool_2d_precomputed_same_upper on 5x5 of 1..25, kernel 3, stride 2.
    let x = Tensor::from_vec(vec![1, 1, 5, 5], (1..=25).map(|v| v as f32).collect()).unwrap();
    let max = Pool {
        kind: PoolKind::Max,
        window: Window {
            pads: vec![],
            auto_pad: AutoPad::SameUpper,
            ..window
        },
        ceil_mode: false,
        column_major_indices: false,
    };
    let got = run_op(
        prepare,
        &Op::Pool(max),
        &[Some(x)],
        &[],
        &[(DType::F32, vec![1, 1, 3, 3])],
    )
    .unwrap();
    let want = [7.0, 9.0, 10.0, 17.0, 19.0, 20.0, 22.0, 24.0, 25.0];
    assert_close(
        got[0].as_slice::<f32>().unwrap(),
        &want,
        0.0,
        "maxpool_2d_precomputed_same_upper",
    );
}

#[test]
fn max_pool_other_dtypes() {
    let mut rng = Rng::new(21);
    let window = Window {
        kernel_shape: vec![2, 3],
        strides: vec![2, 1],
        dilations: vec![1, 1],
        pads: vec![1, 0, 0, 1],
        auto_pad: AutoPad::NotSet,
    };
    let pool = Pool {
        kind: PoolKind::Max,
        window,
        ceil_mode: false,
        column_major_indices: false,
    };
    let vals: Vec<f32> = (0..2 * 5 * 6).map(|_| (rng.f32() * 100.0).round()).collect();
    let as_f32 = run_op(
        prepare,
        &Op::Pool(pool.clone()),
        &[Some(Tensor::from_vec(vec![1, 2, 5, 6], vals.clone()).unwrap())],
        &[],
        &[(DType::F32, vec![1, 2, 3, 5])],
    )
    .unwrap();
    let want: Vec<f32> = as_f32[0].as_slice::<f32>().unwrap().to_vec();
    let tensors = [
        Tensor::from_vec(vec![1, 2, 5, 6], vals.iter().map(|&v| v as f64).collect()).unwrap(),
        Tensor::from_vec(
            vec![1, 2, 5, 6],
            vals.iter().map(|&v| half::f16::from_f32(v)).collect(),
        )
        .unwrap(),
        Tensor::from_vec(vec![1, 2, 5, 6], vals.iter().map(|&v| v as i8).collect()).unwrap(),
        Tensor::from_vec(
            vec![1, 2, 5, 6],
            vals.iter().map(|&v| (v + 100.0) as u8).collect(),
        )
        .unwrap(),
    ];
    for t in tensors {
        let dtype = t.dtype();
        let got = run_op(
            prepare,
            &Op::Pool(pool.clone()),
            &[Some(t)],
            &[],
            &[(dtype, vec![1, 2, 3, 5])],
        )
        .unwrap();
        let got = got[0].to_f32_vec();
        let shift = if dtype == DType::U8 { 100.0 } else { 0.0 };
        let want: Vec<f32> = want.iter().map(|&v| v + shift).collect();
        assert_eq!(got, want, "{dtype}");
    }
}

#[test]
fn global_pools() {
    let mut rng = Rng::new(22);
    for spatial in [vec![7, 7], vec![5], vec![3, 4, 5], vec![1, 1], vec![33, 17]] {
        let x = rng.tensor(&[&[2, 3][..], &spatial].concat());
        let len: usize = spatial.iter().product();
        let y_shape: Vec<usize> = [&[2, 3][..], &vec![1; spatial.len()]].concat();
        let xv = x.as_slice::<f32>().unwrap();
        for kind in [
            PoolKind::Avg {
                count_include_pad: false,
            },
            PoolKind::Max,
            PoolKind::Lp { p: 2 },
            PoolKind::Lp { p: 3 },
        ] {
            let got = run_op(
                prepare,
                &Op::GlobalPool(kind),
                &[Some(x.clone())],
                &[],
                &[(DType::F32, y_shape.clone())],
            )
            .unwrap();
            let want: Vec<f64> = xv
                .chunks(len)
                .map(|p| {
                    let p: Vec<f64> = p.iter().map(|&v| v as f64).collect();
                    match kind {
                        PoolKind::Max => p.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                        PoolKind::Avg { .. } => p.iter().sum::<f64>() / len as f64,
                        PoolKind::Lp { p: e } => p
                            .iter()
                            .map(|v| v.abs().powi(e as i32))
                            .sum::<f64>()
                            .powf(1.0 / e as f64),
                    }
                })
                .collect();
            assert_close(
                got[0].as_slice::<f32>().unwrap(),
                &want,
                1e-5,
                &format!("global {kind:?} {spatial:?}"),
            );
        }
    }
}

#[test]
fn bad_pools_are_errors() {
    let x = Tensor::from_vec(vec![1, 1, 4, 4], vec![0.0f32; 16]).unwrap();
    let window = Window {
        kernel_shape: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![0; 4],
        auto_pad: AutoPad::NotSet,
    };
    let avg = Pool {
        kind: PoolKind::Avg {
            count_include_pad: false,
        },
        window,
        ceil_mode: false,
        column_major_indices: false,
    };
    // Wrong planned output size, indices on an average pool, unsupported dtype.
    assert!(run_op(
        prepare,
        &Op::Pool(avg.clone()),
        &[Some(x.clone())],
        &[],
        &[(DType::F32, vec![1, 1, 3, 3])]
    )
    .is_err());
    let outs = [(DType::F32, vec![1, 1, 2, 2]), (DType::I64, vec![1, 1, 2, 2])];
    assert!(run_op(prepare, &Op::Pool(avg.clone()), &[Some(x)], &[], &outs).is_err());
    let xi = Tensor::from_vec(vec![1, 1, 4, 4], vec![0i32; 16]).unwrap();
    assert!(run_op(
        prepare,
        &Op::Pool(avg),
        &[Some(xi)],
        &[],
        &[(DType::I32, vec![1, 1, 2, 2])]
    )
    .is_err());
}
