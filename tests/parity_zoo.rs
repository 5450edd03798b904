//! Parity against onnxruntime (loaded at run time through the `ort` crate) on every model of
//! kiln's built-in zoo, at full size. Skipped unless `ORT_DYLIB_PATH` points at a
//! `libonnxruntime.so` (scripts/test.sh sets it up).

mod common;

use common::{max_abs, ort_run, random_tensor, rel_l2, top1};
use kiln::{Session, SessionOptions};

const MAX_REL_L2: f64 = 1e-4;
/// Models also checked at batch 2 (through the same kiln session as batch 1).
const BATCH2: &[&str] = &["resnet18", "mobilenet_v2"];

struct Row {
    label: String,
    rel_l2: f64,
    max_abs: f64,
    top1: String,
    ok: bool,
    note: String,
}

#[test]
fn zoo_matches_onnxruntime() {
    let Some(dylib) = std::env::var_os("ORT_DYLIB_PATH") else {
        println!("skipped: ORT_DYLIB_PATH not set (run scripts/test.sh)");
        return;
    };
    // One ORT environment per process: keep it alive for the whole test.
    let environment = ort::init_from(&dylib)
        .unwrap_or_else(|e| panic!("cannot load onnxruntime from {}: {e}", dylib.to_string_lossy()))
        .with_name("kiln-parity")
        .build()
        .expect("ORT environment");

    let mut rows = Vec::new();
    for (index, &name) in kiln::zoo::names().iter().enumerate() {
        let zoo = kiln::zoo::build(name).unwrap_or_else(|e| panic!("zoo::build({name}): {e}"));
        let path = std::env::temp_dir().join(format!("kiln-parity-zoo-{}-{name}.onnx", std::process::id()));
        std::fs::write(&path, &zoo.onnx).expect("write temp model");

        let kiln_session = Session::from_file(&path, SessionOptions::default());
        let ort_session = ort::session::Session::builder(&environment)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_intra_threads(2).map_err(|e| e.to_string()))
            .and_then(|mut b| b.commit_from_file(&path).map_err(|e| e.to_string()));
        let _ = std::fs::remove_file(&path);

        let batches: &[usize] = if BATCH2.contains(&name) { &[1, 2] } else { &[1] };
        let (kiln_session, mut ort_session) = match (kiln_session, ort_session) {
            (Ok(k), Ok(o)) => (k, o),
            (k, o) => {
                let note = match (k.err(), o.err()) {
                    (Some(e), _) => format!("kiln load: {e}"),
                    (_, Some(e)) => format!("ort load: {e}"),
                    _ => unreachable!(),
                };
                rows.push(Row {
                    label: format!("{name} *"),
                    rel_l2: f64::NAN,
                    max_abs: f64::NAN,
                    top1: String::new(),
                    ok: false,
                    note,
                });
                continue;
            }
        };
        for &batch in batches {
            let [_, c, h, w] = zoo.input_shape;
            let input = random_tensor(&[batch, c, h, w], 1000 + index as u64 * 10 + batch as u64);
            let label = format!("{name} b{batch} {c}x{h}x{w}");
            let mut row = Row {
                label,
                rel_l2: f64::NAN,
                max_abs: f64::NAN,
                top1: String::new(),
                ok: false,
                note: String::new(),
            };
            let want = match ort_run(&mut ort_session, &input) {
                Ok(w) => w,
                Err(e) => {
                    row.note = format!("ort run: {e}");
                    rows.push(row);
                    continue;
                }
            };
            let got = match kiln_session.run(std::slice::from_ref(&input)) {
                Ok(g) => g,
                Err(e) => {
                    row.note = format!("kiln run: {e}");
                    rows.push(row);
                    continue;
                }
            };
            let Some(got) = got.first() else {
                row.note = "kiln returned no outputs".into();
                rows.push(row);
                continue;
            };
            if got.shape() != want.0.as_slice() {
                row.note = format!("shape {:?}, ort {:?}", got.shape(), want.0);
                rows.push(row);
                continue;
            }
            let Some(g) = got.as_slice::<f32>() else {
                row.note = format!("dtype {}", got.dtype());
                rows.push(row);
                continue;
            };
            row.rel_l2 = rel_l2(g, &want.1);
            row.max_abs = max_abs(g, &want.1);
            let (tk, to) = (top1(g, got.shape()), top1(&want.1, &want.0));
            row.top1 = format!("{tk:?}");
            if row.rel_l2 > MAX_REL_L2 {
                row.note = format!("rel_l2 {:.2e} > {MAX_REL_L2:.0e}", row.rel_l2);
            }
            if tk != to {
                row.note = format!("{} top-1 differs: kiln {tk:?}, ort {to:?}", row.note)
                    .trim()
                    .to_string();
            }
            row.ok = row.note.is_empty();
            rows.push(row);
        }
    }

    println!("\nkiln vs onnxruntime on the zoo (max rel_l2 {MAX_REL_L2:.0e}, top-1 equal)");
    println!(
        "{:<36} {:>10} {:>10}  {:<10} status",
        "model batch input", "rel_l2", "max_abs", "top1"
    );
    for r in &rows {
        let status = if r.ok {
            "ok".to_string()
        } else {
            format!("FAIL {}", r.note)
        };
        println!(
            "{:<36} {:>10.2e} {:>10.2e}  {:<10} {status}",
            r.label, r.rel_l2, r.max_abs, r.top1
        );
    }
    assert!(!rows.is_empty(), "kiln::zoo::names() is empty");
    let failed = rows.iter().filter(|r| !r.ok).count();
    assert_eq!(
        failed,
        0,
        "{failed} of {} zoo runs differ from onnxruntime (table above)",
        rows.len()
    );
}
