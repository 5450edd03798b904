//! Parity against onnxruntime on the fixtures made by `scripts/make_fixtures.py`: reduced-width
//! torchvision models exported by both of torch's exporters, with ORT's outputs saved next to
//! them. Needs no Python or ORT at test time.

mod common;

use std::path::Path;

use common::{f32s, fixture, fixtures_dir, max_abs, read_npy, rel_l2, top1};
use kiln::{Session, SessionOptions, Tensor};

const MODELS: &[&str] = common::FIXTURE_MODELS;
const EXPORTERS: &[&str] = &["dynamo", "torchscript"];
const BATCHES: &[usize] = &[1, 8];
const MAX_REL_L2: f64 = 1e-4;

struct Row {
    label: String,
    rel_l2: f64,
    max_abs: f64,
    ok: bool,
    note: String,
}

fn compare(label: String, got: &[Tensor], want: &Tensor) -> Row {
    let fail = |note: String| Row {
        label: label.clone(),
        rel_l2: f64::NAN,
        max_abs: f64::NAN,
        ok: false,
        note,
    };
    if got.len() != 1 {
        return fail(format!("expected 1 output, got {}", got.len()));
    }
    let got = &got[0];
    if got.shape() != want.shape() {
        return fail(format!("shape {:?}, expected {:?}", got.shape(), want.shape()));
    }
    let Some(g) = got.as_slice::<f32>() else {
        return fail(format!("dtype {}, expected float32", got.dtype()));
    };
    let w = f32s(want, "reference");
    let (r, m) = (rel_l2(g, w), max_abs(g, w));
    let (tg, tw) = (top1(g, got.shape()), top1(w, want.shape()));
    let mut note = String::new();
    if r > MAX_REL_L2 {
        note = format!("rel_l2 {r:.2e} > {MAX_REL_L2:.0e}");
    }
    if tg != tw {
        note = format!("{note} top-1 differs: {tg:?} vs {tw:?}")
            .trim()
            .to_string();
    }
    Row {
        label,
        rel_l2: r,
        max_abs: m,
        ok: note.is_empty(),
        note,
    }
}

fn load(path: &Path, opts: SessionOptions) -> Result<Session, String> {
    Session::from_file(path, opts).map_err(|e| format!("load {}: {e}", path.display()))
}

fn options(optimize: bool) -> SessionOptions {
    SessionOptions {
        optimize,
        ..SessionOptions::default()
    }
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<44} {:>10} {:>10}  status",
        "model exporter batch opt", "rel_l2", "max_abs"
    );
    for r in rows {
        let status = if r.ok {
            "ok".to_string()
        } else {
            format!("FAIL {}", r.note)
        };
        println!(
            "{:<44} {:>10.2e} {:>10.2e}  {status}",
            r.label, r.rel_l2, r.max_abs
        );
    }
}

#[test]
fn fixtures_match_onnxruntime() {
    let mut rows = Vec::new();
    for model in MODELS {
        let dir = fixtures_dir().join(model);
        assert!(
            dir.join("torchscript.onnx").exists(),
            "missing fixture {model}: run scripts/make_fixtures.py"
        );
        for exporter in EXPORTERS {
            for optimize in [true, false] {
                let path = dir.join(format!("{exporter}.onnx"));
                let session = match load(&path, options(optimize)) {
                    Ok(s) => s,
                    Err(e) => {
                        let label = format!("{model} {exporter} * opt={optimize}");
                        rows.push(Row {
                            label,
                            rel_l2: f64::NAN,
                            max_abs: f64::NAN,
                            ok: false,
                            note: e,
                        });
                        continue;
                    }
                };
                assert_eq!(
                    session.input_names(),
                    vec!["input".to_string()],
                    "{model} {exporter}"
                );
                assert_eq!(
                    session.output_names(),
                    vec!["logits".to_string()],
                    "{model} {exporter}"
                );
                for &batch in BATCHES {
                    let label = format!("{model} {exporter} b{batch} opt={optimize}");
                    // Dynamic-batch exports run batch 1 and 8 through the same session; an
                    // exporter that could not make the batch dynamic left a separate file.
                    let separate = dir.join(format!("{exporter}_b{batch}.onnx"));
                    let reloaded;
                    let s = if separate.exists() {
                        reloaded = match load(&separate, options(optimize)) {
                            Ok(s) => s,
                            Err(e) => {
                                rows.push(Row {
                                    label,
                                    rel_l2: f64::NAN,
                                    max_abs: f64::NAN,
                                    ok: false,
                                    note: e,
                                });
                                continue;
                            }
                        };
                        &reloaded
                    } else {
                        &session
                    };
                    let input = read_npy(&dir.join(format!("input_b{batch}.npy")));
                    let want = read_npy(&dir.join(format!("ort_{exporter}_b{batch}.npy")));
                    match s.run(&[input]) {
                        Ok(got) => rows.push(compare(label, &got, &want)),
                        Err(e) => rows.push(Row {
                            label,
                            rel_l2: f64::NAN,
                            max_abs: f64::NAN,
                            ok: false,
                            note: format!("run: {e}"),
                        }),
                    }
                }
            }
        }
    }
    print_table(
        "kiln vs onnxruntime on tests/fixtures (max rel_l2 1e-4, top-1 equal)",
        &rows,
    );
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.ok).collect();
    assert!(
        failed.is_empty(),
        "{} of {} fixture runs failed (table above)",
        failed.len(),
        rows.len()
    );
}

#[test]
fn batch_order_does_not_matter_in_one_session() {
    // Batch 8, then batch 1, then batch 8 again on one session: plans cached per shape must
    // not leak state between shapes.
    let dir = fixture("resnet_basic");
    let s = Session::from_file(dir.join("torchscript.onnx"), SessionOptions::default()).expect("load");
    let x8 = read_npy(&dir.join("input_b8.npy"));
    let x1 = read_npy(&dir.join("input_b1.npy"));
    let w8 = read_npy(&dir.join("ort_torchscript_b8.npy"));
    let w1 = read_npy(&dir.join("ort_torchscript_b1.npy"));
    for (x, w) in [(&x8, &w8), (&x1, &w1), (&x8, &w8)] {
        let got = s.run(std::slice::from_ref(x)).expect("run");
        let row = compare(format!("b{}", x.shape()[0]), &got, w);
        assert!(row.ok, "{}: {}", row.label, row.note);
    }
}

#[test]
fn from_bytes_matches_from_file() {
    let path = fixture("mobilenet_v2/torchscript.onnx");
    let bytes = std::fs::read(&path).expect("read fixture");
    let a = Session::from_file(&path, SessionOptions::default()).expect("from_file");
    let b = Session::from_bytes(bytes, SessionOptions::default()).expect("from_bytes");
    let x = read_npy(&fixture("mobilenet_v2/input_b1.npy"));
    let ya = a.run(std::slice::from_ref(&x)).expect("run a");
    let yb = b.run(&[x]).expect("run b");
    assert_eq!(ya.len(), yb.len());
    for (p, q) in ya.iter().zip(&yb) {
        assert_eq!(p, q, "from_bytes and from_file sessions differ");
    }
}

#[test]
fn external_data_fixture_matches_onnxruntime() {
    let dir = fixture("external_data");
    let input = read_npy(&dir.join("input.npy"));
    let want = read_npy(&dir.join("ort_output.npy"));
    let mut rows = Vec::new();
    for optimize in [true, false] {
        let label = format!("external_data torchscript b{} opt={optimize}", input.shape()[0]);
        let s = Session::from_file(dir.join("model.onnx"), options(optimize))
            .unwrap_or_else(|e| panic!("load external-data model: {e}"));
        let got = s
            .run(std::slice::from_ref(&input))
            .unwrap_or_else(|e| panic!("run: {e}"));
        rows.push(compare(label, &got, &want));
    }
    print_table("external-data fixture", &rows);
    assert!(
        rows.iter().all(|r| r.ok),
        "external-data fixture differs from onnxruntime"
    );
}
