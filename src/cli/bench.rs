//! `kiln bench`: latency statistics on seeded random input.

use std::time::Instant;

use clap::Args;
use kiln::Result;

use super::{open_model, random_inputs, EngineArgs};

#[derive(Args)]
pub struct BenchArgs {
    /// ONNX model file or zoo model name (e.g. resnet50).
    model: String,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn bench(a: BenchArgs) -> Result<()> {
    let options = a.engine.options()?;
    let t0 = Instant::now();
    let session = open_model(&a.model, options)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let inputs = random_inputs(&session, a.batch, 0)?;
    let bar = (!a.json).then(|| {
        let bar = indicatif::ProgressBar::new((a.warmup + a.runs) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("{} b{}", a.model, a.batch));
        bar
    });
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
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let (median, p90, min) = (pct(0.5), pct(0.9), times[0]);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let arena_mb = session.arena_bytes(&inputs)? as f64 / 1e6;
    if a.json {
        let v = serde_json::json!({
            "model": a.model, "backend": a.engine.backend, "threads": session.threads(), "batch": a.batch,
            "runs": times.len(), "warmup": a.warmup, "optimized": !a.engine.no_optimize,
            "median_ms": median, "p90_ms": p90, "min_ms": min, "mean_ms": mean,
            "throughput_per_s": a.batch as f64 * 1e3 / median, "load_ms": load_ms, "arena_mb": arena_mb,
        });
        outln!("{v}");
    } else {
        outln!(
            "{} batch {} on {} ({} thread(s)): median {median:.2} ms, p90 {p90:.2} ms, min {min:.2} ms, {:.1} images/s \
             (load {load_ms:.0} ms, arena {arena_mb:.1} MB)",
            a.model,
            a.batch,
            a.engine.backend,
            session.threads(),
            a.batch as f64 * 1e3 / median
        );
    }
    Ok(())
}
