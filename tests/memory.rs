//! Memory must stay flat over many runs: plans, arenas and kernel scratch are reused,
//! never accumulated. Its own test binary, so the RSS it reads is its own.

mod common;

use common::{fixture, read_npy};
use kiln::{Session, SessionOptions};

const RSS_RUNS: usize = 10_000;

/// Resident set size in KiB (Linux), for the flat-memory check.
fn rss_kib() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn memory_stays_flat_over_ten_thousand_runs() {
    let Some(_) = rss_kib() else {
        println!("skipped: no /proc/self/status on this platform");
        return;
    };
    let options = SessionOptions {
        threads: Some(2),
        ..SessionOptions::default()
    };
    let session =
        Session::from_file(fixture("resnet_basic/torchscript.onnx"), options).expect("load fixture");
    let x = read_npy(&fixture("resnet_basic/input_b1.npy"));
    let inputs = [x];
    // Warm up: the plan, its arena and the kernels' scratch buffers exist after this.
    for _ in 0..200 {
        session.run(&inputs).expect("run");
    }
    let start = rss_kib().unwrap_or(0);
    let mut samples = Vec::new();
    for i in 1..=RSS_RUNS {
        session.run(&inputs).expect("run");
        if i % 2500 == 0 {
            samples.push(rss_kib().unwrap_or(0));
        }
    }
    let end = *samples.last().unwrap_or(&start);
    println!("RSS over {RSS_RUNS} runs: {start} KiB after warm-up, then {samples:?} KiB");
    // Allocator noise is a few hundred KiB; a leak of even 1 KiB per run is 10 MiB.
    assert!(
        end <= start + 4096,
        "RSS grew from {start} KiB to {end} KiB over {RSS_RUNS} runs"
    );
}
