//! Variadic, Clip, Where and Cast.

use super::ew;
use crate::backend::cpu::kernels::numeric::testing::{
    assert_close, konst, ravel_broadcast, run, tensor, unravel, values, var, Rng,
};
use crate::ir::ops::{BinaryOp, Op};
use crate::tensor::{DType, Tensor};

#[test]
fn variadic_sum_mean_max_min_over_broadcast_inputs() {
    let mut rng = Rng::new(20);
    let shapes: [&[usize]; 4] = [&[2, 3, 4], &[3, 1], &[], &[1, 1, 4]];
    type F = fn(&[f64]) -> f64;
    let ops: [(BinaryOp, bool, F); 4] = [
        (BinaryOp::Add, false, |v| v.iter().sum()),
        (BinaryOp::Add, true, |v| v.iter().sum::<f64>() / v.len() as f64),
        (BinaryOp::Max, false, |v| {
            v.iter().cloned().fold(f64::MIN, f64::max)
        }),
        (BinaryOp::Min, false, |v| {
            v.iter().cloned().fold(f64::MAX, f64::min)
        }),
    ];
    for count in 1..=4 {
        for (op, mean, f) in ops {
            for dtype in [DType::F32, DType::F64, DType::F16, DType::I32] {
                if mean && dtype == DType::I32 {
                    continue;
                }
                let ins: Vec<Tensor> = shapes[..count]
                    .iter()
                    .map(|s| {
                        let n = s.iter().product();
                        let v: Vec<f64> = rng.floats(n, -8.0, 8.0).iter().map(|x| x.round()).collect();
                        tensor(dtype, s, &v)
                    })
                    .collect();
                let out_shape = vec![2, 3, 4];
                let want: Vec<f64> = (0..24)
                    .map(|i| {
                        let idx = unravel(i, &out_shape);
                        let vals: Vec<f64> = ins
                            .iter()
                            .map(|t| values(t)[ravel_broadcast(&idx, t.shape())])
                            .collect();
                        f(&vals)
                    })
                    .collect();
                let want = values(&tensor(dtype, &out_shape, &want));
                let inputs: Vec<_> = ins.into_iter().map(var).collect();
                let got = ew(&Op::Variadic { op, mean }, &inputs, dtype, &out_shape);
                assert_close(
                    &got,
                    &want,
                    1e-6,
                    1e-6,
                    &format!("{op:?} mean={mean} x{count} {dtype}"),
                );
            }
        }
    }
    // Only one input of a different shape: broadcast to the output.
    let x = tensor(DType::F32, &[3], &[1.0, 2.0, 3.0]);
    let got = ew(
        &Op::Variadic {
            op: BinaryOp::Max,
            mean: false,
        },
        &[var(x)],
        DType::F32,
        &[2, 3],
    );
    assert_eq!(got, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
}

#[test]
fn clip_with_optional_bounds() {
    let v = [f64::NAN, -3.0, -1.0, 0.0, 2.0, 7.0];
    let x = tensor(DType::F32, &[2, 3], &v);
    let lo = tensor(DType::F32, &[], &[-1.5]);
    let hi = tensor(DType::F32, &[1], &[2.5]);
    let clip = |inputs: &[Option<_>]| ew(&Op::Clip, inputs, DType::F32, &[2, 3]);
    assert_close(&clip(&[var(x.clone())]), &v, 0.0, 0.0, "no bounds");
    let both = clip(&[var(x.clone()), var(lo.clone()), konst(hi.clone())]);
    assert_close(&both, &[f64::NAN, -1.5, -1.0, 0.0, 2.0, 2.5], 0.0, 0.0, "both");
    let only_max = clip(&[var(x.clone()), None, var(hi.clone())]);
    assert_close(&only_max, &[f64::NAN, -3.0, -1.0, 0.0, 2.0, 2.5], 0.0, 0.0, "max");
    let only_min = clip(&[var(x.clone()), var(lo)]);
    assert_close(&only_min, &[f64::NAN, -1.5, -1.0, 0.0, 2.0, 7.0], 0.0, 0.0, "min");
    // min > max: everything becomes max.
    let inverted = clip(&[
        var(x),
        var(tensor(DType::F32, &[], &[3.0])),
        var(tensor(DType::F32, &[], &[1.0])),
    ]);
    assert_close(
        &inverted,
        &[f64::NAN, 1.0, 1.0, 1.0, 1.0, 1.0],
        0.0,
        0.0,
        "min > max",
    );
    for dtype in [
        DType::I8,
        DType::I64,
        DType::U8,
        DType::U64,
        DType::F16,
        DType::BF16,
    ] {
        let x = tensor(dtype, &[4], &[0.0, 3.0, 9.0, 200.0]);
        let got = ew(
            &Op::Clip,
            &[
                var(x),
                var(tensor(dtype, &[], &[2.0])),
                var(tensor(dtype, &[], &[100.0])),
            ],
            dtype,
            &[4],
        );
        assert_eq!(got, vec![2.0, 3.0, 9.0, 100.0], "{dtype}");
    }
    let wide = tensor(DType::F32, &[2], &[1.0, 2.0]);
    let x = tensor(DType::F32, &[2], &[1.0, 2.0]);
    assert!(run(
        super::super::prepare,
        &Op::Clip,
        &[var(x), var(wide)],
        &[(DType::F32, vec![2])]
    )
    .is_err());
}

#[test]
fn where_broadcasts_three_ways_for_every_element_size() {
    let mut rng = Rng::new(21);
    for dtype in [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::I64,
        DType::U8,
        DType::Bool,
        DType::I16,
    ] {
        for (sc, sx, sy) in [
            (vec![2, 3, 4], vec![2, 3, 4], vec![2, 3, 4]),
            (vec![3, 1], vec![1, 4], vec![]),
            (vec![1, 4], vec![2, 3, 1], vec![3, 4]),
            (vec![64, 40, 33], vec![64, 40, 33], vec![1]),
        ] {
            let gen = |rng: &mut Rng, s: &Vec<usize>, lo: f64| {
                let n = s.iter().product();
                rng.floats(n, lo, 2.0)
                    .iter()
                    .map(|v| v.round())
                    .collect::<Vec<f64>>()
            };
            let c = tensor(DType::Bool, &sc, &gen(&mut rng, &sc, 0.0));
            let x = tensor(dtype, &sx, &gen(&mut rng, &sx, 0.0));
            let y = tensor(
                dtype,
                &sy,
                &gen(&mut rng, &sy, 0.0)
                    .iter()
                    .map(|v| v + 5.0)
                    .collect::<Vec<_>>(),
            );
            let shape = crate::backend::cpu::kernels::broadcast::broadcast_shape(&[&sc, &sx, &sy]).unwrap();
            let (cv, xv, yv) = (values(&c), values(&x), values(&y));
            let want: Vec<f64> = (0..shape.iter().product())
                .map(|i| {
                    let idx = unravel(i, &shape);
                    if cv[ravel_broadcast(&idx, &sc)] != 0.0 {
                        xv[ravel_broadcast(&idx, &sx)]
                    } else {
                        yv[ravel_broadcast(&idx, &sy)]
                    }
                })
                .collect();
            let want = values(&tensor(dtype, &shape, &want));
            let got = ew(&Op::Where, &[var(c), var(x), var(y)], dtype, &shape);
            assert_eq!(got, want, "Where {dtype} {sc:?} {sx:?} {sy:?}");
        }
    }
}

#[test]
fn cast_between_every_pair_of_dtypes() {
    let all = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::Bool,
    ];
    // Values every dtype represents exactly (bool reads them as != 0).
    let v = [0.0, 1.0, 2.0, 7.0, 100.0, 0.0, 1.0];
    for from in all {
        let src: Vec<f64> = if from == DType::Bool {
            v.iter().map(|&x| (x != 0.0) as u8 as f64).collect()
        } else {
            v.to_vec()
        };
        let x = tensor(from, &[7], &src);
        for to in all {
            let want: Vec<f64> = if to == DType::Bool {
                src.iter().map(|&x| (x != 0.0) as u8 as f64).collect()
            } else {
                src.clone()
            };
            let got = ew(&Op::Cast { to }, &[var(x.clone())], to, &[7]);
            assert_eq!(got, want, "{from} -> {to}");
        }
    }
}

#[test]
fn cast_rounding_truncation_and_special_values() {
    let x = tensor(DType::F32, &[6], &[-2.7, 2.7, f64::NAN, -0.0, 1e10, -1e10]);
    assert_eq!(
        ew(&Op::Cast { to: DType::I32 }, &[var(x.clone())], DType::I32, &[6]),
        vec![-2.0, 2.0, 0.0, 0.0, i32::MAX as f64, i32::MIN as f64]
    );
    assert_eq!(
        ew(
            &Op::Cast { to: DType::Bool },
            &[var(x.clone())],
            DType::Bool,
            &[6]
        ),
        vec![1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    );
    // f32 -> f16 rounds to nearest even: 1 + 2^-11 is a tie between 1 and 1 + 2^-10.
    let ties = tensor(
        DType::F32,
        &[3],
        &[1.0 + 2f64.powi(-11), 1.0 + 3.0 * 2f64.powi(-11), 70000.0],
    );
    let h = ew(
        &Op::Cast { to: DType::F16 },
        &[var(ties.clone())],
        DType::F16,
        &[3],
    );
    assert_eq!(h, vec![1.0, 1.0 + 2.0 * 2f64.powi(-10), f64::INFINITY]);
    let b = ew(&Op::Cast { to: DType::BF16 }, &[var(ties)], DType::BF16, &[3]);
    assert_eq!(b, vec![1.0, 1.0, 70144.0]);
    // Wrapping integer narrowing, like numpy's astype.
    let big = tensor(DType::I32, &[3], &[300.0, -1.0, 65537.0]);
    assert_eq!(
        ew(&Op::Cast { to: DType::U8 }, &[var(big.clone())], DType::U8, &[3]),
        vec![44.0, 255.0, 1.0]
    );
    assert_eq!(
        ew(&Op::Cast { to: DType::I16 }, &[var(big)], DType::I16, &[3]),
        vec![300.0, -1.0, 1.0]
    );
    let d = tensor(DType::F64, &[1], &[0.1]);
    assert_eq!(
        ew(&Op::Cast { to: DType::F32 }, &[var(d)], DType::F32, &[1]),
        vec![0.1f32 as f64]
    );
    // Large f32 -> f16 / f16 -> f32 go through the threaded slice converters.
    let mut rng = Rng::new(22);
    let n = 300_001;
    let v = rng.floats(n, -100.0, 100.0);
    let x = tensor(DType::F32, &[n], &v);
    let h = ew(&Op::Cast { to: DType::F16 }, &[var(x.clone())], DType::F16, &[n]);
    assert_eq!(h, values(&tensor(DType::F16, &[n], &values(&x))));
    let back = ew(
        &Op::Cast { to: DType::F32 },
        &[var(tensor(DType::F16, &[n], &h))],
        DType::F32,
        &[n],
    );
    assert_eq!(back, h);
}
