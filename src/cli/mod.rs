//! Command-line front end. Each subcommand lives in its own file; they share the
//! model/input helpers below.

/// `println!` that turns a failed write (stdout closed, as in `kiln inspect m | head`)
/// into an error the caller returns, instead of a panic. `main` exits quietly on a
/// broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(|source| kiln::Error::Io {
            path: "<stdout>".into(),
            source,
        })?
    }};
}

mod bench;
#[cfg(feature = "ort")]
mod bench_vs_ort;
mod inspect;
mod npy;
mod profile;
mod run;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use kiln::ir::Dim;
use kiln::{Backend, Error, Result, Session, SessionOptions, Tensor};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "A pure-Rust inference engine for ONNX vision models"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model on .npy inputs (or seeded random ones) and write .npy outputs.
    Run(run::RunArgs),
    /// Time a model (a file or a zoo name) on seeded random input.
    Bench(bench::BenchArgs),
    /// Show a model's inputs, outputs, op counts and parameter count.
    Inspect(inspect::InspectArgs),
    /// Per-op time table of one model.
    Profile(profile::ProfileArgs),
    /// Write a built-in zoo model as an ONNX file (`kiln zoo --list` lists them).
    Zoo(ZooArgs),
}

#[derive(Args)]
struct ZooArgs {
    /// Model name, e.g. resnet50.
    name: Option<String>,
    /// Output file.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// List the available models.
    #[arg(long)]
    list: bool,
}

/// Options shared by the subcommands that build a session.
#[derive(Args, Clone)]
pub struct EngineArgs {
    /// Backend to run on: cpu, wgpu or cuda (the GPU backends build with the
    /// `wgpu` and `cuda` features).
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Precision on a GPU backend: f32, tf32 (cuda: TF32 Tensor Core products)
    /// or f16 (half-precision storage).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Pin the workers to CPUs, one each: auto (when there is one worker per CPU),
    /// on or off.
    #[arg(long, default_value = "auto")]
    pin: String,
    /// Run the graph exactly as loaded, without the optimizer.
    #[arg(long)]
    no_optimize: bool,
    /// Never use Winograd for 3x3 convolutions (less weight memory, im2col's rounding).
    #[arg(long)]
    no_winograd: bool,
    /// Keep every value NCHW (no channels-last values around depthwise convolutions).
    #[arg(long)]
    no_channels_last: bool,
}

impl EngineArgs {
    fn options(&self) -> Result<SessionOptions> {
        Ok(SessionOptions {
            backend: self.backend.parse::<Backend>()?,
            threads: self.threads,
            pinning: self.pin.parse()?,
            optimize: !self.no_optimize,
            precision: self.precision.parse()?,
            cpu: kiln::CpuOptions {
                winograd: !self.no_winograd,
                channels_last: !self.no_channels_last,
            },
            ..SessionOptions::default()
        })
    }
}

/// What a session runs on, for reports: `cpu (2 thread(s))`, or
/// `wgpu F16 on llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
pub fn engine_label(session: &Session) -> String {
    match session.options().backend {
        Backend::Cpu => format!(
            "cpu ({} thread(s){})",
            session.threads(),
            if session.pinned() { ", pinned" } else { "" }
        ),
        backend => format!(
            "{backend} {:?} on {}",
            session.options().precision,
            session.device_name()
        ),
    }
}

pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Bench(a) => bench::bench(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Profile(a) => profile::profile(a),
        Command::Zoo(a) => zoo(a),
    }
}

fn zoo(a: ZooArgs) -> Result<()> {
    if a.list || a.name.is_none() {
        for name in kiln::zoo::names() {
            outln!("{name}");
        }
        return Ok(());
    }
    let name = a.name.unwrap_or_default();
    let model = kiln::zoo::build(&name)?;
    let path = a.output.unwrap_or_else(|| PathBuf::from(format!("{name}.onnx")));
    std::fs::write(&path, &model.onnx).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    outln!(
        "wrote {} ({:.1} MB, {:.2} GMACs at batch 1)",
        path.display(),
        model.onnx.len() as f64 / 1e6,
        model.gmacs
    );
    Ok(())
}

/// A model named on the command line: a file, or the bytes of a zoo model.
#[derive(Clone)]
pub enum ModelSource {
    File(PathBuf),
    Zoo(Vec<u8>),
}

impl ModelSource {
    /// A path, or the name of a zoo model when no such file exists.
    pub fn resolve(model: &str) -> Result<ModelSource> {
        if Path::new(model).exists() || model.ends_with(".onnx") {
            return Ok(ModelSource::File(model.into()));
        }
        if kiln::zoo::names().contains(&model) {
            return Ok(ModelSource::Zoo(kiln::zoo::build(model)?.onnx));
        }
        Err(Error::Usage(format!(
            "'{model}' is neither a file nor a zoo model (zoo: {})",
            kiln::zoo::names().join(", ")
        )))
    }

    pub fn open(self, options: SessionOptions) -> Result<Session> {
        match self {
            ModelSource::File(path) => Session::from_file(path, options),
            ModelSource::Zoo(bytes) => Session::from_bytes(bytes, options),
        }
    }
}

/// A model given as a path, or as the name of a zoo model when no such file exists.
pub fn open_model(model: &str, options: SessionOptions) -> Result<Session> {
    ModelSource::resolve(model)?.open(options)
}

/// Seeded random inputs for every graph input; symbolic dims named like a batch
/// axis (or the first dim) take `batch`, other symbolic dims are an error.
pub fn random_inputs(session: &Session, batch: usize, seed: u64) -> Result<Vec<Tensor>> {
    let g = session.graph();
    g.inputs
        .iter()
        .enumerate()
        .map(|(k, &id)| {
            let v = &g.values[id];
            let dims = v
                .fact
                .shape
                .as_ref()
                .ok_or_else(|| Error::Usage(format!("input '{}' has unknown rank", v.name)))?;
            let shape = dims
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Dim::Known(n) if i == 0 && batch != 1 && *n == 1 => Ok(batch),
                    Dim::Known(n) => Ok(*n),
                    Dim::Sym(_) if i == 0 => Ok(batch),
                    Dim::Sym(s) => Err(Error::Usage(format!(
                        "input '{}' has symbolic dim '{s}'; pass -i files",
                        v.name
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            let t = Tensor::random_normal(shape.clone(), seed + k as u64)?;
            match v.fact.dtype {
                kiln::DType::F32 => Ok(t),
                other => Err(Error::Usage(format!(
                    "input '{}' is {other}; random inputs are float32 only",
                    v.name
                ))),
            }
        })
        .collect()
}
