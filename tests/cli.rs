//! The `kiln` binary as a user at a terminal drives it.

use std::process::{Command, Stdio};

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

/// Runs kiln with `args`, asserts it succeeds, and returns its stdout.
fn stdout_of(args: &[&str]) -> String {
    let out = kiln().args(args).output().expect("kiln runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn profile_lists_algorithm_shape_and_rate_per_node() {
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/resnet_basic/dynamo.onnx"
    );
    let text = stdout_of(&["profile", model, "--runs", "1", "--top", "0", "--threads", "1"]);
    assert!(text.contains("GFLOP/s") && text.contains("algorithm"), "{text}");
    // Every conv row names its algorithm, its output shape and a rate.
    let conv_rows: Vec<&str> = text
        .lines()
        .filter(|l| matches!(l.split_whitespace().nth(1), Some("Conv" | "FusedConv")))
        .collect();
    assert!(!conv_rows.is_empty(), "{text}");
    for row in conv_rows {
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert!(
            ["gemm", "winograd", "depthwise", "direct"]
                .iter()
                .any(|algo| row.contains(algo)),
            "no algorithm in {row}"
        );
        assert!(fields.iter().any(|f| f.starts_with("1x")), "no shape in {row}");
        let rate: f64 = fields
            .last()
            .and_then(|f| f.parse().ok())
            .expect("a GFLOP/s figure");
        assert!(rate > 0.0, "{row}");
    }
}

#[test]
fn closed_stdout_ends_quietly_instead_of_panicking() {
    let mut child = kiln()
        .args(["zoo", "--list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln starts");
    // Close the read end before the child writes: its first write fails (EPIPE).
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("kiln exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}

/// `kiln bench --vs ort` needs a build with `--features ort` and an ONNX Runtime
/// library; without either, one line on stderr says what to do.
#[test]
fn bench_vs_ort_without_onnxruntime_says_how_to_get_it() {
    // No ORT_DYLIB_PATH, and no ./.venv to fall back on.
    let out = kiln()
        .args(["bench", "mobilenet_v2", "--vs", "ort", "--runs", "1"])
        .env_remove("ORT_DYLIB_PATH")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("kiln runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    let hint = if cfg!(feature = "ort") {
        "ORT_DYLIB_PATH"
    } else {
        "--features ort"
    };
    assert!(stderr.contains(hint), "{stderr}");
}

#[test]
fn bench_vs_ort_prints_both_medians_the_ratio_and_the_agreement() {
    if !cfg!(feature = "ort") {
        println!("skipped: kiln built without `--features ort`");
        return;
    }
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        println!("skipped: ORT_DYLIB_PATH not set (run scripts/test.sh)");
        return;
    }
    let args = "bench mobilenet_v2 --vs ort --threads 1 --runs 2 --warmup 0";
    let text = stdout_of(&args.split(' ').collect::<Vec<_>>());
    let ratio: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("kiln / ORT = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no ratio line in\n{text}"));
    assert!(ratio.is_finite() && ratio > 0.0, "{text}");
    for needle in ["kiln median", "ORT  median", "rel-L2", "max-abs"] {
        assert!(text.contains(needle), "no '{needle}' in\n{text}");
    }
}
