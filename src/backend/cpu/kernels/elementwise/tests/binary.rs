use super::ew;
use crate::backend::cpu::kernels::broadcast::broadcast_shape;
use crate::backend::cpu::kernels::numeric::testing::{
    assert_close, konst, ravel_broadcast, run, tensor, unravel, values, var, Rng,
};
use crate::ir::ops::{BinaryOp, Op};
use crate::tensor::{DType, Tensor};

/// numpy-style broadcast of `f` over two tensors' values, in f64.
fn reference(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> (Vec<usize>, Vec<f64>) {
    let shape = broadcast_shape(&[a.shape(), b.shape()]).expect("broadcastable");
    let (av, bv) = (values(a), values(b));
    let n = shape.iter().product();
    let out = (0..n)
        .map(|i| {
            let idx = unravel(i, &shape);
            f(
                av[ravel_broadcast(&idx, a.shape())],
                bv[ravel_broadcast(&idx, b.shape())],
            )
        })
        .collect();
    (shape, out)
}

fn patterns(rng: &mut Rng) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut p: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![2, 3, 4, 5], vec![2, 3, 4, 5]),
        (vec![2, 3, 4, 5], vec![2, 3, 1, 1]),
        (vec![2, 3, 4, 5], vec![3, 1, 1]),
        (vec![3, 1], vec![1, 4]),
        (vec![], vec![3, 4]),
        (vec![3, 4], vec![]),
        (vec![1], vec![5, 1, 3]),
        (vec![2, 1, 3, 1], vec![1, 4, 1, 5]),
        (vec![7], vec![7]),
        (vec![2, 0, 3], vec![1, 3]),
        // Large enough to be split across threads.
        (vec![4, 64, 32, 33], vec![4, 64, 32, 33]),
        (vec![4, 64, 32, 33], vec![1, 64, 1, 1]),
        (vec![4, 64, 32, 33], vec![]),
        (vec![64, 1, 33], vec![4, 64, 32, 1]),
    ];
    for _ in 0..6 {
        let rank = 1 + rng.below(4);
        let out = rng.shape(rank, 5);
        let squash = |rng: &mut Rng| -> Vec<usize> {
            let keep = rng.below(rank + 1);
            out[rank - keep..]
                .iter()
                .map(|&d| if rng.below(2) == 0 { 1 } else { d })
                .collect()
        };
        p.push((squash(rng), squash(rng)));
    }
    p
}

#[test]
fn float_arithmetic_broadcasts_like_numpy() {
    let mut rng = Rng::new(10);
    type F = fn(f64, f64) -> f64;
    let ops: [(BinaryOp, F); 9] = [
        (BinaryOp::Add, |a, b| a + b),
        (BinaryOp::Sub, |a, b| a - b),
        (BinaryOp::Mul, |a, b| a * b),
        (BinaryOp::Div, |a, b| a / b),
        (BinaryOp::Max, f64::max),
        (BinaryOp::Min, f64::min),
        (BinaryOp::Pow, |a, b| a.abs().powf(b)),
        (BinaryOp::Mod { fmod: true }, |a, b| a % b),
        (BinaryOp::PRelu, |x, s| if x < 0.0 { x * s } else { x }),
    ];
    for (sa, sb) in patterns(&mut rng) {
        for &(op, f) in &ops {
            for (dtype, rtol) in [(DType::F32, 1e-6), (DType::F64, 1e-12), (DType::F16, 2e-3)] {
                if dtype == DType::F16 && sa.iter().product::<usize>() > 10_000 {
                    continue;
                }
                let na: usize = sa.iter().product();
                let nb: usize = sb.iter().product();
                let mut av = rng.floats(na, -4.0, 4.0);
                if op == BinaryOp::Pow {
                    av.iter_mut().for_each(|v| *v = v.abs());
                }
                let bv: Vec<f64> = rng
                    .floats(nb, -4.0, 4.0)
                    .iter()
                    .map(|v| if v.abs() < 0.1 { 0.5 } else { *v })
                    .collect();
                let (a, b) = (tensor(dtype, &sa, &av), tensor(dtype, &sb, &bv));
                let (shape, want) = reference(&a, &b, f);
                let want = values(&tensor(dtype, &shape, &want));
                let got = ew(&Op::Binary(op), &[var(a), var(b)], dtype, &shape);
                assert_close(&got, &want, rtol, 1e-6, &format!("{op:?} {dtype} {sa:?} {sb:?}"));
            }
        }
    }
}

/// Wraps an exact integer result into `dtype` like two's-complement hardware.
fn wrap(dtype: DType, v: i128) -> f64 {
    let bits = dtype.size() as u32 * 8;
    let m = 1i128 << bits;
    let r = v.rem_euclid(m);
    let signed = matches!(dtype, DType::I8 | DType::I16 | DType::I32 | DType::I64);
    (if signed && r >= m / 2 { r - m } else { r }) as f64
}

#[test]
fn integer_arithmetic_wraps_and_never_traps() {
    let mut rng = Rng::new(11);
    type F = fn(i128, i128) -> i128;
    let ops: [(BinaryOp, F); 10] = [
        (BinaryOp::Add, |a, b| a + b),
        (BinaryOp::Sub, |a, b| a - b),
        (BinaryOp::Mul, |a, b| a * b),
        (BinaryOp::Div, |a, b| if b == 0 { 0 } else { a / b }),
        (BinaryOp::Max, |a, b| a.max(b)),
        (BinaryOp::Min, |a, b| a.min(b)),
        (
            BinaryOp::Mod { fmod: true },
            |a, b| if b == 0 { 0 } else { a % b },
        ),
        (BinaryOp::Mod { fmod: false }, |a, b| {
            if b == 0 {
                0
            } else {
                a.rem_euclid(b) + if b < 0 && a.rem_euclid(b) != 0 { b } else { 0 }
            }
        }),
        (BinaryOp::Pow, |a, b| a.pow(b as u32)),
        (BinaryOp::PRelu, |x, s| if x < 0 { x * s } else { x }),
    ];
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
        for &(op, f) in &ops {
            let (sa, sb) = (vec![5, 1, 6], vec![4, 1]);
            let lo = if signed { -30.0 } else { 0.0 };
            let gen = |rng: &mut Rng, n: usize, lo: f64, hi: f64| -> Vec<f64> {
                (0..n).map(|_| rng.uniform(lo, hi).floor()).collect()
            };
            let av = gen(&mut rng, 30, lo, 30.0);
            let bv = if op == BinaryOp::Pow {
                gen(&mut rng, 4, 0.0, 6.0)
            } else {
                gen(&mut rng, 4, lo, 30.0)
            };
            let mut bv = bv;
            bv[0] = 0.0; // division and remainder by zero
            let (a, b) = (tensor(dtype, &sa, &av), tensor(dtype, &sb, &bv));
            let (shape, want) = reference(&a, &b, |x, y| wrap(dtype, f(x as i128, y as i128)));
            let got = ew(&Op::Binary(op), &[var(a), var(b)], dtype, &shape);
            assert_eq!(got, want, "{op:?} {dtype}");
        }
    }
    // The one overflowing division: MIN / -1 wraps instead of trapping.
    let a = tensor(DType::I32, &[2], &[i32::MIN as f64, 7.0]);
    let b = tensor(DType::I32, &[2], &[-1.0, -2.0]);
    let got = ew(
        &Op::Binary(BinaryOp::Div),
        &[var(a.clone()), var(b.clone())],
        DType::I32,
        &[2],
    );
    assert_eq!(got, vec![i32::MIN as f64, -3.0]);
    let got = ew(
        &Op::Binary(BinaryOp::Mod { fmod: false }),
        &[var(a), var(b)],
        DType::I32,
        &[2],
    );
    assert_eq!(got, vec![0.0, -1.0]);
}

#[test]
fn float_mod_follows_the_sign_rules() {
    let a = tensor(DType::F32, &[4], &[5.5, -5.5, 5.5, -5.5]);
    let b = tensor(DType::F32, &[4], &[2.0, 2.0, -2.0, -2.0]);
    let fmod = ew(
        &Op::Binary(BinaryOp::Mod { fmod: true }),
        &[var(a.clone()), var(b.clone())],
        DType::F32,
        &[4],
    );
    assert_eq!(fmod, vec![1.5, -1.5, 1.5, -1.5]);
    let pymod = ew(
        &Op::Binary(BinaryOp::Mod { fmod: false }),
        &[var(a), var(b)],
        DType::F32,
        &[4],
    );
    assert_eq!(pymod, vec![1.5, 0.5, -0.5, -1.5]);
}

#[test]
fn comparisons_produce_bool_for_every_dtype() {
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
    ];
    type F = fn(f64, f64) -> bool;
    let ops: [(BinaryOp, F); 5] = [
        (BinaryOp::Equal, |a, b| a == b),
        (BinaryOp::Less, |a, b| a < b),
        (BinaryOp::LessOrEqual, |a, b| a <= b),
        (BinaryOp::Greater, |a, b| a > b),
        (BinaryOp::GreaterOrEqual, |a, b| a >= b),
    ];
    for dtype in all {
        let a = tensor(dtype, &[3, 1], &[1.0, 2.0, 3.0]);
        let b = tensor(dtype, &[1, 4], &[0.0, 2.0, 3.0, 9.0]);
        for (op, f) in ops {
            let (shape, want) = reference(&a, &b, |x, y| f(x, y) as u8 as f64);
            let got = ew(
                &Op::Binary(op),
                &[var(a.clone()), var(b.clone())],
                DType::Bool,
                &shape,
            );
            assert_eq!(got, want, "{op:?} {dtype}");
        }
    }
    let nan = tensor(DType::F32, &[2], &[f64::NAN, 1.0]);
    let got = ew(
        &Op::Binary(BinaryOp::Equal),
        &[var(nan.clone()), var(nan)],
        DType::Bool,
        &[2],
    );
    assert_eq!(got, vec![0.0, 1.0]);
}

#[test]
fn logic_ops_on_bool() {
    let a = tensor(DType::Bool, &[2, 1], &[0.0, 1.0]);
    let b = tensor(DType::Bool, &[2], &[0.0, 1.0]);
    let run = |op| {
        ew(
            &Op::Binary(op),
            &[var(a.clone()), var(b.clone())],
            DType::Bool,
            &[2, 2],
        )
    };
    assert_eq!(run(BinaryOp::And), vec![0.0, 0.0, 0.0, 1.0]);
    assert_eq!(run(BinaryOp::Or), vec![0.0, 1.0, 1.0, 1.0]);
    assert_eq!(run(BinaryOp::Xor), vec![0.0, 1.0, 1.0, 0.0]);
    assert_eq!(run(BinaryOp::Equal), vec![1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn bit_shifts_on_unsigned() {
    for dtype in [DType::U8, DType::U16, DType::U32, DType::U64] {
        let bits = dtype.size() as f64 * 8.0;
        let a = tensor(dtype, &[4], &[1.0, 16.0, 255.0, 3.0]);
        let b = tensor(dtype, &[4], &[1.0, 2.0, bits, bits - 1.0]);
        let left = ew(
            &Op::Binary(BinaryOp::BitShiftLeft),
            &[var(a.clone()), var(b.clone())],
            dtype,
            &[4],
        );
        let top = 2f64.powf(bits - 1.0);
        assert_eq!(left, vec![2.0, 64.0, 0.0, top], "{dtype}");
        let right = ew(
            &Op::Binary(BinaryOp::BitShiftRight),
            &[var(a), var(b)],
            dtype,
            &[4],
        );
        assert_eq!(right, vec![0.0, 4.0, 0.0, 0.0], "{dtype}");
    }
}

#[test]
fn signed_bit_shifts_follow_opset_28() {
    // The cases of onnx's own node tests: overflow wraps, out-of-range shifts empty out.
    /// dtype, values, shift amounts, left?, expected.
    type Case = (DType, [f64; 3], [f64; 3], bool, [f64; 3]);
    let cases: [Case; 6] = [
        (
            DType::I8,
            [64.0, 1.0, -64.0],
            [1.0, 7.0, 1.0],
            true,
            [-128.0, -128.0, -128.0],
        ),
        (
            DType::I8,
            [-8.0, 4.0, -1.0],
            [-1.0, -8.0, 127.0],
            true,
            [0.0, 0.0, 0.0],
        ),
        (
            DType::I8,
            [-8.0, 4.0, -1.0],
            [-1.0, -8.0, 8.0],
            false,
            [-1.0, 0.0, -1.0],
        ),
        (
            DType::I8,
            [-8.0, -1.0, -128.0],
            [1.0, 1.0, 1.0],
            false,
            [-4.0, -1.0, -64.0],
        ),
        (
            DType::I32,
            [-8.0, 4.0, -1.0],
            [32.0, 33.0, 100.0],
            false,
            [-1.0, 0.0, -1.0],
        ),
        (
            DType::I64,
            [16.0, 4.0, 1.0],
            [1.0, 2.0, 3.0],
            true,
            [32.0, 16.0, 8.0],
        ),
    ];
    for (dtype, x, s, left, want) in cases {
        let op = Op::Binary(if left {
            BinaryOp::BitShiftLeft
        } else {
            BinaryOp::BitShiftRight
        });
        let got = ew(
            &op,
            &[var(tensor(dtype, &[3], &x)), var(tensor(dtype, &[3], &s))],
            dtype,
            &[3],
        );
        assert_eq!(got, want, "{op:?} {dtype} {x:?} by {s:?}");
    }
}

#[test]
fn pow_with_mixed_and_constant_exponents() {
    let x = tensor(DType::F32, &[2, 3], &[1.0, 2.0, 3.0, -2.0, 0.5, 4.0]);
    let xv = values(&x);
    for e in [2.0, 3.0, 0.5, 1.0, -1.5] {
        for dtype in [DType::F32, DType::F16, DType::F64] {
            let exp = tensor(dtype, &[], &[e]);
            let xd = tensor(dtype, &[2, 3], &xv);
            let want = values(&tensor(
                dtype,
                &[2, 3],
                &xv.iter().map(|v| v.powf(e)).collect::<Vec<_>>(),
            ));
            let got = ew(&Op::Binary(BinaryOp::Pow), &[var(xd), konst(exp)], dtype, &[2, 3]);
            assert_close(&got, &want, 1e-3, 0.0, &format!("x ** {e} ({dtype})"));
        }
    }
    // Mixed dtypes: the output has the base's dtype.
    for edtype in [
        DType::I32,
        DType::I64,
        DType::U32,
        DType::U64,
        DType::F64,
        DType::I8,
    ] {
        let e = tensor(edtype, &[3], &[2.0, 3.0, 1.0]);
        let got = ew(
            &Op::Binary(BinaryOp::Pow),
            &[var(x.clone()), var(e)],
            DType::F32,
            &[2, 3],
        );
        assert_eq!(got, vec![1.0, 8.0, 3.0, 4.0, 0.125, 4.0], "f32 ** {edtype}");
    }
    let xi = tensor(DType::I32, &[3], &[1.0, 2.0, 3.0]);
    let ef = tensor(DType::F32, &[3], &[4.0, 5.0, 6.0]);
    assert_eq!(
        ew(
            &Op::Binary(BinaryOp::Pow),
            &[var(xi.clone()), var(ef)],
            DType::I32,
            &[3]
        ),
        vec![1.0, 32.0, 729.0]
    );
    let ei = tensor(DType::I64, &[3], &[-1.0, -1.0, 40.0]);
    // Negative integer powers truncate; large ones wrap.
    let got = ew(&Op::Binary(BinaryOp::Pow), &[var(xi), var(ei)], DType::I32, &[3]);
    assert_eq!(got, vec![1.0, 0.0, wrap(DType::I32, 3i128.pow(40))]);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let f = tensor(DType::F32, &[3], &[1.0, 2.0, 3.0]);
    let i = tensor(DType::I32, &[3], &[1.0, 2.0, 3.0]);
    let g = tensor(DType::F32, &[4], &[1.0, 2.0, 3.0, 4.0]);
    let add = Op::Binary(BinaryOp::Add);
    let p = super::super::prepare;
    assert!(run(p, &add, &[var(f.clone()), var(i)], &[(DType::F32, vec![3])]).is_err());
    assert!(run(
        p,
        &add,
        &[var(f.clone()), var(g.clone())],
        &[(DType::F32, vec![4])]
    )
    .is_err());
    assert!(run(p, &add, &[var(f.clone())], &[(DType::F32, vec![3])]).is_err());
    let b = tensor(DType::Bool, &[3], &[1.0, 0.0, 1.0]);
    assert!(run(p, &add, &[var(b.clone()), var(b)], &[(DType::Bool, vec![3])]).is_err());
    assert!(run(
        p,
        &Op::Binary(BinaryOp::BitShiftLeft),
        &[var(f.clone()), var(f.clone())],
        &[(DType::F32, vec![3])]
    )
    .is_err());
    // Prepared for [3] + [3], run with a [4] buffer: an error, not an out-of-bounds read.
    use crate::backend::cpu::kernel::{InputDesc, OutputDesc};
    let d = InputDesc {
        dtype: DType::F32,
        shape: &[3],
        value: None,
        layout: Default::default(),
    };
    let k = p(
        &add,
        &[Some(d), Some(d)],
        &[OutputDesc {
            dtype: DType::F32,
            shape: vec![3],
            layout: Default::default(),
        }],
    )
    .unwrap();
    let mut out = crate::tensor::Data::zeros(DType::F32, 3);
    let mut outs = [crate::tensor::ViewMut {
        shape: &[3],
        data: out.slice_mut(),
    }];
    assert!(k.run(&[Some(f.view()), Some(g.view())], &mut outs).is_err());
}
