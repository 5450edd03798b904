//! ONNX backend node tests (the `onnx/backend/test/data/node` cases). Skipped unless
//! `KILN_ONNX_NODE_TESTS` names the folder holding the case directories; scripts/test.sh
//! generates them with scripts/gen_node_tests.py (the onnx wheel does not ship them).
//!
//! Every case whose ops are all in [`CLAIMED`] is loaded and run on `test_data_set_0` and its
//! outputs compared with onnx's tolerances. The test fails when a case made only of
//! [`MUST_PASS_OPS`] fails (bar [`KNOWN_EXCLUSIONS`]), when anything panics, or, with
//! `KILN_CONFORMANCE_STRICT=1`, when any claimed case fails. Unclaimed cases are only
//! loaded, to check that kiln refuses them with an error rather than a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use kiln::{DType, Error, Session, SessionOptions, Tensor};

/// Ops kiln claims to support (default ONNX domain).
const CLAIMED: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Erf",
    "Relu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Conv",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
    "Gemm",
    "MatMul",
    "LayerNormalization",
    "Softmax",
    "LogSoftmax",
    "Flatten",
    "Reshape",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "GatherElements",
    "Shape",
    "Size",
    "Unsqueeze",
    "Squeeze",
    "Cast",
    "Constant",
    "Identity",
    "Pad",
    "Dropout",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "Pow",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "LeakyRelu",
    "PRelu",
    "Expand",
    "ConstantOfShape",
    "Where",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
    "Not",
    "Abs",
    "Neg",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Sin",
    "Cos",
    "Softplus",
    "Softsign",
    "Elu",
    "Selu",
    "Celu",
    "Gelu",
    "ConvTranspose",
    "InstanceNormalization",
    "Range",
    "Tile",
    "DepthToSpace",
    "SpaceToDepth",
    "TopK",
    "CumSum",
    "ArgMax",
    "ArgMin",
    "Mod",
    "BitShift",
    "Resize",
    "LpPool",
    "GlobalLpPool",
];

/// Ops whose cases must all pass: a case built only from these ops fails the test when it fails.
const MUST_PASS_OPS: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Erf",
    "Relu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Conv",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Gemm",
    "MatMul",
    "LayerNormalization",
    "Softmax",
    "Flatten",
    "Reshape",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "Shape",
    "Unsqueeze",
    "Squeeze",
    "Cast",
    "Constant",
    "Identity",
    "Pad",
    "Dropout",
];

/// Must-pass cases that are allowed to fail: (pattern, reason). A pattern ending in `*` is a
/// case-name prefix; otherwise it matches anywhere in the case name.
const KNOWN_EXCLUSIONS: &[(&str, &str)] = &[
    (
        "FLOAT8E",
        "float8 types (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E8M0) are not kiln dtypes",
    ),
    ("FLOAT4E2M1", "float4 is not a kiln dtype"),
    ("INT4", "int4/uint4 are not kiln dtypes"),
    ("INT2", "int2/uint2 are not kiln dtypes"),
    ("test_identity_opt*", "optional-typed values are not supported"),
    (
        "test_identity_sequence*",
        "sequence-typed values are not supported",
    ),
    (
        "test_training_dropout*",
        "training-mode Dropout (random masks) is out of scope for inference",
    ),
    (
        "_training_mode",
        "training-mode BatchNormalization (batch statistics) is out of scope for inference",
    ),
];

fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

fn exclusion(case: &str) -> Option<&'static str> {
    KNOWN_EXCLUSIONS.iter().find_map(|&(pattern, reason)| {
        let hit = match pattern.strip_suffix('*') {
            Some(prefix) => case.starts_with(prefix),
            None => case.contains(pattern),
        };
        hit.then_some(reason)
    })
}

fn tolerance(case_dir: &Path) -> (f64, f64) {
    // scripts/gen_node_tests.py records each case's own tolerances; onnx's defaults otherwise.
    std::fs::read_to_string(case_dir.join("tolerance.txt"))
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((1e-3, 1e-7))
}

fn read_tensors(dir: &Path, prefix: &str) -> Result<Vec<Tensor>, String> {
    let mut tensors = Vec::new();
    for j in 0.. {
        let path = dir.join(format!("{prefix}_{j}.pb"));
        if !path.exists() {
            break;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (_, t) = kiln::onnx::parse_tensor_proto(&bytes)
            .map_err(|e| format!("parse {prefix}_{j}.pb: {}", short_error(&e)))?;
        tensors.push(t);
    }
    Ok(tensors)
}

fn short_error(e: &Error) -> String {
    let kind = e.kind();
    let mut msg = format!("{kind}: {e}");
    if msg.len() > 300 {
        let mut cut = 300;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    msg
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

fn float_values(t: &Tensor) -> Vec<f64> {
    match t.as_slice::<f64>() {
        Some(s) => s.to_vec(),
        None => t.to_f32_vec().into_iter().map(f64::from).collect(),
    }
}

/// onnx's comparison: |got - want| <= atol + rtol * |want|, NaN equal to NaN; exact for
/// integers and booleans; dtype and shape must match.
fn compare(index: usize, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!(
            "output {index}: dtype {}, expected {}",
            got.dtype(),
            want.dtype()
        ));
    }
    if got.shape() != want.shape() {
        return Err(format!(
            "output {index}: shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    if !is_float(want.dtype()) {
        if got.data().slice().as_bytes() != want.data().slice().as_bytes() {
            let (g, w) = (
                got.to_i64_vec().unwrap_or_default(),
                want.to_i64_vec().unwrap_or_default(),
            );
            let bad = g.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!(
                "output {index}: {} values differ (first at {bad}: {:?} vs {:?})",
                g.iter().zip(&w).filter(|(a, b)| a != b).count(),
                g.get(bad),
                w.get(bad)
            ));
        }
        return Ok(());
    }
    let (g, w) = (float_values(got), float_values(want));
    let mut bad = 0;
    let mut first = None;
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
        if !ok {
            bad += 1;
            first.get_or_insert((i, a, b));
        }
    }
    match first {
        None => Ok(()),
        Some((i, a, b)) => Err(format!(
            "output {index}: {bad}/{} values out of tolerance (first at {i}: {a} vs {b}; rtol {rtol}, atol {atol})",
            w.len()
        )),
    }
}

/// Runs one case with the optimizer on or off and checks it against the expected
/// outputs; returns the outputs.
fn run_with(dir: &Path, bytes: Vec<u8>, optimize: bool) -> Result<Vec<Tensor>, String> {
    let options = SessionOptions {
        optimize,
        ..SessionOptions::default()
    };
    run_on(dir, bytes, options)
}

/// Runs one case with `options` and checks it against the expected outputs.
fn run_on(dir: &Path, bytes: Vec<u8>, options: SessionOptions) -> Result<Vec<Tensor>, String> {
    // Load first: a model the session refuses is reported as refused, whatever
    // its test data holds.
    let session = Session::from_bytes(bytes, options).map_err(|e| format!("load: {}", short_error(&e)))?;
    let data = dir.join("test_data_set_0");
    let inputs = read_tensors(&data, "input")?;
    let expected = read_tensors(&data, "output")?;
    let names = session.input_names();
    if names.len() != inputs.len() {
        return Err(format!(
            "model has {} inputs ({names:?}), test data {}",
            names.len(),
            inputs.len()
        ));
    }
    let outputs = session
        .run(&inputs)
        .map_err(|e| format!("run: {}", short_error(&e)))?;
    if outputs.len() != expected.len() {
        return Err(format!("{} outputs, expected {}", outputs.len(), expected.len()));
    }
    let (rtol, atol) = tolerance(dir);
    for (i, (got, want)) in outputs.iter().zip(&expected).enumerate() {
        compare(i, got, want, rtol, atol)?;
    }
    Ok(outputs)
}

/// Relative L2 distance allowed between the optimized and the unoptimized graph.
const MAX_OPTIMIZER_REL_L2: f64 = 1e-5;

/// Relative L2 distance of `a` from `b` over their finite elements; infinite when
/// their non-finite elements (NaN, inf) differ.
fn drift(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        if !x.is_finite() || !y.is_finite() {
            if x == y || (x.is_nan() && y.is_nan()) {
                continue;
            }
            return f64::INFINITY;
        }
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        num.sqrt() / den.sqrt()
    }
}

/// Runs a case as loaded and optimized: both must pass, and agree with each other.
fn run_case(dir: &Path, bytes: Vec<u8>) -> Result<(), String> {
    let optimized = run_with(dir, bytes.clone(), true)?;
    let plain = run_with(dir, bytes, false).map_err(|e| format!("without the optimizer: {e}"))?;
    for (i, (a, b)) in optimized.iter().zip(&plain).enumerate() {
        let (Some(a), Some(b)) = (a.as_slice::<f32>(), b.as_slice::<f32>()) else {
            continue;
        };
        let r = drift(a, b);
        if r > MAX_OPTIMIZER_REL_L2 {
            return Err(format!("output {i}: optimized vs unoptimized rel_l2 {r:.2e}"));
        }
    }
    Ok(())
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

#[derive(Default)]
struct OpStats {
    cases: usize,
    passed: usize,
}

#[test]
fn onnx_node_tests() {
    let Some(root) = std::env::var_os("KILN_ONNX_NODE_TESTS").map(PathBuf::from) else {
        println!("skipped: KILN_ONNX_NODE_TESTS not set (run scripts/test.sh, which generates the ONNX node tests)");
        return;
    };
    let strict = std::env::var("KILN_CONFORMANCE_STRICT").is_ok_and(|v| v == "1");
    let claimed: BTreeSet<&str> = CLAIMED.iter().copied().collect();
    let must_ops: BTreeSet<&str> = MUST_PASS_OPS.iter().copied().collect();

    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("KILN_ONNX_NODE_TESTS={}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no case directories (with model.onnx) in {}",
        root.display()
    );

    let (mut passed, mut skipped) = (0usize, 0usize);
    let mut failures: Vec<(String, String, bool)> = Vec::new(); // (case, reason, must-pass)
    let mut excluded_failures: Vec<(String, &str)> = Vec::new();
    let mut panics: Vec<(String, String)> = Vec::new();
    let mut unclaimed_loaded_ok: Vec<String> = Vec::new();
    let mut unclaimed_unsupported = 0usize;
    let mut unclaimed_other_errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_op: BTreeMap<String, OpStats> = BTreeMap::new();

    // Panics are caught per case and reported; keep the default hook from printing each one.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let bytes = match std::fs::read(dir.join("model.onnx")) {
            Ok(b) => b,
            Err(e) => panic!("{name}: {e}"),
        };
        let ops = match catch_unwind(|| kiln::onnx::op_types(&bytes)) {
            Ok(Ok(ops)) => ops,
            Ok(Err(e)) => {
                failures.push((name, format!("op_types: {}", short_error(&e)), false));
                continue;
            }
            Err(p) => {
                panics.push((name, format!("op_types panicked: {}", panic_message(&*p))));
                continue;
            }
        };
        let op_names: BTreeSet<String> = ops
            .iter()
            .map(|(d, op)| {
                if is_default_domain(d) {
                    op.clone()
                } else {
                    format!("{d}::{op}")
                }
            })
            .collect();
        let is_claimed = ops
            .iter()
            .all(|(d, op)| is_default_domain(d) && claimed.contains(op.as_str()));

        if !is_claimed {
            skipped += 1;
            // Unclaimed: kiln must refuse the model with an error, never panic.
            match catch_unwind(AssertUnwindSafe(|| {
                Session::from_bytes(bytes, SessionOptions::default())
            })) {
                Ok(Ok(_)) => unclaimed_loaded_ok.push(name),
                Ok(Err(Error::Unsupported(_))) => unclaimed_unsupported += 1,
                Ok(Err(e)) => {
                    *unclaimed_other_errors
                        .entry(short_error(&e).split(':').next().unwrap().into())
                        .or_default() += 1
                }
                Err(p) => panics.push((name, format!("load panicked: {}", panic_message(&*p)))),
            }
            continue;
        }

        let must = ops.iter().all(|(_, op)| must_ops.contains(op.as_str()));
        let result = match catch_unwind(AssertUnwindSafe(|| run_case(dir, bytes))) {
            Ok(r) => r,
            Err(p) => {
                let msg = panic_message(&*p);
                panics.push((name.clone(), msg.clone()));
                Err(format!("PANIC: {msg}"))
            }
        };
        for op in &op_names {
            let s = per_op.entry(op.clone()).or_default();
            s.cases += 1;
            s.passed += result.is_ok() as usize;
        }
        match result {
            Ok(()) => passed += 1,
            Err(reason) => match (must, exclusion(&name)) {
                (true, Some(why)) => excluded_failures.push((name, why)),
                (must, _) => failures.push((name, reason, must)),
            },
        }
    }
    std::panic::set_hook(hook);

    let claimed_count = cases.len() - skipped;
    println!("\nONNX node tests in {}", root.display());
    println!("per-op results (claimed cases containing the op; * = must-pass op):");
    println!("  {:<28} {:>6} {:>6}", "op", "passed", "cases");
    for (op, s) in &per_op {
        let star = if must_ops.contains(op.as_str()) { "*" } else { " " };
        let flag = if s.passed < s.cases { "  <--" } else { "" };
        println!("  {star}{op:<27} {:>6} {:>6}{flag}", s.passed, s.cases);
    }
    if !excluded_failures.is_empty() {
        println!(
            "\nknown exclusions ({} failing must-pass cases allowed to fail):",
            excluded_failures.len()
        );
        let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, why) in &excluded_failures {
            *by_reason.entry(why).or_default() += 1;
        }
        for (why, n) in by_reason {
            println!("  {n:>4}  {why}");
        }
    }
    if !failures.is_empty() {
        println!("\nfailures (! = must-pass):");
        for (name, reason, must) in &failures {
            println!("  {}{name}: {reason}", if *must { "! " } else { "  " });
        }
    }
    if !panics.is_empty() {
        println!("\npanics (kiln must return errors, never panic):");
        for (name, msg) in &panics {
            println!("  {name}: {msg}");
        }
    }
    println!(
        "\nunclaimed cases: {skipped} skipped; on load {unclaimed_unsupported} -> Unsupported, {} -> other errors {:?}, {} loaded fine",
        unclaimed_other_errors.values().sum::<usize>(),
        unclaimed_other_errors,
        unclaimed_loaded_ok.len()
    );
    if !unclaimed_loaded_ok.is_empty() {
        println!(
            "  unclaimed but loaded (CLAIMED may be stale): {}",
            unclaimed_loaded_ok.join(", ")
        );
    }
    let must_failed = failures.iter().filter(|f| f.2).count();
    println!(
        "\ntotal {} cases: {claimed_count} claimed, {passed} passed, {} failed ({must_failed} must-pass, {} excluded), {skipped} skipped{}",
        cases.len(),
        failures.len() + excluded_failures.len(),
        excluded_failures.len(),
        if strict { " [strict]" } else { "" }
    );

    assert!(
        panics.is_empty(),
        "{} cases panicked (listed above)",
        panics.len()
    );
    assert_eq!(
        must_failed, 0,
        "{must_failed} must-pass cases failed (marked ! above)"
    );
    if strict {
        assert!(
            failures.is_empty(),
            "KILN_CONFORMANCE_STRICT=1: {} claimed cases failed",
            failures.len()
        );
    }
}

/// The node tests on the wgpu backend: every case the backend accepts (its ops
/// claimed, its tensors f32) must pass; the others must be refused as Unsupported.
#[cfg(feature = "wgpu")]
#[test]
fn onnx_node_tests_on_wgpu() {
    let Some(root) = std::env::var_os("KILN_ONNX_NODE_TESTS").map(PathBuf::from) else {
        println!("skipped: KILN_ONNX_NODE_TESTS not set (run scripts/test.sh, which generates the ONNX node tests)");
        return;
    };
    if let Err(e) = kiln::backend::wgpu::Gpu::open(kiln::Precision::F32) {
        println!("skipped: {e}");
        return;
    }
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("KILN_ONNX_NODE_TESTS={}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    cases.sort();
    let options = SessionOptions {
        backend: kiln::Backend::Wgpu,
        ..SessionOptions::default()
    };
    let (mut passed, mut refused) = (0usize, 0usize);
    let mut per_op: BTreeMap<String, OpStats> = BTreeMap::new();
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if exclusion(&name).is_some() {
            continue;
        }
        let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
        let ops =
            kiln::onnx::op_types(&bytes).map(|o| o.into_iter().map(|(_, op)| op).collect::<BTreeSet<_>>());
        let result = catch_unwind(AssertUnwindSafe(|| run_on(dir, bytes, options.clone())))
            .unwrap_or_else(|p| Err(format!("PANIC: {}", panic_message(&*p))));
        // Refused at load (an op not claimed) or when planned (a non-f32 tensor).
        if matches!(&result, Err(e) if e.contains("Unsupported: ")) {
            refused += 1;
            continue;
        }
        for op in ops.unwrap_or_default() {
            let s = per_op.entry(op).or_default();
            s.cases += 1;
            s.passed += usize::from(result.is_ok());
        }
        match result {
            Ok(_) => passed += 1,
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    println!(
        "
ONNX node tests on wgpu: per op (cases the backend accepted)"
    );
    for (op, s) in &per_op {
        println!("  {op:<28} {:>4} / {:<4}", s.passed, s.cases);
    }
    println!(
        "wgpu: {passed} passed, {} failed, {refused} refused as unsupported, of {} cases",
        failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} accepted cases failed on wgpu:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn exclusions_match_only_what_they_should() {
    assert!(exclusion("test_cast_FLOAT_to_FLOAT8E4M3FN").is_some());
    assert!(exclusion("test_cast_UINT4_to_FLOAT").is_some());
    assert!(exclusion("test_batchnorm_example_training_mode").is_some());
    assert!(exclusion("test_training_dropout_mask").is_some());
    assert!(exclusion("test_cast_FLOAT_to_FLOAT16").is_none());
    assert!(exclusion("test_cast_FLOAT16_to_INT32").is_none()); // not a thing today, but must not match
    assert!(exclusion("test_batchnorm_example").is_none());
    assert!(exclusion("test_dropout_default_mask").is_none());
}
