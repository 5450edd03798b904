//! Test support for kernel families: a seeded PRNG, a driver that prepares and runs a
//! kernel with poisoned outputs, and tolerant comparisons against f64 references.

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::Result;
use crate::ir::ops::Op;
use crate::tensor::{DType, Data, Slice, Tensor, ViewMut};

/// splitmix64: tiny, seeded, good enough for test data.
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

    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random shape of the given rank with dims in `1..=max` (odd sizes welcome).
    pub fn shape(&mut self, rank: usize, max: usize) -> Vec<usize> {
        (0..rank).map(|_| 1 + self.below(max)).collect()
    }

    pub fn floats(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// A tensor of `dtype` from f64 values (`as` conversion; bool is `v != 0`).
pub fn tensor(dtype: DType, shape: &[usize], v: &[f64]) -> Tensor {
    let s = shape.to_vec();
    let t = match dtype {
        DType::F32 => Tensor::from_vec(s, v.iter().map(|&x| x as f32).collect()),
        DType::F64 => Tensor::from_vec(s, v.to_vec()),
        DType::F16 => Tensor::from_vec(s, v.iter().map(|&x| half::f16::from_f64(x)).collect()),
        DType::BF16 => Tensor::from_vec(s, v.iter().map(|&x| half::bf16::from_f64(x)).collect()),
        DType::I8 => Tensor::from_vec(s, v.iter().map(|&x| x as i8).collect()),
        DType::I16 => Tensor::from_vec(s, v.iter().map(|&x| x as i16).collect()),
        DType::I32 => Tensor::from_vec(s, v.iter().map(|&x| x as i32).collect()),
        DType::I64 => Tensor::from_vec(s, v.iter().map(|&x| x as i64).collect()),
        DType::U8 => Tensor::from_vec(s, v.iter().map(|&x| x as u8).collect()),
        DType::U16 => Tensor::from_vec(s, v.iter().map(|&x| x as u16).collect()),
        DType::U32 => Tensor::from_vec(s, v.iter().map(|&x| x as u32).collect()),
        DType::U64 => Tensor::from_vec(s, v.iter().map(|&x| x as u64).collect()),
        DType::Bool => Tensor::from_bools(s, &v.iter().map(|&x| x != 0.0).collect::<Vec<_>>()),
    };
    t.expect("test tensor")
}

/// Every element as f64 (bool as 0 / 1).
pub fn values(t: &Tensor) -> Vec<f64> {
    match t.data().slice() {
        Slice::F32(s) => s.iter().map(|&x| x as f64).collect(),
        Slice::F64(s) => s.to_vec(),
        Slice::F16(s) => s.iter().map(|x| x.to_f64()).collect(),
        Slice::BF16(s) => s.iter().map(|x| x.to_f64()).collect(),
        Slice::I8(s) => s.iter().map(|&x| x as f64).collect(),
        Slice::I16(s) => s.iter().map(|&x| x as f64).collect(),
        Slice::I32(s) => s.iter().map(|&x| x as f64).collect(),
        Slice::I64(s) => s.iter().map(|&x| x as f64).collect(),
        Slice::U8(s) | Slice::Bool(s) => s.iter().map(|&x| x as f64).collect(),
        Slice::U16(s) => s.iter().map(|&x| x as f64).collect(),
        Slice::U32(s) => s.iter().map(|&x| x as f64).collect(),
        Slice::U64(s) => s.iter().map(|&x| x as f64).collect(),
    }
}

/// How an input is given to `prepare`: as a constant or only by its shape.
#[derive(Clone)]
pub struct In {
    pub t: Tensor,
    pub constant: bool,
}

pub fn var(t: Tensor) -> Option<In> {
    Some(In { t, constant: false })
}

pub fn konst(t: Tensor) -> Option<In> {
    Some(In { t, constant: true })
}

pub type PrepareFn = fn(&Op, &[Option<InputDesc<'_>>], &[OutputDesc]) -> Result<Box<dyn Kernel>>;

/// Runs the kernel with outputs pre-filled with one poison byte.
fn run_poisoned(
    kernel: &dyn Kernel,
    inputs: &[Option<In>],
    outs: &[OutputDesc],
    poison: u8,
) -> Result<Vec<Tensor>> {
    let mut datas: Vec<Data> = outs
        .iter()
        .map(|o| {
            let mut d = Data::zeros(o.dtype, o.shape.iter().product());
            d.slice_mut().as_bytes_mut().fill(poison);
            d
        })
        .collect();
    {
        let views: Vec<_> = inputs.iter().map(|i| i.as_ref().map(|i| i.t.view())).collect();
        let mut outv: Vec<ViewMut<'_>> = datas
            .iter_mut()
            .zip(outs)
            .map(|(d, o)| ViewMut {
                shape: &o.shape,
                data: d.slice_mut(),
            })
            .collect();
        kernel.run(&views, &mut outv)?;
    }
    Ok(datas
        .into_iter()
        .zip(outs)
        .map(|(d, o)| Tensor::new(o.shape.clone(), d).expect("output"))
        .collect())
}

/// Prepares and runs `op`, twice with different poison bytes in the outputs, and
/// checks both runs agree bit for bit: an element the kernel failed to write would
/// keep the poison and differ.
pub fn run(
    prepare: PrepareFn,
    op: &Op,
    inputs: &[Option<In>],
    outs: &[(DType, Vec<usize>)],
) -> Result<Vec<Tensor>> {
    let descs: Vec<Option<InputDesc<'_>>> = inputs
        .iter()
        .map(|i| {
            i.as_ref().map(|i| InputDesc {
                dtype: i.t.dtype(),
                shape: i.t.shape(),
                value: if i.constant { Some(&i.t) } else { None },
                layout: Default::default(),
            })
        })
        .collect();
    let outs: Vec<OutputDesc> = outs
        .iter()
        .map(|(d, s)| OutputDesc {
            dtype: *d,
            shape: s.clone(),
            layout: Default::default(),
        })
        .collect();
    let kernel = prepare(op, &descs, &outs)?;
    let a = run_poisoned(kernel.as_ref(), inputs, &outs, 0xA5)?;
    let b = run_poisoned(kernel.as_ref(), inputs, &outs, 0x5A)?;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.data().slice().as_bytes(),
            y.data().slice().as_bytes(),
            "{op:?}: some output elements were not written"
        );
    }
    Ok(a)
}

/// Like [`run`] for a single output, returned as f64 values.
pub fn run1(prepare: PrepareFn, op: &Op, inputs: &[Option<In>], dtype: DType, shape: &[usize]) -> Vec<f64> {
    let out = run(prepare, op, inputs, &[(dtype, shape.to_vec())]).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    values(&out[0])
}

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise (NaN matches NaN,
/// infinities must match exactly).
pub fn assert_close(got: &[f64], want: &[f64], rtol: f64, atol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

/// Row-major unravel of `flat` in `shape`.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

/// Row-major ravel of `idx` in `shape`, with size-1 dims broadcasting (index 0) and
/// `idx` right-aligned when it has a higher rank.
pub fn ravel_broadcast(idx: &[usize], shape: &[usize]) -> usize {
    let pad = idx.len() - shape.len();
    shape
        .iter()
        .enumerate()
        .fold(0, |acc, (d, &s)| acc * s + if s == 1 { 0 } else { idx[pad + d] })
}
