//! The malformed-model corpus (tests/fixtures/bad/corpus/, written by
//! scripts/make_bad_models.py): every file must fail with the error variant its
//! manifest names, with a message that says what was wrong. Never a panic, never Ok.
//!
//! A model that loads is run on inputs of its declared shape (symbolic dims as 1),
//! since some problems (an out-of-range constant index) only show once shapes are
//! concrete.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use common::{fixture, random_tensor};
use kiln::tensor::Data;
use kiln::{DType, Error, Session, SessionOptions, Tensor};

/// Loads and (if that works) runs one model.
fn load_and_run(path: &PathBuf) -> kiln::Result<Vec<Tensor>> {
    let session = Session::from_file(path, SessionOptions::default())?;
    let inputs: Vec<Tensor> = session
        .graph()
        .inputs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let fact = &session.graph().values[v].fact;
            let shape: Vec<usize> = fact
                .shape
                .as_ref()
                .map_or(vec![1], |s| s.iter().map(|d| d.known().unwrap_or(1)).collect());
            match fact.dtype {
                DType::F32 => Ok(random_tensor(&shape, i as u64)),
                other => Tensor::new(shape.clone(), Data::zeros(other, shape.iter().product())),
            }
        })
        .collect::<kiln::Result<_>>()?;
    session.run(&inputs)
}

#[test]
fn every_corpus_model_fails_with_its_expected_error() {
    let dir = fixture("bad/corpus");
    let manifest = std::fs::read_to_string(dir.join("cases.json")).expect("corpus manifest");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&manifest).expect("manifest is JSON");
    assert!(cases.len() >= 30, "the corpus has only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let file = case["file"].as_str().expect("file");
        let expect = case["expect"].as_str().expect("expect");
        let contains = case["contains"].as_str().unwrap_or("").to_lowercase();
        let path = dir.join(file);
        let outcome = catch_unwind(AssertUnwindSafe(|| load_and_run(&path)));
        let verdict = match outcome {
            Err(_) => Err("PANICKED".to_string()),
            Ok(Ok(_)) => Err("loaded and ran without an error".to_string()),
            Ok(Err(e)) => {
                let message = e.to_string();
                if e.kind() != expect {
                    Err(format!("got {} ({message})", e.kind()))
                } else if !message.to_lowercase().contains(&contains) {
                    Err(format!("message does not mention '{contains}': {message}"))
                } else {
                    Ok(message)
                }
            }
        };
        match verdict {
            Ok(message) => println!("ok   {file:32} {expect:13} {message}"),
            Err(why) => {
                println!("FAIL {file:32} expected {expect}: {why}");
                failures.push(file);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus case(s) failed: {failures:?}",
        failures.len()
    );
}

#[cfg(unix)]
#[test]
fn external_data_through_a_symlink_out_of_the_folder_is_rejected() {
    let base = std::env::temp_dir().join(format!("kiln-symlink-{}", std::process::id()));
    let (model_dir, outside) = (base.join("model"), base.join("outside"));
    std::fs::create_dir_all(&model_dir).expect("temp dir");
    std::fs::create_dir_all(&outside).expect("temp dir");
    let model = std::fs::read(fixture("bad/corpus/external_ok.onnx.valid")).expect("fixture");
    std::fs::write(model_dir.join("model.onnx"), model).expect("write model");
    let weights: Vec<u8> = [0.0f32, 1.0, 2.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();

    // Control: a real file inside the folder loads.
    std::fs::write(model_dir.join("weights.bin"), &weights).expect("write weights");
    Session::from_file(model_dir.join("model.onnx"), SessionOptions::default()).expect("a real file loads");

    // The same name as a symlink to a file outside the folder must not.
    std::fs::remove_file(model_dir.join("weights.bin")).expect("remove");
    std::fs::write(outside.join("secret.bin"), &weights).expect("write secret");
    std::os::unix::fs::symlink(outside.join("secret.bin"), model_dir.join("weights.bin")).expect("symlink");
    let result = Session::from_file(model_dir.join("model.onnx"), SessionOptions::default());
    let _ = std::fs::remove_dir_all(&base);
    match result {
        Err(Error::ExternalData { message, .. }) => println!("rejected: {message}"),
        Err(e) => panic!("expected ExternalData, got {e:?}"),
        Ok(_) => panic!("a symlink out of the model folder was followed"),
    }
}
