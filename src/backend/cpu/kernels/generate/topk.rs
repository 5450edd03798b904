//! TopK: `[x, k]` → `[values, indices]` along one axis.
//!
//! Order follows the ONNX reference (a stable sort): ties keep the lower index first,
//! and NaN ranks above every number, so it comes first for `largest` and last
//! otherwise. The output is always sorted: `sorted = 0` leaves the order unspecified,
//! and sorted is one valid answer.

use std::cmp::Ordering;

use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::layout::params::{
    expect_same_dtype, int_param, normalize_axis, numel, output, resolve_ints, IntParam,
};
use crate::error::{Error, Result};
use crate::tensor::{DType, Slice, SliceMut, View, ViewMut};

const NAME: &str = "TopK";

/// Prepares `Op::TopK { axis, largest, .. }`; `k` is the inferred output extent
/// along `axis`, cross-checked against the `k` input.
pub(crate) fn prepare(
    axis: i64,
    largest: bool,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let axis = normalize_axis(axis, x.shape.len(), NAME)?;
    let (values, indices) = (output(outputs, 0, NAME)?, output(outputs, 1, NAME)?);
    expect_same_dtype(x.dtype, values.dtype, NAME)?;
    let k = values.shape.get(axis).copied().unwrap_or(0);
    let mut want = x.shape.to_vec();
    want[axis] = k;
    if values.shape != want || indices.shape != want || indices.dtype != DType::I64 || k > x.shape[axis] {
        return Err(Error::shape(
            NAME,
            format!(
                "outputs {:?} / {} {:?} do not fit input {:?}",
                values.shape, indices.dtype, indices.shape, x.shape
            ),
        ));
    }
    let k_param = int_param(inputs, 1, NAME)?;
    if let IntParam::Known(v) = &k_param {
        check_k(v, k)?;
    }
    Ok(Box::new(TopK {
        in_shape: x.shape.to_vec(),
        outer: numel(&x.shape[..axis], NAME)?,
        dim: x.shape[axis],
        inner: numel(&x.shape[axis + 1..], NAME)?,
        k,
        largest,
        k_param,
    }))
}

fn check_k(v: &[i64], k: usize) -> Result<()> {
    if v.len() == 1 && v[0] == k as i64 {
        Ok(())
    } else {
        Err(Error::shape(
            NAME,
            format!("k = {v:?}, but the outputs hold {k} along the axis"),
        ))
    }
}

struct TopK {
    in_shape: Vec<usize>,
    outer: usize,
    dim: usize,
    inner: usize,
    k: usize,
    largest: bool,
    k_param: IntParam,
}

/// A total order on values with NaN above everything (and equal to itself).
fn total<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    a.partial_cmp(b).unwrap_or_else(|| {
        let nan = |v: &T| v.partial_cmp(v).is_none();
        nan(a).cmp(&nan(b))
    })
}

impl TopK {
    fn select<T: Copy + PartialOrd>(&self, src: &[T], values: &mut [T], indices: &mut [i64]) -> Result<()> {
        let (dim, inner, k) = (self.dim, self.inner, self.k);
        if src.len() != self.outer * dim * inner
            || values.len() != self.outer * k * inner
            || indices.len() != values.len()
        {
            return Err(Error::shape(NAME, "buffers differ from the prepared shapes"));
        }
        if k == 0 {
            return Ok(());
        }
        let mut order: Vec<usize> = Vec::with_capacity(dim);
        for o in 0..self.outer {
            for i in 0..inner {
                let base = o * dim * inner + i;
                let at = |j: usize| src[base + j * inner];
                let better = |a: &usize, b: &usize| {
                    let by_value = total(&at(*a), &at(*b));
                    let by_value = if self.largest {
                        by_value.reverse()
                    } else {
                        by_value
                    };
                    by_value.then(a.cmp(b))
                };
                order.clear();
                order.extend(0..dim);
                if k < dim {
                    order.select_nth_unstable_by(k - 1, better);
                }
                order[..k].sort_unstable_by(better);
                for (j, &s) in order[..k].iter().enumerate() {
                    let out = (o * k + j) * inner + i;
                    values[out] = at(s);
                    indices[out] = s as i64;
                }
            }
        }
        Ok(())
    }
}

impl Kernel for TopK {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?;
        crate::backend::cpu::kernels::layout::params::expect_shape(x.shape, &self.in_shape, "input", NAME)?;
        if self.k_param == IntParam::Runtime {
            check_k(
                &resolve_ints(&self.k_param, inputs, 1, NAME)?.unwrap_or_default(),
                self.k,
            )?;
        }
        let [values, indices, ..] = outputs else {
            return Err(Error::shape(NAME, "needs two outputs"));
        };
        let indices = indices.typed::<i64>()?;
        macro_rules! by_dtype {
            ($($v:ident),*) => {
                match (x.data, &mut values.data) {
                    $((Slice::$v(s), SliceMut::$v(d)) => self.select(s, d, indices),)*
                    _ => Err(Error::shape(NAME, format!("unsupported dtype {}", x.dtype()))),
                }
            };
        }
        by_dtype!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64)
    }

    fn label(&self) -> &'static str {
        "select+sort"
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::kernels::generate::prepare;
    use crate::backend::cpu::kernels::layout::testutil::*;
    use crate::ir::Op;
    use crate::tensor::{DType, Tensor};
    use half::f16;

    /// Reference: stable sort of each row by value (descending for `largest`), as the
    /// ONNX reference implementation does, then the first `k`.
    fn reference(x: &[f32], shape: &[usize], axis: usize, k: usize, largest: bool) -> (Vec<f32>, Vec<i64>) {
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let dim = shape[axis];
        let (mut vals, mut idxs) = (vec![0.0; outer * k * inner], vec![0; outer * k * inner]);
        for o in 0..outer {
            for i in 0..inner {
                let mut row: Vec<usize> = (0..dim).collect();
                let v = |j: usize| x[(o * dim + j) * inner + i];
                row.sort_by(|&a, &b| {
                    let (a, b) = (v(a), v(b));
                    let ord = match (a.is_nan(), b.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ => a.partial_cmp(&b).unwrap(),
                    };
                    if largest {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
                for j in 0..k {
                    vals[(o * k + j) * inner + i] = v(row[j]);
                    idxs[(o * k + j) * inner + i] = row[j] as i64;
                }
            }
        }
        (vals, idxs)
    }

    #[test]
    fn random_topk_matches_the_stable_sort() {
        let mut rng = Rng::new(91);
        for case in 0..300 {
            let rank = rng.below(3) + 1;
            let shape = rng.shape(rank, 7);
            let axis = rng.below(rank);
            let n: usize = shape.iter().product();
            // Few distinct values, so ties are common; some NaNs.
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    if rng.below(15) == 0 {
                        f32::NAN
                    } else {
                        rng.range(-3, 3) as f32
                    }
                })
                .collect();
            let k = rng.below(shape[axis] + 1);
            let largest = case % 2 == 0;
            let (want_v, want_i) = reference(&x, &shape, axis, k, largest);
            let mut out_shape = shape.clone();
            out_shape[axis] = k;
            let outs = [(DType::F32, out_shape.clone()), (DType::I64, out_shape.clone())];
            let op = Op::TopK {
                axis: axis as i64 - if case % 3 == 0 { rank as i64 } else { 0 },
                largest,
                sorted: true,
            };
            let kt = vec_i64(&[k as i64]);
            let xf = Tensor::from_vec(shape.clone(), x.clone()).unwrap();
            for run in [run_const, run_dynamic] {
                let out = run(prepare, &op, &[Some(&xf), Some(&kt)], &outs).unwrap();
                let got_v = out[0].as_slice::<f32>().unwrap();
                assert!(
                    got_v.iter().zip(&want_v).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{x:?} {shape:?}"
                );
                assert_eq!(out[1].as_slice::<i64>().unwrap(), &want_i[..]);
            }
            // The same through f16 and i64, where the values are exactly representable.
            if x.iter().all(|v| !v.is_nan()) {
                let xi = Tensor::from_vec(shape.clone(), x.iter().map(|&v| v as i64).collect()).unwrap();
                let outs = [(DType::I64, out_shape.clone()), (DType::I64, out_shape.clone())];
                let out = run_const(prepare, &op, &[Some(&xi), Some(&kt)], &outs).unwrap();
                assert_eq!(out[1].as_slice::<i64>().unwrap(), &want_i[..]);
            }
            let xh = Tensor::from_vec(shape.clone(), x.iter().map(|&v| f16::from_f32(v)).collect()).unwrap();
            let outs = [(DType::F16, out_shape.clone()), (DType::I64, out_shape)];
            let out = run_const(prepare, &op, &[Some(&xh), Some(&kt)], &outs).unwrap();
            assert_eq!(out[1].as_slice::<i64>().unwrap(), &want_i[..]);
        }
    }

    #[test]
    fn onnx_example_and_bad_k() {
        let x = Tensor::from_vec(vec![3, 4], (0..12).map(|v| v as f32).collect()).unwrap();
        let k = vec_i64(&[3]);
        let outs = [(DType::F32, vec![3, 3]), (DType::I64, vec![3, 3])];
        let op = Op::TopK {
            axis: 1,
            largest: true,
            sorted: true,
        };
        let out = run_const(prepare, &op, &[Some(&x), Some(&k)], &outs).unwrap();
        assert_eq!(
            out[0].as_slice::<f32>().unwrap(),
            &[3., 2., 1., 7., 6., 5., 11., 10., 9.]
        );
        assert_eq!(out[1].as_slice::<i64>().unwrap(), &[3, 2, 1, 3, 2, 1, 3, 2, 1]);
        for bad in [vec_i64(&[2]), vec_i64(&[-1]), vec_i64(&[3, 3])] {
            assert!(run_const(prepare, &op, &[Some(&x), Some(&bad)], &outs).is_err());
            assert!(run_dynamic(prepare, &op, &[Some(&x), Some(&bad)], &outs).is_err());
        }
        let too_many = [(DType::F32, vec![3, 5]), (DType::I64, vec![3, 5])];
        assert!(run_dynamic(prepare, &op, &[Some(&x), Some(&vec_i64(&[5]))], &too_many).is_err());
        let bools = Tensor::from_bools(vec![2], &[true, false]).unwrap();
        let outs = [(DType::Bool, vec![1]), (DType::I64, vec![1])];
        let op = Op::TopK {
            axis: 0,
            largest: true,
            sorted: true,
        };
        assert!(run_const(prepare, &op, &[Some(&bools), Some(&vec_i64(&[1]))], &outs).is_err());
    }
}
