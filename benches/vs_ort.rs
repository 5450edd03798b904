//! kiln vs ONNX Runtime on the zoo models, measured in one process, runs interleaved.
//!
//! These machines are noisy and absolute times drift between runs, so the number that
//! means something is the *ratio* of medians taken side by side. The engines (kiln,
//! kiln with one feature off for an A/B, ORT; same input, same thread count) take turns in
//! short blocks, in rotating order: each block starts with a pause (`SETTLE`, 80 ms:
//! ORT's workers spin for ~45 ms after a run, which cost the engine after it one of
//! its two cores) and one untimed run, then times `BLOCK` (4) back-to-back runs.
//! Within a block an engine's threads are warm, as in a service under load. (Runs
//! separated by idle gaps are slower for every engine: the CPU and the thread pools
//! go to sleep. A version of this bench that paused 30 ms before each run measured
//! kiln's mobilenet_v2 at 2 threads at 21 ms, against 11 ms back to back.)
//!
//! ```text
//! cargo bench --features ort --bench vs_ort -- [--models resnet50,mobilenet_v2] [--threads 1,2] \
//!   [--batch 1] [--runs 20] [--warmup 3] [--ab winograd|optimizer]
//!   (--runs: timed runs per engine)
//! ```
//!
//! Prints one markdown table and exits 0: kiln's median, kiln's median with the
//! `--ab` feature off (Winograd by default, or the whole optimizer), measured in the
//! same loop, ORT's median, and the ratios. ONNX Runtime comes from `ORT_DYLIB_PATH`,
//! or else the venv of `scripts/test.sh` (`kiln::reference::find_dylib`); without
//! either it says so and exits 0, so `cargo bench` stays usable everywhere. The turns
//! are `kiln::reference::interleaved`'s, shared with `kiln bench --vs ort`.

use kiln::reference::{interleaved, OrtRuntime, Schedule, BLOCK, SETTLE};
use kiln::{CpuOptions, Session, SessionOptions, Tensor};

struct Args {
    models: Vec<String>,
    threads: Vec<usize>,
    batch: usize,
    runs: usize,
    warmup: usize,
    /// What the A/B engine turns off.
    ab: Ab,
}

#[derive(Copy, Clone, PartialEq)]
enum Ab {
    Winograd,
    Optimizer,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        models: ["resnet50", "resnet18", "mobilenet_v2", "regnet_x_400mf"]
            .map(String::from)
            .to_vec(),
        threads: vec![1, 2],
        batch: 1,
        runs: 20,
        warmup: 3,
        ab: Ab::Winograd,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |s: &str| s.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--models" => a.models = value()?.split(',').map(String::from).collect(),
            "--threads" => a.threads = value()?.split(',').map(number).collect::<Result<_, _>>()?,
            "--batch" => a.batch = number(&value()?)?,
            "--runs" => a.runs = number(&value()?)?.max(1),
            "--warmup" => a.warmup = number(&value()?)?,
            "--ab" => {
                a.ab = match value()?.as_str() {
                    "winograd" => Ab::Winograd,
                    "optimizer" => Ab::Optimizer,
                    other => return Err(format!("--ab: unknown feature {other}")),
                }
            }
            // `cargo bench` passes `--bench` to every harness.
            "--bench" => {}
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let runtime = match OrtRuntime::load() {
        Ok(runtime) => runtime,
        Err(e) => {
            println!("vs_ort skipped: {e}");
            return Ok(());
        }
    };

    let ab = match args.ab {
        Ab::Winograd => "winograd",
        Ab::Optimizer => "optimizer",
    };
    println!(
        "| model | threads | batch | kiln ms | kiln --no-{ab} ms | ORT ms | kiln / ORT | {ab} speed-up |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for name in &args.models {
        let zoo = kiln::zoo::build(name)?;
        let mut shape = zoo.input_shape.to_vec();
        shape[0] = args.batch;
        let inputs = [Tensor::random_normal(shape, 0)?];
        for &threads in &args.threads {
            let open = |full: bool| {
                let options = SessionOptions {
                    threads: Some(threads),
                    optimize: full || args.ab != Ab::Optimizer,
                    cpu: CpuOptions {
                        winograd: full || args.ab != Ab::Winograd,
                        ..CpuOptions::default()
                    },
                    ..SessionOptions::default()
                };
                Session::from_bytes(zoo.onnx.clone(), options)
            };
            let (kiln, plain) = (open(true)?, open(false)?);
            let mut ort = runtime.session_from_bytes(&zoo.onnx, threads)?;
            ort.set_inputs(&inputs)?;
            let mut run_kiln = || kiln.run(&inputs).map(drop);
            let mut run_plain = || plain.run(&inputs).map(drop);
            let mut run_ort = || ort.run();
            let schedule = Schedule {
                warmup: args.warmup,
                runs: args.runs,
                block: BLOCK,
                settle: SETTLE,
            };
            let mut times = interleaved(
                &schedule,
                &mut [&mut run_kiln, &mut run_plain, &mut run_ort],
                &mut || {},
            )?;
            let [mk, mp, mo] = [0, 1, 2].map(|i| median(&mut times[i]));
            println!(
                "| {name} | {threads} | {} | {mk:.2} | {mp:.2} | {mo:.2} | {:.2} | {:.2} |",
                args.batch,
                mk / mo,
                mp / mk
            );
        }
    }
    Ok(())
}
