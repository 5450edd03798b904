//! The horizontal pass of planar pooling over the outputs whose windows lie wholly
//! inside the row ("interior" outputs: all but a padded output or two at each end).
//!
//! Interior outputs all take the same taps at the same offsets from their window
//! start, `ow * stride`. Split into `stride` phases (phase `p` holding the row's
//! elements `p, p + stride, p + 2 * stride, ...`), the row gives every tap as one
//! contiguous slice, so the pass becomes a few whole-slice vector maxima or sums.
//! A short strided fold per output instead cost ResNet's stem max pool (3x3,
//! stride 2) four times ORT's time.

use std::ops::Range;

/// The interior outputs of one pooled axis, and where their windows start.
#[derive(Clone, Debug)]
pub(super) struct Interior {
    /// The outputs whose windows have every tap inside the input.
    outputs: Range<usize>,
    /// Input index of the first interior output's first tap.
    start: usize,
    stride: usize,
    dilation: usize,
    taps: usize,
}

impl Interior {
    /// The interior of an axis of `input` elements pooled into `output` by a
    /// `kernel`-tap window; `None` when no output (or only one) is interior.
    pub fn new(
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        pad_begin: usize,
    ) -> Option<Interior> {
        if kernel == 0 || stride == 0 || dilation == 0 {
            return None;
        }
        let span = (kernel - 1).checked_mul(dilation)?.checked_add(1)?;
        // First output with `ow * stride >= pad_begin`, and one past the last with
        // `ow * stride - pad_begin + span <= input`.
        let lo = pad_begin.div_ceil(stride);
        let hi = input
            .checked_add(pad_begin)?
            .checked_sub(span)
            .map_or(0, |last| last / stride + 1)
            .min(output);
        (hi > lo.saturating_add(1)).then(|| Interior {
            outputs: lo..hi,
            start: lo * stride - pad_begin,
            stride,
            dilation,
            taps: kernel,
        })
    }

    /// The interior outputs.
    pub fn outputs(&self) -> Range<usize> {
        self.outputs.clone()
    }

    /// Elements of each phase the pass reads.
    fn phase_len(&self) -> usize {
        self.outputs.len() + (self.taps - 1) * self.dilation / self.stride
    }

    /// Scratch floats [`Interior::reduce`] needs.
    pub fn scratch_len(&self) -> usize {
        if self.stride == 1 {
            0
        } else {
            self.stride * self.phase_len()
        }
    }

    /// `out[i] = op over taps t of row[start + i * stride + t * dilation]` for the
    /// interior outputs (`out` holds exactly those).
    #[inline]
    pub fn reduce(&self, row: &[f32], scratch: &mut [f32], out: &mut [f32], op: impl Fn(f32, f32) -> f32) {
        let n = self.outputs.len();
        let out = &mut out[..n];
        let (s, plen) = (self.stride, self.phase_len());
        let phases: &[f32] = if s == 1 {
            &row[self.start..]
        } else {
            let phases = &mut scratch[..s * plen];
            split_phases(&row[self.start..], s, plen, phases);
            phases
        };
        for t in 0..self.taps {
            let o = t * self.dilation;
            let tap = &phases[(o % s) * plen + o / s..][..n];
            if t == 0 {
                out.copy_from_slice(tap);
            } else {
                out.iter_mut().zip(tap).for_each(|(d, &v)| *d = op(*d, v));
            }
        }
    }
}

/// `phases[p * plen + i] = row[i * s + p]`, for the `plen` elements each phase
/// holds. Slots past the end of a short row are zero: no interior window reads
/// them.
fn split_phases(row: &[f32], s: usize, plen: usize, phases: &mut [f32]) {
    let whole = (row.len() / s).min(plen);
    if s == 2 {
        // ResNet's stride: one pass over pairs, which LLVM turns into shuffles.
        let (even, odd) = phases.split_at_mut(plen);
        let slots = even[..whole].iter_mut().zip(&mut odd[..whole]);
        for ((e, o), pair) in slots.zip(row.chunks_exact(2)) {
            (*e, *o) = (pair[0], pair[1]);
        }
    } else {
        for (i, group) in row.chunks_exact(s).take(whole).enumerate() {
            for (p, &v) in group.iter().enumerate() {
                phases[p * plen + i] = v;
            }
        }
    }
    for (p, phase) in phases.chunks_exact_mut(plen).enumerate() {
        for (i, d) in phase.iter_mut().enumerate().skip(whole) {
            *d = row.get(i * s + p).copied().unwrap_or(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the definition, for every small geometry with an interior.
    #[test]
    fn interior_reduction_matches_strided_fold() {
        let mut checked = 0;
        for input in 1..20 {
            for kernel in 1..5 {
                for stride in 1..4 {
                    for dilation in 1..3 {
                        for pad in 0..kernel {
                            let span = (kernel - 1) * dilation + 1;
                            if input + 2 * pad < span {
                                continue;
                            }
                            let output = (input + 2 * pad - span) / stride + 1;
                            let Some(int) = Interior::new(input, output, kernel, stride, dilation, pad)
                            else {
                                continue;
                            };
                            let row: Vec<f32> = (0..input).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
                            let mut scratch = vec![f32::NAN; int.scratch_len()];
                            let mut out = vec![f32::NAN; int.outputs().len()];
                            int.reduce(&row, &mut scratch, &mut out, f32::max);
                            for (i, ow) in int.outputs().enumerate() {
                                let first = ow * stride - pad;
                                let taps = (0..kernel).map(|t| row[first + t * dilation]);
                                let want = taps.fold(f32::NEG_INFINITY, f32::max);
                                assert_eq!(
                                    out[i], want,
                                    "in {input} k {kernel} s {stride} d {dilation} p {pad}"
                                );
                            }
                            // Every output outside the interior has a tap outside the row.
                            for ow in (0..output).filter(|o| !int.outputs().contains(o)) {
                                let first = (ow * stride) as isize - pad as isize;
                                assert!(first < 0 || first as usize + span > input);
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 500, "only {checked} geometries had an interior");
    }
}
