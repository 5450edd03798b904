//! End-to-end parity of a GPU backend with onnxruntime: the real-export fixtures
//! (ORT's outputs saved beside them) and zoo models (ORT run here, when
//! `ORT_DYLIB_PATH` is set), in each of the backend's precisions: f32 within 1e-4
//! relative L2; f16 storage and TF32 products with the same top-1 (but for near
//! ties, see `common::top1_mismatches`), within 1e-2
//! on the zoo and 5e-2 on the fixtures (whose narrow layers and seeded BatchNorm
//! statistics amplify 11-bit rounding). Shared by tests/wgpu_parity.rs and
//! tests/cuda_parity.rs; skipped, saying why, without the device.

use super::{BACKEND, PRECISIONS, ZOO};
use crate::common::{
    f32s, fixtures_dir, max_abs, ort_run, random_tensor, read_npy, rel_l2, top1, top1_mismatches,
};
use kiln::{Precision, Session, SessionOptions, Tensor};

/// Largest relative L2 error accepted: (zoo, fixtures).
fn bound(precision: Precision, fixture: bool) -> f64 {
    match (precision, fixture) {
        (Precision::F32, _) => 1e-4,
        (Precision::F16 | Precision::Tf32, false) => 1e-2,
        (Precision::F16 | Precision::Tf32, true) => 5e-2,
    }
}

fn gpu_options(precision: Precision) -> SessionOptions {
    SessionOptions {
        backend: BACKEND,
        precision,
        ..SessionOptions::default()
    }
}

/// Checks one run and prints its table row; returns a failure note.
fn compare(
    label: &str,
    precision: Precision,
    fixture: bool,
    got: &Tensor,
    want: (&[usize], &[f32]),
) -> Option<String> {
    if got.shape() != want.0 {
        return Some(format!("{label}: shape {:?}, expected {:?}", got.shape(), want.0));
    }
    let g = got.as_slice::<f32>()?;
    let (r, m) = (rel_l2(g, want.1), max_abs(g, want.1));
    let same = top1(g, got.shape()) == top1(want.1, want.0);
    let mismatches = top1_mismatches(g, want.1, want.0, m);
    println!(
        "{label:<40} {:>4} {r:>10.2e} {m:>10.2e}  top-1 {}",
        format!("{precision:?}"),
        match (same, mismatches.is_empty()) {
            (true, _) => "same",
            (false, true) => "same but for near ties",
            (false, false) => "DIFFERS",
        }
    );
    if r > bound(precision, fixture) || !mismatches.is_empty() {
        return Some(format!(
            "{label} {precision:?}: rel-L2 {r:.2e}, top-1 (row, kiln, ort) {mismatches:?}"
        ));
    }
    None
}

fn open(path: &std::path::Path, precision: Precision) -> Option<Session> {
    match Session::from_file(path, gpu_options(precision)) {
        Ok(s) => Some(s),
        Err(kiln::Error::BackendUnavailable { reason, .. }) => {
            println!("skipped: {reason}");
            None
        }
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

#[test]
fn fixtures_match_onnxruntime() {
    let mut failures = Vec::new();
    println!(
        "\n{:<40} {:>4} {:>10} {:>10}",
        "fixture exporter batch", "prec", "rel_l2", "max_abs"
    );
    for model in crate::common::FIXTURE_MODELS {
        let dir = fixtures_dir().join(model);
        for exporter in ["dynamo", "torchscript"] {
            for &precision in PRECISIONS {
                let Some(session) = open(&dir.join(format!("{exporter}.onnx")), precision) else {
                    return;
                };
                for batch in [1, 8] {
                    if dir.join(format!("{exporter}_b{batch}.onnx")).exists() {
                        continue; // a static-batch export; batch 1 covers the model
                    }
                    let input = read_npy(&dir.join(format!("input_b{batch}.npy")));
                    let want = read_npy(&dir.join(format!("ort_{exporter}_b{batch}.npy")));
                    let label = format!("{model} {exporter} b{batch}");
                    match session.run(&[input]) {
                        Ok(got) => failures.extend(compare(
                            &label,
                            precision,
                            true,
                            &got[0],
                            (want.shape(), f32s(&want, "ort")),
                        )),
                        Err(e) => failures.push(format!("{label}: {e}")),
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn zoo_matches_onnxruntime() {
    let Some(dylib) = std::env::var_os("ORT_DYLIB_PATH") else {
        println!("skipped: ORT_DYLIB_PATH not set (run scripts/test.sh)");
        return;
    };
    let environment = ort::init_from(&dylib)
        .unwrap()
        .with_name("kiln-gpu-parity")
        .build()
        .unwrap();
    let mut failures = Vec::new();
    println!(
        "\n{:<40} {:>4} {:>10} {:>10}",
        "zoo model", "prec", "rel_l2", "max_abs"
    );
    for (index, &name) in ZOO.iter().enumerate() {
        let zoo = kiln::zoo::build(name).unwrap();
        let path = std::env::temp_dir().join(format!(
            "kiln-{BACKEND}-parity-{}-{name}.onnx",
            std::process::id()
        ));
        std::fs::write(&path, &zoo.onnx).unwrap();
        let mut ort_session = ort::session::Session::builder(&environment)
            .unwrap()
            .commit_from_file(&path)
            .unwrap();
        let [_, c, h, w] = zoo.input_shape;
        let input = random_tensor(&[1, c, h, w], 5000 + index as u64);
        let want = ort_run(&mut ort_session, &input).unwrap_or_else(|e| panic!("{name}: ort: {e}"));
        for &precision in PRECISIONS {
            let Some(session) = open(&path, precision) else {
                let _ = std::fs::remove_file(&path);
                return;
            };
            match session.run(std::slice::from_ref(&input)) {
                Ok(got) => failures.extend(compare(
                    &format!("{name} b1"),
                    precision,
                    false,
                    &got[0],
                    (&want.0, &want.1),
                )),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
