//! Direct convolution, output positions on the vector lanes: image stems (a few
//! input channels, a short reduction) and grouped convolutions with narrow groups.
//!
//! A 3-channel 3x3 stem reduces over only `3 x 3 x 3 = 27` values. im2col builds
//! (and the GEMM packs) a 27-row column matrix each of whose values feeds one
//! multiply-add per output channel, so the copy costs as much as the arithmetic,
//! and a 27-deep GEMM tile spends much of its time on its store. Here output
//! positions run along the vector lanes and each weight is broadcast: the input
//! is read in place from a zero-padded copy split by column phase (even and odd
//! columns apart at stride 2), so a tap of sixteen neighbouring outputs is two
//! contiguous loads, which [`CHANNELS`] output channels share. Output rows are
//! stored straight into the NCHW output and get their epilogue while still in L1.
//!
//! With AVX-512 a step is twice as wide both ways: two zmm vectors of outputs for
//! two channel blocks, sixteen accumulators, each load shared by eight channels.
//! Output rows are cut into segments of a vector and a step takes two segments,
//! from different rows where a row is a single one (14x14), so narrow planes keep
//! sixteen accumulators too.
//!
//! Grouped convolutions (RegNet's 8- to 64-channel groups) run one group at a
//! time, each with its own weights: the GEMM kernels' tiles span 16 or 32 output
//! channels and store through a transpose, where here eight channels and no
//! transpose make a step.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{__m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_set1_ps};

use rayon::prelude::*;

use super::depthwise::Plane;
#[cfg(target_arch = "x86_64")]
use super::lanes::Avx2;
use super::lanes::{Lanes, Portable, LANES};
use super::swapped::RowEpilogue;
use crate::backend::cpu::kernels::gemm::buffers::{with_scratch, Slot};
use crate::backend::cpu::kernels::gemm::micro::Isa;
#[cfg(target_arch = "x86_64")]
use crate::backend::cpu::kernels::numeric::vector_activation::{
    with_activation, Activate, NoActivation, RegisterActivation,
};
#[cfg(target_arch = "x86_64")]
use crate::ir::ops::Activation;

/// Output channels computed together, sharing every input load (with two vectors
/// each: 8 accumulators, 2 input vectors and a broadcast fit 16 registers).
const CHANNELS: usize = 4;
/// Output positions per step: two vectors.
const STEP: usize = 2 * LANES;

/// Channel blocks per step of the AVX-512 kernel (so eight channels); its steps
/// are two zmm vectors of outputs.
const WIDE_BLOCKS: usize = 2;

/// Floats per zmm vector: the AVX-512 kernel cuts output rows into segments of
/// this many outputs. Phase rows are padded to whole segments, which covers
/// [`STEP`] too.
pub(super) const SEGMENT: usize = 16;

/// Channels per step of the AVX-512 kernel.
const WIDE: usize = WIDE_BLOCKS * CHANNELS;

/// A prepared direct convolution (ungrouped, undilated, 1-D or 2-D window).
#[derive(Debug)]
pub(super) struct Direct {
    plane: Plane,
    c_in: usize,
    c_out: usize,
    groups: usize,
    /// Padded input rows the outputs reach: `(out_h - 1) * s_h + k_h`.
    rows: usize,
    /// Floats per phase row: every output's taps, rounded up to whole steps.
    pitch: usize,
    /// Per tap `(ci, kh, kw)`: where its phase row starts, relative to the first
    /// padded row of the output row's window (precomputed: the division by the
    /// stride cost more than the tap's arithmetic).
    offsets: Vec<usize>,
    /// The largest of `offsets`.
    max_offset: usize,
    /// How the AVX-512 copy splits each input row (strides 1 and 2).
    split: Vec<SplitStep>,
    /// `[groups][c_out / CHANNELS, rounded up][c_in * k_h * k_w][CHANNELS]`, zero
    /// past `c_out` (`c_in` and `c_out` count one group's channels).
    weights: Vec<f32>,
}

impl Direct {
    /// `None` for dilated or empty windows. `c_in` and `c_out` are one group's
    /// channels; `w` is `[groups * c_out][c_in][k_h][k_w]`.
    pub fn new(plane: Plane, c_in: usize, c_out: usize, groups: usize, w: &[f32]) -> Option<Direct> {
        let p = &plane;
        let taps = c_in * p.k_h * p.k_w;
        let empty = p.out_h == 0 || p.out_w == 0 || taps == 0 || c_out == 0 || groups == 0;
        if empty || p.dilation != (1, 1) || w.len() != groups * c_out * taps {
            return None;
        }
        let rows = (p.out_h - 1) * p.stride.0 + p.k_h;
        // Output `ow`'s tap `kw` reads phase `kw % s_w`, index `ow + kw / s_w`; a
        // row's last segment reads a whole vector past its first output.
        let pitch = p.out_w.div_ceil(SEGMENT) * SEGMENT + (p.k_w - 1) / p.stride.1;
        let group_len = c_out.div_ceil(CHANNELS) * taps * CHANNELS;
        let mut weights = vec![0.0; groups * group_len];
        for (wg, dst) in w
            .chunks_exact(c_out * taps)
            .zip(weights.chunks_exact_mut(group_len))
        {
            for (m, wm) in wg.chunks_exact(taps).enumerate() {
                let (b, c) = (m / CHANNELS, m % CHANNELS);
                for (t, &v) in wm.iter().enumerate() {
                    dst[(b * taps + t) * CHANNELS + c] = v;
                }
            }
        }
        let (sw, row_len) = (p.stride.1, p.stride.1 * pitch);
        let mut offsets = Vec::with_capacity(taps);
        for ci in 0..c_in {
            for kh in 0..p.k_h {
                for kw in 0..p.k_w {
                    offsets.push((ci * rows + kh) * row_len + (kw % sw) * pitch + kw / sw);
                }
            }
        }
        let split = SplitStep::plan(p.in_w, p.stride.1, p.pad.1, pitch);
        Some(Direct {
            plane,
            c_in,
            c_out,
            groups,
            rows,
            pitch,
            max_offset: offsets.iter().copied().max().unwrap_or(0),
            split,
            offsets,
            weights,
        })
    }

    fn scratch_len(&self) -> usize {
        self.c_in * self.rows * self.plane.stride.1 * self.pitch
    }

    /// One image and group `g`: `x` its `c_in` input planes, `y` its `c_out`
    /// output planes. `parallel`: split the channel blocks over threads.
    pub fn run(&self, g: usize, x: &[f32], y: &mut [f32], epilogue: &RowEpilogue<'_>, parallel: bool) {
        self.run_with(Isa::detect(), g, x, y, epilogue, parallel)
    }

    /// [`Direct::run`] with an explicit instruction set (tests compare them).
    pub fn run_with(
        &self,
        isa: Isa,
        g: usize,
        x: &[f32],
        y: &mut [f32],
        epilogue: &RowEpilogue<'_>,
        parallel: bool,
    ) {
        let positions = self.plane.out_h * self.plane.out_w;
        let group_len = self.weights.len() / self.groups;
        let weights = &self.weights[g * group_len..][..group_len];
        let wide = wide_steps(isa);
        // A job is one step's channels: `WIDE_BLOCKS` blocks with AVX-512, else one.
        let blocks_per_job = if wide { WIDE_BLOCKS } else { 1 };
        with_scratch(Slot::Columns, self.scratch_len(), |padded| {
            self.split_input(wide, x, padded);
            let padded: &[f32] = padded;
            let job = |(n, out): (usize, &mut [f32])| {
                let b = n * blocks_per_job;
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: `wide` holds only where the CPU supports AVX-512F.
                    return unsafe { self.wide_avx512(weights, b, padded, out, epilogue) };
                }
                self.block(isa, weights, b, padded, out, epilogue)
            };
            let job_len = blocks_per_job * CHANNELS * positions;
            if parallel {
                y.par_chunks_mut(job_len).enumerate().for_each(job);
            } else {
                y.chunks_mut(job_len).enumerate().for_each(job);
            }
        });
    }

    /// Copies the input into `padded` as `[c_in][rows][s_w phases][pitch]`: padded
    /// column `j * s_w + phase` at index `j` of its phase row, zero outside the input.
    /// `wide`: the CPU has AVX-512F.
    fn split_input(&self, wide: bool, x: &[f32], padded: &mut [f32]) {
        let p = &self.plane;
        let (sw, in_len) = (p.stride.1, p.in_h * p.in_w);
        let padded = &mut padded[..self.scratch_len()];
        let row_len = sw * self.pitch;
        for (ci, channel) in padded.chunks_exact_mut(self.rows * row_len).enumerate() {
            for (r, row) in channel.chunks_exact_mut(row_len).enumerate() {
                let ih = r.checked_sub(p.pad.0).filter(|&ih| ih < p.in_h);
                let Some(src) = ih.map(|ih| &x[ci * in_len + ih * p.in_w..][..p.in_w]) else {
                    row.fill(0.0);
                    continue;
                };
                match sw {
                    #[cfg(target_arch = "x86_64")]
                    1 | 2 if wide => {
                        // SAFETY: `wide` holds only where the CPU supports AVX-512F.
                        unsafe { split_row_avx512(src, row, sw, &self.split, self.pitch) };
                        continue;
                    }
                    1 => {
                        // One phase: the padded row itself (a strided walk of
                        // stride 1 was a fifth of a 14x14 grouped conv's time).
                        let (left, rest) = row.split_at_mut(p.pad.1.min(row.len()));
                        left.fill(0.0);
                        let n = src.len().min(rest.len());
                        rest[..n].copy_from_slice(&src[..n]);
                        rest[n..].fill(0.0);
                        continue;
                    }
                    2 => {
                        split_pairs(src, row, p.pad.1, self.pitch);
                        continue;
                    }
                    _ => {}
                }
                for (phase, dst) in row.chunks_exact_mut(self.pitch).enumerate() {
                    // Index `j` holds padded column `j * sw + phase`, input column
                    // `j * sw + phase - pad`: inside the input for `j0 <= j < j1`.
                    let j0 = p.pad.1.saturating_sub(phase).div_ceil(sw);
                    let j1 = (p.in_w + p.pad.1)
                        .saturating_sub(phase)
                        .div_ceil(sw)
                        .clamp(j0, self.pitch);
                    dst[..j0.min(self.pitch)].fill(0.0);
                    if j0 < j1 {
                        let first = j0 * sw + phase - p.pad.1;
                        let inside = src[first..].iter().step_by(sw);
                        dst[j0..j1].iter_mut().zip(inside).for_each(|(d, &v)| *d = v);
                    }
                    dst[j1.max(j0).min(self.pitch)..].fill(0.0);
                }
            }
        }
    }

    /// Output channel blocks `b` and `b + 1` (`out`: their planes; the second block
    /// may be partial or missing), every row, in steps of 8 channels x 32 outputs.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn wide_avx512(
        &self,
        weights: &[f32],
        b: usize,
        padded: &[f32],
        out: &mut [f32],
        e: &RowEpilogue<'_>,
    ) {
        // The activation goes on in registers, on the way to the store, where it
        // has a register form and no residual comes before it; else on the stored
        // rows. (A second pass over the rows was a tenth of the stem's time.)
        let in_registers = match e.residual {
            None => RegisterActivation::of(e.activation),
            Some(_) => None,
        };
        // SAFETY (all arms): AVX-512F per the caller.
        unsafe {
            match in_registers {
                Some(act) => with_activation!(act, a => self.wide_rows(weights, b, padded, out, e, Some(a))),
                None => self.wide_rows::<NoActivation>(weights, b, padded, out, e, None),
            }
        }
    }

    /// [`Direct::wide_avx512`] with its activation `act` applied in registers (then
    /// `e`'s activation is not applied again), or none.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Inlined into `wide_avx512`, which has it.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn wide_rows<A: Activate>(
        &self,
        weights: &[f32],
        b: usize,
        padded: &[f32],
        out: &mut [f32],
        e: &RowEpilogue<'_>,
        act: Option<A>,
    ) {
        let p = &self.plane;
        let positions = p.out_h * p.out_w;
        let channels = WIDE.min(self.c_out - b * CHANNELS);
        let taps = self.offsets.len();
        // A missing second block computes the first one's weights again, unstored.
        let block_weights = |b: usize| &weights[b * taps * CHANNELS..][..taps * CHANNELS];
        let second = if channels > CHANNELS { b + 1 } else { b };
        let weights = [block_weights(b), block_weights(second)];
        let bias: [f32; WIDE] = std::array::from_fn(|c| match e.bias {
            Some(bias) if c < channels => bias[b * CHANNELS + c],
            _ => 0.0,
        });
        let rest = RowEpilogue {
            bias: None,
            activation: if act.is_some() {
                Activation::None
            } else {
                e.activation
            },
            ..*e
        };
        let row_len = p.stride.1 * self.pitch;
        let padded = &padded[..self.scratch_len()];
        // The outputs go as segments of at most a vector, a row's in order, and a
        // step computes two of them: on narrow planes (14x14) the two belong to
        // different rows, so every step still has sixteen accumulators.
        let per_row = p.out_w.div_ceil(SEGMENT);
        let segments = p.out_h * per_row;
        let segment = |s: usize| {
            let (oh, ow) = (s / per_row, s % per_row * SEGMENT);
            let base = oh * p.stride.0 * row_len + ow;
            (base, oh * p.out_w + ow, SEGMENT.min(p.out_w - ow))
        };
        for s0 in (0..segments).step_by(2) {
            let pair = [segment(s0), segment((s0 + 1).min(segments - 1))];
            let dst = |c: usize, h: usize| (c * positions + pair[h].1, pair[h].2);
            // SAFETY (both): AVX-512F per the caller.
            unsafe {
                if s0 + 1 < segments {
                    let acc = self.wide_step::<2>(padded, pair.map(|s| s.0), &weights, &bias);
                    store_wide(acc, out, channels, dst, act);
                } else {
                    let acc = self.wide_step::<1>(padded, [pair[0].0], &weights, &bias);
                    store_wide(acc, out, channels, dst, act);
                }
            }
            if rest.residual.is_some() || rest.activation != Activation::None {
                for &(_, at, n) in &pair[..2.min(segments - s0)] {
                    for (c, plane) in out.chunks_exact_mut(positions).take(channels).enumerate() {
                        rest.apply(b * CHANNELS + c, &mut plane[at..at + n], positions, at);
                    }
                }
            }
        }
    }

    /// One step of [`Direct::wide_rows`]: `H` vectors of outputs, vector `h`'s
    /// windows starting at `bases[h]` in the padded input, for 8 channels (two
    /// blocks of `weights`), starting from `bias`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Inlined into a caller that has it.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn wide_step<const H: usize>(
        &self,
        padded: &[f32],
        bases: [usize; H],
        weights: &[&[f32]; WIDE_BLOCKS],
        bias: &[f32; WIDE],
    ) -> [[__m512; H]; WIDE] {
        let taps = self.offsets.len();
        let weights = weights.map(|w| &w[..taps * CHANNELS]);
        // Every load below reads a vector from `base + offset`, no offset above
        // `max_offset`: checked here once.
        assert!(bases
            .iter()
            .all(|&b| b + self.max_offset + SEGMENT <= padded.len()));
        let mut acc: [[__m512; H]; WIDE] = std::array::from_fn(|c| [_mm512_set1_ps(bias[c]); H]);
        for (t, &offset) in self.offsets.iter().enumerate() {
            // SAFETY: `bases[h] + offset + 16 <= padded.len()`, asserted above.
            let x: [__m512; H] =
                std::array::from_fn(|h| unsafe { _mm512_loadu_ps(padded.as_ptr().add(bases[h] + offset)) });
            // Indexed, not iterated in chunks: borrowing `acc` in pieces kept it
            // in memory.
            for c in 0..WIDE {
                let wv = _mm512_set1_ps(weights[c / CHANNELS][t * CHANNELS + c % CHANNELS]);
                for h in 0..H {
                    acc[c][h] = _mm512_fmadd_ps(x[h], wv, acc[c][h]);
                }
            }
        }
        acc
    }

    /// Output channels `CHANNELS * b ..` (`out`: their planes, fewer in the last
    /// block), every row.
    fn block(
        &self,
        isa: Isa,
        weights: &[f32],
        b: usize,
        padded: &[f32],
        out: &mut [f32],
        epilogue: &RowEpilogue<'_>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if isa != Isa::Generic {
            if let Some(avx2) = Avx2::detect() {
                // SAFETY: `avx2` proves the CPU supports AVX2 and FMA.
                return unsafe { self.block_avx2(avx2, weights, b, padded, out, epilogue) };
            }
        }
        self.block_with(Portable, weights, b, padded, out, epilogue)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA (`avx2` proves it).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_avx2(
        &self,
        avx2: Avx2,
        weights: &[f32],
        b: usize,
        padded: &[f32],
        out: &mut [f32],
        e: &RowEpilogue<'_>,
    ) {
        self.block_with(avx2, weights, b, padded, out, e)
    }

    /// [`Direct::block`] over the lanes `l`.
    #[inline(always)]
    fn block_with<L: Lanes>(
        &self,
        l: L,
        weights: &[f32],
        b: usize,
        padded: &[f32],
        out: &mut [f32],
        e: &RowEpilogue<'_>,
    ) {
        let p = &self.plane;
        let (sh, sw) = p.stride;
        let taps = self.offsets.len();
        let positions = p.out_h * p.out_w;
        let channels = CHANNELS.min(self.c_out - b * CHANNELS);
        let weights = &weights[b * taps * CHANNELS..][..taps * CHANNELS];
        let bias: [f32; CHANNELS] = match e.bias {
            Some(bias) => std::array::from_fn(|c| if c < channels { bias[b * CHANNELS + c] } else { 0.0 }),
            None => [0.0; CHANNELS],
        };
        // The bias starts each accumulator; the rest of the epilogue runs per row.
        let rest = RowEpilogue { bias: None, ..*e };
        let row_len = sw * self.pitch;
        let padded = &padded[..self.scratch_len()];
        for oh in 0..p.out_h {
            for ow in (0..p.out_w).step_by(STEP) {
                let mut acc: [[L::V; 2]; CHANNELS] = std::array::from_fn(|c| [l.splat(bias[c]); 2]);
                // Outputs `ow..ow + STEP` read each tap's phase row from `ow + kw / sw`
                // on: inside the row by `pitch`'s slack, so inside `padded`.
                let base = oh * sh * row_len + ow;
                for (&offset, wt) in self.offsets.iter().zip(weights.chunks_exact(CHANNELS)) {
                    let src = &padded[base + offset..][..STEP];
                    let x = [l.load(src), l.load(&src[LANES..])];
                    for (a, &wc) in acc.iter_mut().zip(wt) {
                        a[0] = l.mul_add(x[0], wc, a[0]);
                        a[1] = l.mul_add(x[1], wc, a[1]);
                    }
                }
                let n = STEP.min(p.out_w - ow);
                for (a, plane) in acc.iter().zip(out.chunks_exact_mut(positions)).take(channels) {
                    let dst = &mut plane[oh * p.out_w + ow..][..n];
                    l.store_first(a[0], dst, n.min(LANES));
                    if n > LANES {
                        l.store_first(a[1], &mut dst[LANES..], n - LANES);
                    }
                }
            }
            let at = oh * p.out_w;
            for (c, plane) in out.chunks_exact_mut(positions).take(channels).enumerate() {
                rest.apply(b * CHANNELS + c, &mut plane[at..at + p.out_w], positions, at);
            }
        }
    }
}

/// One padded input row split by column phase at stride 2: `row` is the two phase
/// rows of `pitch` floats, padded column `2 j + phase` at index `j` of its phase,
/// input column `c` at padded column `c + pad`, zero elsewhere. The input is read
/// in pairs, both phases written at once: a vectorisable de-interleave where a
/// strided walk per phase cost the stem 15 % of its time.
fn split_pairs(src: &[f32], row: &mut [f32], pad: usize, pitch: usize) {
    row.fill(0.0);
    let (phase0, phase1) = row.split_at_mut(pitch);
    // Input columns 2m and 2m + 1 land at index m + pad / 2 of the phase `pad % 2`
    // and m + (pad + 1) / 2 of the other.
    let (even_at, odd_at) = (pad / 2, pad.div_ceil(2));
    let (even, odd) = if pad.is_multiple_of(2) {
        (phase0, phase1)
    } else {
        (phase1, phase0)
    };
    let pairs = (src.len() / 2)
        .min(pitch.saturating_sub(even_at))
        .min(pitch.saturating_sub(odd_at));
    let (even_from, odd_from) = (even_at.min(pitch), odd_at.min(pitch));
    let dst = even[even_from..][..pairs]
        .iter_mut()
        .zip(&mut odd[odd_from..][..pairs]);
    for ((e, o), pair) in dst.zip(src.chunks_exact(2)) {
        *e = pair[0];
        *o = pair[1];
    }
    // The columns left (an odd width, or a phase row ending first): one by one.
    for (c, &v) in src.iter().enumerate().skip(2 * pairs) {
        let (phase, at) = ((c + pad) % 2, (c + pad) / 2);
        let dst = if phase == pad % 2 { &mut *even } else { &mut *odd };
        if let Some(d) = dst.get_mut(at) {
            *d = v;
        }
    }
}

/// One vector of [`split_row_avx512`]: phase indices `j0..j0 + 16` of a row
/// (its last vector may be shorter), the same for every input row of a plane, so
/// computed once.
#[derive(Copy, Clone, Debug)]
struct SplitStep {
    /// The input column of the window's first lane: `sw * j0 - pad`.
    start: isize,
    /// The window's lanes inside the input: the low half masks its first load,
    /// the high half (at stride 2) its second.
    inside: u32,
    /// The phase indices stored: the first `n`.
    store: u16,
}

impl SplitStep {
    /// The steps of phase rows of `pitch` floats split from rows of `in_w`
    /// columns at column stride `sw` (1 or 2) and left padding `pad`.
    fn plan(in_w: usize, sw: usize, pad: usize, pitch: usize) -> Vec<SplitStep> {
        (0..pitch)
            .step_by(SEGMENT)
            .map(|j0| {
                let start = (sw * j0) as isize - pad as isize;
                // Lanes `a..b` of the 32-lane window fall inside the input.
                let a = (-start).clamp(0, 32) as u32;
                let b = (in_w as isize - start).clamp(0, 32) as u32;
                let inside = if b > a {
                    ((1u64 << b) - (1u64 << a)) as u32
                } else {
                    0
                };
                SplitStep {
                    start,
                    inside,
                    store: first_lanes(SEGMENT.min(pitch - j0)),
                }
            })
            .collect()
    }
}

/// [`Direct::split_input`] for one input row `src` at column stride `sw` (1 or
/// 2), into `row` (its `sw` phase rows of `pitch` floats): index `j` of phase `q`
/// holds input column `sw * j + q - pad`, zero outside the input. Sixteen indices
/// per phase at a time (`steps`, from [`SplitStep::plan`] for this `src.len()`,
/// `sw`, `pad` and `pitch`), from one window of `16 sw` input columns loaded with
/// the columns outside the input masked off, de-interleaved in registers at
/// stride 2: on 14- and 28-wide planes the per-row bookkeeping of the portable
/// copy (fills, a copy, a remainder loop) cost more than the copying, and so did
/// computing these masks per row.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn split_row_avx512(src: &[f32], row: &mut [f32], sw: usize, steps: &[SplitStep], pitch: usize) {
    use std::arch::x86_64::{_mm512_maskz_loadu_ps, _mm512_permutex2var_ps, _mm512_setr_epi32};
    assert!(matches!(sw, 1 | 2) && row.len() == sw * pitch && steps.len() == pitch.div_ceil(SEGMENT));
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let (phase0, phase1) = row.split_at_mut(pitch);
    for (i, step) in steps.iter().enumerate() {
        let j0 = i * SEGMENT;
        // The window's address may lie outside `src` (before it, in the left
        // padding, or past its end): only the lanes `step.inside` enables are
        // read, all inside `src` by construction, so no other address is touched.
        let at = src.as_ptr().wrapping_offset(step.start);
        // SAFETY: AVX-512F per the caller; the loads read only enabled lanes, each
        // inside `src` (above); the stores write at most `pitch - j0` floats from
        // `j0` (`step.store`), inside each phase row.
        unsafe {
            let lo = _mm512_maskz_loadu_ps(step.inside as u16, at);
            if sw == 1 {
                _mm512_mask_storeu_ps(phase0.as_mut_ptr().add(j0), step.store, lo);
                continue;
            }
            let hi = _mm512_maskz_loadu_ps((step.inside >> 16) as u16, at.wrapping_add(SEGMENT));
            let (e, o) = (
                _mm512_permutex2var_ps(lo, even, hi),
                _mm512_permutex2var_ps(lo, odd, hi),
            );
            _mm512_mask_storeu_ps(phase0.as_mut_ptr().add(j0), step.store, e);
            _mm512_mask_storeu_ps(phase1.as_mut_ptr().add(j0), step.store, o);
        }
    }
}

/// Stores a [`Direct::wide_step`]'s `acc` for its first `channels` channels:
/// channel `c`'s vector `h` goes to `out[at..at + n]` where `(at, n) = dst(c, h)`
/// (`n <= 16`), through `act` if given.
///
/// # Safety
/// The CPU must support AVX-512F. Inlined into a caller that has it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store_wide<const H: usize, A: Activate>(
    acc: [[__m512; H]; WIDE],
    out: &mut [f32],
    channels: usize,
    dst: impl Fn(usize, usize) -> (usize, usize),
    act: Option<A>,
) {
    for (c, a) in acc.iter().enumerate().take(channels) {
        for (h, &v) in a.iter().enumerate() {
            let (at, n) = dst(c, h);
            let segment = &mut out[at..at + n];
            // SAFETY: AVX-512F per the caller; the mask enables the first
            // `n <= 16` floats, all inside `segment`.
            unsafe {
                let v = match act {
                    Some(act) => act.apply512(v),
                    None => v,
                };
                _mm512_mask_storeu_ps(segment.as_mut_ptr(), first_lanes(n), v)
            };
        }
    }
}

/// Whether `isa` runs this kernel in AVX-512 steps (8 channels x 32 outputs).
pub(super) fn wide_steps(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512F && isa.is_supported() {
        return true;
    }
    let _ = isa;
    false
}

/// The mask of a zmm vector's first `n` lanes (`n <= 16`).
fn first_lanes(n: usize) -> u16 {
    ((1u32 << n) - 1) as u16
}

#[cfg(test)]
mod tests {
    use super::split_pairs;

    #[test]
    fn split_pairs_places_every_column_by_phase() {
        // Every width parity, pads of either parity, and phase rows that end
        // before, at and after the input.
        for width in 0..12 {
            for pad in 0..4 {
                for pitch in 1..10 {
                    let src: Vec<f32> = (0..width).map(|c| c as f32 + 1.0).collect();
                    let mut row = vec![f32::NAN; 2 * pitch];
                    split_pairs(&src, &mut row, pad, pitch);
                    for (at, &got) in row.iter().enumerate() {
                        let (phase, j) = (at / pitch, at % pitch);
                        let want = (2 * j + phase)
                            .checked_sub(pad)
                            .and_then(|c| src.get(c))
                            .copied()
                            .unwrap_or(0.0);
                        assert_eq!(
                            got, want,
                            "width {width} pad {pad} pitch {pitch} phase {phase} index {j}"
                        );
                    }
                }
            }
        }
    }
}
