use super::ew;
use crate::backend::cpu::kernels::numeric::fmath::erf_f64;
use crate::backend::cpu::kernels::numeric::testing::{assert_close, tensor, values, var, Rng};
use crate::ir::ops::{Op, UnaryOp};
use crate::tensor::DType;

type RefFn = Box<dyn Fn(f64) -> f64>;

/// Every float unary op with its input range and f64 reference.
fn cases() -> Vec<(UnaryOp, f64, f64, RefFn)> {
    use UnaryOp::*;
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let gelu_k = (2.0 / std::f64::consts::PI).sqrt();
    // Attributes are f32 in ONNX: the references use the rounded values.
    let (a02, a01, a_selu, g_selu) = (0.2f32 as f64, 0.1f32 as f64, 1.67326f32 as f64, 1.0507f32 as f64);
    vec![
        (Relu, -5.0, 5.0, Box::new(|x: f64| x.max(0.0))),
        (Sigmoid, -20.0, 20.0, Box::new(sig)),
        (Tanh, -6.0, 6.0, Box::new(f64::tanh)),
        (Exp, -80.0, 80.0, Box::new(f64::exp)),
        (Log, 1e-3, 100.0, Box::new(f64::ln)),
        (Sqrt, 0.0, 100.0, Box::new(f64::sqrt)),
        (Abs, -5.0, 5.0, Box::new(f64::abs)),
        (Neg, -5.0, 5.0, Box::new(|x: f64| -x)),
        (Erf, -4.0, 4.0, Box::new(erf_f64)),
        (Reciprocal, 0.5, 8.0, Box::new(|x: f64| 1.0 / x)),
        (Floor, -5.0, 5.0, Box::new(f64::floor)),
        (Ceil, -5.0, 5.0, Box::new(f64::ceil)),
        (Round, -5.0, 5.0, Box::new(f64::round_ties_even)),
        (
            Sign,
            -5.0,
            5.0,
            Box::new(|x: f64| if x == 0.0 { 0.0 } else { x.signum() }),
        ),
        (Sin, -7.0, 7.0, Box::new(f64::sin)),
        (Cos, -7.0, 7.0, Box::new(f64::cos)),
        (Softplus, -30.0, 30.0, Box::new(|x: f64| x.exp().ln_1p())),
        (Softsign, -5.0, 5.0, Box::new(|x: f64| x / (1.0 + x.abs()))),
        (
            HardSwish,
            -5.0,
            5.0,
            Box::new(|x: f64| x * (x / 6.0 + 0.5).clamp(0.0, 1.0)),
        ),
        (
            HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            -5.0,
            5.0,
            Box::new(move |x: f64| (a02 * x + 0.5).clamp(0.0, 1.0)),
        ),
        (
            LeakyRelu { alpha: 0.1 },
            -5.0,
            5.0,
            Box::new(move |x: f64| if x < 0.0 { a01 * x } else { x }),
        ),
        (
            Elu { alpha: 1.5 },
            -5.0,
            5.0,
            Box::new(|x: f64| if x < 0.0 { 1.5 * x.exp_m1() } else { x }),
        ),
        (
            Selu {
                alpha: 1.67326,
                gamma: 1.0507,
            },
            -5.0,
            5.0,
            Box::new(move |x: f64| {
                if x > 0.0 {
                    g_selu * x
                } else {
                    g_selu * (a_selu * x.exp() - a_selu)
                }
            }),
        ),
        (
            Celu { alpha: 2.0 },
            -5.0,
            5.0,
            Box::new(|x: f64| x.max(0.0) + (2.0 * (x / 2.0).exp_m1()).min(0.0)),
        ),
        (Silu, -20.0, 20.0, Box::new(move |x: f64| x * sig(x))),
        (
            Gelu { tanh_approx: false },
            -6.0,
            6.0,
            Box::new(|x: f64| 0.5 * x * (1.0 + erf_f64(x / std::f64::consts::SQRT_2))),
        ),
        (
            Gelu { tanh_approx: true },
            -6.0,
            6.0,
            Box::new(move |x: f64| 0.5 * x * (1.0 + (gelu_k * (x + 0.044715 * x * x * x)).tanh())),
        ),
        (
            Clamp { min: -1.5, max: 2.0 },
            -5.0,
            5.0,
            Box::new(|x: f64| x.clamp(-1.5, 2.0)),
        ),
    ]
}

#[test]
fn float_unary_ops_match_reference_in_every_float_dtype() {
    let mut rng = Rng::new(1);
    for (op, lo, hi, f) in cases() {
        for (dtype, rtol, atol) in [
            (DType::F32, 2e-6, 1e-6),
            (DType::F64, 1e-12, 1e-12),
            (DType::F16, 2e-3, 1e-4),
            (DType::BF16, 1e-2, 1e-3),
        ] {
            let rank = rng.below(5);
            let shape = rng.shape(rank, 6);
            let n = shape.iter().product();
            let mut v = rng.floats(n, lo, hi);
            // Exact halves exercise Round's ties-to-even and Sign's zero.
            for x in v.iter_mut().step_by(3) {
                *x = ((*x * 2.0).round() / 2.0).clamp(lo, hi);
            }
            let x = tensor(dtype, &shape, &v);
            let want: Vec<f64> = values(&x).iter().map(|&v| f(v)).collect();
            // Round the reference to the output dtype so only the kernel's error is measured.
            let want = values(&tensor(dtype, &shape, &want));
            let got = ew(&Op::Unary(op), &[var(x)], dtype, &shape);
            assert_close(&got, &want, rtol, atol, &format!("{op:?} {dtype}"));
        }
    }
}

#[test]
fn large_unary_runs_in_parallel_and_matches() {
    let mut rng = Rng::new(2);
    let shape = [3, 7, 101, 97];
    let n = shape.iter().product();
    let x = tensor(DType::F32, &shape, &rng.floats(n, -10.0, 10.0));
    let want: Vec<f64> = values(&x).iter().map(|&v| v / (1.0 + (-v).exp())).collect();
    let got = ew(&Op::Unary(UnaryOp::Silu), &[var(x)], DType::F32, &shape);
    assert_close(&got, &want, 2e-6, 1e-6, "Silu");
}

#[test]
fn special_values() {
    let x = tensor(
        DType::F32,
        &[6],
        &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1e-30],
    );
    let run = |op: UnaryOp| ew(&Op::Unary(op), &[var(x.clone())], DType::F32, &[6]);
    assert_close(
        &run(UnaryOp::Sigmoid),
        &[f64::NAN, 1.0, 0.0, 0.5, 0.5, 0.5],
        0.0,
        0.0,
        "Sigmoid",
    );
    assert_close(
        &run(UnaryOp::Tanh),
        &[f64::NAN, 1.0, -1.0, 0.0, 0.0, 1e-30],
        1e-6,
        0.0,
        "Tanh",
    );
    assert_close(
        &run(UnaryOp::Exp),
        &[f64::NAN, f64::INFINITY, 0.0, 1.0, 1.0, 1.0],
        0.0,
        0.0,
        "Exp",
    );
    assert_close(
        &run(UnaryOp::Relu),
        &[f64::NAN, f64::INFINITY, 0.0, 0.0, 0.0, 1e-30],
        1e-6,
        0.0,
        "Relu",
    );
    assert_close(
        &run(UnaryOp::Sign),
        &[f64::NAN, 1.0, -1.0, 0.0, 0.0, 1.0],
        0.0,
        0.0,
        "Sign",
    );
    assert_close(
        &run(UnaryOp::Erf),
        &[f64::NAN, 1.0, -1.0, 0.0, 0.0, 1.1283791670955126e-30],
        1e-6,
        0.0,
        "Erf",
    );
    let clamp = run(UnaryOp::Clamp { min: 0.0, max: 6.0 });
    assert_close(&clamp, &[f64::NAN, 6.0, 0.0, 0.0, 0.0, 1e-30], 1e-6, 0.0, "Clamp");
    let round = ew(
        &Op::Unary(UnaryOp::Round),
        &[var(tensor(DType::F32, &[4], &[0.5, 1.5, 2.5, -2.5]))],
        DType::F32,
        &[4],
    );
    assert_eq!(round, vec![0.0, 2.0, 2.0, -2.0]);
    // Softplus and Gelu keep relative accuracy far into their tails.
    let tail = tensor(DType::F32, &[3], &[-80.0, 80.0, -12.0]);
    let sp = ew(
        &Op::Unary(UnaryOp::Softplus),
        &[var(tail.clone())],
        DType::F32,
        &[3],
    );
    assert_close(
        &sp,
        &[(-80f64).exp(), 80.0, (-12f64).exp().ln_1p()],
        1e-5,
        0.0,
        "Softplus tails",
    );
    let g = ew(
        &Op::Unary(UnaryOp::Gelu { tanh_approx: false }),
        &[var(tail)],
        DType::F32,
        &[3],
    );
    let want_g =
        -12.0 * 0.5 * crate::backend::cpu::kernels::numeric::fmath::erfc_f64(12.0 / std::f64::consts::SQRT_2);
    assert_close(&g, &[-0.0, 80.0, want_g], 1e-5, 0.0, "Gelu tails");
}

#[test]
fn integer_unary_ops_on_every_integer_dtype() {
    let v: [f64; 7] = [-128.0, -7.0, -1.0, 0.0, 1.0, 5.0, 127.0];
    for dtype in [
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
    ] {
        let signed = matches!(dtype, DType::I8 | DType::I16 | DType::I32 | DType::I64);
        let vals: Vec<f64> = v.iter().map(|&x| if signed { x } else { x.abs() }).collect();
        let x = tensor(dtype, &[7], &vals);
        let xs = values(&x);
        let run = |op: UnaryOp| ew(&Op::Unary(op), &[var(x.clone())], dtype, &[7]);
        assert_eq!(
            run(UnaryOp::Relu),
            xs.iter().map(|&v| v.max(0.0)).collect::<Vec<_>>(),
            "{dtype}"
        );
        assert_eq!(
            run(UnaryOp::Sign),
            xs.iter()
                .map(|&v| v.signum() * (v != 0.0) as u8 as f64)
                .collect::<Vec<_>>()
        );
        let abs: Vec<f64> = xs
            .iter()
            .map(|&v| {
                if dtype == DType::I8 && v == -128.0 {
                    -128.0
                } else {
                    v.abs()
                }
            })
            .collect();
        assert_eq!(run(UnaryOp::Abs), abs, "{dtype} Abs wraps like numpy");
        if signed {
            let neg: Vec<f64> = xs
                .iter()
                .map(|&v| {
                    if dtype == DType::I8 && v == -128.0 {
                        -128.0
                    } else {
                        -v
                    }
                })
                .collect();
            assert_eq!(run(UnaryOp::Neg), neg, "{dtype}");
        }
        assert!(crate::backend::cpu::kernels::numeric::testing::run(
            super::prepare,
            &Op::Unary(UnaryOp::Exp),
            &[var(x.clone())],
            &[(dtype, vec![7])]
        )
        .is_err());
    }
}

#[test]
fn not_on_bool() {
    let x = tensor(DType::Bool, &[2, 2], &[1.0, 0.0, 0.0, 1.0]);
    assert_eq!(
        ew(&Op::Unary(UnaryOp::Not), &[var(x)], DType::Bool, &[2, 2]),
        vec![0.0, 1.0, 1.0, 0.0]
    );
}
