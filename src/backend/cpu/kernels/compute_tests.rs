//! Test helpers for the compute kernels: a seeded PRNG (no `rand` dependency) and a
//! harness that prepares a kernel, poisons its outputs and runs it.

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::Result;
use crate::ir::ops::Op;
use crate::tensor::{checked_numel, DType, Data, SliceMut, Tensor, View, ViewMut};

/// SplitMix64: tiny, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() - 1)]
    }

    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.f32()).collect()
    }

    pub fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let len = shape.iter().product();
        Tensor::from_vec(shape.to_vec(), self.vec(len)).unwrap()
    }
}

pub type PrepareFn = fn(&Op, &[Option<InputDesc<'_>>], &[OutputDesc]) -> Result<Box<dyn Kernel>>;

/// Fills a fresh output with a value no kernel would write, to catch elements it skips.
fn poisoned(dtype: DType, len: usize) -> Data {
    let mut data = Data::zeros(dtype, len);
    match data.slice_mut() {
        SliceMut::F32(s) => s.fill(f32::NAN),
        SliceMut::F64(s) => s.fill(f64::NAN),
        SliceMut::F16(s) => s.fill(half::f16::NAN),
        SliceMut::I64(s) => s.fill(i64::MIN + 7),
        mut other => other.as_bytes_mut().fill(0x5A),
    }
    data
}

/// For the ignored speed tests: the fastest of `runs` timed calls of each of
/// `variants` ways to do one job, in seconds, `run(v)` doing way `v`. The ways take
/// turns, so machine drift reaches them all alike, and the best run is the one the
/// other processes on a shared machine disturbed least.
pub fn best_seconds(variants: usize, runs: usize, mut run: impl FnMut(usize)) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; variants];
    for r in 0..variants * runs {
        let start = std::time::Instant::now();
        run(r % variants);
        best[r % variants] = best[r % variants].min(start.elapsed().as_secs_f64());
    }
    best
}

/// The whole kernel dispatcher with the default algorithm choices, as a [`PrepareFn`].
pub fn prepare_any(
    op: &Op,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    super::prepare(op, inputs, outputs, &crate::backend::cpu::CpuOptions::default())
}

/// Prepares `op` with the given inputs (`constant[i]` marks those whose value the
/// kernel may see at preparation), runs it once on poisoned outputs, returns them.
pub fn run_op(
    prepare: PrepareFn,
    op: &Op,
    inputs: &[Option<Tensor>],
    constant: &[bool],
    outputs: &[(DType, Vec<usize>)],
) -> Result<Vec<Tensor>> {
    let descs: Vec<Option<InputDesc<'_>>> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_ref().map(|t| InputDesc {
                dtype: t.dtype(),
                shape: t.shape(),
                value: constant.get(i).copied().unwrap_or(false).then_some(t),
                layout: Default::default(),
            })
        })
        .collect();
    let out_descs: Vec<OutputDesc> = outputs
        .iter()
        .map(|(dtype, shape)| OutputDesc {
            dtype: *dtype,
            shape: shape.clone(),
            layout: Default::default(),
        })
        .collect();
    let kernel = prepare(op, &descs, &out_descs)?;
    let views: Vec<Option<View<'_>>> = inputs.iter().map(|t| t.as_ref().map(|t| t.view())).collect();
    let mut datas: Vec<Data> = outputs
        .iter()
        .map(|(dtype, shape)| poisoned(*dtype, checked_numel(shape).unwrap()))
        .collect();
    {
        let mut out_views: Vec<ViewMut<'_>> = datas
            .iter_mut()
            .zip(outputs)
            .map(|(d, (_, shape))| ViewMut {
                shape,
                data: d.slice_mut(),
            })
            .collect();
        kernel.run(&views, &mut out_views)?;
    }
    Ok(datas
        .into_iter()
        .zip(outputs)
        .map(|(d, (_, shape))| Tensor::new(shape.clone(), d).unwrap())
        .collect())
}

/// Asserts `got` matches `want` within `tol * (1 + |want|)` everywhere (and has no NaN
/// where `want` has none).
pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else {
            (g as f64 - w).abs() <= tol * (1.0 + w.abs())
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}
