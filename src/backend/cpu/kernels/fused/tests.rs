//! The fused kernels against direct f64 definitions, on poisoned outputs.

use crate::backend::cpu::kernels::compute_tests::{assert_close, prepare_any as prepare, run_op, Rng};
use crate::ir::ops::{Activation, BinaryOp, ChainStep, Op, UnaryOp};
use crate::tensor::{DType, Tensor};

fn f64s(t: &Tensor) -> Vec<f64> {
    t.as_slice::<f32>().unwrap().iter().map(|&v| v as f64).collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn channel_affine_scales_shifts_and_activates_per_channel() {
    let mut rng = Rng::new(1);
    let (n, c, hw) = (2, 3, 20);
    let x = rng.tensor(&[n, c, 4, 5]);
    let (scale, shift) = (rng.tensor(&[c]), rng.tensor(&[c]));
    let (xs, s, b) = (f64s(&x), f64s(&scale), f64s(&shift));
    let want: Vec<f64> = (0..n * c * hw)
        .map(|i| {
            let ch = (i / hw) % c;
            (xs[i] * s[ch] + b[ch]).max(0.0)
        })
        .collect();
    for constant in [true, false] {
        let op = Op::ChannelAffine {
            activation: Activation::Relu,
        };
        let got = run_op(
            prepare,
            &op,
            &[Some(x.clone()), Some(scale.clone()), Some(shift.clone())],
            &[false, constant, constant],
            &[(DType::F32, vec![n, c, 4, 5])],
        )
        .unwrap();
        assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-6, "channel affine");
    }
}

#[test]
fn squeeze_excite_matches_its_unfused_definition() {
    let mut rng = Rng::new(2);
    let (n, c, r, hw) = (2, 6, 3, 25);
    let x = rng.tensor(&[n, c, 5, 5]);
    let (w1, b1) = (rng.tensor(&[r, c, 1, 1]), rng.tensor(&[r]));
    let (w2, b2) = (rng.tensor(&[c, r, 1, 1]), rng.tensor(&[c]));
    let (xs, w1s, b1s, w2s, b2s) = (f64s(&x), f64s(&w1), f64s(&b1), f64s(&w2), f64s(&b2));
    for with_bias in [true, false] {
        let bias = |b: &[f64], i: usize| if with_bias { b[i] } else { 0.0 };
        let mut want = vec![0.0; n * c * hw];
        for img in 0..n {
            let mean: Vec<f64> = (0..c)
                .map(|ch| xs[(img * c + ch) * hw..][..hw].iter().sum::<f64>() / hw as f64)
                .collect();
            let hidden: Vec<f64> = (0..r)
                .map(|j| (bias(&b1s, j) + (0..c).map(|k| w1s[j * c + k] * mean[k]).sum::<f64>()).max(0.0))
                .collect();
            for ch in 0..c {
                let g = sigmoid(bias(&b2s, ch) + (0..r).map(|j| w2s[ch * r + j] * hidden[j]).sum::<f64>());
                for p in 0..hw {
                    let i = (img * c + ch) * hw + p;
                    want[i] = xs[i] * g;
                }
            }
        }
        let op = Op::SqueezeExcite {
            hidden: Activation::Relu,
            gate: Activation::Sigmoid,
        };
        let maybe = |t: &Tensor| with_bias.then(|| t.clone());
        let got = run_op(
            prepare,
            &op,
            &[
                Some(x.clone()),
                Some(w1.clone()),
                maybe(&b1),
                Some(w2.clone()),
                maybe(&b2),
            ],
            &[false, true, true, true, true],
            &[(DType::F32, vec![n, c, 5, 5])],
        )
        .unwrap();
        assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-5, "squeeze-excite");
    }
}

#[test]
fn squeeze_excite_rejects_weights_that_do_not_fit() {
    let mut rng = Rng::new(3);
    let op = Op::SqueezeExcite {
        hidden: Activation::Relu,
        gate: Activation::Sigmoid,
    };
    let err = run_op(
        prepare,
        &op,
        &[
            Some(rng.tensor(&[1, 6, 2, 2])),
            Some(rng.tensor(&[3, 5, 1, 1])),
            None,
            Some(rng.tensor(&[6, 3, 1, 1])),
            None,
        ],
        &[false, true, false, true, false],
        &[(DType::F32, vec![1, 6, 2, 2])],
    );
    assert!(err.is_err());
}

#[test]
fn elementwise_chain_runs_every_step_over_every_block() {
    let mut rng = Rng::new(4);
    // Long enough to split across threads and blocks, with a ragged last block.
    let shape = [3, 40_001];
    let len = 3 * 40_001;
    let (x, full, one) = (rng.tensor(&shape), rng.tensor(&shape), rng.tensor(&[1]));
    let steps = vec![
        ChainStep::Binary {
            op: BinaryOp::Mul,
            operand: 1,
            swapped: false,
        },
        ChainStep::Binary {
            op: BinaryOp::Sub,
            operand: 2,
            swapped: true,
        },
        ChainStep::Unary(UnaryOp::Sigmoid),
        ChainStep::Binary {
            op: BinaryOp::Max,
            operand: 2,
            swapped: false,
        },
        ChainStep::Unary(UnaryOp::Relu),
    ];
    let (xs, fs, o) = (f64s(&x), f64s(&full), f64s(&one)[0]);
    let want: Vec<f64> = (0..len)
        .map(|i| sigmoid(o - xs[i] * fs[i]).max(o).max(0.0))
        .collect();
    let got = run_op(
        prepare,
        &Op::FusedElementwise { steps },
        &[Some(x), Some(full), Some(one)],
        &[false, false, true],
        &[(DType::F32, shape.to_vec())],
    )
    .unwrap();
    assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-6, "chain");
}

#[test]
fn elementwise_chain_rejects_operands_that_would_broadcast() {
    let mut rng = Rng::new(5);
    let steps = vec![ChainStep::Binary {
        op: BinaryOp::Add,
        operand: 1,
        swapped: false,
    }];
    let err = run_op(
        prepare,
        &Op::FusedElementwise { steps },
        &[Some(rng.tensor(&[2, 3])), Some(rng.tensor(&[3]))],
        &[false, false],
        &[(DType::F32, vec![2, 3])],
    );
    assert!(err.is_err());
}
