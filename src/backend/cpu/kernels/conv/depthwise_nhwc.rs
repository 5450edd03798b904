//! Depthwise convolution on channels-last images (`[H, W, C]` per image, see
//! `backend/cpu/channels_last.rs`).
//!
//! Channels-last, the sixteen channels of one tap are one contiguous load, so an
//! output vector is `taps` loads and FMAs with nothing to transpose (the NCHW
//! channel-blocked kernel spends most of its time on the transposes in and out).
//! A task is one output row. Where whole windows fit, outputs go in batches of
//! eight (or four), each its own accumulator chain so the FMAs' latency overlaps,
//! each tap's weights loaded once for the batch; for each batch every block of
//! sixteen channels is done before the next batch, so the few input pixels it
//! reads stay in L1. Outputs whose windows leave the row go one at a time, except
//! in rows of at most eight outputs, which go as one batch with the window columns
//! outside the row masked off. Bias, residual and ReLU / clamp are applied in
//! registers, other activations in a pass over the finished row. The portable form
//! is the tests' oracle and the fallback (the planner lays values out channels-last
//! only where the AVX-512 form runs). `depthwise_speed` (1 thread, buffers on cache
//! lines as in the arena), against the best NCHW kernel: 144x56x56 s1 143 against
//! 190 us, 96x112x112 s2 110 against 203, 192x28x28 s1 51 against 84, 576x14x14 s1
//! 38 against 54 (before the AVX-512 NCHW row kernel).

use rayon::prelude::*;

use crate::backend::cpu::kernels::gemm::micro::Isa;
use crate::ir::ops::Activation;
use crate::ir::window::Geometry;

/// Channels per vector (one zmm register).
const LANES: usize = 16;

/// Multiply-adds below which output rows are grouped into one parallel task.
const TASK_MACS: usize = 32 * 1024;

/// A depthwise convolution (one channel per group, no multiplier) with its
/// weights interleaved tap-major.
#[derive(Debug)]
pub(super) struct ChannelsLastDepthwise {
    channels: usize,
    /// Channels rounded up to whole vectors: the stride of `weights`' taps.
    padded: usize,
    input: [usize; 2],
    output: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 2],
    /// Outputs `inside[0]..inside[1]` of a row have their whole window inside it.
    inside: [usize; 2],
    /// `weights[tap * padded + c]`, zero past `channels`.
    weights: Vec<f32>,
    isa: Isa,
}

/// What is applied to each output before it is stored.
pub(super) struct Terms<'a> {
    /// One per channel.
    pub bias: Option<&'a [f32]>,
    /// Laid out like the output image.
    pub residual: Option<&'a [f32]>,
    pub activation: Activation,
}

impl ChannelsLastDepthwise {
    /// For 2-D windows; `w` is `[C, 1, kh, kw]`.
    pub fn new(geom: &Geometry, channels: usize, w: &[f32]) -> Option<ChannelsLastDepthwise> {
        Self::with_isa(Isa::detect(), geom, channels, w)
    }

    /// [`new`](Self::new) with an explicit kernel choice (tests compare them).
    pub fn with_isa(isa: Isa, geom: &Geometry, channels: usize, w: &[f32]) -> Option<ChannelsLastDepthwise> {
        let pair = |v: &[usize]| -> Option<[usize; 2]> { v.try_into().ok() };
        let kernel = pair(&geom.kernel)?;
        let taps = kernel[0] * kernel[1];
        if w.len() != channels * taps || kernel[0] > MAX_TAP_ROWS || kernel[1] > MAX_TAP_COLUMNS {
            return None;
        }
        let padded = channels.div_ceil(LANES) * LANES;
        let mut weights = vec![0.0; taps * padded];
        for (c, w_c) in w.chunks_exact(taps.max(1)).enumerate() {
            for (tap, &v) in w_c.iter().enumerate() {
                weights[tap * padded + c] = v;
            }
        }
        let mut dw = ChannelsLastDepthwise {
            channels,
            padded,
            input: pair(&geom.input)?,
            output: pair(&geom.output)?,
            kernel,
            strides: pair(&geom.strides)?,
            dilations: pair(&geom.dilations)?,
            pads: pair(&geom.pads_begin)?,
            inside: [0, 0],
            weights,
            isa,
        };
        let whole = |ox: usize| (0..kernel[1]).all(|kx| dw.input_index(1, ox, kx).is_some());
        let out_w = dw.output[1];
        let from = (0..out_w).find(|&ox| whole(ox)).unwrap_or(out_w);
        let to = (from..out_w).find(|&ox| !whole(ox)).unwrap_or(out_w);
        dw.inside = [from, to];
        Some(dw)
    }

    /// One image: `x` is `[H, W, C]`, `y` (and the residual) `[OH, OW, C]`.
    pub fn run(&self, x: &[f32], y: &mut [f32], terms: &Terms<'_>, parallel: bool) {
        let c = self.channels;
        let row_len = self.output[1] * c;
        if row_len == 0 {
            return;
        }
        let (x, y) = (
            &x[..self.input[0] * self.input[1] * c],
            &mut y[..self.output[0] * row_len],
        );
        let macs = row_len * self.kernel[0] * self.kernel[1];
        let rows_per_task = (TASK_MACS / macs.max(1)).max(1);
        let row = |(oy, out): (usize, &mut [f32])| {
            let residual = terms.residual.map(|r| &r[oy * row_len..][..row_len]);
            self.row(oy, x, out, terms, residual);
        };
        if parallel {
            y.par_chunks_mut(row_len)
                .with_min_len(rows_per_task)
                .enumerate()
                .for_each(row);
        } else {
            y.chunks_mut(row_len).enumerate().for_each(row);
        }
    }

    /// Output row `oy`.
    fn row(&self, oy: usize, x: &[f32], out: &mut [f32], terms: &Terms<'_>, residual: Option<&[f32]>) {
        let taps_rows = self.tap_rows(oy);
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512F if self.isa.is_supported() => {
                let in_registers = matches!(
                    terms.activation,
                    Activation::None | Activation::Relu | Activation::Clamp { .. }
                );
                let act = if in_registers {
                    terms.activation
                } else {
                    Activation::None
                };
                // SAFETY: the CPU supports AVX-512F, checked just above.
                unsafe { avx512::row(self, taps_rows, x, out, terms.bias, residual, act) }
                if !in_registers {
                    terms.activation.apply_slice(out);
                }
            }
            _ => {
                self.row_portable(taps_rows, x, out, terms.bias, residual);
                terms.activation.apply_slice(out);
            }
        }
    }

    /// The window rows inside the image for output row `oy`.
    fn tap_rows(&self, oy: usize) -> TapRows {
        let mut rows = TapRows {
            ky: [0; MAX_TAP_ROWS],
            iy: [0; MAX_TAP_ROWS],
            len: 0,
        };
        for ky in 0..self.kernel[0] {
            if let Some(iy) = self.input_index(0, oy, ky) {
                rows.ky[rows.len] = ky;
                rows.iy[rows.len] = iy;
                rows.len += 1;
            }
        }
        rows
    }

    /// The input index along `axis` that output `o` reads at tap `k`, if inside.
    #[inline(always)]
    fn input_index(&self, axis: usize, o: usize, k: usize) -> Option<usize> {
        let at = (o * self.strides[axis] + k * self.dilations[axis]).checked_sub(self.pads[axis])?;
        (at < self.input[axis]).then_some(at)
    }

    fn row_portable(
        &self,
        rows: TapRows,
        x: &[f32],
        out: &mut [f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
    ) {
        let (c, kw, in_w) = (self.channels, self.kernel[1], self.input[1]);
        for (ox, o) in out.chunks_exact_mut(c).enumerate() {
            match bias {
                Some(b) => o.copy_from_slice(&b[..c]),
                None => o.fill(0.0),
            }
            for r in 0..rows.len {
                let (ky, iy) = (rows.ky[r], rows.iy[r]);
                for kx in 0..kw {
                    let Some(ix) = self.input_index(1, ox, kx) else {
                        continue;
                    };
                    let xs = &x[(iy * in_w + ix) * c..][..c];
                    let ws = &self.weights[(ky * kw + kx) * self.padded..][..c];
                    for ((o, &w), &v) in o.iter_mut().zip(ws).zip(xs) {
                        *o += w * v;
                    }
                }
            }
            if let Some(r) = residual {
                o.iter_mut().zip(&r[ox * c..][..c]).for_each(|(o, &r)| *o += r);
            }
        }
    }
}

/// Tallest window the kernel takes (its rows are listed inline per output row).
pub(crate) const MAX_TAP_ROWS: usize = 8;

/// Widest window the kernel takes (a row end's window columns are bits of a `u64`,
/// eight per column).
pub(crate) const MAX_TAP_COLUMNS: usize = 8;

/// The window rows inside the image for one output row: `(ky[r], iy[r])` for
/// `r < len`.
#[derive(Copy, Clone)]
struct TapRows {
    ky: [usize; MAX_TAP_ROWS],
    iy: [usize; MAX_TAP_ROWS],
    len: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_min_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    use super::{ChannelsLastDepthwise, TapRows, LANES};
    use crate::ir::ops::Activation;

    /// Outputs computed together where the whole window lies inside the row: their
    /// accumulators are independent chains, so the FMAs' latency overlaps (one
    /// output at a time waits 4 cycles per tap), and each tap's weights, loaded
    /// once, serve them all. Eight where they fit, else four.
    const WIDE_BATCH: usize = 8;
    const BATCH: usize = 4;

    /// What one block of sixteen channels needs, shared by its outputs.
    struct Block<'a> {
        dw: &'a ChannelsLastDepthwise,
        rows: &'a TapRows,
        x: &'a [f32],
        c0: usize,
        mask: __mmask16,
        start: __m512,
    }

    impl Block<'_> {
        /// Outputs `ox..ox + P`, each of whose window columns lie inside the row.
        /// `KW`: the window's width when it is 3 (unrolled), else 0.
        ///
        /// # Safety
        /// The CPU must support AVX-512F.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn inside<const P: usize, const KW: usize>(&self, ox: usize) -> [__m512; P] {
            let dw = self.dw;
            let (c, in_w) = (dw.channels, dw.input[1]);
            let kw = if KW > 0 { KW } else { dw.kernel[1] };
            let (sw, dil) = (dw.strides[1], dw.dilations[1]);
            let mut acc = [self.start; P];
            let ix0 = ox * sw - dw.pads[1];
            // The furthest pixel of a window row from its first one.
            let reach = ((kw - 1) * dil + (P - 1) * sw) * c;
            let weights = &dw.weights[..dw.kernel[0] * kw * dw.padded];
            for r in 0..self.rows.len {
                let ky = self.rows.ky[r];
                let first = (self.rows.iy[r] * in_w + ix0) * c + self.c0;
                // One check covers the row's loads: each is a pixel at most `reach`
                // floats past `first` (lanes past `mask` are neither read nor
                // faulted), and each tap's weights are sixteen of its `padded`.
                assert!(first + reach < self.x.len());
                let x = self.x[first..].as_ptr();
                let w_row = weights[ky * kw * dw.padded + self.c0..].as_ptr();
                for kx in 0..kw {
                    // SAFETY: as the assertion above says.
                    let w = unsafe { _mm512_loadu_ps(w_row.add(kx * dw.padded)) };
                    for (p, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: a pixel at most `reach` floats past `first`, as
                        // asserted above.
                        let v = unsafe { _mm512_maskz_loadu_ps(self.mask, x.add((kx * dil + p * sw) * c)) };
                        *acc = _mm512_fmadd_ps(w, v, *acc);
                    }
                }
            }
            acc
        }

        /// Output `ox`, skipping window columns outside the row.
        ///
        /// # Safety
        /// The CPU must support AVX-512F.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn edge(&self, ox: usize) -> __m512 {
            let dw = self.dw;
            let (c, kw, in_w) = (dw.channels, dw.kernel[1], dw.input[1]);
            let mut acc = self.start;
            for r in 0..self.rows.len {
                let (ky, line) = (self.rows.ky[r], self.rows.iy[r] * in_w);
                for kx in 0..kw {
                    let Some(ix) = dw.input_index(1, ox, kx) else {
                        continue;
                    };
                    let tap = &dw.weights[(ky * kw + kx) * dw.padded + self.c0..][..LANES];
                    // SAFETY: as in `inside`.
                    let (w, v) = unsafe {
                        (
                            _mm512_loadu_ps(tap.as_ptr()),
                            _mm512_maskz_loadu_ps(self.mask, self.x[(line + ix) * c + self.c0..].as_ptr()),
                        )
                    };
                    acc = _mm512_fmadd_ps(w, v, acc);
                }
            }
            acc
        }

        /// The outputs of `pixels`' batch (at most `P`), computed like
        /// [`Block::inside`]'s but with the window columns outside the row masked
        /// off (read as zeros). Lanes past the batch are garbage.
        ///
        /// Only for rows of at most eight outputs (MobileNetV2's 7x7 layers: 0.030
        /// -> 0.027 ms each, one thread, where all but four of the row's seven
        /// outputs went one at a time). In wider rows the batch at each end wasted
        /// lanes and read slower than single outputs in-model (14x14: 0.028 ->
        /// 0.034 ms), though not in `depthwise_speed`.
        ///
        /// # Safety
        /// The CPU must support AVX-512F.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn ends<const P: usize, const KW: usize>(&self, pixels: &EndPixels) -> [__m512; P] {
            let dw = self.dw;
            let (c, in_w) = (dw.channels, dw.input[1]);
            let kw = if KW > 0 { KW } else { dw.kernel[1] };
            let (sw, dil) = (dw.strides[1], dw.dilations[1]);
            let mut acc = [self.start; P];
            let weights = &dw.weights[..dw.kernel[0] * kw * dw.padded];
            for r in 0..self.rows.len {
                let ky = self.rows.ky[r];
                // Every pixel read is inside the image (`iy < in_h`, `ix < in_w`):
                // its sixteen lanes of `mask` are channels `c0..c` of it.
                let row = &self.x[self.rows.iy[r] * in_w * c + self.c0..];
                let first = row.as_ptr().wrapping_offset(pixels.first * c as isize);
                let w_row = &weights[ky * kw * dw.padded + self.c0..];
                for kx in 0..kw {
                    let w_tap = &w_row[kx * dw.padded..][..LANES];
                    // SAFETY: sixteen floats of `w_tap`.
                    let w = unsafe { _mm512_loadu_ps(w_tap.as_ptr()) };
                    for (p, acc) in acc.iter_mut().enumerate() {
                        let inside = pixels.inside >> (kx * WIDE_BATCH + p) & 1 == 1;
                        // Outside the row: an empty mask at the row's start. (At
                        // its computed address, past the input, such a load stalled.)
                        let (mask, at) = match inside {
                            true => (self.mask, first.wrapping_add((kx * dil + p * sw) * c)),
                            false => (0, row.as_ptr()),
                        };
                        // SAFETY: the lanes of `mask` are inside `row` (above); an
                        // empty mask reads nothing.
                        let v = unsafe { _mm512_maskz_loadu_ps(mask, at) };
                        *acc = _mm512_fmadd_ps(w, v, *acc);
                    }
                }
            }
            acc
        }
    }

    /// Which window columns of a row-end batch's outputs are inside the row, the
    /// same for every block of channels: bit `kx * WIDE_BATCH + p` for column `kx`
    /// of output `ox + p` (none for outputs past the batch).
    struct EndPixels {
        /// Input column of output `ox`'s window column 0 (negative in the padding).
        first: isize,
        inside: u64,
    }

    impl EndPixels {
        fn new(dw: &ChannelsLastDepthwise, ox: usize, count: usize) -> EndPixels {
            let mut inside = 0;
            for kx in 0..dw.kernel[1] {
                for p in 0..count {
                    if dw.input_index(1, ox + p, kx).is_some() {
                        inside |= 1 << (kx * WIDE_BATCH + p);
                    }
                }
            }
            EndPixels {
                first: (ox * dw.strides[1]) as isize - dw.pads[1] as isize,
                inside,
            }
        }
    }

    /// One output row, a block of sixteen channels at a time.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row(
        dw: &ChannelsLastDepthwise,
        rows: TapRows,
        x: &[f32],
        out: &mut [f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        act: Activation,
    ) {
        let (c, out_w) = (dw.channels, dw.output[1]);
        let x = &x[..dw.input[0] * dw.input[1] * c];
        let out = &mut out[..out_w * c];
        let residual = residual.map(|r| &r[..out_w * c]);
        let (lo, hi) = match act {
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Clamp { min, max } => (min, max),
            _ => (f32::NEG_INFINITY, f32::INFINITY),
        };
        let clamp = !matches!(act, Activation::None);
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let [inside_from, inside_to] = dw.inside;
        // Outputs outer, channel blocks inner: the few input pixels a batch of
        // outputs reads stay in L1 for all its channels (channel blocks outer swept
        // three input rows, hundreds of KiB at 56x56, once per block).
        let three = dw.kernel[1] == 3;
        let mut ox = 0;
        while ox < out_w {
            // Whole windows in batches of eight or four; the other outputs one at a
            // time, or, in a row of at most eight, together with the columns
            // outside the row masked off.
            let inside = |n: usize| ox >= inside_from && ox + n <= inside_to;
            let (batch, ends) = match [WIDE_BATCH, BATCH].into_iter().find(|&n| inside(n)) {
                Some(n) => (n, None),
                None if out_w <= WIDE_BATCH => (out_w - ox, Some(EndPixels::new(dw, ox, out_w - ox))),
                None => (1, None),
            };
            for c0 in (0..c).step_by(LANES) {
                let mask: __mmask16 = if c - c0 >= LANES {
                    !0
                } else {
                    (1u16 << (c - c0)) - 1
                };
                // SAFETY (the loads and stores below): lanes of `mask` are channels
                // `c0..c` of one pixel, `at`, of `out` or `residual`, inside their
                // checked lengths; masked-off lanes are neither read nor written.
                let start = match bias {
                    Some(b) => unsafe { _mm512_maskz_loadu_ps(mask, b[c0..c].as_ptr()) },
                    None => _mm512_setzero_ps(),
                };
                let block = Block {
                    dw,
                    rows: &rows,
                    x,
                    c0,
                    mask,
                    start,
                };
                let mut finish = |ox: usize, mut v: __m512| {
                    let at = ox * c + c0;
                    if let Some(r) = residual {
                        v = _mm512_add_ps(v, unsafe { _mm512_maskz_loadu_ps(mask, r[at..].as_ptr()) });
                    }
                    if clamp {
                        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
                    }
                    if mask == !0 {
                        unsafe { _mm512_storeu_ps(out[at..at + LANES].as_mut_ptr(), v) };
                    } else {
                        unsafe { _mm512_mask_storeu_ps(out[at..].as_mut_ptr(), mask, v) };
                    }
                };
                let mut batch_done = |vs: &[__m512]| {
                    vs.iter()
                        .take(batch)
                        .enumerate()
                        .for_each(|(p, &v)| finish(ox + p, v))
                };
                // SAFETY (each arm): AVX-512F per the caller.
                match (&ends, batch, three) {
                    (None, WIDE_BATCH, true) => batch_done(&unsafe { block.inside::<WIDE_BATCH, 3>(ox) }),
                    (None, WIDE_BATCH, false) => batch_done(&unsafe { block.inside::<WIDE_BATCH, 0>(ox) }),
                    (None, BATCH, true) => batch_done(&unsafe { block.inside::<BATCH, 3>(ox) }),
                    (None, BATCH, false) => batch_done(&unsafe { block.inside::<BATCH, 0>(ox) }),
                    (None, ..) => finish(ox, unsafe { block.edge(ox) }),
                    (Some(e), _, true) => batch_done(&unsafe { block.ends::<WIDE_BATCH, 3>(e) }),
                    (Some(e), _, false) => batch_done(&unsafe { block.ends::<WIDE_BATCH, 0>(e) }),
                }
            }
            ox += batch;
        }
    }
}
