//! The `kiln` binary as a user at a terminal drives it.

use std::process::{Command, Stdio};

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

#[test]
fn profile_lists_algorithm_shape_and_rate_per_node() {
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/resnet_basic/dynamo.onnx"
    );
    let out = kiln()
        .args(["profile", model, "--runs", "1", "--top", "0", "--threads", "1"])
        .output()
        .expect("kiln runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
            row.contains("gemm") || row.contains("winograd") || row.contains("depthwise"),
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
