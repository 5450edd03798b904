//! `kiln run`: inputs from .npy files, outputs to `DIR/output_N.npy`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use kiln::{Error, Result};

use super::{npy, open_model, random_inputs, EngineArgs};

#[derive(Args)]
pub struct RunArgs {
    /// ONNX model file (or a zoo model name).
    model: String,
    /// Input .npy files in graph-input order (default: seeded random inputs).
    #[arg(short, long = "input")]
    inputs: Vec<PathBuf>,
    /// Folder for output_0.npy, output_1.npy, ... (not written if omitted).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Batch size for random inputs.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(a: RunArgs) -> Result<()> {
    let t0 = Instant::now();
    let session = open_model(&a.model, a.engine.options()?)?;
    let load = t0.elapsed();
    let inputs = if a.inputs.is_empty() {
        random_inputs(&session, a.batch, 0)?
    } else {
        a.inputs
            .iter()
            .map(|p| npy::read(p))
            .collect::<Result<Vec<_>>>()?
    };
    let t1 = Instant::now();
    let outputs = session.run(&inputs)?;
    let elapsed = t1.elapsed();
    outln!(
        "{}: loaded in {:.1} ms, ran in {:.2} ms on {} thread(s)",
        a.model,
        load.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3,
        session.threads()
    );
    if let Some(dir) = &a.output {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
    }
    for (i, (name, t)) in session.output_names().iter().zip(&outputs).enumerate() {
        let values = t.to_f32_vec();
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in &values {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let argmax = values
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (j, &v)| if v > b.1 { (j, v) } else { b },
            )
            .0;
        outln!(
            "  output {i} '{name}': {} {:?}, min {lo:.4}, max {hi:.4}, argmax {argmax}",
            t.dtype(),
            t.shape()
        );
        if let Some(dir) = &a.output {
            npy::write(&dir.join(format!("output_{i}.npy")), t)?;
        }
    }
    Ok(())
}
