//! Gather and GatherElements. Indices come from the model or from the graph at run
//! time, so each one is checked (`-dim <= i < dim`, negatives counted from the end)
//! before anything is copied: a bad index is an error, never a panic.

use rayon::prelude::*;

use super::layout::params::{contiguous_strides, expect_same_dtype, normalize_axis, numel, output};
use super::layout::strided::{by_elem_size, elems, elems_mut, for_each_index, PARALLEL_MIN_BYTES};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::ir::Op;
use crate::tensor::{View, ViewMut};

/// Prepares a kernel for `Op::Gather` or `Op::GatherElements`.
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match op {
        Op::Gather { axis } => prepare_gather(*axis, inputs, outputs),
        Op::GatherElements { axis } => prepare_gather_elements(*axis, inputs, outputs),
        _ => Err(Error::shape(op.name(), "not a gather op")),
    }
}

/// Checks and wraps negative indices into `0..dim`.
fn normalize_indices(values: &[i64], dim: usize, kernel: &str) -> Result<Vec<usize>> {
    values
        .iter()
        .map(|&v| {
            let i = if v < 0 { v as i128 + dim as i128 } else { v as i128 };
            if (0..dim as i128).contains(&i) {
                Ok(i as usize)
            } else {
                Err(Error::shape(
                    kernel,
                    format!("index {v} is out of range for an axis of size {dim}"),
                ))
            }
        })
        .collect()
}

/// The indices input as integers, checked against the prepared shape.
/// The normalised indices for this run: the ones prepared from a constant, or input
/// 1 read, checked and normalised now.
fn run_indices<'a>(
    prepared: &'a Option<Vec<usize>>,
    inputs: &[Option<View<'_>>],
    shape: &[usize],
    dim: usize,
    kernel: &str,
) -> Result<std::borrow::Cow<'a, [usize]>> {
    Ok(match prepared {
        Some(i) => std::borrow::Cow::Borrowed(i),
        None => {
            let values = index_values(required(inputs, 1)?, shape, kernel)?;
            std::borrow::Cow::Owned(normalize_indices(&values, dim, kernel)?)
        }
    })
}

fn index_values(v: View<'_>, shape: &[usize], kernel: &str) -> Result<Vec<i64>> {
    super::layout::params::expect_shape(v.shape, shape, "indices", kernel)?;
    v.to_i64_vec()
        .ok_or_else(|| Error::shape(kernel, format!("indices must be integers, got {}", v.dtype())))
}

fn prepare_gather(
    axis: i64,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    const NAME: &str = "Gather";
    let x = required_desc(inputs, 0)?;
    let ind = required_desc(inputs, 1)?;
    let y = output(outputs, 0, NAME)?;
    expect_same_dtype(x.dtype, y.dtype, NAME)?;
    let axis = normalize_axis(axis, x.shape.len(), NAME)?;
    let out_shape: Vec<usize> = [&x.shape[..axis], ind.shape, &x.shape[axis + 1..]].concat();
    if out_shape != y.shape {
        return Err(Error::shape(
            NAME,
            format!("output shape {:?}, expected {out_shape:?}", y.shape),
        ));
    }
    let dim = x.shape[axis];
    let indices = match ind.value {
        Some(t) => Some(normalize_indices(
            &index_values(t.view(), ind.shape, NAME)?,
            dim,
            NAME,
        )?),
        None => None,
    };
    Ok(Box::new(Gather {
        in_shape: x.shape.to_vec(),
        ind_shape: ind.shape.to_vec(),
        outer: numel(&x.shape[..axis], NAME)?,
        dim,
        block: numel(&x.shape[axis + 1..], NAME)? * x.dtype.size(),
        indices,
    }))
}

struct Gather {
    in_shape: Vec<usize>,
    ind_shape: Vec<usize>,
    outer: usize,
    dim: usize,
    /// Bytes copied per index: everything inside the gathered axis.
    block: usize,
    /// Normalised constant indices; `None` when they arrive at run time.
    indices: Option<Vec<usize>>,
}

impl Kernel for Gather {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        const NAME: &str = "Gather";
        let x = required(inputs, 0)?;
        super::layout::params::expect_shape(x.shape, &self.in_shape, "data", NAME)?;
        let indices = run_indices(&self.indices, inputs, &self.ind_shape, self.dim, NAME)?;
        let src = x.data.as_bytes();
        let dst = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(NAME, "missing output 0"))?
            .data
            .as_bytes_mut();
        let n = indices.len();
        if dst.len() != self.outer * n * self.block {
            return Err(Error::shape(NAME, "output differs from the prepared shape"));
        }
        if dst.is_empty() {
            return Ok(());
        }
        let block = self.block;
        let copy = |b: usize, d: &mut [u8]| {
            let s = ((b / n) * self.dim + indices[b % n]) * block;
            d.copy_from_slice(&src[s..s + block]);
        };
        if dst.len() < PARALLEL_MIN_BYTES {
            dst.chunks_mut(block).enumerate().for_each(|(b, d)| copy(b, d));
        } else {
            let min_blocks = (PARALLEL_MIN_BYTES / 8 / block).max(1);
            dst.par_chunks_mut(block)
                .with_min_len(min_blocks)
                .enumerate()
                .for_each(|(b, d)| copy(b, d));
        }
        Ok(())
    }

    fn label(&self) -> &'static str {
        "blocks"
    }
}

fn prepare_gather_elements(
    axis: i64,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    const NAME: &str = "GatherElements";
    let x = required_desc(inputs, 0)?;
    let ind = required_desc(inputs, 1)?;
    let y = output(outputs, 0, NAME)?;
    expect_same_dtype(x.dtype, y.dtype, NAME)?;
    let rank = x.shape.len();
    let axis = normalize_axis(axis, rank, NAME)?;
    // Every other coordinate is used as is, so it must exist in the data.
    let fits = ind.shape.len() == rank && (0..rank).all(|d| d == axis || ind.shape[d] <= x.shape[d]);
    if !fits || y.shape != ind.shape {
        return Err(Error::shape(
            NAME,
            format!(
                "indices {:?} / output {:?} do not fit data {:?}",
                ind.shape, y.shape, x.shape
            ),
        ));
    }
    let indices = match ind.value {
        Some(t) => Some(normalize_indices(
            &index_values(t.view(), ind.shape, NAME)?,
            x.shape[axis],
            NAME,
        )?),
        None => None,
    };
    Ok(Box::new(GatherElements {
        in_shape: x.shape.to_vec(),
        ind_shape: ind.shape.to_vec(),
        axis,
        esize: x.dtype.size(),
        indices,
    }))
}

struct GatherElements {
    in_shape: Vec<usize>,
    ind_shape: Vec<usize>,
    axis: usize,
    esize: usize,
    indices: Option<Vec<usize>>,
}

impl Kernel for GatherElements {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        const NAME: &str = "GatherElements";
        let x = required(inputs, 0)?;
        super::layout::params::expect_shape(x.shape, &self.in_shape, "data", NAME)?;
        let dim = self.in_shape[self.axis];
        let indices = run_indices(&self.indices, inputs, &self.ind_shape, dim, NAME)?;
        let dst = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(NAME, "missing output 0"))?
            .data
            .as_bytes_mut();
        if dst.len() != indices.len() * self.esize {
            return Err(Error::shape(NAME, "output differs from the prepared shape"));
        }
        by_elem_size!(
            self.esize,
            NAME,
            gather_elements(self, &indices, x.data.as_bytes(), dst)
        )
    }

    fn label(&self) -> &'static str {
        "elements"
    }
}

fn gather_elements<const N: usize>(
    k: &GatherElements,
    indices: &[usize],
    src: &[u8],
    dst: &mut [u8],
) -> Result<()>
where
    [u8; N]: bytemuck::Pod,
{
    let src = elems::<N>(src, "GatherElements")?;
    let dst = elems_mut::<N>(dst, "GatherElements")?;
    let strides = contiguous_strides(&k.in_shape);
    // The gathered axis contributes through the index, not through the position.
    let walk: Vec<isize> = strides
        .iter()
        .enumerate()
        .map(|(d, &s)| if d == k.axis { 0 } else { s as isize })
        .collect();
    let axis_stride = strides[k.axis];
    for_each_index(&k.ind_shape, &walk, &contiguous_strides(&k.ind_shape), |s, o| {
        dst[o] = src[s as usize + indices[o] * axis_stride];
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::layout::testutil::*;
    use super::prepare;
    use crate::ir::Op;
    use crate::tensor::{DType, Tensor};

    fn index_tensor(rng: &mut Rng, shape: &[usize], dim: usize, int32: bool) -> (Tensor, Vec<usize>) {
        let n: usize = shape.iter().product();
        let norm: Vec<usize> = (0..n).map(|_| rng.below(dim)).collect();
        // Use the negative spelling of about half of the indices.
        let raw: Vec<i64> = norm
            .iter()
            .map(|&i| {
                if rng.below(2) == 0 {
                    i as i64 - dim as i64
                } else {
                    i as i64
                }
            })
            .collect();
        let t = if int32 {
            Tensor::from_vec(shape.to_vec(), raw.iter().map(|&v| v as i32).collect()).unwrap()
        } else {
            i64s(shape, &raw)
        };
        (t, norm)
    }

    fn unravel(mut lin: usize, shape: &[usize]) -> Vec<usize> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = lin % shape[d];
            lin /= shape[d];
        }
        idx
    }

    fn ravel(idx: &[usize], shape: &[usize]) -> usize {
        idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
    }

    #[test]
    fn random_gathers_match_the_reference() {
        let mut rng = Rng::new(71);
        for case in 0..300 {
            let dtype = DTYPES[case % DTYPES.len()];
            let rank = rng.below(4) + 1;
            let mut shape = rng.shape(rank, 5);
            let axis = rng.below(rank);
            let ind_rank = rng.below(3);
            let ind_shape = rng.shape(ind_rank, 4);
            if ind_shape.iter().product::<usize>() > 0 {
                shape[axis] = shape[axis].max(1);
            }
            let x = random_tensor(&mut rng, dtype, &shape);
            let (ind, norm) = index_tensor(&mut rng, &ind_shape, shape[axis], case % 2 == 0);
            let out_shape: Vec<usize> = [&shape[..axis], &ind_shape[..], &shape[axis + 1..]].concat();
            let es = dtype.size();
            let mut want = Vec::new();
            for lin in 0..out_shape.iter().product() {
                let o = unravel(lin, &out_shape);
                let j = ravel(&o[axis..axis + ind_shape.len()], &ind_shape);
                let src: Vec<usize> = [&o[..axis], &[norm[j]][..], &o[axis + ind_shape.len()..]].concat();
                let off = ravel(&src, &shape);
                want.extend_from_slice(&bytes(&x)[off * es..(off + 1) * es]);
            }
            let a = if rng.below(2) == 0 {
                axis as i64 - rank as i64
            } else {
                axis as i64
            };
            let op = Op::Gather { axis: a };
            let outs = [(dtype, out_shape)];
            let out = run_const(prepare, &op, &[Some(&x), Some(&ind)], &outs).unwrap();
            assert_eq!(bytes(&out[0]), &want[..]);
            let out = run_dynamic(prepare, &op, &[Some(&x), Some(&ind)], &outs).unwrap();
            assert_eq!(bytes(&out[0]), &want[..]);
        }
    }

    #[test]
    fn big_gather_runs_in_parallel() {
        let mut rng = Rng::new(72);
        let x = random_tensor(&mut rng, DType::F32, &[1000, 300]);
        let (ind, norm) = index_tensor(&mut rng, &[500], 1000, false);
        let out = run_dynamic(
            prepare,
            &Op::Gather { axis: 0 },
            &[Some(&x), Some(&ind)],
            &[(DType::F32, vec![500, 300])],
        );
        let out = out.unwrap();
        for (j, &i) in norm.iter().enumerate() {
            assert_eq!(
                &bytes(&out[0])[j * 1200..(j + 1) * 1200],
                &bytes(&x)[i * 1200..(i + 1) * 1200]
            );
        }
    }

    #[test]
    fn scalar_index_drops_the_axis() {
        let x = i64s(&[2, 3], &[0, 1, 2, 3, 4, 5]);
        let ind = Tensor::scalar(-1i64);
        let out = run_const(
            prepare,
            &Op::Gather { axis: 1 },
            &[Some(&x), Some(&ind)],
            &[(DType::I64, vec![2])],
        );
        assert_eq!(out.unwrap()[0].as_slice::<i64>().unwrap(), &[2, 5]);
    }

    #[test]
    fn out_of_range_indices_are_errors() {
        let x = i64s(&[2, 3], &[0; 6]);
        for bad in [3i64, -4, i64::MAX, i64::MIN] {
            let ind = vec_i64(&[0, bad]);
            let op = Op::Gather { axis: 1 };
            let outs = [(DType::I64, vec![2, 2])];
            assert!(run_const(prepare, &op, &[Some(&x), Some(&ind)], &outs).is_err());
            assert!(run_dynamic(prepare, &op, &[Some(&x), Some(&ind)], &outs).is_err());
            let ind = i64s(&[2, 1], &[0, bad]);
            let op = Op::GatherElements { axis: 1 };
            let outs = [(DType::I64, vec![2, 1])];
            assert!(run_const(prepare, &op, &[Some(&x), Some(&ind)], &outs).is_err());
            assert!(run_dynamic(prepare, &op, &[Some(&x), Some(&ind)], &outs).is_err());
        }
        let ind = vec_i64(&[0]);
        let op = Op::Gather { axis: 2 };
        assert!(run_const(
            prepare,
            &op,
            &[Some(&x), Some(&ind)],
            &[(DType::I64, vec![2, 3, 1])]
        )
        .is_err());
        let ind = i64s(&[3, 1], &[0, 0, 0]);
        let op = Op::GatherElements { axis: 1 };
        assert!(run_const(prepare, &op, &[Some(&x), Some(&ind)], &[(DType::I64, vec![3, 1])]).is_err());
    }

    #[test]
    fn random_gather_elements_match_the_reference() {
        let mut rng = Rng::new(73);
        for case in 0..300 {
            let dtype = DTYPES[case % DTYPES.len()];
            let rank = rng.below(4) + 1;
            let shape = rng.shape(rank, 5);
            let axis = rng.below(rank);
            let mut ind_shape: Vec<usize> = shape.iter().map(|&d| rng.below(d + 1)).collect();
            ind_shape[axis] = if shape[axis] == 0 { 0 } else { rng.below(6) };
            let x = random_tensor(&mut rng, dtype, &shape);
            let (ind, norm) = index_tensor(&mut rng, &ind_shape, shape[axis], case % 2 == 1);
            let es = dtype.size();
            let mut want = Vec::new();
            for (lin, &i) in norm.iter().enumerate() {
                let mut src = unravel(lin, &ind_shape);
                src[axis] = i;
                let off = ravel(&src, &shape);
                want.extend_from_slice(&bytes(&x)[off * es..(off + 1) * es]);
            }
            let op = Op::GatherElements {
                axis: axis as i64 - rank as i64,
            };
            let outs = [(dtype, ind_shape.clone())];
            let out = run_const(prepare, &op, &[Some(&x), Some(&ind)], &outs).unwrap();
            assert_eq!(bytes(&out[0]), &want[..], "{shape:?} {ind_shape:?} axis {axis}");
            let out = run_dynamic(prepare, &op, &[Some(&x), Some(&ind)], &outs).unwrap();
            assert_eq!(bytes(&out[0]), &want[..]);
        }
    }
}
