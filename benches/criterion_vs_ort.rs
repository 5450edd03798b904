//! Criterion: kiln and ONNX Runtime on the zoo models, one criterion group per model
//! with a `kiln` and an `ort` function per thread count, so criterion's report (and
//! its saved baselines) shows the two engines side by side.
//!
//! ```text
//! cargo bench --features ort --bench criterion_vs_ort
//! KILN_BENCH_MODELS=resnet18,mobilenet_v2 KILN_BENCH_THREADS=1 KILN_BENCH_BATCH=1 \
//!   cargo bench --features ort --bench criterion_vs_ort [-- CRITERION FLAGS]
//! KILN_BENCH_BACKEND=wgpu KILN_BENCH_PRECISION=f16 \
//!   cargo bench --features ort,wgpu --bench criterion_vs_ort   # kiln on a GPU, ORT on the CPU
//! ```
//!
//! Defaults: resnet18, mobilenet_v2, regnet_x_400mf and resnet50; 1 and 2 threads;
//! batch 1. ONNX Runtime comes from `ORT_DYLIB_PATH` or the venv of `scripts/test.sh`
//! (`kiln::reference::find_dylib`); without it the `ort` functions are skipped with
//! a message and kiln is timed alone. Each model's output 0 is checked against ORT
//! before it is timed.
//!
//! Criterion times one function after the other, minutes apart on this shared,
//! noisy machine; `cargo bench --features ort --bench vs_ort` and `kiln bench --vs ort`
//! take turns instead, and their ratios are the steadier ones. The table printed at
//! the end gives each pair's ratio of medians, from the samples criterion took.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use kiln::reference::{max_rel_l2, Agreement, OrtRuntime, OrtSession};
use kiln::{Session, SessionOptions, Tensor};

/// Samples per function: whole-network runs take 5-150 ms, so few samples of a few
/// runs each keep all four models to a few minutes.
const SAMPLES: usize = 10;
const MEASUREMENT: Duration = Duration::from_secs(5);
const WARM_UP: Duration = Duration::from_secs(2);

type Error = Box<dyn std::error::Error>;

/// A comma-separated environment variable, or `default`.
/// A single-valued setting (`KILN_BENCH_BACKEND=wgpu`).
fn env_value(name: &str, default: &str) -> String {
    env_list(name, default)
        .into_iter()
        .next()
        .unwrap_or_else(|| default.into())
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_numbers(name: &str, default: &str) -> Result<Vec<usize>, Error> {
    env_list(name, default)
        .iter()
        .map(|s| s.parse().map_err(|e| format!("{name}: '{s}': {e}").into()))
        .collect()
}

/// One model at one thread count: both engines' medians and how far apart their
/// answers are.
struct Row {
    label: String,
    kiln_ms: Option<f64>,
    ort_ms: Option<f64>,
    agreement: Option<Agreement>,
}

/// Times `run` as criterion function `id` of `group` and returns the median time
/// per run (ms) of criterion's measurement samples: the last [`SAMPLES`] calls of
/// the routine, after its warm-up calls.
fn time(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    mut run: impl FnMut(),
) -> Option<f64> {
    let samples = RefCell::new(Vec::new());
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                run();
            }
            let elapsed = t.elapsed();
            samples
                .borrow_mut()
                .push(elapsed.as_secs_f64() * 1e3 / iters.max(1) as f64);
            elapsed
        })
    });
    let samples = samples.into_inner();
    let mut measured = samples[samples.len().saturating_sub(SAMPLES)..].to_vec();
    measured.sort_by(f64::total_cmp);
    measured.get(measured.len() / 2).copied()
}

fn bench_model(
    c: &mut Criterion,
    runtime: Option<&OrtRuntime>,
    name: &str,
    threads: &[usize],
    batch: usize,
    rows: &mut Vec<Row>,
) -> Result<(), Error> {
    let zoo = kiln::zoo::build(name)?;
    let mut shape = zoo.input_shape.to_vec();
    shape[0] = batch;
    let inputs = [Tensor::random_normal(shape, 0)?];
    let mut group = c.benchmark_group(name);
    group.sampling_mode(SamplingMode::Flat);
    for &n in threads {
        let options = SessionOptions {
            threads: Some(n),
            backend: env_value("KILN_BENCH_BACKEND", "cpu").parse()?,
            precision: env_value("KILN_BENCH_PRECISION", "f32").parse()?,
            ..SessionOptions::default()
        };
        let bound = max_rel_l2(options.precision);
        let kiln = Session::from_bytes(zoo.onnx.clone(), options)?;
        let mut ort: Option<OrtSession> = match runtime {
            Some(r) => Some(r.session_from_bytes(&zoo.onnx, n)?),
            None => None,
        };
        let agreement = match &mut ort {
            Some(ort) => {
                ort.set_inputs(&inputs)?;
                let got = kiln.run(&inputs)?;
                let got = got.first().ok_or("kiln gave no outputs")?;
                let agreement = Agreement::of(got, &ort.run_first_output()?)?;
                if !agreement.agrees(bound) {
                    return Err(format!(
                        "{name} at {n} thread(s): kiln and ONNX Runtime disagree (rel-L2 {:.2e}); not timing it",
                        agreement.rel_l2
                    )
                    .into());
                }
                Some(agreement)
            }
            None => None,
        };
        let param = format!("{n}-thread");
        let kiln_ms = time(&mut group, BenchmarkId::new("kiln", &param), || {
            kiln.run(&inputs).map(drop).expect("kiln ran this input before");
        });
        let ort_ms = ort.as_mut().and_then(|ort| {
            time(&mut group, BenchmarkId::new("ort", &param), || {
                ort.run().expect("ONNX Runtime ran this input before");
            })
        });
        rows.push(Row {
            label: format!("{name} | {n} | {batch}"),
            kiln_ms,
            ort_ms,
            agreement,
        });
    }
    group.finish();
    Ok(())
}

fn main() -> Result<(), Error> {
    let models = env_list(
        "KILN_BENCH_MODELS",
        "resnet18,mobilenet_v2,regnet_x_400mf,resnet50",
    );
    let threads = env_numbers("KILN_BENCH_THREADS", "1,2")?;
    let batch = env_numbers("KILN_BENCH_BATCH", "1")?
        .first()
        .copied()
        .unwrap_or(1)
        .max(1);
    let runtime = match OrtRuntime::load() {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            println!("criterion_vs_ort: ONNX Runtime skipped, timing kiln alone: {e}");
            None
        }
    };
    let mut c = Criterion::default()
        .sample_size(SAMPLES)
        .measurement_time(MEASUREMENT)
        .warm_up_time(WARM_UP)
        .configure_from_args();
    let mut rows = Vec::new();
    for name in &models {
        bench_model(&mut c, runtime.as_ref(), name, &threads, batch, &mut rows)?;
    }
    c.final_summary();

    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    println!("\n| model | threads | batch | kiln ms | ORT ms | kiln / ORT | rel-L2 | max-abs |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let ratio = r.kiln_ms.zip(r.ort_ms).map(|(k, o)| k / o);
        let (rel, abs) = r.agreement.map_or(("-".into(), "-".into()), |a| {
            (format!("{:.1e}", a.rel_l2), format!("{:.1e}", a.max_abs))
        });
        println!(
            "| {} | {} | {} | {} | {rel} | {abs} |",
            r.label,
            ms(r.kiln_ms),
            ms(r.ort_ms),
            ms(ratio)
        );
    }
    Ok(())
}
