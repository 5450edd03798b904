//! The memory planner's in-place steps: a fused residual convolution writes over
//! its residual when that value dies there, and only then.

use crate::backend::cpu::CpuOptions;
use crate::onnx::write::{Dim, GraphBuilder};
use crate::onnx::Limits;
use crate::tensor::{DType, Tensor};
use crate::zoo::rng::Rng;
use crate::{Session, SessionOptions};

const C: usize = 8;
const HW: usize = 6;

/// `a = relu(x)`, `b = relu(conv1x1(a))`, `y = conv1x1(b) + a`; with `reuse`, also
/// `z = y + a`, so `a` outlives the residual convolution.
fn residual_block(reuse: bool) -> Vec<u8> {
    let mut rng = Rng::new(40);
    let mut g = GraphBuilder::new("residual");
    let dims: Vec<Dim> = [1, C, HW, HW].iter().map(|&d| Dim::Fixed(d)).collect();
    g.input("x", DType::F32, &dims).unwrap();
    for w in ["w1", "w2"] {
        g.add_initializer(w, &[C, C, 1, 1], &rng.normals(C * C, 0.0, 0.5))
            .unwrap();
    }
    g.add_node("relu_a", "Relu", &["x"], &["a"], &[]).unwrap();
    g.add_node("conv1", "Conv", &["a", "w1"], &["c1"], &[]).unwrap();
    g.add_node("relu_b", "Relu", &["c1"], &["b"], &[]).unwrap();
    g.add_node("conv2", "Conv", &["b", "w2"], &["c2"], &[]).unwrap();
    g.add_node("add", "Add", &["c2", "a"], &["y"], &[]).unwrap();
    if reuse {
        g.add_node("add_again", "Add", &["y", "a"], &["z"], &[]).unwrap();
        g.output("z", DType::F32, &dims).unwrap();
    } else {
        g.output("y", DType::F32, &dims).unwrap();
    }
    g.finish().unwrap()
}

/// How many steps of the optimized graph's CPU plan run in place, and the
/// optimized and plain sessions' outputs.
fn plan_and_run(model: Vec<u8>) -> (usize, Vec<f32>, Vec<f32>) {
    let session = |optimize| {
        let options = SessionOptions {
            optimize,
            ..SessionOptions::default()
        };
        Session::from_bytes(model.clone(), options).unwrap()
    };
    let (fused, plain) = (session(true), session(false));
    let x = Tensor::random_normal(vec![1, C, HW, HW], 41).unwrap();
    let inputs = [x];
    let plan = super::build(fused.graph(), &inputs, &Limits::default(), &CpuOptions::default()).unwrap();
    let in_place = plan.steps.iter().filter(|s| s.in_place.is_some()).count();
    let out = |s: &Session| s.run(&inputs).unwrap()[0].as_slice::<f32>().unwrap().to_vec();
    (in_place, out(&fused), out(&plain))
}

/// The fused graph's output against the plain one's, element by element.
fn assert_agree(fused: &[f32], plain: &[f32]) {
    assert_eq!(fused.len(), plain.len());
    for (f, p) in fused.iter().zip(plain) {
        assert!((f - p).abs() <= 1e-5 * (1.0 + p.abs()), "{f} vs {p}");
    }
}

#[test]
fn residual_conv_writes_over_a_dying_residual() {
    let (in_place, fused, plain) = plan_and_run(residual_block(false));
    assert_eq!(in_place, 1, "the residual conv should run in place");
    assert_agree(&fused, &plain);
}

#[test]
fn a_residual_read_later_is_not_overwritten() {
    let (in_place, fused, plain) = plan_and_run(residual_block(true));
    assert_eq!(in_place, 0, "`a` is read after the residual conv");
    assert_agree(&fused, &plain);
}
