//! Multidirectional (numpy) broadcasting as a walk over contiguous runs.
//!
//! A [`Broadcast`] relates an output shape to `K` input shapes. At construction it
//! drops size-1 output axes and merges neighbouring axes along which every input
//! either advances or repeats alike, so that `[N,C,H,W] * [N,C,1,1]` becomes
//! `[N·C, H·W]` with strides `[1, 0]` for the second input. The innermost merged
//! axis is then a *run*: along it each input is either contiguous (stride 1) or one
//! repeated element (stride 0), which is what lets kernels write tight loops that
//! LLVM vectorizes. [`Broadcast::for_each_run`] visits the runs of any range of
//! output elements, so the output can be split across threads at arbitrary points.

use crate::error::{Error, Result};
use crate::tensor::checked_numel;

#[derive(Clone, Debug)]
pub struct Broadcast<const K: usize> {
    /// Merged output axes, outermost first; never empty.
    dims: Vec<usize>,
    /// Per merged axis, each input's element stride (0 where it is broadcast).
    strides: Vec<[usize; K]>,
    numel: usize,
    /// Element count of each input, to check the buffers a kernel is given.
    in_lens: [usize; K],
}

/// The shape `shapes` broadcast together, or `None` if they are incompatible.
pub fn broadcast_shape(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

impl<const K: usize> Broadcast<K> {
    /// Plans broadcasting `inputs` to `out`; `node` names the op in errors.
    pub fn new(node: &str, out: &[usize], inputs: [&[usize]; K]) -> Result<Self> {
        let numel =
            checked_numel(out).ok_or_else(|| Error::shape(node, format!("shape {out:?} overflows")))?;
        let rank = out.len();
        // Dense strides of each input, right-aligned to the output, 0 where broadcast.
        let mut full = vec![[0usize; K]; rank];
        let mut in_lens = [0usize; K];
        for (k, shape) in inputs.iter().enumerate() {
            in_lens[k] = checked_numel(shape)
                .ok_or_else(|| Error::shape(node, format!("input shape {shape:?} overflows")))?;
            if shape.len() > rank {
                return Err(Error::shape(
                    node,
                    format!("input {k} {shape:?} has a higher rank than output {out:?}"),
                ));
            }
            let pad = rank - shape.len();
            let mut stride = 1usize;
            for d in (0..shape.len()).rev() {
                let (i, o) = (shape[d], out[pad + d]);
                if i == o && o != 1 {
                    full[pad + d][k] = stride;
                    stride = stride.saturating_mul(i);
                } else if i != 1 {
                    return Err(Error::shape(
                        node,
                        format!("input {k} {shape:?} cannot broadcast to {out:?}"),
                    ));
                }
            }
        }
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: Vec<[usize; K]> = Vec::new();
        for (d, &size) in out.iter().enumerate() {
            if size == 1 {
                continue;
            }
            let s = full[d];
            match (dims.last_mut(), strides.last_mut()) {
                (Some(last_dim), Some(last)) if (0..K).all(|k| (last[k] == 0) == (s[k] == 0)) => {
                    // Dense layout: the outer stride is the inner one times this size,
                    // so the merged axis keeps the inner stride.
                    *last_dim *= size;
                    *last = s;
                }
                _ => {
                    dims.push(size);
                    strides.push(s);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            strides.push([0; K]);
        }
        Ok(Broadcast {
            dims,
            strides,
            numel,
            in_lens,
        })
    }

    /// Checks that buffers handed to a kernel have the lengths this plan was made for,
    /// so that walking them cannot index out of bounds.
    pub fn check_lens(&self, node: &str, inputs: [usize; K], out: usize) -> Result<()> {
        if inputs != self.in_lens || out != self.numel {
            return Err(Error::shape(
                node,
                format!(
                    "buffers of {inputs:?} -> {out} elements, prepared for {:?} -> {}",
                    self.in_lens, self.numel
                ),
            ));
        }
        Ok(())
    }

    /// The merged output axes, outermost first (never empty). The output is dense
    /// over them, in the same element order as over the original shape.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Per merged axis, each input's element stride (0 where it is broadcast).
    pub fn strides(&self) -> &[[usize; K]] {
        &self.strides
    }

    /// Number of output elements.
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// Whether each input advances along a run (stride 1) or repeats one element (0).
    pub fn run_strides(&self) -> [usize; K] {
        self.strides[self.strides.len() - 1]
    }

    /// Calls `f(out_offset, input_offsets, len)` for every run of output elements in
    /// `start..end`, in order. Along a run, input `k` reads
    /// `input_offsets[k] + i * run_strides()[k]`.
    pub fn for_each_run(&self, start: usize, end: usize, mut f: impl FnMut(usize, [usize; K], usize)) {
        let end = end.min(self.numel);
        if start >= end {
            return;
        }
        let rank = self.dims.len();
        let inner = self.dims[rank - 1];
        let inner_strides = self.strides[rank - 1];
        let mut idx = vec![0usize; rank];
        let mut offs = [0usize; K];
        let mut rem = start;
        for d in (0..rank).rev() {
            idx[d] = rem % self.dims[d];
            rem /= self.dims[d];
            for (o, &s) in offs.iter_mut().zip(&self.strides[d]) {
                *o += idx[d] * s;
            }
        }
        let mut pos = start;
        loop {
            let len = (inner - idx[rank - 1]).min(end - pos);
            f(pos, offs, len);
            pos += len;
            if pos >= end {
                return;
            }
            // The run ended at the end of its row: step to the next row.
            for (o, &s) in offs.iter_mut().zip(&inner_strides) {
                *o -= idx[rank - 1] * s;
            }
            idx[rank - 1] = 0;
            let mut d = rank - 1;
            loop {
                if d == 0 {
                    return; // unreachable while pos < numel
                }
                d -= 1;
                idx[d] += 1;
                for (o, &s) in offs.iter_mut().zip(&self.strides[d]) {
                    *o += s;
                }
                if idx[d] < self.dims[d] {
                    break;
                }
                for (o, &s) in offs.iter_mut().zip(&self.strides[d]) {
                    *o -= self.dims[d] * s;
                }
                idx[d] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets of every output element the slow way: unravel, then ravel per input.
    fn reference(out: &[usize], inputs: &[&[usize]]) -> Vec<Vec<usize>> {
        let n: usize = out.iter().product();
        (0..n)
            .map(|flat| {
                let mut idx = vec![0; out.len()];
                let mut rem = flat;
                for d in (0..out.len()).rev() {
                    idx[d] = rem % out[d];
                    rem /= out[d];
                }
                inputs
                    .iter()
                    .map(|s| {
                        let pad = out.len() - s.len();
                        s.iter().enumerate().fold(0, |acc, (d, &size)| {
                            acc * size + if size == 1 { 0 } else { idx[pad + d] }
                        })
                    })
                    .collect()
            })
            .collect()
    }

    fn check(out: &[usize], a: &[usize], b: &[usize]) {
        let plan = Broadcast::new("test", out, [a, b]).unwrap();
        let want = reference(out, &[a, b]);
        let strides = plan.run_strides();
        // Split at awkward points to exercise starting mid-row.
        let n = plan.numel();
        let cuts = [0, n / 3, n / 3 + 1, n];
        let mut seen = 0;
        for w in cuts.windows(2) {
            plan.for_each_run(w[0], w[1], |o, offs, len| {
                assert_eq!(o, seen);
                for i in 0..len {
                    assert_eq!(
                        want[o + i],
                        vec![offs[0] + i * strides[0], offs[1] + i * strides[1]]
                    );
                }
                seen += len;
            });
        }
        assert_eq!(seen, n);
    }

    #[test]
    fn runs_match_reference_offsets() {
        check(&[2, 3, 4, 5], &[2, 3, 4, 5], &[2, 3, 4, 5]);
        check(&[2, 3, 4, 5], &[2, 3, 4, 5], &[2, 3, 1, 1]);
        check(&[2, 3, 4, 5], &[3, 1, 1], &[2, 3, 4, 5]);
        check(&[3, 4], &[3, 1], &[1, 4]);
        check(&[3, 4], &[], &[3, 4]);
        check(&[], &[], &[]);
        check(&[1, 1], &[1], &[1, 1]);
        check(&[2, 1, 3, 1, 5], &[2, 1, 1, 1, 5], &[1, 3, 1, 1]);
        check(&[4, 1, 7], &[4, 1, 1], &[1, 1, 7]);
        check(&[2, 0, 3], &[2, 0, 3], &[1, 3]);
    }

    #[test]
    fn incompatible_shapes_are_errors() {
        assert!(Broadcast::new("t", &[3, 4], [&[3, 4][..], &[4, 4][..]]).is_err());
        assert!(Broadcast::new("t", &[4], [&[1, 4][..], &[4][..]]).is_err());
        assert_eq!(broadcast_shape(&[&[3, 1], &[1, 4]]), Some(vec![3, 4]));
        assert_eq!(broadcast_shape(&[&[2, 3], &[3, 3]]), None);
        assert_eq!(broadcast_shape(&[&[0, 1], &[1, 5]]), Some(vec![0, 5]));
    }
}
