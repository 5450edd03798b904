//! `kiln bench`: latency statistics on seeded random input, alone or side by side
//! with ONNX Runtime (`--vs ort`, in `bench_vs_ort.rs`).

use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use kiln::Result;

use super::{open_model, random_inputs, EngineArgs};

#[derive(Args)]
pub struct BenchArgs {
    /// ONNX model file or zoo model name (e.g. resnet50).
    pub(super) model: String,
    #[arg(long, default_value_t = 1)]
    pub(super) batch: usize,
    /// Timed runs (of each engine, with --vs).
    #[arg(long, default_value_t = 20)]
    pub(super) runs: usize,
    /// Untimed warm-up runs (of each engine, with --vs).
    #[arg(long, default_value_t = 3)]
    pub(super) warmup: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub(super) json: bool,
    /// Also time another engine on the same input and thread count, in turns with
    /// kiln, after checking both give the same output; prints the ratio.
    /// `ort`: ONNX Runtime, from ORT_DYLIB_PATH or ./.venv (needs `--features ort`).
    #[arg(long, value_enum)]
    pub(super) vs: Option<Reference>,
    #[command(flatten)]
    pub(super) engine: EngineArgs,
}

/// Engines `--vs` compares with.
#[derive(Clone, Copy, ValueEnum)]
pub enum Reference {
    Ort,
}

#[cfg(feature = "ort")]
use super::bench_vs_ort::bench_vs_ort;

/// Without the `ort` feature this binary has no way to load ONNX Runtime.
#[cfg(not(feature = "ort"))]
fn bench_vs_ort(_: BenchArgs) -> Result<()> {
    Err(kiln::Error::BackendUnavailable {
        backend: "onnxruntime".into(),
        reason: "this kiln was built without the `ort` feature; rebuild it with \
                 `cargo build --release --features ort` to use --vs ort"
            .into(),
    })
}

pub fn bench(a: BenchArgs) -> Result<()> {
    if let Some(Reference::Ort) = a.vs {
        return bench_vs_ort(a);
    }
    let options = a.engine.options()?;
    let t0 = Instant::now();
    let session = open_model(&a.model, options)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let inputs = random_inputs(&session, a.batch, 0)?;
    let bar = progress_bar(&a, a.warmup + a.runs);
    for _ in 0..a.warmup {
        session.run(&inputs)?;
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    let mut times = Vec::with_capacity(a.runs);
    for _ in 0..a.runs.max(1) {
        let t = Instant::now();
        session.run(&inputs)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let runs = times.len();
    let Latency {
        median,
        p90,
        min,
        mean,
    } = Latency::of(times);
    let arena_mb = session.arena_bytes(&inputs)? as f64 / 1e6;
    let peak_rss_mb = peak_rss_mb();
    if a.json {
        let v = serde_json::json!({
            "model": a.model, "backend": a.engine.backend, "device": session.device_name(),
            "precision": format!("{:?}", session.options().precision), "threads": session.threads(), "batch": a.batch,
            "runs": runs, "warmup": a.warmup, "optimized": !a.engine.no_optimize,
            "median_ms": median, "p90_ms": p90, "min_ms": min, "mean_ms": mean,
            "throughput_per_s": a.batch as f64 * 1e3 / median, "load_ms": load_ms, "arena_mb": arena_mb,
            "peak_rss_mb": peak_rss_mb,
        });
        outln!("{v}");
    } else {
        let rss = peak_rss_mb.map_or(String::new(), |mb| format!(", peak RSS {mb:.1} MB"));
        outln!(
            "{} batch {} on {}: median {median:.2} ms, p90 {p90:.2} ms, min {min:.2} ms, {:.1} images/s \
             (load {load_ms:.0} ms, arena {arena_mb:.1} MB{rss})",
            a.model,
            a.batch,
            super::engine_label(&session),
            a.batch as f64 * 1e3 / median
        );
    }
    Ok(())
}

/// The process's peak resident set size (Linux `VmHWM`), in MB: weights, arena,
/// kernel scratch and the runtime itself. `None` where `/proc` has no such line.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0 / 1e6)
}

/// Summary of timed runs, in milliseconds.
pub(super) struct Latency {
    pub median: f64,
    pub p90: f64,
    pub min: f64,
    pub mean: f64,
}

impl Latency {
    /// `times` must not be empty (`--runs 0` is run once).
    pub(super) fn of(mut times: Vec<f64>) -> Latency {
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        Latency {
            median: pct(0.5),
            p90: pct(0.9),
            min: times[0],
            mean: times.iter().sum::<f64>() / times.len() as f64,
        }
    }
}

/// A progress bar over `len` runs on stderr, or none with `--json`.
pub(super) fn progress_bar(a: &BenchArgs, len: usize) -> Option<ProgressBar> {
    (!a.json).then(|| {
        let bar = ProgressBar::new(len as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(format!("{} b{}", a.model, a.batch));
        bar
    })
}
