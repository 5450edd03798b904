//! Pad: `[x, pads, constant_value?, axes?]` in constant, reflect, edge and wrap modes.
//!
//! Planning turns each axis into a table "output index → source index, or none for
//! the constant". Running then walks output rows (all axes but the last): a row whose
//! outer indices hit a constant is filled, any other row gets its unpadded middle
//! with one `copy_from_slice` and its few padded ends through the last axis's table.
//! Negative pads crop: the other modes then reflect/replicate the cropped extent.

use rayon::prelude::*;

use super::params::{
    contiguous_strides, expect_same_dtype, int_param, normalize_axis, numel, output, resolve_ints, IntParam,
};
use super::strided::{by_elem_size, elems, elems_mut, PARALLEL_MIN_BYTES};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::ir::ops::PadMode;
use crate::tensor::{View, ViewMut};

const NAME: &str = "Pad";

/// Prepares `Op::Pad { mode }`.
pub(crate) fn prepare(
    mode: PadMode,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let y = output(outputs, 0, NAME)?;
    expect_same_dtype(x.dtype, y.dtype, NAME)?;
    let pads = int_param(inputs, 1, NAME)?;
    if pads == IntParam::Absent {
        return Err(Error::shape(NAME, "pads are required"));
    }
    let axes = int_param(inputs, 3, NAME)?;
    let value = match inputs.get(2).copied().flatten() {
        None => Some(vec![0; x.dtype.size()]),
        Some(desc) => desc
            .value
            .map(|t| constant_bytes(t.view(), x.dtype.size()))
            .transpose()?,
    };
    let geometry = Geometry {
        mode,
        in_shape: x.shape.to_vec(),
        out_shape: y.shape.clone(),
        esize: x.dtype.size(),
    };
    let plan = match (&pads, &axes) {
        (IntParam::Known(p), IntParam::Known(_) | IntParam::Absent) => {
            let a = if let IntParam::Known(a) = &axes {
                Some(&a[..])
            } else {
                None
            };
            Some(geometry.plan(p, a)?)
        }
        _ => None,
    };
    Ok(Box::new(PadKernel {
        geometry,
        pads,
        axes,
        value,
        plan,
    }))
}

/// The padding value's bytes; ONNX gives it the data's dtype.
fn constant_bytes(v: View<'_>, esize: usize) -> Result<Vec<u8>> {
    let b = v.data.as_bytes();
    if v.dtype().size() != esize {
        return Err(Error::shape(
            NAME,
            format!("constant_value has dtype {}, unlike the data", v.dtype()),
        ));
    }
    Ok(if b.is_empty() {
        vec![0; esize]
    } else {
        b[..esize].to_vec()
    })
}

struct Geometry {
    mode: PadMode,
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
    esize: usize,
}

/// A fully resolved padding.
struct Plan {
    /// Per axis: output index → source index along that axis, `None` = constant.
    maps: Vec<Vec<Option<usize>>>,
    in_strides: Vec<usize>,
    /// The last axis's unpadded middle: output start, source start, length.
    middle: (usize, usize, usize),
}

impl Geometry {
    fn plan(&self, pads: &[i64], axes: Option<&[i64]>) -> Result<Plan> {
        let rank = self.in_shape.len();
        let axes: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&a| normalize_axis(a, rank, NAME))
                .collect::<Result<_>>()?,
            None => (0..rank).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(Error::shape(
                NAME,
                format!("{} pads for {} axes", pads.len(), axes.len()),
            ));
        }
        let (mut begin, mut end) = (vec![0i64; rank], vec![0i64; rank]);
        let mut seen = vec![false; rank];
        for (i, &a) in axes.iter().enumerate() {
            if std::mem::replace(&mut seen[a], true) {
                return Err(Error::shape(NAME, format!("axis {a} is repeated")));
            }
            (begin[a], end[a]) = (pads[i], pads[i + axes.len()]);
        }
        let mut maps = Vec::with_capacity(rank);
        let mut middle = (0, 0, 0);
        let empty = numel(&self.out_shape, NAME)? == 0;
        for a in 0..rank {
            let (n, out) = (
                self.in_shape[a] as i128,
                self.out_shape.get(a).copied().unwrap_or(0) as i128,
            );
            let (pb, pe) = (begin[a] as i128, end[a] as i128);
            if self.out_shape.len() != rank || n + pb + pe != out {
                return Err(Error::shape(
                    NAME,
                    format!("padding {:?} gives no {:?}", self.in_shape, self.out_shape),
                ));
            }
            // The source extent left after cropping, and where it lands in the output.
            let (src_lo, lead) = ((-pb).max(0), pb.max(0));
            let m = n - src_lo - (-pe).max(0);
            if m < 0 {
                return Err(Error::shape(
                    NAME,
                    format!("pads {pb}, {pe} crop more than axis {a} holds"),
                ));
            }
            if m == 0 && out > 0 && self.mode != PadMode::Constant && !empty {
                return Err(Error::shape(
                    NAME,
                    format!("cannot extend empty axis {a} in {:?} mode", self.mode),
                ));
            }
            let map = (0..out)
                .map(|o| self.source(o - lead, m).map(|s| (src_lo + s) as usize))
                .collect();
            maps.push(map);
            middle = (lead as usize, src_lo as usize, m as usize);
        }
        Ok(Plan {
            maps,
            in_strides: contiguous_strides(&self.in_shape),
            middle,
        })
    }

    /// Index in `0..m` that output position `rel` (relative to the first kept source
    /// element) reads, per numpy's `pad` modes.
    fn source(&self, rel: i128, m: i128) -> Option<i128> {
        if (0..m).contains(&rel) {
            return Some(rel);
        }
        if m == 0 {
            return None;
        }
        match self.mode {
            PadMode::Constant => None,
            PadMode::Edge => Some(rel.clamp(0, m - 1)),
            PadMode::Wrap => Some(rel.rem_euclid(m)),
            // numpy extends a single element like `edge`.
            PadMode::Reflect if m == 1 => Some(0),
            PadMode::Reflect => {
                let j = rel.rem_euclid(2 * (m - 1));
                Some(if j >= m { 2 * (m - 1) - j } else { j })
            }
        }
    }
}

struct PadKernel {
    geometry: Geometry,
    pads: IntParam,
    axes: IntParam,
    /// `None` when the constant is only known at run time.
    value: Option<Vec<u8>>,
    plan: Option<Plan>,
}

impl Kernel for PadKernel {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let g = &self.geometry;
        let x = required(inputs, 0)?;
        super::params::expect_shape(x.shape, &g.in_shape, "input", NAME)?;
        let owned_value;
        let value = match &self.value {
            Some(v) => v,
            None => {
                owned_value = constant_bytes(required(inputs, 2)?, g.esize)?;
                &owned_value
            }
        };
        let owned;
        let plan = match &self.plan {
            Some(p) => p,
            None => {
                let pads = resolve_ints(&self.pads, inputs, 1, NAME)?.unwrap_or_default();
                let axes = resolve_ints(&self.axes, inputs, 3, NAME)?;
                owned = g.plan(&pads, axes.as_deref())?;
                &owned
            }
        };
        let y = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(NAME, "missing output 0"))?;
        let dst = y.data.as_bytes_mut();
        if dst.len() != numel(&g.out_shape, NAME)? * g.esize {
            return Err(Error::shape(NAME, "output differs from the prepared shape"));
        }
        if dst.is_empty() {
            return Ok(());
        }
        by_elem_size!(g.esize, NAME, pad_elems(g, plan, value, x.data.as_bytes(), dst))
    }

    fn label(&self) -> &'static str {
        "rows"
    }
}

fn pad_elems<const N: usize>(
    g: &Geometry,
    plan: &Plan,
    value: &[u8],
    src: &[u8],
    dst: &mut [u8],
) -> Result<()>
where
    [u8; N]: bytemuck::Pod,
{
    let src = elems::<N>(src, NAME)?;
    let dst = elems_mut::<N>(dst, NAME)?;
    let value = elems::<N>(value, NAME)?[0];
    if g.out_shape.is_empty() {
        dst[0] = src[0];
        return Ok(());
    }
    let last = g.out_shape.len() - 1;
    let row_len = g.out_shape[last];
    let (lead, src_lo, m) = plan.middle;
    let fill_row = |r: usize, row: &mut [[u8; N]]| {
        // Source offset of this row's kept elements, or none if an outer index
        // falls in the padding.
        let mut rem = r;
        let mut base = Some(0usize);
        for a in (0..last).rev() {
            let i = rem % g.out_shape[a];
            rem /= g.out_shape[a];
            base = base.and_then(|b| plan.maps[a][i].map(|s| b + s * plan.in_strides[a]));
        }
        let Some(base) = base else {
            row.fill(value);
            return;
        };
        row[lead..lead + m].copy_from_slice(&src[base + src_lo..base + src_lo + m]);
        for o in (0..lead).chain(lead + m..row_len) {
            row[o] = plan.maps[last][o].map_or(value, |s| src[base + s]);
        }
    };
    if dst.len() * N < PARALLEL_MIN_BYTES {
        dst.chunks_mut(row_len)
            .enumerate()
            .for_each(|(r, row)| fill_row(r, row));
    } else {
        let min_rows = (PARALLEL_MIN_BYTES / 8 / (row_len * N)).max(1);
        dst.par_chunks_mut(row_len)
            .with_min_len(min_rows)
            .enumerate()
            .for_each(|(r, row)| fill_row(r, row));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::cpu::kernels::layout;
    use crate::ir::ops::PadMode;
    use crate::ir::Op;
    use crate::tensor::{DType, Tensor};

    /// Index-by-index numpy semantics, written independently of the kernel: pad one
    /// axis at a time, reflecting/wrapping step by step.
    fn reference_index(mode: PadMode, o: i64, pb: i64, pe: i64, n: i64) -> Option<usize> {
        let lo = (-pb).max(0);
        let m = n - lo - (-pe).max(0);
        let mut i = o - pb.max(0);
        match mode {
            PadMode::Constant => (0..m).contains(&i).then(|| (lo + i) as usize),
            PadMode::Edge => Some((lo + i.clamp(0, m - 1)) as usize),
            PadMode::Wrap => {
                while i < 0 {
                    i += m;
                }
                while i >= m {
                    i -= m;
                }
                Some((lo + i) as usize)
            }
            PadMode::Reflect => {
                if m == 1 {
                    return Some(lo as usize);
                }
                loop {
                    if i < 0 {
                        i = -i;
                    } else if i >= m {
                        i = 2 * (m - 1) - i;
                    } else {
                        return Some((lo + i) as usize);
                    }
                }
            }
        }
    }

    fn reference(
        x: &Tensor,
        mode: PadMode,
        begin: &[i64],
        end: &[i64],
        value: &[u8],
    ) -> (Vec<usize>, Vec<u8>) {
        let es = x.dtype().size();
        let shape = x.shape();
        let out_shape: Vec<usize> = (0..shape.len())
            .map(|a| (shape[a] as i64 + begin[a] + end[a]) as usize)
            .collect();
        let n: usize = out_shape.iter().product();
        let mut out = Vec::new();
        for lin in 0..n {
            let mut rem = lin;
            let mut idx = Some(vec![0; shape.len()]);
            for a in (0..shape.len()).rev() {
                let o = (rem % out_shape[a]) as i64;
                rem /= out_shape[a];
                let s = reference_index(mode, o, begin[a], end[a], shape[a] as i64);
                idx = idx.and_then(|mut v| {
                    s.map(|s| {
                        v[a] = s;
                        v
                    })
                });
            }
            match idx {
                None => out.extend_from_slice(value),
                Some(idx) => {
                    let off = idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i);
                    out.extend_from_slice(&bytes(x)[off * es..(off + 1) * es]);
                }
            }
        }
        (out_shape, out)
    }

    #[test]
    fn random_pads_match_the_reference() {
        let mut rng = Rng::new(61);
        let modes = [PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap];
        for case in 0..400 {
            let dtype = DTYPES[case % DTYPES.len()];
            let mode = modes[(case / DTYPES.len()) % 4];
            let rank = rng.below(4) + 1;
            let mut shape = rng.shape(rank, 5);
            if mode != PadMode::Constant {
                shape.iter_mut().for_each(|d| *d = (*d).max(1));
            }
            let x = random_tensor(&mut rng, dtype, &shape);
            // Pad a random subset of axes, in random order, sometimes negatively.
            let mut axes: Vec<usize> = (0..rank).collect();
            rng.shuffle(&mut axes);
            axes.truncate(rng.below(rank + 1));
            let (mut begin, mut end) = (vec![0i64; rank], vec![0i64; rank]);
            for &a in &axes {
                let n = shape[a] as i64;
                let reach = if mode == PadMode::Constant { 4 } else { 2 * n + 1 };
                begin[a] = rng.range(-(n / 2), reach);
                end[a] = rng.range(-(n - n / 2), reach);
                if mode != PadMode::Constant && n + begin[a].min(0) + end[a].min(0) == 0 {
                    (begin[a], end[a]) = (0, 0);
                }
            }
            let value = random_tensor(&mut rng, dtype, &[]);
            let vbytes = if case % 3 == 0 {
                vec![0; dtype.size()]
            } else {
                bytes(&value).to_vec()
            };
            let (out_shape, want) = reference(&x, mode, &begin, &end, &vbytes);
            let all_axes = axes.len() == rank && rng.below(2) == 0;
            let (pads, ax) = if all_axes {
                (begin.iter().chain(&end).copied().collect::<Vec<_>>(), None)
            } else {
                let ax: Vec<i64> = axes
                    .iter()
                    .map(|&a| {
                        if rng.below(2) == 0 {
                            a as i64 - rank as i64
                        } else {
                            a as i64
                        }
                    })
                    .collect();
                let p = axes
                    .iter()
                    .map(|&a| begin[a])
                    .chain(axes.iter().map(|&a| end[a]))
                    .collect();
                (p, Some(vec_i64(&ax)))
            };
            let pads = vec_i64(&pads);
            let inputs = [
                Some(&x),
                Some(&pads),
                (case % 3 != 0).then_some(&value),
                ax.as_ref(),
            ];
            let op = Op::Pad { mode };
            let outs = [(dtype, out_shape.clone())];
            let out = run_const(layout::prepare, &op, &inputs, &outs).unwrap();
            assert_eq!(bytes(&out[0]), &want[..], "{mode:?} {shape:?} {begin:?} {end:?}");
            let out = run_dynamic(layout::prepare, &op, &inputs, &outs).unwrap();
            assert_eq!(bytes(&out[0]), &want[..]);
        }
    }

    #[test]
    fn onnx_reflect_example() {
        let x = Tensor::from_vec(vec![3, 2], vec![1.0f32, 1.2, 2.3, 3.4, 4.5, 5.7]).unwrap();
        let pads = vec_i64(&[0, 2, 0, 0]);
        let op = Op::Pad {
            mode: PadMode::Reflect,
        };
        let out = run_const(
            layout::prepare,
            &op,
            &[Some(&x), Some(&pads)],
            &[(DType::F32, vec![3, 4])],
        )
        .unwrap();
        let want = [1.0f32, 1.2, 1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7];
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &want);
    }

    #[test]
    fn big_nchw_pad_runs_in_parallel() {
        let mut rng = Rng::new(62);
        let x = random_tensor(&mut rng, DType::F32, &[2, 32, 40, 40]);
        let (begin, end) = ([0i64, 0, 1, 2], [0i64, 0, 3, 1]);
        let (out_shape, want) = reference(&x, PadMode::Constant, &begin, &end, &[0; 4]);
        let pads = vec_i64(&[0, 0, 1, 2, 0, 0, 3, 1]);
        let op = Op::Pad {
            mode: PadMode::Constant,
        };
        let out = run_const(
            layout::prepare,
            &op,
            &[Some(&x), Some(&pads)],
            &[(DType::F32, out_shape)],
        )
        .unwrap();
        assert_eq!(bytes(&out[0]), &want[..]);
    }

    #[test]
    fn bad_pads_are_errors() {
        let x = i64s(&[2, 2], &[0; 4]);
        let op = Op::Pad { mode: PadMode::Edge };
        let run = |pads: &[i64], axes: Option<&[i64]>, out: Vec<usize>| {
            let pads = vec_i64(pads);
            let axes = axes.map(vec_i64);
            run_const(
                layout::prepare,
                &op,
                &[Some(&x), Some(&pads), None, axes.as_ref()],
                &[(DType::I64, out)],
            )
        };
        assert!(run(&[1, 1, 1], None, vec![3, 3]).is_err(), "odd pad count");
        assert!(run(&[1, 1], Some(&[0, 0]), vec![4, 2]).is_err(), "repeated axis");
        assert!(run(&[1, 1], Some(&[2]), vec![4, 2]).is_err(), "axis out of range");
        assert!(
            run(&[1, 1, 1, 1], None, vec![3, 3]).is_err(),
            "wrong output shape"
        );
        assert!(
            run(&[-3, 0, 2, 0], None, vec![1, 2]).is_err(),
            "cropping past the data"
        );
        let empty = i64s(&[0, 2], &[]);
        let pads = vec_i64(&[1, 0, 0, 0]);
        let out = run_const(
            layout::prepare,
            &op,
            &[Some(&empty), Some(&pads)],
            &[(DType::I64, vec![1, 2])],
        );
        assert!(out.is_err(), "edge-extending an empty axis");
    }
}
