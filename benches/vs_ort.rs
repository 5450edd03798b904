//! kiln vs ONNX Runtime on the zoo models, measured in one process, runs interleaved.
//!
//! These machines are noisy and absolute times drift between runs, so the number that
//! means something is the *ratio* of medians taken side by side: each timed iteration
//! runs kiln once and ORT once on the same input, with the same thread count.
//!
//! ```text
//! ORT_DYLIB_PATH=.venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1 \
//!   cargo bench --bench vs_ort -- [--models resnet50,mobilenet_v2] [--threads 1,2] \
//!   [--batch 1] [--runs 20] [--warmup 3] [--no-optimize]
//! ```
//!
//! Prints one markdown table (kiln median, ORT median, kiln/ORT) and exits 0; without
//! `ORT_DYLIB_PATH` it says so and exits 0, so `cargo bench` stays usable everywhere.

use std::time::Instant;

use kiln::{Session, SessionOptions, Tensor};

struct Args {
    models: Vec<String>,
    threads: Vec<usize>,
    batch: usize,
    runs: usize,
    warmup: usize,
    optimize: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        models: ["resnet50", "mobilenet_v2", "regnet_x_400mf"]
            .map(String::from)
            .to_vec(),
        threads: vec![1, 2],
        batch: 1,
        runs: 20,
        warmup: 3,
        optimize: true,
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
            "--no-optimize" => a.optimize = false,
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

fn ort_input(input: &Tensor) -> Result<ort::value::Tensor<f32>, String> {
    let data = input.as_slice::<f32>().ok_or("input is not float32")?.to_vec();
    ort::value::Tensor::from_array((input.shape().to_vec(), data)).map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let Some(dylib) = std::env::var_os("ORT_DYLIB_PATH") else {
        println!("vs_ort skipped: ORT_DYLIB_PATH not set (see the header of benches/vs_ort.rs)");
        return Ok(());
    };
    let environment = ort::init_from(&dylib)
        .map_err(|e| format!("cannot load onnxruntime: {e}"))?
        .with_name("kiln-bench")
        .build()
        .map_err(|e| e.to_string())?;

    println!(
        "| model | threads | batch | kiln median ms | ORT median ms | kiln / ORT |\n|---|---|---|---|---|---|"
    );
    for name in &args.models {
        let zoo = kiln::zoo::build(name).map_err(|e| e.to_string())?;
        let path = std::env::temp_dir().join(format!("kiln-vs-ort-{}-{name}.onnx", std::process::id()));
        std::fs::write(&path, &zoo.onnx).map_err(|e| e.to_string())?;
        let mut shape = zoo.input_shape.to_vec();
        shape[0] = args.batch;
        let input = Tensor::random_normal(shape, 0).map_err(|e| e.to_string())?;
        for &threads in &args.threads {
            let options = SessionOptions {
                threads: Some(threads),
                optimize: args.optimize,
                ..SessionOptions::default()
            };
            let kiln = Session::from_file(&path, options).map_err(|e| e.to_string())?;
            let mut ort = ort::session::Session::builder(&environment)
                .map_err(|e| e.to_string())
                .and_then(|b| b.with_intra_threads(threads).map_err(|e| e.to_string()))
                .and_then(|b| b.with_inter_threads(1).map_err(|e| e.to_string()))
                .and_then(|mut b| b.commit_from_file(&path).map_err(|e| e.to_string()))?;
            let inputs = [input.clone()];
            let mut run_ort = || -> Result<(), String> {
                let value = ort_input(&input)?;
                ort.run(ort::inputs![value]).map_err(|e| e.to_string())?;
                Ok(())
            };
            for _ in 0..args.warmup {
                kiln.run(&inputs).map_err(|e| e.to_string())?;
                run_ort()?;
            }
            let (mut tk, mut to) = (Vec::new(), Vec::new());
            for _ in 0..args.runs {
                let t = Instant::now();
                kiln.run(&inputs).map_err(|e| e.to_string())?;
                tk.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                run_ort()?;
                to.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let (mk, mo) = (median(&mut tk), median(&mut to));
            println!(
                "| {name} | {threads} | {} | {mk:.2} | {mo:.2} | {:.2} |",
                args.batch,
                mk / mo
            );
        }
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}
