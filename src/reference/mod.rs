//! ONNX Runtime as the reference engine kiln is measured against.
//!
//! `kiln bench --vs ort` and the benches all load ONNX Runtime here, so they time
//! and check the same configuration: the `ort` crate's `load-dynamic` mode (the
//! library is opened at run time; nothing is linked), intra-op threads set to kiln's
//! thread count, one inter-op thread, every graph optimization on (`ORT_ENABLE_ALL`,
//! ORT's own default, set explicitly so a change of default cannot skew a ratio).
//! Built only with the `ort` cargo feature: the default build never loads ONNX
//! Runtime. [`interleaved`] takes turns between engines, because on a shared
//! machine only times taken side by side compare.

mod interleave;

use std::path::{Path, PathBuf};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::SessionInputValue;

use crate::error::{Error, Result};
use crate::tensor::{max_abs, rel_l2, Tensor};

pub use interleave::{interleaved, Schedule, BLOCK, SETTLE};

/// Largest relative L2 error against ONNX Runtime that counts as the same answer:
/// the parity tests' bound.
pub const MAX_REL_L2: f64 = 1e-4;

/// The bound for f16 storage on a GPU backend, whose rounding is 11 bits, and for
/// TF32 products (10-bit mantissa inputs).
pub const MAX_REL_L2_F16: f64 = 1e-2;

/// The relative L2 error within which kiln at `precision` gives ORT's answer.
pub fn max_rel_l2(precision: crate::Precision) -> f64 {
    match precision {
        crate::Precision::F32 => MAX_REL_L2,
        crate::Precision::F16 | crate::Precision::Tf32 => MAX_REL_L2_F16,
    }
}

/// How far kiln's output is from ONNX Runtime's, in the parity tests' measures.
#[derive(Clone, Copy, Debug)]
pub struct Agreement {
    pub rel_l2: f64,
    pub max_abs: f64,
}

impl Agreement {
    /// Compares two outputs, which must have the same shape and be float32.
    pub fn of(kiln: &Tensor, ort: &Tensor) -> Result<Agreement> {
        if kiln.shape() != ort.shape() {
            return Err(Error::Usage(format!(
                "kiln gives shape {:?}, ONNX Runtime {:?}",
                kiln.shape(),
                ort.shape()
            )));
        }
        match (kiln.as_slice::<f32>(), ort.as_slice::<f32>()) {
            (Some(k), Some(o)) => Ok(Agreement {
                rel_l2: rel_l2(k, o),
                max_abs: max_abs(k, o),
            }),
            _ => Err(Error::Usage(format!(
                "output is {}; only float32 outputs are compared",
                kiln.dtype()
            ))),
        }
    }

    /// Within `bound` ([`max_rel_l2`]): the same answer.
    pub fn agrees(&self, bound: f64) -> bool {
        self.rel_l2 <= bound
    }
}

/// Where `scripts/test.sh` installs ONNX Runtime, relative to the repository root:
/// `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`.
const VENV_CAPI: [&str; 4] = ["site-packages", "onnxruntime", "capi", "libonnxruntime.so"];

fn unavailable(reason: impl Into<String>) -> Error {
    Error::BackendUnavailable {
        backend: "onnxruntime".into(),
        reason: reason.into(),
    }
}

/// The ONNX Runtime library to load: `ORT_DYLIB_PATH` if set, else the one in the
/// venv that `scripts/test.sh` creates under the current directory.
pub fn find_dylib() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        // `ort` would try a relative path next to the executable first; a user means
        // the current directory.
        return std::path::absolute(&path).map_err(|e| unavailable(format!("ORT_DYLIB_PATH: {e}")));
    }
    venv_dylib(Path::new(".venv")).ok_or_else(|| {
        unavailable(
            "no ONNX Runtime library: set ORT_DYLIB_PATH to a libonnxruntime.so \
             (none under ./.venv/lib/python3*/site-packages/onnxruntime/capi/; bash scripts/test.sh makes that venv)",
        )
    })
}

/// `venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*`, the last
/// match in name order, as an absolute path.
fn venv_dylib(venv: &Path) -> Option<PathBuf> {
    let [site, package, capi, stem] = VENV_CAPI;
    let sorted_entries = |dir: &Path| -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        paths
    };
    let name_starts = |p: &Path, prefix: &str| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix))
    };
    sorted_entries(&venv.join("lib"))
        .into_iter()
        .filter(|python| name_starts(python, "python3"))
        .flat_map(|python| sorted_entries(&python.join(site).join(package).join(capi)))
        .rfind(|lib| name_starts(lib, stem) && lib.is_file())
        .and_then(|lib| std::path::absolute(lib).ok())
}

/// A loaded ONNX Runtime. Load it once per process: the library stays loaded, and a
/// second load of another file is ignored by `ort`.
pub struct OrtRuntime {
    library: PathBuf,
    environment: ort::environment::Environment,
}

impl OrtRuntime {
    /// Loads the library [`find_dylib`] finds.
    pub fn load() -> Result<OrtRuntime> {
        OrtRuntime::load_from(&find_dylib()?)
    }

    /// Loads ONNX Runtime from `library` (a `libonnxruntime.so`).
    pub fn load_from(library: &Path) -> Result<OrtRuntime> {
        let environment = ort::init_from(library)
            .map_err(|e| unavailable(format!("cannot load {}: {e}", library.display())))?
            .with_name("kiln")
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(OrtRuntime {
            library: library.to_path_buf(),
            environment,
        })
    }

    /// The library file this runtime was loaded from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// A session on an ONNX file (external data resolved beside it, as kiln does).
    pub fn session_from_file(&self, model: &Path, threads: usize) -> Result<OrtSession> {
        let session = self
            .builder(threads)?
            .commit_from_file(model)
            .map_err(|e| unavailable(format!("cannot load {}: {e}", model.display())))?;
        Ok(OrtSession::new(session))
    }

    /// A session on a serialized `ModelProto` (a zoo model).
    pub fn session_from_bytes(&self, model: &[u8], threads: usize) -> Result<OrtSession> {
        let session = self
            .builder(threads)?
            .commit_from_memory(model)
            .map_err(|e| unavailable(format!("cannot load the model: {e}")))?;
        Ok(OrtSession::new(session))
    }

    fn builder(&self, threads: usize) -> Result<ort::session::builder::SessionBuilder> {
        fn options(e: impl std::fmt::Display) -> Error {
            unavailable(format!("session options: {e}"))
        }
        ort::session::Session::builder(&self.environment)
            .map_err(options)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(options)?
            .with_intra_threads(threads)
            .map_err(options)?
            .with_inter_threads(1)
            .map_err(options)
    }
}

/// One ONNX Runtime session with its inputs already copied into ORT values, so that a
/// timed [`OrtSession::run`] is ORT's run alone.
pub struct OrtSession {
    session: ort::session::Session,
    inputs: Vec<ort::value::DynValue>,
}

impl OrtSession {
    fn new(session: ort::session::Session) -> OrtSession {
        OrtSession {
            session,
            inputs: Vec::new(),
        }
    }

    /// Sets the inputs of the following runs, in the model's input order (float32 only).
    pub fn set_inputs(&mut self, inputs: &[Tensor]) -> Result<()> {
        let expected = self.session.inputs().len();
        if inputs.len() != expected {
            return Err(unavailable(format!(
                "ONNX Runtime sees {expected} model input(s), kiln {}",
                inputs.len()
            )));
        }
        self.inputs = inputs
            .iter()
            .map(|t| {
                let data = t.as_slice::<f32>().ok_or_else(|| {
                    Error::Usage(format!("ONNX Runtime inputs are float32 only, got {}", t.dtype()))
                })?;
                ort::value::Tensor::from_array((t.shape().to_vec(), data.to_vec()))
                    .map(|v| v.into_dyn())
                    .map_err(|e| unavailable(format!("input: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// One run on the inputs of [`OrtSession::set_inputs`]; the outputs are dropped.
    pub fn run(&mut self) -> Result<()> {
        let inputs = input_values(&self.inputs);
        self.session.run(inputs.as_slice()).map(drop).map_err(run_error)
    }

    /// One run; returns output 0, which must be float32.
    pub fn run_first_output(&mut self) -> Result<Tensor> {
        let inputs = input_values(&self.inputs);
        let outputs = self.session.run(inputs.as_slice()).map_err(run_error)?;
        if outputs.len() == 0 {
            return Err(unavailable("the model has no outputs"));
        }
        let (shape, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| unavailable(format!("output 0: {e}")))?;
        // A negative dim cannot come back from a run; 0 makes `from_vec` refuse it.
        let shape = shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
        Tensor::from_vec(shape, values.to_vec())
    }
}

/// Borrowed views of the prepared inputs, in the form `Session::run` takes.
fn input_values(inputs: &[ort::value::DynValue]) -> Vec<SessionInputValue<'_>> {
    inputs.iter().map(SessionInputValue::from).collect()
}

fn run_error(e: ort::Error) -> Error {
    unavailable(format!("run: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_dylib_finds_the_versioned_library_and_skips_the_providers() {
        let venv = std::env::temp_dir().join(format!("kiln-venv-{}", std::process::id()));
        let capi = venv.join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).expect("temp dir");
        assert_eq!(venv_dylib(&venv), None);
        for name in ["libonnxruntime_providers_shared.so", "libonnxruntime.so.1.31.1"] {
            std::fs::write(capi.join(name), b"").expect("temp file");
        }
        let found = venv_dylib(&venv);
        let _ = std::fs::remove_dir_all(&venv);
        let found = found.expect("a library");
        assert!(found.is_absolute());
        assert!(
            found.ends_with("capi/libonnxruntime.so.1.31.1"),
            "{}",
            found.display()
        );
    }
}
