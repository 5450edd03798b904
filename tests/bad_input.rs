//! Hostile and wrong inputs must come back as the right `Error` variant, never a panic.
//! The small models are made by scripts/make_bad_models.py (tests/fixtures/bad/).

mod common;

use common::{fixture, random_tensor, Rng};
use kiln::{Error, Session, SessionOptions, Tensor};

fn load_file(rel: &str) -> kiln::Result<Session> {
    Session::from_file(fixture(rel), SessionOptions::default())
}

fn load_bytes(bytes: Vec<u8>) -> kiln::Result<Session> {
    Session::from_bytes(bytes, SessionOptions::default())
}

/// The error of `r`, or a panic naming what was expected.
fn err<T>(r: kiln::Result<T>, what: &str) -> Error {
    match r {
        Ok(_) => panic!("{what}: expected an error, got Ok"),
        Err(e) => e,
    }
}

#[test]
fn truncated_fixture_is_malformed() {
    let bytes = std::fs::read(fixture("mobilenet_v2/torchscript.onnx")).expect("fixture");
    let n = bytes.len();
    // Cuts inside the graph (a length-delimited field) or inside the last field.
    for cut in [n / 4, n / 2, 3 * n / 4, n - 1] {
        match err(
            load_bytes(bytes[..cut].to_vec()),
            &format!("truncated to {cut} of {n} bytes"),
        ) {
            Error::Malformed(_) => {}
            e => panic!("truncated to {cut} of {n} bytes: expected Malformed, got {e:?}"),
        }
    }
}

#[test]
fn truncated_zoo_model_is_malformed() {
    let names = kiln::zoo::names();
    let name = if names.contains(&"mobilenet_v2") {
        "mobilenet_v2"
    } else {
        names[0]
    };
    let bytes = kiln::zoo::build(name).expect("zoo model").onnx;
    let n = bytes.len();
    for cut in [n / 3, n - 1] {
        match err(
            load_bytes(bytes[..cut].to_vec()),
            &format!("zoo {name} truncated to {cut}"),
        ) {
            Error::Malformed(_) => {}
            e => panic!("zoo {name} truncated to {cut} of {n} bytes: expected Malformed, got {e:?}"),
        }
    }
}

#[test]
fn truncated_file_on_disk_is_malformed() {
    let bytes = std::fs::read(fixture("regnet_x/torchscript.onnx")).expect("fixture");
    let path = std::env::temp_dir().join(format!("kiln-truncated-{}.onnx", std::process::id()));
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write temp file");
    let r = Session::from_file(&path, SessionOptions::default());
    let _ = std::fs::remove_file(&path);
    assert!(matches!(err(r, "truncated file"), Error::Malformed(_)));
}

#[test]
fn random_bytes_are_malformed() {
    for seed in 0..16 {
        let bytes = Rng::new(seed).bytes(4096);
        match err(load_bytes(bytes), "random bytes") {
            Error::Malformed(_) => {}
            e => panic!("random bytes (seed {seed}): expected Malformed, got {e:?}"),
        }
    }
}

#[test]
fn empty_and_non_model_bytes_are_rejected() {
    // An empty message is valid protobuf but has no graph.
    let e = err(load_bytes(Vec::new()), "empty bytes");
    assert!(
        matches!(e, Error::Malformed(_) | Error::InvalidGraph(_)),
        "empty bytes: {e:?}"
    );
    let e = err(load_bytes(b"definitely not an onnx model".to_vec()), "text bytes");
    assert!(matches!(e, Error::Malformed(_)), "text bytes: {e:?}");
}

#[test]
fn missing_file_is_io() {
    let e = err(load_file("no/such/model.onnx"), "missing file");
    assert!(matches!(e, Error::Io { .. }), "missing file: {e:?}");
}

#[test]
fn unknown_op_is_unsupported_with_node_and_op() {
    match err(load_file("bad/unknown_op.onnx"), "unknown op") {
        Error::Unsupported(items) => {
            assert_eq!(items.len(), 1, "{items:?}");
            assert_eq!(items[0].node, "mystery_node");
            assert!(items[0].op.contains("FrobnicateX"), "{:?}", items[0]);
            assert_eq!(items[0].opset, 17);
        }
        e => panic!("expected Unsupported, got {e:?}"),
    }
}

#[test]
fn two_unknown_ops_are_both_listed() {
    match err(load_file("bad/two_unknown_ops.onnx"), "two unknown ops") {
        Error::Unsupported(items) => {
            let has = |node: &str, op: &str| items.iter().any(|u| u.node == node && u.op.contains(op));
            assert!(has("first_bad", "FrobnicateX"), "{items:?}");
            assert!(has("second_bad", "QuuxifyY"), "{items:?}");
            assert!(
                !items.iter().any(|u| u.op == "Relu"),
                "Relu is supported: {items:?}"
            );
            let msg = Error::Unsupported(items.clone()).to_string();
            assert!(msg.contains("FrobnicateX") && msg.contains("QuuxifyY"), "{msg}");
        }
        e => panic!("expected Unsupported, got {e:?}"),
    }
}

#[test]
fn wrong_inputs_are_input_mismatch() {
    let s = load_file("bad/relu_static.onnx").expect("relu_static.onnx loads");
    let good = random_tensor(&[1, 3, 4, 4], 1);

    // The happy path first, so the errors below are about the inputs.
    let out = s.run(std::slice::from_ref(&good)).expect("valid input runs");
    let want: Vec<f32> = good
        .as_slice::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.max(0.0))
        .collect();
    assert_eq!(out[0].as_slice::<f32>().unwrap(), want.as_slice());

    let cases: Vec<(&str, Vec<Tensor>)> = vec![
        ("no inputs", vec![]),
        ("two inputs", vec![good.clone(), good.clone()]),
        ("wrong last dim", vec![random_tensor(&[1, 3, 4, 5], 2)]),
        (
            "wrong batch on a static model",
            vec![random_tensor(&[2, 3, 4, 4], 3)],
        ),
        ("wrong rank", vec![random_tensor(&[3, 4, 4], 4)]),
        (
            "int64 instead of float32",
            vec![Tensor::from_vec(vec![1, 3, 4, 4], vec![0i64; 48]).unwrap()],
        ),
        (
            "float64 instead of float32",
            vec![Tensor::from_vec(vec![1, 3, 4, 4], vec![0f64; 48]).unwrap()],
        ),
    ];
    for (what, inputs) in cases {
        match err(s.run(&inputs), what) {
            Error::InputMismatch { .. } => {}
            e => panic!("{what}: expected InputMismatch, got {e:?}"),
        }
    }
    // The session is still usable after rejected calls.
    assert!(s.run(&[good]).is_ok());
}

#[test]
fn wrong_channels_on_dynamic_batch_model_are_input_mismatch() {
    let s = load_file("mobilenet_v2/torchscript.onnx").expect("fixture loads");
    let e = err(s.run(&[random_tensor(&[1, 4, 64, 64], 5)]), "4 channels");
    assert!(matches!(e, Error::InputMismatch { .. }), "4 channels: {e:?}");
    // Any batch size is fine: the batch axis is dynamic.
    let out = s.run(&[random_tensor(&[3, 3, 64, 64], 6)]).expect("batch 3");
    assert_eq!(out[0].shape(), &[3, 100]);
}

#[test]
fn external_data_outside_model_dir_is_rejected() {
    for rel in ["bad/external_parent.onnx", "bad/external_absolute.onnx"] {
        match err(load_file(rel), rel) {
            Error::ExternalData { tensor, .. } => assert_eq!(tensor, "w", "{rel}"),
            e => panic!("{rel}: expected ExternalData, got {e:?}"),
        }
    }
}

#[test]
fn missing_external_data_file_is_external_data_error() {
    match err(load_file("bad/external_missing.onnx"), "missing external file") {
        Error::ExternalData { tensor, .. } => assert_eq!(tensor, "w"),
        e => panic!("expected ExternalData, got {e:?}"),
    }
}

#[test]
fn external_data_from_bytes_has_no_directory() {
    // Bytes carry no location, so relative external data cannot be resolved.
    let bytes = std::fs::read(fixture("external_data/model.onnx")).expect("fixture");
    match err(load_bytes(bytes), "external data via from_bytes") {
        Error::ExternalData { .. } => {}
        e => panic!("expected ExternalData, got {e:?}"),
    }
}

#[test]
fn huge_constant_of_shape_is_a_limit_not_an_abort() {
    // 2^40 float32 elements requested by ConstantOfShape: refused at load or at run.
    let r = load_file("bad/huge_constant_of_shape.onnx").and_then(|s| s.run(&[random_tensor(&[1], 7)]));
    match err(r, "2^40-element ConstantOfShape") {
        Error::Limit(_) | Error::Shape { .. } => {}
        e => panic!("expected Limit or Shape, got {e:?}"),
    }
}

#[test]
fn huge_initializer_is_rejected() {
    // Declares 2^40 elements but carries 16 bytes.
    match err(load_file("bad/huge_initializer.onnx"), "2^40-element initializer") {
        Error::Limit(_) | Error::Shape { .. } | Error::Malformed(_) => {}
        e => panic!("expected Limit, Shape or Malformed, got {e:?}"),
    }
}

#[test]
fn huge_declared_input_dims_do_not_panic() {
    // x: float32[2^62, 2^62]. Refusing at load is fine; so is refusing a real input at run.
    match load_file("bad/huge_input_dims.onnx") {
        Err(e) => assert!(
            matches!(e, Error::Limit(_) | Error::Shape { .. } | Error::InvalidGraph(_)),
            "load: {e:?}"
        ),
        Ok(s) => {
            let e = err(
                s.run(&[random_tensor(&[1, 1], 8)]),
                "1x1 input for a 2^62 x 2^62 declaration",
            );
            assert!(
                matches!(
                    e,
                    Error::InputMismatch { .. } | Error::Limit(_) | Error::Shape { .. }
                ),
                "run: {e:?}"
            );
        }
    }
}

#[test]
fn bad_tensor_proto_is_malformed() {
    let bytes = Rng::new(99).bytes(512);
    assert!(matches!(
        kiln::onnx::parse_tensor_proto(&bytes),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(kiln::onnx::op_types(&bytes), Err(Error::Malformed(_))));
}
