//! Each pattern on a small hand-built graph: the expected ops after the pipeline,
//! and the same numbers as the graph run as loaded.

use std::collections::BTreeMap;

use crate::onnx::write::{Attribute, Dim, GraphBuilder};
use crate::tensor::{DType, Tensor};
use crate::zoo::rng::Rng;
use crate::{Session, SessionOptions};

fn randn(rng: &mut Rng, n: usize) -> Vec<f32> {
    rng.normals(n, 0.0, 1.0)
}

fn i64s(g: &mut GraphBuilder, name: &str, v: &[i64]) {
    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    g.add_initializer_raw(name, &[v.len()], DType::I64, &raw).unwrap();
}

fn dims(d: &[usize]) -> Vec<Dim> {
    d.iter().map(|&x| Dim::Fixed(x)).collect()
}

/// Loads `bytes` optimized and as-is, runs both on `inputs`, checks they agree to
/// 1e-6 relative L2 per output, and returns the optimized graph's op counts.
fn optimize_and_compare(bytes: Vec<u8>, inputs: &[Tensor]) -> BTreeMap<&'static str, usize> {
    let load = |optimize| {
        let options = SessionOptions {
            optimize,
            threads: Some(2),
            ..SessionOptions::default()
        };
        Session::from_bytes(bytes.clone(), options).unwrap()
    };
    let (opt, plain) = (load(true), load(false));
    let (a, b) = (opt.run(inputs).unwrap(), plain.run(inputs).unwrap());
    assert_eq!(a.len(), b.len());
    assert_eq!(
        opt.output_names(),
        plain.output_names(),
        "output names must survive"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.shape(), y.shape());
        let (x, y) = (x.as_slice::<f32>().unwrap(), y.as_slice::<f32>().unwrap());
        let num: f64 = x
            .iter()
            .zip(y)
            .map(|(p, q)| (*p as f64 - *q as f64).powi(2))
            .sum();
        let den: f64 = y.iter().map(|q| (*q as f64).powi(2)).sum();
        let r = (num / den.max(1e-30)).sqrt();
        assert!(r <= 1e-6, "optimized vs plain rel_l2 {r:e}");
    }
    opt.graph().op_counts().into_iter().collect()
}

fn ops(list: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    list.iter().copied().collect()
}

#[test]
fn identities_go_and_graph_outputs_keep_their_names() {
    let mut g = GraphBuilder::new("t");
    g.input("x", DType::F32, &dims(&[2, 3])).unwrap();
    g.add_node("relu", "Relu", &["x"], &["r"], &[]).unwrap();
    g.add_node("id", "Identity", &["r"], &["i"], &[]).unwrap();
    g.add_node("drop", "Dropout", &["i"], &["y"], &[]).unwrap();
    g.output("y", DType::F32, &dims(&[2, 3])).unwrap();
    let x = Tensor::random_normal(vec![2, 3], 1).unwrap();
    assert_eq!(
        optimize_and_compare(g.finish().unwrap(), &[x]),
        ops(&[("Relu", 1)])
    );
}

#[test]
fn torchscript_flatten_chain_becomes_a_flatten() {
    // Shape(x) -> Gather(0) -> Unsqueeze -> Concat([n], [-1]) -> Reshape(x, ...), with a
    // symbolic batch: no constant folding alone can remove it.
    let mut g = GraphBuilder::new("t");
    g.input(
        "x",
        DType::F32,
        &[Dim::Param("batch".into()), 4.into(), 2.into(), 2.into()],
    )
    .unwrap();
    i64s(&mut g, "zero", &[]);
    i64s(&mut g, "axes", &[0]);
    i64s(&mut g, "minus_one", &[-1]);
    let scalar_zero: Vec<u8> = 0i64.to_le_bytes().to_vec();
    g.add_initializer_raw("idx", &[], DType::I64, &scalar_zero)
        .unwrap();
    g.add_node("shape", "Shape", &["x"], &["s"], &[]).unwrap();
    g.add_node(
        "gather",
        "Gather",
        &["s", "idx"],
        &["n"],
        &[Attribute::int("axis", 0)],
    )
    .unwrap();
    g.add_node("unsq", "Unsqueeze", &["n", "axes"], &["n1"], &[])
        .unwrap();
    g.add_node(
        "cat",
        "Concat",
        &["n1", "minus_one"],
        &["target"],
        &[Attribute::int("axis", 0)],
    )
    .unwrap();
    g.add_node("reshape", "Reshape", &["x", "target"], &["y"], &[])
        .unwrap();
    g.output("y", DType::F32, &[Dim::Param("batch".into()), 16.into()])
        .unwrap();
    let x = Tensor::random_normal(vec![3, 4, 2, 2], 2).unwrap();
    assert_eq!(
        optimize_and_compare(g.finish().unwrap(), &[x]),
        ops(&[("Flatten", 1)])
    );
}

#[test]
fn constant_subgraphs_fold() {
    let mut g = GraphBuilder::new("t");
    g.input("x", DType::F32, &dims(&[2, 3])).unwrap();
    g.add_initializer("a", &[3], &[1.0, 2.0, 3.0]).unwrap();
    g.add_initializer("b", &[3], &[0.5, 0.25, 2.0]).unwrap();
    g.add_node("ab", "Mul", &["a", "b"], &["c"], &[]).unwrap();
    g.add_node("sq", "Sqrt", &["c"], &["d"], &[]).unwrap();
    g.add_node("mul", "Mul", &["x", "d"], &["y"], &[]).unwrap();
    g.output("y", DType::F32, &dims(&[2, 3])).unwrap();
    let x = Tensor::random_normal(vec![2, 3], 3).unwrap();
    assert_eq!(
        optimize_and_compare(g.finish().unwrap(), &[x]),
        ops(&[("Mul", 1)])
    );
}

#[test]
fn canonical_forms() {
    // x*sigmoid(x) -> Silu; x*clip(x+3,0,6)/6 -> HardSwish (then both chain-fused);
    // ReduceMean(keepdims=0) over H, W -> GlobalAveragePool + Flatten;
    // MatMul + bias -> Gemm.
    let mut rng = Rng::new(4);
    let mut g = GraphBuilder::new("t");
    g.input("x", DType::F32, &dims(&[2, 8, 4, 4])).unwrap();
    g.add_initializer("three", &[], &[3.0]).unwrap();
    g.add_initializer("zero", &[], &[0.0]).unwrap();
    g.add_initializer("six", &[], &[6.0]).unwrap();
    g.add_initializer("w", &[8, 5], &randn(&mut rng, 40)).unwrap();
    g.add_initializer("bias", &[5], &randn(&mut rng, 5)).unwrap();
    g.add_node("sig", "Sigmoid", &["x"], &["s"], &[]).unwrap();
    g.add_node("silu", "Mul", &["x", "s"], &["a"], &[]).unwrap();
    g.add_node("plus3", "Add", &["a", "three"], &["a3"], &[]).unwrap();
    g.add_node("clip", "Clip", &["a3", "zero", "six"], &["ac"], &[])
        .unwrap();
    g.add_node("mul", "Mul", &["a", "ac"], &["am"], &[]).unwrap();
    g.add_node("div", "Div", &["am", "six"], &["h"], &[]).unwrap();
    g.add_node(
        "mean",
        "ReduceMean",
        &["h"],
        &["m"],
        &[Attribute::ints("axes", &[2, 3]), Attribute::int("keepdims", 0)],
    )
    .unwrap();
    g.add_node("mm", "MatMul", &["m", "w"], &["mw"], &[]).unwrap();
    g.add_node("add", "Add", &["mw", "bias"], &["y"], &[]).unwrap();
    g.output("y", DType::F32, &dims(&[2, 5])).unwrap();
    let x = Tensor::random_normal(vec![2, 8, 4, 4], 5).unwrap();
    let want = ops(&[
        ("FusedElementwise", 1),
        ("GlobalAveragePool", 1),
        ("Flatten", 1),
        ("Gemm", 1),
    ]);
    assert_eq!(optimize_and_compare(g.finish().unwrap(), &[x]), want);
}

/// `x -> Conv(3x3) -> BN -> Relu -> BN -> y`: the first BN folds into the conv, the
/// Relu joins its epilogue, the second BN (after the Relu) becomes a ChannelAffine.
#[test]
fn batch_norm_folds_into_conv_or_becomes_channel_affine() {
    let mut rng = Rng::new(6);
    let mut g = GraphBuilder::new("t");
    g.input("x", DType::F32, &dims(&[2, 3, 6, 6])).unwrap();
    g.add_initializer("w", &[4, 3, 3, 3], &randn(&mut rng, 108))
        .unwrap();
    for bn in ["bn1", "bn2"] {
        g.add_initializer(&format!("{bn}.scale"), &[4], &[0.5, 1.5, 2.0, 0.8])
            .unwrap();
        g.add_initializer(&format!("{bn}.bias"), &[4], &randn(&mut rng, 4))
            .unwrap();
        g.add_initializer(&format!("{bn}.mean"), &[4], &randn(&mut rng, 4))
            .unwrap();
        g.add_initializer(&format!("{bn}.var"), &[4], &[0.5, 2.0, 1.0, 3.0])
            .unwrap();
    }
    g.add_node(
        "conv",
        "Conv",
        &["x", "w"],
        &["c"],
        &[Attribute::ints("pads", &[1, 1, 1, 1])],
    )
    .unwrap();
    let bn = |g: &mut GraphBuilder, name: &str, x: &str, y: &str| {
        let ins: Vec<String> = ["scale", "bias", "mean", "var"]
            .iter()
            .map(|p| format!("{name}.{p}"))
            .collect();
        g.add_node(
            name,
            "BatchNormalization",
            &[x, &ins[0], &ins[1], &ins[2], &ins[3]],
            &[y],
            &[],
        )
        .unwrap();
    };
    bn(&mut g, "bn1", "c", "b");
    g.add_node("relu", "Relu", &["b"], &["r"], &[]).unwrap();
    bn(&mut g, "bn2", "r", "y");
    g.output("y", DType::F32, &dims(&[2, 4, 6, 6])).unwrap();
    let x = Tensor::random_normal(vec![2, 3, 6, 6], 7).unwrap();
    let want = ops(&[("FusedConv", 1), ("ChannelAffine", 1)]);
    assert_eq!(optimize_and_compare(g.finish().unwrap(), &[x]), want);
}

/// `y = Relu(Conv1(x) + Relu(Conv2(x)))` where the skip (Conv2's branch) is computed
/// after Conv1: the fused node must move to where the skip exists.
#[test]
fn residual_add_fuses_when_the_skip_comes_later() {
    let mut rng = Rng::new(8);
    let mut g = GraphBuilder::new("t");
    g.input("x", DType::F32, &dims(&[1, 4, 5, 5])).unwrap();
    g.add_initializer("w1", &[6, 4, 1, 1], &randn(&mut rng, 24))
        .unwrap();
    g.add_initializer("w2", &[6, 4, 3, 3], &randn(&mut rng, 216))
        .unwrap();
    g.add_initializer("b2", &[6], &randn(&mut rng, 6)).unwrap();
    g.add_node("conv1", "Conv", &["x", "w1"], &["a"], &[]).unwrap();
    g.add_node(
        "conv2",
        "Conv",
        &["x", "w2", "b2"],
        &["c"],
        &[Attribute::ints("pads", &[1, 1, 1, 1])],
    )
    .unwrap();
    g.add_node("relu2", "Relu", &["c"], &["d"], &[]).unwrap();
    g.add_node("add", "Add", &["a", "d"], &["s"], &[]).unwrap();
    g.add_node("relu", "Relu", &["s"], &["y"], &[]).unwrap();
    g.output("y", DType::F32, &dims(&[1, 6, 5, 5])).unwrap();
    let x = Tensor::random_normal(vec![1, 4, 5, 5], 9).unwrap();
    assert_eq!(
        optimize_and_compare(g.finish().unwrap(), &[x]),
        ops(&[("FusedConv", 2)])
    );
}

#[test]
fn squeeze_excitation_becomes_one_op() {
    let mut rng = Rng::new(10);
    let mut g = GraphBuilder::new("t");
    g.input("x", DType::F32, &dims(&[2, 8, 5, 5])).unwrap();
    g.add_initializer("w1", &[2, 8, 1, 1], &randn(&mut rng, 16))
        .unwrap();
    g.add_initializer("b1", &[2], &randn(&mut rng, 2)).unwrap();
    g.add_initializer("w2", &[8, 2, 1, 1], &randn(&mut rng, 16))
        .unwrap();
    g.add_initializer("b2", &[8], &randn(&mut rng, 8)).unwrap();
    g.add_node("pool", "GlobalAveragePool", &["x"], &["p"], &[])
        .unwrap();
    g.add_node("fc1", "Conv", &["p", "w1", "b1"], &["h"], &[])
        .unwrap();
    g.add_node("act", "Relu", &["h"], &["hr"], &[]).unwrap();
    g.add_node("fc2", "Conv", &["hr", "w2", "b2"], &["e"], &[])
        .unwrap();
    g.add_node("gate", "HardSigmoid", &["e"], &["s"], &[]).unwrap();
    g.add_node("scale", "Mul", &["s", "x"], &["y"], &[]).unwrap();
    g.output("y", DType::F32, &dims(&[2, 8, 5, 5])).unwrap();
    let x = Tensor::random_normal(vec![2, 8, 5, 5], 11).unwrap();
    assert_eq!(
        optimize_and_compare(g.finish().unwrap(), &[x]),
        ops(&[("SqueezeExcite", 1)])
    );
}

#[test]
fn elementwise_chains_fuse_into_one_pass() {
    let mut g = GraphBuilder::new("t");
    g.input("x", DType::F32, &dims(&[2, 3, 5])).unwrap();
    g.input("z", DType::F32, &dims(&[2, 3, 5])).unwrap();
    g.add_initializer("half", &[], &[0.5]).unwrap();
    g.add_initializer("one", &[1], &[1.0]).unwrap();
    g.add_node("add", "Add", &["x", "z"], &["a"], &[]).unwrap();
    g.add_node("mul", "Mul", &["a", "half"], &["m"], &[]).unwrap();
    g.add_node("tanh", "Tanh", &["m"], &["t"], &[]).unwrap();
    g.add_node("sub", "Sub", &["one", "t"], &["y"], &[]).unwrap();
    g.output("y", DType::F32, &dims(&[2, 3, 5])).unwrap();
    let x = Tensor::random_normal(vec![2, 3, 5], 12).unwrap();
    let z = Tensor::random_normal(vec![2, 3, 5], 13).unwrap();
    assert_eq!(
        optimize_and_compare(g.finish().unwrap(), &[x, z]),
        ops(&[("FusedElementwise", 1)])
    );
}

#[test]
fn every_pass_is_listed_once_per_stage_and_named() {
    for stage in [super::SIMPLIFY, super::FUSE] {
        let mut names: Vec<&str> = stage.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), stage.len());
    }
}
