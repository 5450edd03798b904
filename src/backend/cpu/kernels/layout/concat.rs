//! Concat and Split. Seen as `[outer, axis * inner]` matrices, concatenation places
//! each input's rows side by side in the output's rows and Split does the reverse,
//! so both are a few contiguous `copy_from_slice` calls per outer index.

use rayon::prelude::*;

use super::copy::copy_bytes;
use super::params::{expect_same_dtype, normalize_axis, numel, output, IntParam};
use super::strided::PARALLEL_MIN_BYTES;
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::tensor::{View, ViewMut};

/// Where one piece lives inside a row of the concatenated tensor, in bytes.
#[derive(Clone, Copy, Debug)]
struct Piece {
    col: usize,
    len: usize,
}

/// The `[outer, row]` geometry shared by Concat and Split, plus each piece's place.
struct Rows {
    outer: usize,
    row: usize,
    pieces: Vec<Piece>,
}

/// Checks that `parts` concatenate to `whole` along `axis` and lays out the rows.
fn plan_rows(name: &str, axis: i64, whole: &[usize], parts: &[&[usize]], esize: usize) -> Result<Rows> {
    let rank = whole.len();
    let axis = normalize_axis(axis, rank, name)?;
    let mut total = 0usize;
    for (i, p) in parts.iter().enumerate() {
        let same_elsewhere = p.len() == rank && (0..rank).all(|d| d == axis || p[d] == whole[d]);
        if !same_elsewhere {
            return Err(Error::shape(
                name,
                format!("part {i} of shape {p:?} does not fit {whole:?} along axis {axis}"),
            ));
        }
        total = total.saturating_add(p[axis]);
    }
    if total != whole[axis] {
        return Err(Error::shape(
            name,
            format!("parts sum to {total} along axis {axis}, expected {}", whole[axis]),
        ));
    }
    let outer = numel(&whole[..axis], name)?;
    let inner = numel(&whole[axis + 1..], name)?.saturating_mul(esize);
    let mut col = 0;
    let pieces = parts
        .iter()
        .map(|p| {
            let piece = Piece {
                col,
                len: p[axis] * inner,
            };
            col += piece.len;
            piece
        })
        .collect();
    numel(whole, name)?;
    Ok(Rows {
        outer,
        row: col,
        pieces,
    })
}

/// Whether to give each rayon task whole rows: only when there are enough of them
/// and enough bytes to be worth it (else big pieces are split by `copy_bytes`).
fn rows_in_parallel(rows: &Rows) -> bool {
    rows.outer >= 2 * rayon::current_num_threads() && rows.outer * rows.row >= PARALLEL_MIN_BYTES
}

/// Rows per rayon task so each task moves at least a few tens of KiB.
fn rows_per_task(row: usize) -> usize {
    (PARALLEL_MIN_BYTES / 8 / row.max(1)).max(1)
}

/// Prepares `Op::Concat { axis }` over all of its inputs.
pub(crate) fn prepare_concat(
    axis: i64,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    const NAME: &str = "Concat";
    let y = output(outputs, 0, NAME)?;
    let descs: Vec<InputDesc<'_>> = (0..inputs.len())
        .map(|i| required_desc(inputs, i))
        .collect::<Result<_>>()?;
    if descs.is_empty() {
        return Err(Error::shape(NAME, "needs at least one input"));
    }
    for d in &descs {
        expect_same_dtype(d.dtype, y.dtype, NAME)?;
    }
    let parts: Vec<&[usize]> = descs.iter().map(|d| d.shape).collect();
    let rows = plan_rows(NAME, axis, &y.shape, &parts, y.dtype.size())?;
    Ok(Box::new(Concat { rows }))
}

struct Concat {
    rows: Rows,
}

impl Kernel for Concat {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        const NAME: &str = "Concat";
        let Rows {
            outer,
            row,
            ref pieces,
        } = self.rows;
        let srcs: Vec<&[u8]> = (0..pieces.len())
            .map(|i| required(inputs, i).map(|v| v.data.as_bytes()))
            .collect::<Result<_>>()?;
        for (src, p) in srcs.iter().zip(pieces) {
            if src.len() != outer * p.len {
                return Err(Error::shape(
                    NAME,
                    format!("input of {} bytes, prepared for {}", src.len(), outer * p.len),
                ));
            }
        }
        let dst = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(NAME, "missing output 0"))?
            .data
            .as_bytes_mut();
        if dst.len() != outer * row {
            return Err(Error::shape(
                NAME,
                format!("output of {} bytes, prepared for {}", dst.len(), outer * row),
            ));
        }
        if row == 0 {
            return Ok(());
        }
        let fill_row = |r: usize, out_row: &mut [u8]| {
            for (src, p) in srcs.iter().zip(pieces) {
                out_row[p.col..p.col + p.len].copy_from_slice(&src[r * p.len..(r + 1) * p.len]);
            }
        };
        if rows_in_parallel(&self.rows) {
            dst.par_chunks_mut(row)
                .with_min_len(rows_per_task(row))
                .enumerate()
                .for_each(|(r, d)| fill_row(r, d));
        } else {
            for (r, out_row) in dst.chunks_mut(row).enumerate() {
                for (src, p) in srcs.iter().zip(pieces) {
                    let piece = &src[r * p.len..(r + 1) * p.len];
                    copy_bytes(NAME, piece, &mut out_row[p.col..p.col + p.len], p.len)?;
                }
            }
        }
        Ok(())
    }

    fn label(&self) -> &'static str {
        "rows"
    }
}

/// Prepares `Op::Split { axis }` from `[x, split?]`: the part sizes are the output
/// shapes (shape inference already applied `split` or the equal-parts rule).
pub(crate) fn prepare_split(
    axis: i64,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    const NAME: &str = "Split";
    let x = required_desc(inputs, 0)?;
    if outputs.is_empty() {
        return Err(Error::shape(NAME, "needs at least one output"));
    }
    for y in outputs {
        expect_same_dtype(x.dtype, y.dtype, NAME)?;
    }
    let parts: Vec<&[usize]> = outputs.iter().map(|y| &y.shape[..]).collect();
    let rows = plan_rows(NAME, axis, x.shape, &parts, x.dtype.size())?;
    if let IntParam::Known(split) = super::params::int_param(inputs, 1, NAME)? {
        let a = normalize_axis(axis, x.shape.len(), NAME)?;
        let sizes: Vec<i64> = parts.iter().map(|p| p[a] as i64).collect();
        if split != sizes {
            return Err(Error::shape(
                NAME,
                format!("split {split:?} disagrees with output sizes {sizes:?}"),
            ));
        }
    }
    Ok(Box::new(Split { rows }))
}

struct Split {
    rows: Rows,
}

impl Kernel for Split {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        const NAME: &str = "Split";
        let Rows {
            outer,
            row,
            ref pieces,
        } = self.rows;
        let src = required(inputs, 0)?.data.as_bytes();
        if src.len() != outer * row || outputs.len() != pieces.len() {
            return Err(Error::shape(
                NAME,
                "input or outputs differ from the prepared ones",
            ));
        }
        let parallel = rows_in_parallel(&self.rows);
        for (y, p) in outputs.iter_mut().zip(pieces) {
            let dst = y.data.as_bytes_mut();
            if dst.len() != outer * p.len {
                return Err(Error::shape(
                    NAME,
                    format!("output of {} bytes, prepared for {}", dst.len(), outer * p.len),
                ));
            }
            if p.len == 0 {
                continue;
            }
            let copy_row =
                |r: usize, d: &mut [u8]| d.copy_from_slice(&src[r * row + p.col..r * row + p.col + p.len]);
            if parallel {
                dst.par_chunks_mut(p.len)
                    .with_min_len(rows_per_task(p.len))
                    .enumerate()
                    .for_each(|(r, d)| copy_row(r, d));
            } else {
                for (r, d) in dst.chunks_mut(p.len).enumerate() {
                    copy_bytes(NAME, &src[r * row + p.col..r * row + p.col + p.len], d, p.len)?;
                }
            }
        }
        Ok(())
    }

    fn label(&self) -> &'static str {
        "rows"
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::cpu::kernels::layout;
    use crate::ir::Op;
    use crate::tensor::{DType, Tensor};

    /// Concatenation by walking every output element.
    fn reference_concat(xs: &[Tensor], axis: usize, out_shape: &[usize]) -> Vec<u8> {
        let es = xs[0].dtype().size();
        let n: usize = out_shape.iter().product();
        let mut out = Vec::new();
        for lin in 0..n {
            let mut idx = vec![0; out_shape.len()];
            let mut rem = lin;
            for d in (0..out_shape.len()).rev() {
                idx[d] = rem % out_shape[d];
                rem /= out_shape[d];
            }
            let mut a = idx[axis];
            let mut which = 0;
            while a >= xs[which].shape()[axis] {
                a -= xs[which].shape()[axis];
                which += 1;
            }
            idx[axis] = a;
            let s = xs[which].shape();
            let off = idx.iter().zip(s).fold(0, |acc, (&i, &d)| acc * d + i);
            out.extend_from_slice(&bytes(&xs[which])[off * es..(off + 1) * es]);
        }
        out
    }

    #[test]
    fn concat_and_split_round_trip_random_shapes() {
        let mut rng = Rng::new(31);
        for case in 0..150 {
            let dtype = DTYPES[case % DTYPES.len()];
            let rank = rng.below(4) + 1;
            let base = rng.shape(rank, 4);
            let axis = rng.below(rank);
            let k = rng.below(4) + 1;
            let xs: Vec<Tensor> = (0..k)
                .map(|_| {
                    let mut s = base.clone();
                    s[axis] = rng.below(4);
                    random_tensor(&mut rng, dtype, &s)
                })
                .collect();
            let mut out_shape = base.clone();
            out_shape[axis] = xs.iter().map(|x| x.shape()[axis]).sum();
            let want = reference_concat(&xs, axis, &out_shape);
            let neg_axis = axis as i64 - if rng.below(2) == 0 { rank as i64 } else { 0 };
            let refs: Vec<Option<&Tensor>> = xs.iter().map(Some).collect();
            let op = Op::Concat { axis: neg_axis };
            let out = run_const(layout::prepare, &op, &refs, &[(dtype, out_shape.clone())]).unwrap();
            assert_eq!(bytes(&out[0]), &want[..]);

            let sizes: Vec<i64> = xs.iter().map(|x| x.shape()[axis] as i64).collect();
            let split = vec_i64(&sizes);
            let outs: Vec<(DType, Vec<usize>)> = xs.iter().map(|x| (dtype, x.shape().to_vec())).collect();
            let op = Op::Split { axis: neg_axis };
            let parts = run_const(layout::prepare, &op, &[Some(&out[0]), Some(&split)], &outs).unwrap();
            assert_eq!(parts, xs);
            let parts = run_dynamic(layout::prepare, &op, &[Some(&out[0])], &outs).unwrap();
            assert_eq!(parts, xs);
        }
    }

    #[test]
    fn big_concat_and_split_run_in_parallel() {
        let mut rng = Rng::new(32);
        for shapes in [
            [[64usize, 300, 9], [64, 500, 9]],
            [[1, 40_000, 2], [1, 30_000, 2]],
        ] {
            let xs: Vec<Tensor> = shapes
                .iter()
                .map(|s| random_tensor(&mut rng, DType::F32, s))
                .collect();
            let out_shape = vec![shapes[0][0], shapes[0][1] + shapes[1][1], shapes[0][2]];
            let want = reference_concat(&xs, 1, &out_shape);
            let op = Op::Concat { axis: 1 };
            let out = run_const(
                layout::prepare,
                &op,
                &[Some(&xs[0]), Some(&xs[1])],
                &[(DType::F32, out_shape)],
            );
            let out = out.unwrap();
            assert_eq!(bytes(&out[0]), &want[..]);
            let outs: Vec<(DType, Vec<usize>)> =
                xs.iter().map(|x| (DType::F32, x.shape().to_vec())).collect();
            let parts = run_const(layout::prepare, &Op::Split { axis: -2 }, &[Some(&out[0])], &outs).unwrap();
            assert_eq!(parts, xs);
        }
    }

    #[test]
    fn uneven_split_without_sizes_follows_output_shapes() {
        // opset 18 num_outputs = 3 on 7 elements: 3, 3, 1.
        let x = vec_i64(&[0, 1, 2, 3, 4, 5, 6]);
        let outs = [
            (DType::I64, vec![3]),
            (DType::I64, vec![3]),
            (DType::I64, vec![1]),
        ];
        let parts = run_const(layout::prepare, &Op::Split { axis: 0 }, &[Some(&x)], &outs).unwrap();
        assert_eq!(parts[2].as_slice::<i64>().unwrap(), &[6]);
    }

    #[test]
    fn mismatched_parts_are_errors() {
        let a = i64s(&[2, 2], &[0; 4]);
        let b = i64s(&[3, 2], &[0; 6]);
        let op = Op::Concat { axis: 1 };
        assert!(run_const(
            layout::prepare,
            &op,
            &[Some(&a), Some(&b)],
            &[(DType::I64, vec![2, 4])]
        )
        .is_err());
        let op = Op::Concat { axis: 2 };
        assert!(run_const(
            layout::prepare,
            &op,
            &[Some(&a), Some(&a)],
            &[(DType::I64, vec![2, 4])]
        )
        .is_err());
        let split = vec_i64(&[1, 3]);
        let outs = [(DType::I64, vec![2, 1]), (DType::I64, vec![2, 1])];
        let op = Op::Split { axis: 1 };
        assert!(run_const(layout::prepare, &op, &[Some(&a), Some(&split)], &outs).is_err());
    }
}
