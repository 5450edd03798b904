//! GEMM core tests: SIMD vs portable micro-kernel vs a naive f64 triple loop, on
//! ragged shapes, every operand layout, prepacked operands, epilogues and the
//! parallel split; plus the Gemm and MatMul op kernels.

use super::driver::gemm_with;
use super::micro::Isa;
use super::*;
use crate::backend::cpu::kernels::compute_tests::{assert_close, best_seconds, run_op, Rng};
use crate::ir::ops::Gemm;
use crate::tensor::{DType, Tensor};

/// A random `rows x cols` operand stored row-major (rows `ld` apart) or
/// column-major.
struct Operand {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    ld: usize,
    col_major: bool,
}

impl Operand {
    fn random(rng: &mut Rng, rows: usize, cols: usize) -> Operand {
        Operand {
            data: rng.vec(rows * cols),
            rows,
            cols,
            ld: cols,
            col_major: rng.range(0, 2) == 0,
        }
    }

    /// Row-major, `pad` unused floats after each row (a view into a wider matrix).
    fn padded(rng: &mut Rng, rows: usize, cols: usize, pad: usize) -> Operand {
        let ld = cols + pad;
        Operand {
            data: rng.vec(rows * ld),
            rows,
            cols,
            ld,
            col_major: false,
        }
    }

    fn view(&self) -> MatRef<'_> {
        if self.col_major {
            MatRef::new(&self.data, self.rows, self.cols, 1, self.rows).unwrap()
        } else {
            MatRef::new(&self.data, self.rows, self.cols, self.ld, 1).unwrap()
        }
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        let idx = if self.col_major {
            j * self.rows + i
        } else {
            i * self.ld + j
        };
        self.data[idx] as f64
    }
}

fn activate(act: Activation, x: f64) -> f64 {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Clamp { min, max } => x.max(min as f64).min(max as f64),
        Activation::LeakyRelu { alpha } => {
            if x >= 0.0 {
                x
            } else {
                x * alpha as f64
            }
        }
        Activation::Sigmoid => sigmoid(x),
        Activation::HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Activation::Silu => x * sigmoid(x),
    }
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    ldc: usize,
    alpha: f32,
    beta: f32,
    a: Operand,
    b: Operand,
    c0: Vec<f32>,
    row_bias: Option<Vec<f32>>,
    col_bias: Option<Vec<f32>>,
    residual: Option<Vec<f32>>,
    act: Activation,
}

impl Case {
    fn random(rng: &mut Rng, m: usize, n: usize, k: usize) -> Case {
        let ldc = n + rng.range(0, 3);
        let mut c0 = rng.vec(m * ldc);
        let beta = rng.pick(&[0.0, 1.0, 0.5]);
        if beta == 0.0 {
            // C must not be read when beta is 0.
            c0.iter_mut().for_each(|x| *x = f32::NAN);
        }
        let maybe = |rng: &mut Rng, len: usize| (rng.range(0, 1) == 1).then(|| rng.vec(len));
        Case {
            m,
            n,
            k,
            ldc,
            alpha: rng.pick(&[1.0, -0.75]),
            beta,
            a: Operand::random(rng, m, k),
            b: Operand::random(rng, k, n),
            c0,
            row_bias: maybe(rng, m),
            col_bias: maybe(rng, n),
            residual: maybe(rng, m * n),
            act: rng.pick(&[
                Activation::None,
                Activation::Relu,
                Activation::Clamp { min: -0.5, max: 0.75 },
                Activation::LeakyRelu { alpha: 0.1 },
                Activation::Sigmoid,
                Activation::HardSigmoid {
                    alpha: 0.2,
                    beta: 0.5,
                },
                Activation::HardSwish,
                Activation::Silu,
            ]),
        }
    }

    fn epilogue(&self) -> Epilogue<'_> {
        Epilogue {
            row_bias: self.row_bias.as_deref(),
            col_bias: self.col_bias.as_deref(),
            residual: self
                .residual
                .as_deref()
                .map(|r| MatRef::row_major(r, self.m, self.n).unwrap()),
            activation: self.act,
        }
    }

    /// Naive f64 reference, and the scale of each element's terms for the tolerance.
    fn reference(&self) -> (Vec<f64>, Vec<f64>) {
        let (mut want, mut scale) = (vec![f64::NAN; self.m * self.ldc], vec![0.0; self.m * self.ldc]);
        for i in 0..self.m {
            for j in 0..self.n {
                let (mut dot, mut mag) = (0.0, 0.0);
                for p in 0..self.k {
                    dot += self.a.at(i, p) * self.b.at(p, j);
                    mag += (self.a.at(i, p) * self.b.at(p, j)).abs();
                }
                let mut v = self.alpha as f64 * dot;
                if self.beta != 0.0 {
                    v += self.beta as f64 * self.c0[i * self.ldc + j] as f64;
                }
                v += self.row_bias.as_ref().map_or(0.0, |b| b[i] as f64);
                v += self.col_bias.as_ref().map_or(0.0, |b| b[j] as f64);
                v += self.residual.as_ref().map_or(0.0, |r| r[i * self.n + j] as f64);
                want[i * self.ldc + j] = activate(self.act, v);
                scale[i * self.ldc + j] = mag + 1.0;
            }
        }
        (want, scale)
    }

    fn run(&self, isa: Isa, prepack_a: bool, prepack_b: bool, parallel: bool) -> Vec<f32> {
        let pa = prepack_a.then(|| PackedA::new(self.a.view()));
        let pb = prepack_b.then(|| PackedB::new(self.b.view()));
        let a = pa
            .as_ref()
            .map_or(LhsSource::Mat(self.a.view()), LhsSource::Packed);
        let b = pb
            .as_ref()
            .map_or(RhsSource::Mat(self.b.view()), RhsSource::Packed);
        let mut c = self.c0.clone();
        gemm_with(
            isa,
            a,
            b,
            &mut c,
            self.ldc,
            self.alpha,
            self.beta,
            &self.epilogue(),
            parallel,
        )
        .unwrap();
        c
    }
}

fn check(got: &[f32], want: &[f64], scale: &[f64], ldc: usize, n: usize, what: &str) {
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        if i % ldc >= n {
            continue; // padding between rows is not part of the output
        }
        assert!(
            (g as f64 - w).abs() <= 1e-5 * s,
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

const SIZES: &[usize] = &[1, 2, 5, 6, 7, 13, 16, 17, 31, 33, 64, 100];

#[test]
fn simd_and_generic_match_the_naive_product_on_ragged_shapes() {
    let mut rng = Rng::new(1);
    let isas = Isa::supported();
    // Under Miri (which checks the unsafe SIMD pointer walks) a few small shapes,
    // still crossing tile edges, are all it can afford.
    let (trials, sizes) = if cfg!(miri) {
        (4, &SIZES[..8])
    } else {
        (300, SIZES)
    };
    for trial in 0..trials {
        let (m, n, k) = (rng.pick(sizes), rng.pick(sizes), rng.pick(sizes));
        let case = Case::random(&mut rng, m, n, k);
        let (want, scale) = case.reference();
        let (pa, pb) = (rng.range(0, 1) == 1, rng.range(0, 1) == 1);
        for &isa in &isas {
            let got = case.run(isa, pa, pb, false);
            check(
                &got,
                &want,
                &scale,
                case.ldc,
                n,
                &format!("trial {trial} {isa:?} {m}x{n}x{k} pa={pa} pb={pb}"),
            );
        }
    }
}

#[test]
fn blocking_edges_and_parallel_split_are_exact() {
    // Sizes straddling MC, KC and NC, run split across threads and prepacked.
    let mut rng = Rng::new(2);
    let shapes = [
        (MC + 7, 40, KC + 3),
        (13, NC + 21, 9),
        (2 * MC + 1, 3 * 16 + 5, 2 * KC),
        (300, 200, 1),
        (7, 500, KC - 1),
        (1, 1000, 300),
        (1000, 1, 300),
    ];
    for (m, n, k) in shapes {
        let case = Case::random(&mut rng, m, n, k);
        let (want, scale) = case.reference();
        for (pa, pb, par) in [
            (false, false, true),
            (true, true, true),
            (true, false, false),
            (false, true, true),
        ] {
            for isa in Isa::supported() {
                let got = case.run(isa, pa, pb, par);
                check(
                    &got,
                    &want,
                    &scale,
                    case.ldc,
                    n,
                    &format!("{isa:?} {m}x{n}x{k} pa={pa} pb={pb} par={par}"),
                );
            }
        }
    }
}

#[test]
fn right_operand_read_in_place_is_exact() {
    // Few rows of A, row-major B: the AVX-512 driver reads B's whole 32-column
    // pairs where they lie (rows `ld` apart) and packs the columns left over. Shapes
    // cross the pairs' edge, NC and KC; beta 0 and 1 both store tiles directly.
    let mut rng = Rng::new(5);
    let shapes = [
        (1, 32, 1),
        (5, 33, 16),
        (6, 64 + 31, 7),
        (13, NC + 40, 24),
        (16, 2 * NC, KC + 5),
        (64, 3 * 32 + 1, 144),
        (40, 31, 9),
    ];
    for (m, n, k) in shapes {
        for beta in [0.0, 1.0] {
            let mut case = Case::random(&mut rng, m, n, k);
            case.b = Operand::padded(&mut rng, k, n, 7);
            case.alpha = 1.0;
            case.beta = beta;
            case.c0 = rng.vec(m * case.ldc);
            if beta == 0.0 {
                // C must not be read when beta is 0.
                case.c0.iter_mut().for_each(|x| *x = f32::NAN);
            }
            let (want, scale) = case.reference();
            for isa in Isa::supported() {
                for par in [false, true] {
                    let got = case.run(isa, rng.range(0, 1) == 1, false, par);
                    let what = format!("{isa:?} {m}x{n}x{k} beta={beta} par={par}");
                    check(&got, &want, &scale, case.ldc, n, &what);
                }
            }
        }
    }
}

#[test]
fn left_operand_read_in_place_is_exact() {
    // A row-major A (a channels-last image) with every tile 6x32 (`n` a multiple
    // of 32): the AVX-512 driver reads its rows where they lie. Shapes cross MR,
    // MC and KC; some have few enough rows for B to be read in place too, and 33
    // columns fall back to packing. Beta 0 and 1 both store tiles directly.
    let mut rng = Rng::new(8);
    let shapes = [
        (1, 32, 1),
        (5, 64, 16),
        (49, 96, 576),
        (MC + 7, 32, KC + 9),
        (196, 2 * NC, 40),
        (30, 33, 20),
    ];
    for (m, n, k) in shapes {
        for beta in [0.0, 1.0] {
            let mut case = Case::random(&mut rng, m, n, k);
            case.a = Operand::padded(&mut rng, m, k, 3);
            if rng.range(0, 1) == 1 {
                case.b = Operand::padded(&mut rng, k, n, 5);
            }
            case.alpha = 1.0;
            case.beta = beta;
            case.c0 = rng.vec(m * case.ldc);
            if beta == 0.0 {
                // C must not be read when beta is 0.
                case.c0.iter_mut().for_each(|x| *x = f32::NAN);
            }
            let (want, scale) = case.reference();
            for isa in Isa::supported() {
                for par in [false, true] {
                    let got = case.run(isa, false, rng.range(0, 1) == 1, par);
                    let what = format!("{isa:?} {m}x{n}x{k} beta={beta} par={par}");
                    check(&got, &want, &scale, case.ldc, n, &what);
                }
            }
        }
    }
}

#[test]
fn empty_inner_dimension_gives_beta_c_plus_epilogue() {
    let mut rng = Rng::new(3);
    for beta in [0.0, 1.0, 0.5] {
        let mut case = Case::random(&mut rng, 9, 20, 0);
        case.beta = beta;
        if beta != 0.0 {
            case.c0 = rng.vec(case.m * case.ldc);
        }
        let (want, scale) = case.reference();
        check(
            &case.run(Isa::detect(), false, false, true),
            &want,
            &scale,
            case.ldc,
            20,
            "k = 0",
        );
    }
}

#[test]
fn bad_dimensions_are_errors() {
    let a = vec![0.0; 6];
    let b = vec![0.0; 6];
    let mut c = vec![0.0; 4];
    let none = Epilogue::default();
    let lhs = LhsSource::Mat(MatRef::row_major(&a, 2, 3).unwrap());
    let rhs = RhsSource::Mat(MatRef::row_major(&b, 2, 3).unwrap());
    assert!(gemm(lhs, rhs, &mut c, 3, 1.0, 0.0, &none, false).is_err());
    let rhs = RhsSource::Mat(MatRef::row_major(&b, 3, 2).unwrap());
    assert!(gemm(lhs, rhs, &mut c[..3], 2, 1.0, 0.0, &none, false).is_err());
    assert!(MatRef::row_major(&a, 4, 2).is_err());
    let short = [1.0];
    let bad = Epilogue {
        row_bias: Some(&short),
        ..Epilogue::default()
    };
    assert!(gemm(lhs, rhs, &mut c, 2, 1.0, 0.0, &bad, false).is_err());
}

fn naive_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
        }
    }
    out
}

fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols * rows)
        .map(|idx| x[(idx % rows) * cols + idx / rows])
        .collect()
}

#[test]
fn gemm_op_handles_transposes_and_every_c_broadcast() {
    let mut rng = Rng::new(4);
    for trial in 0..60 {
        let (m, n, k) = (rng.range(1, 40), rng.range(1, 40), rng.range(1, 40));
        let g = Gemm {
            alpha: rng.pick(&[1.0, 0.5]),
            beta: rng.pick(&[1.0, -2.0]),
            trans_a: rng.range(0, 1) == 1,
            trans_b: rng.range(0, 1) == 1,
        };
        let (a, b) = (rng.vec(m * k), rng.vec(k * n));
        let a_stored = if g.trans_a { transpose(&a, m, k) } else { a.clone() };
        let b_stored = if g.trans_b { transpose(&b, k, n) } else { b.clone() };
        let a_t = Tensor::from_vec(if g.trans_a { vec![k, m] } else { vec![m, k] }, a_stored).unwrap();
        let b_t = Tensor::from_vec(if g.trans_b { vec![n, k] } else { vec![k, n] }, b_stored).unwrap();
        let shapes = [
            vec![],
            vec![1],
            vec![n],
            vec![1, n],
            vec![m, 1],
            vec![m, n],
            vec![1, 1],
        ];
        let c_shape = shapes[rng.range(0, shapes.len() - 1)].clone();
        let c = rng.tensor(&c_shape);
        let with_c = rng.range(0, 3) > 0;
        let consts = [rng.range(0, 1) == 1, rng.range(0, 1) == 1, rng.range(0, 1) == 1];
        let inputs = [Some(a_t), Some(b_t), with_c.then(|| c.clone())];
        let out = run_op(
            prepare,
            &Op::Gemm(g),
            &inputs,
            &consts,
            &[(DType::F32, vec![m, n])],
        )
        .unwrap();
        let mut want = naive_matmul(&a, &b, m, k, n);
        let cv = c.as_slice::<f32>().unwrap();
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] *= g.alpha as f64;
                if with_c {
                    let (ci, cj) = match c_shape.len() {
                        0 => (0, 0),
                        1 => (0, if c_shape[0] == 1 { 0 } else { j }),
                        _ => (
                            if c_shape[0] == 1 { 0 } else { i },
                            if c_shape[1] == 1 { 0 } else { j },
                        ),
                    };
                    let cols = c_shape.last().copied().unwrap_or(1);
                    want[i * n + j] += g.beta as f64 * cv[ci * cols + cj] as f64;
                }
            }
        }
        assert_close(
            out[0].as_slice::<f32>().unwrap(),
            &want,
            1e-4,
            &format!("gemm op trial {trial} {g:?} c {c_shape:?}"),
        );
    }
}

fn broadcast_dims(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    let get = |s: &[usize], i: usize| {
        if i + s.len() < rank {
            1
        } else {
            s[i + s.len() - rank]
        }
    };
    (0..rank).map(|i| get(a, i).max(get(b, i))).collect()
}

/// Which of an operand's batch matrices output batch `bi` uses (numpy broadcasting).
fn operand_batch_index(out_batch: &[usize], mut bi: usize, batch: &[usize]) -> usize {
    let mut index = vec![0; out_batch.len()];
    for (axis, &d) in out_batch.iter().enumerate().rev() {
        index[axis] = bi % d;
        bi /= d;
    }
    let skip = out_batch.len() - batch.len();
    batch.iter().enumerate().fold(0, |acc, (i, &d)| {
        acc * d + if d == 1 { 0 } else { index[skip + i] }
    })
}

#[test]
fn matmul_op_broadcasts_batches_and_promotes_vectors() {
    let mut rng = Rng::new(5);
    // (a shape, b shape, output shape)
    let cases: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> = vec![
        (vec![3, 4], vec![4, 5], vec![3, 5]),
        (vec![4], vec![4, 5], vec![5]),
        (vec![3, 4], vec![4], vec![3]),
        (vec![4], vec![4], vec![]),
        (vec![2, 3, 7, 4], vec![4, 5], vec![2, 3, 7, 5]),
        (vec![2, 1, 7, 4], vec![3, 4, 5], vec![2, 3, 7, 5]),
        (vec![7, 4], vec![2, 4, 5], vec![2, 7, 5]),
        (vec![2, 7, 4], vec![1, 4, 5], vec![2, 7, 5]),
        (vec![5, 33, 70], vec![5, 70, 40], vec![5, 33, 40]),
        (vec![3, 0, 4], vec![3, 4, 2], vec![3, 0, 2]),
        (vec![2, 3, 0], vec![0, 6], vec![2, 3, 6]),
    ];
    for (sa, sb, so) in cases {
        for b_const in [false, true] {
            let (a, b) = (rng.tensor(&sa), rng.tensor(&sb));
            let out = run_op(
                prepare,
                &Op::MatMul,
                &[Some(a.clone()), Some(b.clone())],
                &[false, b_const],
                &[(DType::F32, so.clone())],
            )
            .unwrap();
            // Reference: explicit broadcast loop over batch indices.
            let (av, bv) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            let (m, k) = if sa.len() == 1 {
                (1, sa[0])
            } else {
                (sa[sa.len() - 2], sa[sa.len() - 1])
            };
            let n = if sb.len() == 1 { 1 } else { sb[sb.len() - 1] };
            let batch_of = |s: &[usize]| s[..s.len().saturating_sub(2)].to_vec();
            let out_batch = broadcast_dims(&batch_of(&sa), &batch_of(&sb));
            let mut want = Vec::new();
            for bi in 0..out_batch.iter().product::<usize>() {
                let ia = operand_batch_index(&out_batch, bi, &batch_of(&sa));
                let ib = operand_batch_index(&out_batch, bi, &batch_of(&sb));
                let am = &av[ia * m * k..(ia + 1) * m * k];
                let bm = &bv[ib * k * n..(ib + 1) * k * n];
                want.extend(naive_matmul(am, bm, m, k, n));
            }
            assert_close(
                out[0].as_slice::<f32>().unwrap(),
                &want,
                1e-4,
                &format!("matmul {sa:?} x {sb:?}"),
            );
        }
    }
}

#[test]
fn ops_reject_bad_shapes_and_dtypes() {
    let a = Tensor::from_vec(vec![2, 3], vec![0.0f32; 6]).unwrap();
    let b = Tensor::from_vec(vec![2, 3], vec![0.0f32; 6]).unwrap();
    let g = Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: false,
    });
    assert!(run_op(
        prepare,
        &g,
        &[Some(a.clone()), Some(b.clone())],
        &[],
        &[(DType::F32, vec![2, 3])]
    )
    .is_err());
    assert!(run_op(
        prepare,
        &Op::MatMul,
        &[Some(a.clone()), Some(b)],
        &[],
        &[(DType::F32, vec![2, 3])]
    )
    .is_err());
    let i = Tensor::from_vec(vec![3, 2], vec![0i64; 6]).unwrap();
    assert!(run_op(
        prepare,
        &Op::MatMul,
        &[Some(a), Some(i)],
        &[],
        &[(DType::F32, vec![2, 2])]
    )
    .is_err());
}

/// Single-thread GFLOP/s of the GEMM core. Run with
/// `cargo test --release gemm_gflops -- --ignored --nocapture`.
#[test]
#[ignore]
fn gemm_gflops() {
    let mut rng = Rng::new(6);
    for (m, n, k) in [
        (512, 512, 512),
        (256, 3136, 576),
        (64, 3136, 576),
        (512, 49, 4608),
        // ResNet-50's pointwise layers: 256->64 and 64->256 at 56x56, 256<->1024 at 14x14.
        (64, 3136, 256),
        (256, 3136, 64),
        (1024, 196, 256),
        (256, 196, 1024),
    ] {
        let (a, b) = (rng.vec(m * k), rng.vec(k * n));
        let mut c = vec![0.0; m * n];
        let lhs = MatRef::row_major(&a, m, k).unwrap();
        let packed = PackedA::new(lhs);
        let rhs = RhsSource::Mat(MatRef::row_major(&b, k, n).unwrap());
        let none = Epilogue::default();
        // Every micro-kernel this CPU has, interleaved run by run so that a change
        // in the machine's state (other tenants) affects each alike.
        let isas = Isa::supported();
        for (label, src, par) in [
            ("1 thread", LhsSource::Mat(lhs), false),
            ("1 thread, packed A", LhsSource::Packed(&packed), false),
            ("all threads, packed A", LhsSource::Packed(&packed), true),
        ] {
            let reps = (2e9 / (2.0 * (m * n * k) as f64)).ceil() as usize;
            let best = best_seconds(isas.len(), reps, |v| {
                gemm_with(isas[v], src, rhs, &mut c, n, 1.0, 0.0, &none, par).unwrap()
            });
            let rates = isas
                .iter()
                .zip(&best)
                .map(|(isa, s)| format!("{isa:?} {:.1}", 2.0 * (m * n * k) as f64 / s / 1e9));
            println!(
                "gemm {m}x{n}x{k} ({label}), GFLOP/s: {}",
                rates.collect::<Vec<_>>().join(", ")
            );
        }
    }
}

/// What a fused epilogue costs on a small-K GEMM (a stem or pointwise conv, where
/// the store is a large share of the work). Run with
/// `cargo test --release epilogue_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn epilogue_cost() {
    let mut rng = Rng::new(7);
    // A stem-like small-K product, a ResNet-50 stage-2 3x3 conv, and MobileNet V2's
    // pointwise expansions and projection at 112x112 and 56x56.
    for (m, n, k) in [
        (32, 12544, 32),
        (128, 784, 1152),
        (96, 12544, 16),
        (144, 3136, 24),
        (24, 3136, 144),
    ] {
        let (a, b, bias, res) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m), rng.vec(m * n));
        let mut c = vec![0.0; m * n];
        let packed = PackedA::new(MatRef::row_major(&a, m, k).unwrap());
        let rhs = RhsSource::Mat(MatRef::row_major(&b, k, n).unwrap());
        let residual = Some(MatRef::row_major(&res, m, n).unwrap());
        let with = |row_bias, residual, activation| Epilogue {
            row_bias,
            residual,
            activation,
            ..Epilogue::default()
        };
        let ways = [
            ("none", Epilogue::default()),
            ("bias+relu", with(Some(&bias), None, Activation::Relu)),
            (
                "bias+residual+relu",
                with(Some(&bias), residual, Activation::Relu),
            ),
            ("bias+silu", with(Some(&bias), None, Activation::Silu)),
        ];
        // The ways run in turn, best of many, so a noisy machine slows them alike.
        let best = best_seconds(ways.len(), 50, |way| {
            gemm(
                LhsSource::Packed(&packed),
                rhs,
                &mut c,
                n,
                1.0,
                0.0,
                &ways[way].1,
                false,
            )
            .unwrap()
        });
        for ((label, _), t) in ways.iter().zip(best) {
            println!("gemm {m}x{n}x{k} epilogue {label}: {:.3} ms", t * 1e3);
        }
    }
}

/// A convolution's GEMM both ways round: usual (`W [m, k] x cols [k, n]`, packed
/// weights on the left) against swapped (`cols^T x W^T`, packed weights on the
/// right), on ResNet's 7x7 and 14x14 im2col shapes. Interleaved, best of many. Run
/// with `cargo test --release swapped_vs_usual -- --ignored --nocapture`.
#[test]
#[ignore]
fn swapped_vs_usual_gflops() {
    let mut rng = Rng::new(6);
    for (m, n, k) in [
        (512, 49, 4608),
        (2048, 49, 1024),
        (512, 196, 2304),
        (256, 196, 2304),
    ] {
        let (w, cols) = (rng.vec(m * k), rng.vec(k * n));
        let mut c = vec![0.0; m * n];
        let packed_w = PackedA::new(MatRef::row_major(&w, m, k).unwrap());
        let packed_wt = PackedB::new(MatRef::row_major(&w, m, k).unwrap().t());
        let none = Epilogue::default();
        let cols = MatRef::row_major(&cols, k, n).unwrap();
        let (usual, swapped) = (
            (LhsSource::Packed(&packed_w), RhsSource::Mat(cols), n),
            (LhsSource::Mat(cols.t()), RhsSource::Packed(&packed_wt), m),
        );
        let reps = (4e9 / (2.0 * (m * n * k) as f64)).ceil() as usize;
        let best = best_seconds(2, reps, |way| {
            let (lhs, rhs, ldc) = if way == 0 { usual } else { swapped };
            gemm(lhs, rhs, &mut c, ldc, 1.0, 0.0, &none, false).unwrap()
        });
        let gflops = |t: f64| 2.0 * (m * n * k) as f64 / t / 1e9;
        println!(
            "{m}x{n}x{k}: usual {:.1}, swapped {:.1} GFLOP/s",
            gflops(best[0]),
            gflops(best[1])
        );
    }
}

/// What a residual costs a pointwise-shaped GEMM read as an epilogue term, against
/// accumulated onto the output (`beta = 1`: what an in-place convolution step
/// does, its output buffer already holding the residual), against no residual.
/// Interleaved, best of many. Run with
/// `cargo test --release residual_accumulate_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn residual_accumulate_cost() {
    let mut rng = Rng::new(7);
    // ResNet-50's residual 1x1 convolutions, stages 1 to 3.
    for (m, n, k) in [(256, 3136, 64), (512, 784, 128), (1024, 196, 256)] {
        let (a, b, bias, res) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m), rng.vec(m * n));
        let mut c = vec![0.0; m * n];
        let packed = PackedA::new(MatRef::row_major(&a, m, k).unwrap());
        let lhs = LhsSource::Packed(&packed);
        let rhs = RhsSource::Mat(MatRef::row_major(&b, k, n).unwrap());
        let with = |residual| Epilogue {
            row_bias: Some(&bias),
            residual,
            activation: Activation::Relu,
            ..Epilogue::default()
        };
        let (read, accumulated) = (with(Some(MatRef::row_major(&res, m, n).unwrap())), with(None));
        let reps = (3e9 / (2.0 * (m * n * k) as f64)).ceil() as usize;
        // The ways run in turn, so every accumulating run (1) starts from the output
        // the run before it (0) wrote: the values cannot grow run after run.
        let best = best_seconds(3, reps, |way| match way {
            0 => gemm(lhs, rhs, &mut c, n, 1.0, 0.0, &read, false).unwrap(),
            1 => gemm(lhs, rhs, &mut c, n, 1.0, 1.0, &accumulated, false).unwrap(),
            _ => gemm(lhs, rhs, &mut c, n, 1.0, 0.0, &with(None), false).unwrap(),
        });
        let gflops = |t: f64| 2.0 * (m * n * k) as f64 / t / 1e9;
        println!(
            "{m}x{n}x{k}: residual read {:.1}, accumulated {:.1}, none {:.1} GFLOP/s",
            gflops(best[0]),
            gflops(best[1]),
            gflops(best[2])
        );
    }
}
