//! The optimizer on real graphs: it must not change the numbers (optimized vs as
//! loaded, ≤ 1e-5 relative L2), and it must actually fuse (op-count assertions in the
//! spirit of tract's `--assert-op-count`). Needs no Python: the fixtures are committed
//! and the zoo models are built in memory.

mod common;

use std::collections::BTreeMap;

use common::{f32s, fixture, max_abs, read_npy, rel_l2};
use kiln::{Session, SessionOptions, Tensor};

const MAX_REL_L2: f64 = 1e-5;
const FIXTURES: &[&str] = common::FIXTURE_MODELS;

fn session(bytes: Vec<u8>, optimize: bool) -> Session {
    let options = SessionOptions {
        optimize,
        ..SessionOptions::default()
    };
    Session::from_bytes(bytes, options).expect("load")
}

fn counts(s: &Session) -> BTreeMap<&'static str, usize> {
    s.graph().op_counts().into_iter().collect()
}

/// Asserts the optimized graph of `label` has none of `gone` and at least the given
/// number of each of `present`.
fn assert_ops(label: &str, s: &Session, gone: &[&str], present: &[(&str, usize)]) {
    let c = counts(s);
    for op in gone {
        assert_eq!(
            c.get(op),
            None,
            "{label}: {op} should be gone after the optimizer ({c:?})"
        );
    }
    for (op, n) in present {
        let got = c.get(op).copied().unwrap_or(0);
        assert!(
            got >= *n,
            "{label}: expected at least {n} {op}, found {got} ({c:?})"
        );
    }
}

/// Runs both sessions on `input` and returns (rel_l2, max_abs) of optimized vs plain.
fn drift(optimized: &Session, plain: &Session, input: &Tensor) -> (f64, f64) {
    let a = optimized.run(std::slice::from_ref(input)).expect("optimized run");
    let b = plain.run(std::slice::from_ref(input)).expect("plain run");
    let (a, b) = (f32s(&a[0], "optimized"), f32s(&b[0], "plain"));
    (rel_l2(a, b), max_abs(a, b))
}

#[test]
fn optimizer_keeps_fixture_numerics_and_fuses() {
    println!("\noptimized vs as-loaded on tests/fixtures (max rel_l2 {MAX_REL_L2:.0e})");
    println!(
        "{:<34} {:>10} {:>10}  ops after",
        "model exporter batch", "rel_l2", "max_abs"
    );
    for model in FIXTURES {
        for exporter in ["dynamo", "torchscript"] {
            let bytes = std::fs::read(fixture(&format!("{model}/{exporter}.onnx"))).expect("read fixture");
            let (opt, plain) = (session(bytes.clone(), true), session(bytes, false));
            for batch in [1, 8] {
                let input = read_npy(&fixture(&format!("{model}/input_b{batch}.npy")));
                let (r, m) = drift(&opt, &plain, &input);
                println!(
                    "{:<34} {r:>10.2e} {m:>10.2e}  {}",
                    format!("{model} {exporter} b{batch}"),
                    opt.graph().nodes.len()
                );
                assert!(r <= MAX_REL_L2, "{model} {exporter} b{batch}: rel_l2 {r:.2e}");
            }
            let label = format!("{model} {exporter}");
            // Every activation and residual add ends up in a conv epilogue, every
            // spatial mean is a GlobalAveragePool, shape arithmetic is folded away.
            let gone = [
                "BatchNormalization",
                "Relu",
                "Clip",
                "Add",
                "ReduceMean",
                "Identity",
                "Shape",
                "Gather",
                "Unsqueeze",
                "Cast",
            ];
            assert_ops(&label, &opt, &gone, &[("FusedConv", 9), ("GlobalAveragePool", 1)]);
            if *model == "regnet_y" {
                assert_ops(&label, &opt, &["Sigmoid", "Mul"], &[("SqueezeExcite", 8)]);
            }
        }
    }
}

#[test]
fn torchscript_shape_chains_fold_away() {
    // The TorchScript export of ShuffleNetV2 spells each channel shuffle's
    // `view(batch, groups, c // groups, h, w)` as Shape/Gather/Unsqueeze/Concat chains.
    let bytes = std::fs::read(fixture("shufflenet_v2/torchscript.onnx")).expect("read fixture");
    let (opt, plain) = (session(bytes.clone(), true), session(bytes, false));
    let before = counts(&plain);
    assert!(
        before.get("Shape").copied().unwrap_or(0) >= 20,
        "fixture has no shape chains: {before:?}"
    );
    assert!(
        opt.graph().nodes.len() * 3 < plain.graph().nodes.len(),
        "{} nodes before, {} after",
        plain.graph().nodes.len(),
        opt.graph().nodes.len()
    );
    // What remains of the shuffle is the Reshape / Transpose pair itself (and the
    // branch Concats, which are real data movement).
    let after = counts(&opt);
    assert_eq!(after.get("Reshape"), before.get("Reshape"), "{after:?}");
    assert_eq!(after.get("Concat").copied(), Some(6), "{after:?}");
}

#[test]
fn optimizer_keeps_zoo_numerics_and_fuses() {
    // (zoo model, ops that must be gone, ops that must be there at least this often)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, usize)]);
    let cases: &[Case] = &[
        (
            "resnet50",
            &["BatchNormalization", "Relu", "Add"],
            &[("FusedConv", 49)],
        ),
        (
            "mobilenet_v2",
            &["BatchNormalization", "Clip", "Add"],
            &[("FusedConv", 45)],
        ),
        (
            "regnet_y_400mf",
            &["BatchNormalization", "Relu", "Add", "Sigmoid", "Mul"],
            &[("SqueezeExcite", 16)],
        ),
    ];
    for (name, gone, present) in cases {
        let zoo = kiln::zoo::build(name).expect("zoo model");
        let (opt, plain) = (session(zoo.onnx.clone(), true), session(zoo.onnx, false));
        assert_ops(name, &opt, gone, present);
        let input = Tensor::random_normal(vec![1, 3, 224, 224], 7).expect("input");
        let (r, m) = drift(&opt, &plain, &input);
        println!("{name}: optimized vs as-loaded rel_l2 {r:.2e}, max_abs {m:.2e}");
        assert!(r <= MAX_REL_L2, "{name}: rel_l2 {r:.2e}");
    }
}
