//! Helpers shared by the integration tests: fixture paths, `.npy` reading, a seeded
//! normal PRNG, and the error metrics the parity tests report.
#![allow(dead_code)]

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use kiln::Tensor;

/// The model fixtures `scripts/make_fixtures.py` writes (each exported by both
/// PyTorch exporters); tests fail if one is missing.
pub const FIXTURE_MODELS: &[&str] = &[
    "mobilenet_v2",
    "resnet_basic",
    "resnet_bottleneck",
    "regnet_x",
    "regnet_y",
    "shufflenet_v2",
];

/// `tests/fixtures/` in the source tree.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// A path below `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    fixtures_dir().join(rel)
}

/// Reads a C-ordered little-endian float32 `.npy` file.
pub fn read_npy(path: &Path) -> Tensor {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let npy = npyz::NpyFile::new(BufReader::new(file)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        npy.order(),
        npyz::Order::C,
        "{}: only C order is supported",
        path.display()
    );
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = npy
        .into_vec()
        .unwrap_or_else(|e| panic!("{}: not float32: {e}", path.display()));
    Tensor::from_vec(shape, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A small, seeded PRNG (SplitMix64) with a Box-Muller normal sampler.
pub struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: seed ^ 0x5DEE_CE66_D1CE_4E5B,
            spare: None,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// A float32 tensor of standard-normal values, reproducible from `seed`.
pub fn random_tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    let data = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(shape.to_vec(), data).expect("shape and length agree")
}

/// The parity measures live in the library, where `kiln bench --vs ort` uses them too.
pub use kiln::tensor::{max_abs, rel_l2};

/// Index of the largest value of each row (first dimension = rows; the rest is flattened).
pub fn top1(values: &[f32], shape: &[usize]) -> Vec<usize> {
    let rows = shape.first().copied().unwrap_or(1).max(1);
    let cols = values.len() / rows;
    if cols == 0 {
        return vec![];
    }
    values
        .chunks(cols)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// The rows whose top-1 class in `got` differs from `want`'s by more than a near
/// tie: `want` ranks `got`'s pick more than `2 * error` below its own (each logit
/// may be off by `error`, the run's max-abs error). A reduced-precision run may
/// swap two classes `want` separates by less than its error; that is rounding,
/// not a wrong result. Returns `(row, got's class, want's class)`.
pub fn top1_mismatches(got: &[f32], want: &[f32], shape: &[usize], error: f64) -> Vec<(usize, usize, usize)> {
    let rows = shape.first().copied().unwrap_or(1).max(1);
    let cols = want.len() / rows;
    let (tg, tw) = (top1(got, shape), top1(want, shape));
    tg.into_iter()
        .zip(tw)
        .enumerate()
        .filter(|&(r, (g, w))| {
            let row = &want[r * cols..][..cols];
            g != w && f64::from(row[w]) - f64::from(row[g]) > 2.0 * error
        })
        .map(|(r, (g, w))| (r, g, w))
        .collect()
}

/// The values of a float32 tensor (panics with context for other dtypes).
pub fn f32s<'a>(t: &'a Tensor, what: &str) -> &'a [f32] {
    t.as_slice::<f32>()
        .unwrap_or_else(|| panic!("{what}: expected float32, got {}", t.dtype()))
}

/// Runs a one-input ONNX Runtime session on `input`; returns output 0's shape and values.
pub fn ort_run(
    session: &mut ort::session::Session,
    input: &kiln::Tensor,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    let data = input.as_slice::<f32>().ok_or("input is not float32")?.to_vec();
    let value = ort::value::Tensor::from_array((input.shape().to_vec(), data)).map_err(|e| e.to_string())?;
    let outputs = session.run(ort::inputs![value]).map_err(|e| e.to_string())?;
    let (shape, values) = outputs[0]
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?;
    Ok((shape.iter().map(|&d| d as usize).collect(), values.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_sampler_has_unit_moments() {
        let mut rng = Rng::new(7);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn metrics() {
        assert_eq!(rel_l2(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((rel_l2(&[0.0, 0.0], &[3.0, 4.0]) - 1.0).abs() < 1e-12);
        assert_eq!(max_abs(&[1.0, 5.0], &[1.5, 4.0]), 1.0);
        assert_eq!(top1(&[0.0, 3.0, 1.0, 9.0, 2.0, 1.0], &[2, 3]), vec![1, 0]);
        // Row 0 swaps a near tie (1.00 vs 0.99, error 0.01): accepted. Row 1 picks a
        // class 1.0 below the best: a mismatch.
        let want = [1.0, 0.99, 0.0, 2.0, 1.0, 0.0];
        let got = [0.98, 1.0, 0.0, 1.0, 2.0, 0.0];
        assert_eq!(top1_mismatches(&got, &want, &[2, 3], 0.01), vec![(1, 1, 0)]);
    }
}
