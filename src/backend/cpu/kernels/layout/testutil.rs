//! Test support for the data-movement kernels: a seeded PRNG, random tensors of any
//! dtype, and a harness that prepares a kernel, poisons its outputs and runs it.

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::Result;
use crate::ir::Op;
use crate::tensor::{DType, Data, Tensor, View, ViewMut};

/// SplitMix64: tiny, seeded, good enough for shapes and test data.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as usize) as i64
    }

    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// A shape of the given rank with dims in `0..=max`, zero only sometimes.
    pub(crate) fn shape(&mut self, rank: usize, max: usize) -> Vec<usize> {
        (0..rank)
            .map(|_| {
                if self.below(12) == 0 {
                    0
                } else {
                    self.below(max) + 1
                }
            })
            .collect()
    }
}

/// The dtypes the movement tests cycle through (1, 2, 4 and 8 byte elements).
pub(crate) const DTYPES: [DType; 6] = [
    DType::F32,
    DType::I64,
    DType::Bool,
    DType::F16,
    DType::U8,
    DType::I32,
];

/// A tensor of random bit patterns (0/1 for bool).
pub(crate) fn random_tensor(rng: &mut Rng, dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut data = Data::zeros(dtype, n);
    for b in data.slice_mut().as_bytes_mut() {
        let r = rng.next_u64() as u8;
        *b = if dtype == DType::Bool { r & 1 } else { r };
    }
    Tensor::new(shape.to_vec(), data).expect("sized to the shape")
}

pub(crate) fn bytes(t: &Tensor) -> &[u8] {
    t.data().slice().as_bytes()
}

pub(crate) fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), v.to_vec()).expect("sized to the shape")
}

pub(crate) fn vec_i64(v: &[i64]) -> Tensor {
    i64s(&[v.len()], v)
}

type Prepare = fn(&Op, &[Option<InputDesc<'_>>], &[OutputDesc]) -> Result<Box<dyn Kernel>>;

/// Prepares `op` (inputs flagged in `known` are constants at preparation), runs it
/// twice with differently poisoned outputs and checks both runs agree, which proves
/// every output element was written. Returns the outputs.
pub(crate) fn run(
    prepare: Prepare,
    op: &Op,
    inputs: &[Option<&Tensor>],
    known: &[bool],
    outs: &[(DType, Vec<usize>)],
) -> Result<Vec<Tensor>> {
    let descs: Vec<Option<InputDesc<'_>>> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.map(|t| InputDesc {
                dtype: t.dtype(),
                shape: t.shape(),
                value: if known.get(i).copied().unwrap_or(false) {
                    Some(t)
                } else {
                    None
                },
                layout: Default::default(),
            })
        })
        .collect();
    let out_descs: Vec<OutputDesc> = outs
        .iter()
        .map(|(dtype, shape)| OutputDesc {
            dtype: *dtype,
            shape: shape.clone(),
            layout: Default::default(),
        })
        .collect();
    let kernel = prepare(op, &descs, &out_descs)?;
    let views: Vec<Option<View<'_>>> = inputs.iter().map(|t| t.map(|t| t.view())).collect();
    let mut results = Vec::new();
    for poison in [0xA5u8, 0x5A] {
        let mut datas: Vec<Data> = outs
            .iter()
            .map(|(dtype, shape)| {
                let mut d = Data::zeros(*dtype, shape.iter().product());
                d.slice_mut().as_bytes_mut().fill(poison);
                d
            })
            .collect();
        let mut views_mut: Vec<ViewMut<'_>> = datas
            .iter_mut()
            .zip(outs)
            .map(|(d, (_, shape))| ViewMut {
                shape,
                data: d.slice_mut(),
            })
            .collect();
        kernel.run(&views, &mut views_mut)?;
        drop(views_mut);
        let tensors: Vec<Tensor> = datas
            .into_iter()
            .zip(outs)
            .map(|(d, (_, shape))| Tensor::new(shape.clone(), d).expect("sized to the shape"))
            .collect();
        results.push(tensors);
    }
    let second = results.pop().expect("two runs");
    let first = results.pop().expect("two runs");
    assert_eq!(first, second, "{op:?}: an output element was left unwritten");
    Ok(first)
}

/// [`run`] with every present input constant at preparation time.
pub(crate) fn run_const(
    prepare: Prepare,
    op: &Op,
    inputs: &[Option<&Tensor>],
    outs: &[(DType, Vec<usize>)],
) -> Result<Vec<Tensor>> {
    run(prepare, op, inputs, &[true; 8], outs)
}

/// [`run`] with only input 0 known by shape: every parameter arrives at run time.
pub(crate) fn run_dynamic(
    prepare: Prepare,
    op: &Op,
    inputs: &[Option<&Tensor>],
    outs: &[(DType, Vec<usize>)],
) -> Result<Vec<Tensor>> {
    run(prepare, op, inputs, &[], outs)
}
