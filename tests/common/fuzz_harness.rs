//! What one fuzz input does: load it as a model under tight limits and, if it loads,
//! run it on inputs of its declared shapes. Shared by the cargo-fuzz targets in
//! `fuzz/` (nightly, libFuzzer) and the bounded smoke run in `tests/fuzz_smoke.rs`
//! (stable, in CI), so both exercise exactly the same path.
//!
//! Errors are the expected outcome for most inputs; the harness only cares that
//! there is no panic, abort or hang.

use kiln::onnx::Limits;
use kiln::tensor::Data;
use kiln::{DType, Session, SessionOptions, Tensor};

/// Limits small enough that no fuzz input can allocate or compute for long.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_tensor_elements: 1 << 20,
        max_weight_bytes: 64 << 20,
        max_arena_bytes: 64 << 20,
    }
}

/// Loads `bytes` and, if that works, runs the model once. Returns whether it ran.
pub fn load_and_run(bytes: &[u8]) -> bool {
    let options = SessionOptions {
        threads: Some(1),
        limits: fuzz_limits(),
        ..SessionOptions::default()
    };
    let Ok(session) = Session::from_bytes(bytes.to_vec(), options) else {
        return false;
    };
    let g = session.graph();
    let mut inputs = Vec::with_capacity(g.inputs.len());
    for &v in &g.inputs {
        let fact = &g.values[v].fact;
        let shape: Vec<usize> = fact
            .shape
            .as_ref()
            .map_or(vec![1], |s| s.iter().map(|d| d.known().unwrap_or(1)).collect());
        let Some(n) = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
            return false;
        };
        if n > 1 << 16 {
            return false;
        }
        let tensor = match fact.dtype {
            // Varied, non-zero values: all-zero inputs would hide most numeric paths.
            DType::F32 => Tensor::from_vec(shape, (0..n).map(|i| ((i * 7919) % 17) as f32 - 8.0).collect()),
            other => Tensor::new(shape, Data::zeros(other, n)),
        };
        match tensor {
            Ok(t) => inputs.push(t),
            Err(_) => return false,
        }
    }
    session.run(&inputs).is_ok()
}
