//! `kiln bench MODEL --vs ort`: kiln and ONNX Runtime on the same model, seeded input,
//! batch and thread count, timed in turns in one process.
//!
//! Output 0 of both engines is compared first, with the parity tests' measures and
//! bound: a speed ratio from a wrong answer would mean nothing, so a disagreement is
//! an error and nothing is timed.

use kiln::reference::{interleaved, max_rel_l2, Agreement, OrtRuntime, Schedule, BLOCK, SETTLE};
use kiln::{Error, Result};

use super::bench::{progress_bar, BenchArgs, Latency};
use super::{random_inputs, ModelSource};

pub fn bench_vs_ort(a: BenchArgs) -> Result<()> {
    // Before the model: a missing library should not cost a model load to find out.
    let runtime = OrtRuntime::load()?;
    let source = ModelSource::resolve(&a.model)?;
    let options = a.engine.options()?;
    let bound = max_rel_l2(options.precision);
    let session = source.clone().open(options)?;
    // The same thread count, whether --threads gave it or kiln chose it.
    let threads = session.threads();
    let mut ort = match source {
        ModelSource::File(path) => runtime.session_from_file(&path, threads)?,
        ModelSource::Zoo(bytes) => runtime.session_from_bytes(&bytes, threads)?,
    };
    let inputs = random_inputs(&session, a.batch, 0)?;
    ort.set_inputs(&inputs)?;

    let got = session.run(&inputs)?;
    let got = got
        .first()
        .ok_or_else(|| Error::Usage("the model has no outputs".into()))?;
    let want = ort.run_first_output()?;
    let agreement = Agreement::of(got, &want).map_err(|e| Error::Usage(format!("output 0: {e}")))?;
    let Agreement { rel_l2, max_abs } = agreement;
    if !agreement.agrees(bound) {
        return Err(Error::Usage(format!(
            "kiln and ONNX Runtime disagree on output 0 (rel-L2 {rel_l2:.2e} > {bound:.0e}, \
             max-abs {max_abs:.2e}); not timing a wrong answer"
        )));
    }

    let schedule = Schedule {
        warmup: a.warmup,
        runs: a.runs.max(1),
        block: BLOCK,
        settle: SETTLE,
    };
    let bar = progress_bar(&a, 2 * schedule.runs_per_engine());
    let mut run_kiln = || session.run(&inputs).map(drop);
    let mut run_ort = || ort.run();
    let times = interleaved(&schedule, &mut [&mut run_kiln, &mut run_ort], &mut || {
        if let Some(b) = &bar {
            b.inc(1);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let [kiln_times, ort_times]: [Vec<f64>; 2] = times
        .try_into()
        .map_err(|_| Error::Usage("expected two engines' times".into()))?;
    let (k, o) = (Latency::of(kiln_times), Latency::of(ort_times));
    let ratio = k.median / o.median;

    if a.json {
        let v = serde_json::json!({
            "model": a.model, "backend": a.engine.backend, "threads": threads, "batch": a.batch,
            "runs": schedule.runs, "warmup": a.warmup, "block": BLOCK, "optimized": !a.engine.no_optimize,
            "kiln": { "median_ms": k.median, "p90_ms": k.p90, "min_ms": k.min, "mean_ms": k.mean },
            "ort": { "median_ms": o.median, "p90_ms": o.p90, "min_ms": o.min, "mean_ms": o.mean,
                     "library": runtime.library().display().to_string() },
            "kiln_over_ort": ratio, "output0_shape": got.shape(), "rel_l2": rel_l2, "max_abs": max_abs,
        });
        outln!("{v}");
        return Ok(());
    }
    outln!(
        "{} batch {} ({threads} thread(s) each), {} timed runs per engine in turns of {BLOCK}:",
        a.model,
        a.batch,
        schedule.runs
    );
    for (name, l) in [("kiln", &k), ("ORT ", &o)] {
        outln!(
            "  {name} median {:.2} ms, p90 {:.2} ms, min {:.2} ms",
            l.median,
            l.p90,
            l.min
        );
    }
    outln!("  kiln / ORT = {ratio:.2} (median latency; below 1: kiln is faster)");
    outln!(
        "  output 0 {:?}: rel-L2 {rel_l2:.2e}, max-abs {max_abs:.2e} (agree: rel-L2 <= {bound:.0e})",
        got.shape()
    );
    outln!(
        "  ONNX Runtime: {} (ORT_ENABLE_ALL, 1 inter-op thread)",
        runtime.library().display()
    );
    Ok(())
}
