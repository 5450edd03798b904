//! Tests of the reduction family against f64 reference implementations.

use super::prepare;
use crate::backend::cpu::kernels::numeric::testing::{
    assert_close, konst, run, tensor, unravel, values, var, Rng,
};
use crate::ir::ops::{Op, Reduce, ReduceKind};
use crate::tensor::{DType, Tensor};

const KINDS: [ReduceKind; 10] = [
    ReduceKind::Sum,
    ReduceKind::Mean,
    ReduceKind::Max,
    ReduceKind::Min,
    ReduceKind::Prod,
    ReduceKind::L1,
    ReduceKind::L2,
    ReduceKind::LogSum,
    ReduceKind::LogSumExp,
    ReduceKind::SumSquare,
];

/// Groups input values by output element (reduced axes collapsed to 0), in order.
fn buckets(shape: &[usize], reduced: &[bool], v: &[f64]) -> (Vec<usize>, Vec<Vec<f64>>) {
    let out_shape: Vec<usize> = shape
        .iter()
        .zip(reduced)
        .map(|(&d, &r)| if r { 1 } else { d })
        .collect();
    let mut b = vec![Vec::new(); out_shape.iter().product()];
    for (i, &x) in v.iter().enumerate() {
        let idx = unravel(i, shape);
        let o = idx
            .iter()
            .zip(&out_shape)
            .fold(0, |acc, (&j, &d)| acc * d + if d == 1 { 0 } else { j });
        b[o].push(x);
    }
    (out_shape, b)
}

fn reduce_ref(kind: ReduceKind, v: &[f64]) -> f64 {
    let sum = |f: &dyn Fn(f64) -> f64| v.iter().map(|&x| f(x)).sum::<f64>();
    match kind {
        ReduceKind::Sum => sum(&|x| x),
        ReduceKind::Mean => sum(&|x| x) / v.len() as f64,
        ReduceKind::Max => v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        ReduceKind::Min => v.iter().cloned().fold(f64::INFINITY, f64::min),
        ReduceKind::Prod => v.iter().product(),
        ReduceKind::L1 => sum(&f64::abs),
        ReduceKind::L2 => sum(&|x| x * x).sqrt(),
        ReduceKind::LogSum => sum(&|x| x).ln(),
        ReduceKind::LogSumExp => sum(&f64::exp).ln(),
        ReduceKind::SumSquare => sum(&|x| x * x),
    }
}

/// Wraps an exact integer into `dtype`'s range, like the kernel's wrapping integer math.
fn wrap_int(dtype: DType, v: f64) -> f64 {
    let bits = dtype.size() as u32 * 8;
    let m = 1i128 << bits;
    let r = (v as i128).rem_euclid(m);
    let signed = matches!(dtype, DType::I8 | DType::I16 | DType::I32 | DType::I64);
    (if signed && r >= m / 2 { r - m } else { r }) as f64
}

fn reduce_op(kind: ReduceKind, keepdims: bool, noop: bool) -> Op {
    Op::Reduce(Reduce {
        kind,
        keepdims,
        noop_with_empty_axes: noop,
    })
}

#[test]
fn every_reduce_kind_over_random_axes_and_dtypes() {
    let mut rng = Rng::new(40);
    for kind in KINDS {
        for dtype in [
            DType::F32,
            DType::F64,
            DType::F16,
            DType::I32,
            DType::I64,
            DType::U8,
            DType::I8,
        ] {
            let int = !matches!(dtype, DType::F32 | DType::F64 | DType::F16);
            if int && matches!(kind, ReduceKind::L2 | ReduceKind::LogSum | ReduceKind::LogSumExp) {
                continue;
            }
            for _ in 0..12 {
                let rank = rng.below(5);
                let shape = rng.shape(rank, 5);
                let n: usize = shape.iter().product();
                let (lo, hi) = match (kind, int) {
                    (ReduceKind::LogSum, _) => (0.1, 2.0),
                    (ReduceKind::Prod, false) => (0.5, 1.5),
                    (_, true) if dtype == DType::U8 => (0.0, 6.0),
                    (_, true) => (-5.0, 6.0),
                    _ => (-2.0, 2.0),
                };
                let mut v = rng.floats(n, lo, hi);
                if int {
                    v.iter_mut().for_each(|x| *x = x.floor());
                }
                let x = tensor(dtype, &shape, &v);
                let xv = values(&x);
                // Random axes, some negative; none means all.
                let mut axes: Vec<i64> = (0..rank as i64).filter(|_| rng.below(2) == 0).collect();
                axes.iter_mut().for_each(|a| {
                    if rng.below(2) == 0 {
                        *a -= rank as i64
                    }
                });
                let reduced: Vec<bool> = (0..rank)
                    .map(|d| axes.is_empty() || axes.iter().any(|&a| (a + rank as i64) as usize % rank == d))
                    .collect();
                let (keep_shape, groups) = buckets(&shape, &reduced, &xv);
                let keepdims = rng.below(2) == 0;
                let out_shape: Vec<usize> = if keepdims {
                    keep_shape
                } else {
                    shape
                        .iter()
                        .zip(&reduced)
                        .filter(|(_, &r)| !r)
                        .map(|(&d, _)| d)
                        .collect()
                };
                let mut want: Vec<f64> = groups.iter().map(|g| reduce_ref(kind, g)).collect();
                if int {
                    want.iter_mut().for_each(|w| {
                        *w = if kind == ReduceKind::Mean {
                            w.trunc()
                        } else {
                            wrap_int(dtype, *w)
                        }
                    });
                }
                let want = values(&tensor(dtype, &out_shape, &want));
                let axes_t = if axes.is_empty() && rng.below(2) == 0 {
                    None
                } else {
                    konst(Tensor::from_vec(vec![axes.len()], axes.clone()).unwrap())
                };
                let op = reduce_op(kind, keepdims, false);
                let got = run(prepare, &op, &[var(x), axes_t], &[(dtype, out_shape.clone())]).unwrap();
                let (rtol, atol) = match dtype {
                    DType::F16 => (4e-3, 4e-3),
                    DType::F32 => (1e-5, 1e-6),
                    _ => (1e-12, 1e-12),
                };
                let what = format!("{kind:?} {dtype} {shape:?} axes {axes:?}");
                assert_close(&values(&got[0]), &want, rtol, atol, &what);
            }
        }
    }
}

#[test]
fn contiguous_row_fast_path_on_large_tensors() {
    let mut rng = Rng::new(41);
    let shape = [2, 32, 56, 57];
    let n = shape.iter().product();
    let x = tensor(DType::F32, &shape, &rng.floats(n, -1.0, 3.0));
    let xv = values(&x);
    let axes = konst(Tensor::from_vec(vec![2], vec![2i64, -1]).unwrap());
    for kind in [
        ReduceKind::Mean,
        ReduceKind::Sum,
        ReduceKind::Max,
        ReduceKind::Min,
        ReduceKind::L2,
        ReduceKind::L1,
    ] {
        let want: Vec<f64> = xv.chunks(56 * 57).map(|row| reduce_ref(kind, row)).collect();
        let op = reduce_op(kind, true, false);
        let got = run(
            prepare,
            &op,
            &[var(x.clone()), axes.clone()],
            &[(DType::F32, vec![2, 32, 1, 1])],
        )
        .unwrap();
        assert_close(&values(&got[0]), &want, 1e-5, 1e-5, &format!("{kind:?}"));
    }
    // The same tensor reduced over the channel axis (strided path, many outputs).
    let axes = konst(Tensor::from_vec(vec![1], vec![1i64]).unwrap());
    let (_, groups) = buckets(&shape, &[false, true, false, false], &xv);
    let want: Vec<f64> = groups.iter().map(|g| reduce_ref(ReduceKind::Mean, g)).collect();
    let op = reduce_op(ReduceKind::Mean, false, false);
    let got = run(prepare, &op, &[var(x), axes], &[(DType::F32, vec![2, 56, 57])]).unwrap();
    assert_close(&values(&got[0]), &want, 1e-5, 1e-6, "Mean over C");
}

#[test]
fn empty_reductions_give_identities() {
    let axes = konst(Tensor::from_vec(vec![1], vec![1i64]).unwrap());
    let expect_f = [
        (ReduceKind::Sum, 0.0),
        (ReduceKind::Prod, 1.0),
        (ReduceKind::Max, f64::NEG_INFINITY),
        (ReduceKind::Min, f64::INFINITY),
        (ReduceKind::Mean, f64::NAN),
        (ReduceKind::L1, 0.0),
        (ReduceKind::L2, 0.0),
        (ReduceKind::SumSquare, 0.0),
        (ReduceKind::LogSum, f64::NEG_INFINITY),
        (ReduceKind::LogSumExp, f64::NEG_INFINITY),
    ];
    for (kind, want) in expect_f {
        for dtype in [DType::F32, DType::F16, DType::I32] {
            let want = match (dtype, kind) {
                (DType::I32, ReduceKind::Max) => i32::MIN as f64,
                (DType::I32, ReduceKind::Min) => i32::MAX as f64,
                (DType::I32, ReduceKind::Mean) => 0.0,
                (DType::I32, ReduceKind::LogSum | ReduceKind::LogSumExp) => i32::MIN as f64,
                _ => want,
            };
            let x = tensor(dtype, &[2, 0, 3], &[]);
            let op = reduce_op(kind, true, false);
            let got = run(prepare, &op, &[var(x), axes.clone()], &[(dtype, vec![2, 1, 3])]).unwrap();
            assert_close(
                &values(&got[0]),
                &[want; 6],
                0.0,
                0.0,
                &format!("{kind:?} {dtype}"),
            );
        }
    }
}

#[test]
fn noop_with_empty_axes_bool_and_non_constant_axes() {
    let x = tensor(DType::F32, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let op = reduce_op(ReduceKind::Sum, true, true);
    let empty = konst(Tensor::from_vec(vec![0], Vec::<i64>::new()).unwrap());
    for axes in [None, empty.clone()] {
        let got = run(prepare, &op, &[var(x.clone()), axes], &[(DType::F32, vec![2, 3])]).unwrap();
        assert_eq!(values(&got[0]), values(&x));
    }
    // Without noop, empty axes reduce everything.
    let got = run(
        prepare,
        &reduce_op(ReduceKind::Sum, false, false),
        &[var(x.clone()), empty],
        &[(DType::F32, vec![])],
    );
    assert_eq!(values(&got.unwrap()[0]), vec![21.0]);
    let b = tensor(DType::Bool, &[2, 2], &[0.0, 1.0, 0.0, 0.0]);
    let axes = konst(Tensor::from_vec(vec![1], vec![-1i64]).unwrap());
    let max = run(
        prepare,
        &reduce_op(ReduceKind::Max, false, false),
        &[var(b.clone()), axes.clone()],
        &[(DType::Bool, vec![2])],
    );
    assert_eq!(values(&max.unwrap()[0]), vec![1.0, 0.0]);
    assert!(run(
        prepare,
        &reduce_op(ReduceKind::Sum, false, false),
        &[var(b), axes],
        &[(DType::Bool, vec![2])]
    )
    .is_err());
    let runtime_axes = var(Tensor::from_vec(vec![1], vec![0i64]).unwrap());
    assert!(run(
        prepare,
        &reduce_op(ReduceKind::Sum, false, false),
        &[var(x.clone()), runtime_axes],
        &[(DType::F32, vec![3])]
    )
    .is_err());
    let bad_axis = konst(Tensor::from_vec(vec![1], vec![2i64]).unwrap());
    assert!(run(
        prepare,
        &reduce_op(ReduceKind::Sum, false, false),
        &[var(x), bad_axis],
        &[(DType::F32, vec![2])]
    )
    .is_err());
}

#[test]
fn arg_max_and_min_with_ties_and_nan() {
    let mut rng = Rng::new(42);
    for dtype in [DType::F32, DType::I32, DType::U8, DType::F16, DType::I64] {
        for _ in 0..10 {
            let rank = 1 + rng.below(4);
            let shape = rng.shape(rank, 5);
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n).map(|_| rng.below(4) as f64).collect();
            let x = tensor(dtype, &shape, &v);
            let axis = rng.below(rank) as i64 - if rng.below(2) == 0 { rank as i64 } else { 0 };
            let a = axis.rem_euclid(rank as i64) as usize;
            for (max, last) in [(true, false), (true, true), (false, false), (false, true)] {
                let inner: usize = shape[a + 1..].iter().product();
                let len = shape[a];
                let outer: usize = shape[..a].iter().product();
                let mut want = vec![];
                for o in 0..outer {
                    for i in 0..inner {
                        let vals: Vec<f64> = (0..len).map(|k| v[(o * len + k) * inner + i]).collect();
                        let best = if max {
                            vals.iter().cloned().fold(f64::MIN, f64::max)
                        } else {
                            vals.iter().cloned().fold(f64::MAX, f64::min)
                        };
                        let pos = vals.iter().position(|&x| x == best).unwrap();
                        let rpos = vals.iter().rposition(|&x| x == best).unwrap();
                        want.push(if last { rpos } else { pos } as f64);
                    }
                }
                let keepdims = rng.below(2) == 0;
                let out_shape: Vec<usize> = shape
                    .iter()
                    .enumerate()
                    .filter_map(|(d, &s)| if d == a { keepdims.then_some(1) } else { Some(s) })
                    .collect();
                let op = Op::ArgExtreme {
                    max,
                    axis,
                    keepdims,
                    select_last_index: last,
                };
                let got = run(prepare, &op, &[var(x.clone())], &[(DType::I64, out_shape)]).unwrap();
                assert_eq!(values(&got[0]), want, "{op:?} {dtype} {shape:?}");
            }
        }
    }
    let x = tensor(DType::F32, &[5], &[1.0, f64::NAN, 3.0, f64::NAN, 0.0]);
    for (max, last, want) in [(true, false, 1.0), (false, false, 1.0), (true, true, 3.0)] {
        let op = Op::ArgExtreme {
            max,
            axis: 0,
            keepdims: false,
            select_last_index: last,
        };
        let got = run(prepare, &op, &[var(x.clone())], &[(DType::I64, vec![])]).unwrap();
        assert_eq!(values(&got[0]), vec![want], "{op:?}");
    }
}

fn softmax_ref(v: &[f64], outer: usize, n: usize, inner: usize, log: bool) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * n + k) * inner + i;
            let m = (0..n).map(|k| v[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..n).map(|k| (v[at(k)] - m).exp()).sum();
            for k in 0..n {
                out[at(k)] = if log {
                    v[at(k)] - m - s.ln()
                } else {
                    (v[at(k)] - m).exp() / s
                };
            }
        }
    }
    out
}

#[test]
fn softmax_along_axis_and_legacy_coerced() {
    let mut rng = Rng::new(43);
    let shapes: [&[usize]; 7] = [
        &[5],
        &[3, 4],
        &[2, 3, 4, 5],
        &[2, 5, 9, 17],
        &[4, 1000],
        &[],
        &[8, 21, 64, 64],
    ];
    for shape in shapes {
        let rank = shape.len().max(1);
        for axis in -(rank as i64)..rank as i64 {
            for (legacy, log) in [(false, false), (false, true), (true, false), (true, true)] {
                for dtype in [DType::F32, DType::F64, DType::F16] {
                    let n: usize = shape.iter().product();
                    if n > 100_000 && (dtype != DType::F32 || axis != 1 || legacy) {
                        continue;
                    }
                    let x = tensor(dtype, shape, &rng.floats(n, -10.0, 10.0));
                    let a = axis.rem_euclid(rank as i64) as usize;
                    let s: Vec<usize> = if shape.is_empty() { vec![1] } else { shape.to_vec() };
                    let (outer, len, inner) = if legacy {
                        (s[..a].iter().product(), s[a..].iter().product(), 1)
                    } else {
                        (s[..a].iter().product(), s[a], s[a + 1..].iter().product())
                    };
                    let want = softmax_ref(&values(&x), outer, len, inner, log);
                    let want = values(&tensor(dtype, shape, &want));
                    let op = Op::Softmax { axis, legacy, log };
                    let got = run(prepare, &op, &[var(x)], &[(dtype, shape.to_vec())]).unwrap();
                    let (rtol, atol) = match dtype {
                        DType::F16 => (2e-3, 1e-3),
                        DType::F32 => (1e-5, 1e-7),
                        _ => (1e-12, 1e-14),
                    };
                    assert_close(
                        &values(&got[0]),
                        &want,
                        rtol,
                        atol,
                        &format!("{op:?} {dtype} {shape:?}"),
                    );
                }
            }
        }
    }
}

#[test]
fn cumsum_all_flags_and_runtime_axis() {
    let mut rng = Rng::new(44);
    for dtype in [DType::F32, DType::F64, DType::I32, DType::I64, DType::U32] {
        for shape in [vec![7], vec![2, 3, 4], vec![3, 1, 5], vec![1, 2, 3, 4]] {
            let rank = shape.len();
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n).map(|_| rng.below(10) as f64).collect();
            let x = tensor(dtype, &shape, &v);
            for axis in -(rank as i64)..rank as i64 {
                let a = axis.rem_euclid(rank as i64) as usize;
                let (outer, len, inner): (usize, usize, usize) = (
                    shape[..a].iter().product(),
                    shape[a],
                    shape[a + 1..].iter().product(),
                );
                for (exclusive, reverse) in [(false, false), (true, false), (false, true), (true, true)] {
                    let mut want = vec![0.0; n];
                    for o in 0..outer {
                        for i in 0..inner {
                            let at = |k: usize| (o * len + k) * inner + i;
                            let order: Vec<usize> = if reverse {
                                (0..len).rev().collect()
                            } else {
                                (0..len).collect()
                            };
                            let mut acc = 0.0;
                            for &k in &order {
                                if exclusive {
                                    want[at(k)] = acc;
                                    acc += v[at(k)];
                                } else {
                                    acc += v[at(k)];
                                    want[at(k)] = acc;
                                }
                            }
                        }
                    }
                    let op = Op::CumSum { exclusive, reverse };
                    let axis_t = if dtype == DType::I32 {
                        Tensor::from_vec(vec![], vec![axis as i32]).unwrap()
                    } else {
                        Tensor::scalar(axis)
                    };
                    let axis_in = if rng.below(2) == 0 {
                        konst(axis_t)
                    } else {
                        var(axis_t)
                    };
                    let got = run(
                        prepare,
                        &op,
                        &[var(x.clone()), axis_in],
                        &[(dtype, shape.clone())],
                    )
                    .unwrap();
                    assert_eq!(values(&got[0]), want, "{op:?} {dtype} {shape:?} axis {axis}");
                }
            }
        }
    }
}
