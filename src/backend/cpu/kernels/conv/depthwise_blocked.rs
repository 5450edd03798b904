//! Channel-blocked depthwise convolution: eight channels side by side in one AVX2
//! vector, or sixteen in one AVX-512 vector.
//!
//! The plane-at-a-time kernel ([`super::depthwise`]) vectorises along a row, so a
//! plane pays its setup (padding copy, per-row epilogue) once for a few hundred
//! multiply-adds: at 7x7 and 14x14, where MobileNet spends most of its depthwise
//! layers, that overhead is most of the time. Here eight planes are interleaved
//! into a zero-padded `[rows][cols][8]` scratch band, so every tap is one vector
//! FMA for eight channels at one output position and there is no edge case left in
//! the inner loop. Eight positions are computed at once and turned back into eight
//! NCHW row segments by an 8x8 register transpose. (ONNX Runtime keeps a whole
//! network in this channel-blocked layout; kiln converts around this one kernel.)
//!
//! Output rows are processed in bands whose scratch stays in L1/L2, whatever the
//! plane size.
//!
//! With AVX-512 a block is sixteen channels: each tap is one 512-bit FMA for sixteen
//! channels, half the multiply-add instructions, while the transposes in and out
//! stay 8x8 (two per block). (MobileNetV2's blocked layers, 1 thread: see
//! `depthwise_speed`.)

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m256, __m512, _mm256_castpd_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    _mm512_castps512_ps256, _mm512_castps_pd, _mm512_extractf64x4_pd, _mm512_fmadd_ps, _mm512_loadu_ps,
};

use super::depthwise::Plane;
#[cfg(target_arch = "x86_64")]
use super::lanes::{Avx2, Lanes};
use crate::backend::cpu::kernels::gemm::micro::Isa;
#[cfg(target_arch = "x86_64")]
use crate::backend::cpu::kernels::numeric::vector_activation::{
    with_activation, Activate, RegisterActivation,
};
use crate::ir::ops::Activation;

/// Floats per AVX2 vector: the positions computed per step, and the channels of a
/// block without AVX-512.
pub(crate) const LANES: usize = 8;

/// Channels per block with AVX-512: the lanes of one zmm register.
const WIDE: usize = 16;

/// Scratch budget for one band of interleaved input rows (64 KiB), so a band is
/// still cached when its taps read it back.
const BAND_FLOATS: usize = 16 * 1024;

/// A depthwise convolution (one input channel per output channel, undilated 2-D or
/// 1-D window) with its weights interleaved per block of [`ChannelBlocked::width`]
/// channels.
#[derive(Debug)]
pub(crate) struct ChannelBlocked {
    plane: Plane,
    channels: usize,
    /// Padded input columns one band row holds: what the output row's taps reach.
    cols: usize,
    /// Output rows per band.
    band: usize,
    /// Channels per block: [`LANES`], or [`WIDE`] with AVX-512.
    width: usize,
    /// `[block][tap][width]`, zero for the missing channels of the last block.
    weights: Vec<f32>,
    /// Proof of AVX2 + FMA, for the edge loads and stores.
    #[cfg(target_arch = "x86_64")]
    avx2: Avx2,
}

impl ChannelBlocked {
    /// `None` for windows this kernel does not handle (dilated, empty) and on CPUs
    /// without AVX2 + FMA. `w` is `[channels][taps]`. Blocks are sixteen channels
    /// wide where the CPU has AVX-512.
    pub fn new(plane: &Plane, channels: usize, w: &[f32]) -> Option<ChannelBlocked> {
        ChannelBlocked::with_isa(Isa::detect(), plane, channels, w)
    }

    /// [`ChannelBlocked::new`] with sixteen-channel blocks only if `isa` is AVX-512
    /// (and the CPU has it): the tests run both widths.
    pub fn with_isa(isa: Isa, plane: &Plane, channels: usize, w: &[f32]) -> Option<ChannelBlocked> {
        #[cfg(target_arch = "x86_64")]
        let avx2 = Avx2::detect()?;
        // Elsewhere there is no kernel to build (a flag, not a bare `return`, so the
        // rest of the function is not dead code there).
        #[cfg(not(target_arch = "x86_64"))]
        let unsupported = true;
        #[cfg(not(target_arch = "x86_64"))]
        if unsupported {
            return None;
        }
        let p = plane;
        let empty = p.in_h == 0 || p.in_w == 0 || p.out_h == 0 || p.out_w == 0 || channels == 0;
        if empty || p.dilation != (1, 1) {
            return None;
        }
        let taps = p.k_h * p.k_w;
        if w.len() != channels * taps {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        let width = if isa == Isa::Avx512F && isa.is_supported() {
            WIDE
        } else {
            LANES
        };
        #[cfg(not(target_arch = "x86_64"))]
        let width = {
            let _ = isa;
            LANES
        };
        let (sh, sw) = p.stride;
        let cols = (p.out_w - 1) * sw + p.k_w;
        let row_floats = cols * width;
        // Input rows of a band of `b` output rows: (b - 1) * sh + k_h.
        let band = ((BAND_FLOATS / row_floats).saturating_sub(p.k_h) / sh + 1).min(p.out_h);
        let blocks = channels.div_ceil(width);
        let mut weights = vec![0.0; blocks * taps * width];
        for (c, wc) in w.chunks_exact(taps).enumerate() {
            let (b, lane) = (c / width, c % width);
            for (t, &v) in wc.iter().enumerate() {
                weights[(b * taps + t) * width + lane] = v;
            }
        }
        Some(ChannelBlocked {
            plane: plane.clone(),
            channels,
            cols,
            band,
            width,
            weights,
            #[cfg(target_arch = "x86_64")]
            avx2,
        })
    }

    /// Channels per block: 8, or 16 with AVX-512.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Channels in block `b` (the last may be partial).
    pub fn lanes(&self, b: usize) -> usize {
        self.width.min(self.channels - b * self.width)
    }

    /// Scratch floats one call of [`ChannelBlocked::block`] needs: a band, plus the
    /// slack the last row's surplus positions read (see [`ChannelBlocked::positions`]).
    pub fn scratch_len(&self) -> usize {
        self.band_rows(self.band) * self.cols * self.width + (LANES - 1) * self.plane.stride.1 * self.width
    }

    fn band_rows(&self, out_rows: usize) -> usize {
        (out_rows - 1) * self.plane.stride.0 + self.plane.k_h
    }

    /// Block `b` of one image: `x` holds its `lanes(b)` input planes, `out` its
    /// output planes, `bias` and `residual` (planes like `out`) the block's terms.
    #[allow(clippy::too_many_arguments)]
    pub fn block(
        &self,
        b: usize,
        x: &[f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        activation: Activation,
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        let lanes = self.lanes(b);
        let (in_len, out_len) = (
            self.plane.in_h * self.plane.in_w,
            self.plane.out_h * self.plane.out_w,
        );
        let terms = Terms {
            bias: bias.map(|v| &v[..lanes]),
            residual: residual.map(|r| &r[..lanes * out_len]),
            activation,
        };
        #[cfg(target_arch = "x86_64")]
        {
            let scratch = &mut scratch[..self.scratch_len()];
            let (x, out) = (&x[..lanes * in_len], &mut out[..lanes * out_len]);
            if self.width == WIDE {
                // SAFETY: `with_isa` makes sixteen-channel blocks only where
                // AVX-512F is supported (and AVX2 + FMA, which `self.avx2` proves).
                unsafe { self.block_avx512(b, x, &terms, scratch, out) };
            } else {
                // SAFETY: `self.avx2` proves the CPU supports AVX2 and FMA.
                unsafe { self.block_avx2(b, x, &terms, scratch, out) };
            }
        }
        // `new` only builds this kernel where AVX2 + FMA exist.
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("channel-blocked depthwise without AVX2 ({:?})", terms.activation);
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_avx2(
        &self,
        b: usize,
        x: &[f32],
        terms: &Terms<'_>,
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        // SAFETY: AVX2 + FMA per the caller.
        unsafe { self.block_any::<LANES>(b, x, terms, scratch, out) }
    }

    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn block_avx512(
        &self,
        b: usize,
        x: &[f32],
        terms: &Terms<'_>,
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        // SAFETY: AVX-512F, AVX2 + FMA per the caller.
        unsafe { self.block_any::<WIDE>(b, x, terms, scratch, out) }
    }

    /// One block, `W` channels wide, inlined into the entry compiled for its ISA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and AVX-512F if `W` is [`WIDE`].
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn block_any<const W: usize>(
        &self,
        b: usize,
        x: &[f32],
        terms: &Terms<'_>,
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        // One instance per kind of activation, so the per-vector store has no
        // `match` (perf showed a jump table per vector); those without a register
        // form run after the block, over its planes.
        let in_registers = RegisterActivation::of(terms.activation);
        let act = in_registers.unwrap_or(RegisterActivation::None);
        // SAFETY: as the caller guarantees.
        unsafe { with_activation!(act, a => self.block_strided::<W, _>(b, x, terms, scratch, out, a)) }
        if in_registers.is_none() {
            let out_len = self.plane.out_h * self.plane.out_w;
            for plane in out.chunks_exact_mut(out_len).take(self.lanes(b)) {
                terms.activation.apply_slice(plane);
            }
        }
    }

    /// # Safety
    /// As [`ChannelBlocked::block_any`].
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn block_strided<const W: usize, A: Activate>(
        &self,
        b: usize,
        x: &[f32],
        terms: &Terms<'_>,
        scratch: &mut [f32],
        out: &mut [f32],
        act: A,
    ) {
        // A compile-time horizontal stride turns the eight positions' addresses into
        // constant displacements; full blocks get fixed-length lane loops.
        // SAFETY (all arms): as the caller guarantees.
        unsafe {
            match (self.plane.stride.1, self.lanes(b) == W) {
                (1, true) => self.block_with::<W, 1, true, A>(b, x, terms, scratch, out, act),
                (2, true) => self.block_with::<W, 2, true, A>(b, x, terms, scratch, out, act),
                (_, true) => self.block_with::<W, 0, true, A>(b, x, terms, scratch, out, act),
                (_, false) => self.block_with::<W, 0, false, A>(b, x, terms, scratch, out, act),
            }
        }
    }

    /// One block of `W` channels for horizontal stride `SW` (0: read it from the
    /// plane) and, with `FULL`, all `W` lanes present, applying `act`.
    ///
    /// # Safety
    /// As [`ChannelBlocked::block_any`].
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block_with<const W: usize, const SW: usize, const FULL: bool, A: Activate>(
        &self,
        b: usize,
        x: &[f32],
        terms: &Terms<'_>,
        scratch: &mut [f32],
        out: &mut [f32],
        act: A,
    ) {
        let p = &self.plane;
        let lanes = if FULL { W } else { self.lanes(b) };
        let out_len = p.out_h * p.out_w;
        let mut bias = [0.0; W];
        if let Some(v) = terms.bias {
            bias[..lanes].copy_from_slice(v);
        }
        let taps = p.k_h * p.k_w;
        let weights = &self.weights[b * taps * W..][..taps * W];
        let avx2 = self.avx2;
        for oh0 in (0..p.out_h).step_by(self.band) {
            let rows = self.band.min(p.out_h - oh0);
            let band_len = self.band_rows(rows) * self.cols * W;
            // SAFETY: AVX2 + FMA per the caller.
            unsafe { self.pack_band::<W>(x, lanes, oh0 * p.stride.0, &mut scratch[..band_len]) };
            for oh in oh0..oh0 + rows {
                let band_row = (oh - oh0) * p.stride.0;
                for ow in (0..p.out_w).step_by(LANES) {
                    let n = LANES.min(p.out_w - ow);
                    let at = oh * p.out_w + ow;
                    // SAFETY: as the caller guarantees (AVX-512F for `WIDE`);
                    // `scratch` is `scratch_len()` long, `band_row` and `ow` are
                    // inside the band and the row.
                    let channels: [__m256; W] = unsafe {
                        let mut c = [_mm256_setzero_ps(); W];
                        if W == WIDE {
                            c.copy_from_slice(
                                &self.positions_wide::<SW>(scratch, band_row, ow, weights, &bias),
                            );
                        } else {
                            c.copy_from_slice(&self.positions::<SW>(scratch, band_row, ow, weights, &bias));
                        }
                        c
                    };
                    for (l, mut v) in channels.into_iter().enumerate().take(lanes) {
                        let at = l * out_len + at;
                        if let Some(r) = terms.residual {
                            v = avx2.add(v, avx2.load_first(&r[at..], n));
                        }
                        // SAFETY: AVX2 + FMA per the caller.
                        v = unsafe { act.apply(v) };
                        // A row's last few positions are stored in halves, pairs and
                        // singles: a copy through a temporary was a `memcpy` per channel.
                        avx2.store_first(v, &mut out[at..], n);
                    }
                }
            }
        }
    }

    /// Interleaves the input rows a band reads, from padded row `r0` on, into `band`
    /// (`[rows][cols][W]`), zero outside the input and for missing channels: eight
    /// channels at a time, by 8x8 transposes.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn pack_band<const W: usize>(&self, x: &[f32], lanes: usize, r0: usize, band: &mut [f32]) {
        let p = &self.plane;
        let (pt, pl) = p.pad;
        let in_len = p.in_h * p.in_w;
        assert!(lanes <= W && x.len() >= lanes * in_len);
        // Input columns `iw` land at padded column `iw + pl`; those past `cols` are
        // never read.
        let iw_end = p.in_w.min(self.cols.saturating_sub(pl));
        for (r, dst) in band.chunks_exact_mut(self.cols * W).enumerate() {
            let Some(ih) = (r0 + r).checked_sub(pt).filter(|&ih| ih < p.in_h) else {
                dst.fill(0.0);
                continue;
            };
            dst[..pl.min(self.cols) * W].fill(0.0);
            dst[(pl + iw_end).min(self.cols) * W..].fill(0.0);
            for iw in (0..iw_end).step_by(LANES) {
                let n = LANES.min(iw_end - iw);
                let at = ih * p.in_w + iw;
                for c0 in (0..W).step_by(LANES) {
                    let rows: [__m256; LANES] = std::array::from_fn(|l| match c0 + l < lanes {
                        true => self.avx2.load_first(&x[(c0 + l) * in_len + at..], n),
                        false => _mm256_setzero_ps(),
                    });
                    // SAFETY: the `n` stores are lanes `c0..c0 + 8` of padded columns
                    // `iw + pl..iw + pl + n <= cols` of this band row.
                    unsafe {
                        let t = self.avx2.transpose8(rows);
                        let d = dst.as_mut_ptr().add((iw + pl) * W + c0);
                        for (q, v) in t.iter().enumerate().take(n) {
                            _mm256_storeu_ps(d.add(q * W), *v);
                        }
                    }
                }
            }
        }
    }

    /// What every read of [`ChannelBlocked::positions`] (`width` 8) and
    /// [`ChannelBlocked::positions_wide`] (16) relies on. Their reads reach at most
    /// `(band_rows(band) - 1) * row_len + (cols + 7 * sw) * width` floats into the
    /// band, which is `scratch_len()`, and one `width`-float vector per tap and of
    /// bias.
    fn assert_taps_inside(
        &self,
        width: usize,
        scratch: &[f32],
        band_row: usize,
        ow: usize,
        weights: &[f32],
        bias: &[f32],
    ) {
        let p = &self.plane;
        assert!(
            width == self.width
                && scratch.len() >= self.scratch_len()
                && band_row <= (self.band - 1) * p.stride.0
                && ow < p.out_w
                && weights.len() >= p.k_h * p.k_w * width
                && bias.len() >= width
        );
    }

    /// Outputs `ow..ow + 8` of the output row whose window starts at band row
    /// `band_row`, with the bias, transposed to one vector per channel. Positions
    /// past the row's end are computed too (from the next band row or the scratch's
    /// slack) for the caller to drop.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn positions<const SW: usize>(
        &self,
        scratch: &[f32],
        band_row: usize,
        ow: usize,
        weights: &[f32],
        bias: &[f32],
    ) -> [__m256; LANES] {
        let p = &self.plane;
        let sw = if SW == 0 { p.stride.1 } else { SW };
        debug_assert_eq!(sw, p.stride.1);
        let row_len = self.cols * LANES;
        self.assert_taps_inside(LANES, scratch, band_row, ow, weights, bias);
        // SAFETY: `bias` holds 8 floats.
        let b = unsafe { _mm256_loadu_ps(bias.as_ptr()) };
        let mut acc = [b; LANES];
        let (src, w) = (scratch.as_ptr(), weights.as_ptr());
        for kh in 0..p.k_h {
            for kw in 0..p.k_w {
                // SAFETY: tap (kh, kw) of position ow + q (q < 8) reads floats
                // `(band_row + kh) * row_len + ((ow + q) * sw + kw) * 8 .. + 8`, inside
                // `scratch` by `assert_taps_inside` above; the weight vector is tap
                // `kh * k_w + kw < taps`, inside `weights`.
                unsafe {
                    let wv = _mm256_loadu_ps(w.add((kh * p.k_w + kw) * LANES));
                    let base = src.add((band_row + kh) * row_len + (ow * sw + kw) * LANES);
                    for (q, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(_mm256_loadu_ps(base.add(q * sw * LANES)), wv, *a);
                    }
                }
            }
        }
        self.avx2.transpose8(acc)
    }

    /// [`ChannelBlocked::positions`] for a sixteen-channel block: eight positions
    /// of sixteen channels in zmm accumulators, then two 8x8 transposes, one per
    /// half.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn positions_wide<const SW: usize>(
        &self,
        scratch: &[f32],
        band_row: usize,
        ow: usize,
        weights: &[f32],
        bias: &[f32],
    ) -> [__m256; WIDE] {
        let p = &self.plane;
        let sw = if SW == 0 { p.stride.1 } else { SW };
        debug_assert_eq!(sw, p.stride.1);
        let row_len = self.cols * WIDE;
        self.assert_taps_inside(WIDE, scratch, band_row, ow, weights, bias);
        // SAFETY: `bias` holds 16 floats.
        let b = unsafe { _mm512_loadu_ps(bias.as_ptr()) };
        let mut acc: [__m512; LANES] = [b; LANES];
        let (src, w) = (scratch.as_ptr(), weights.as_ptr());
        for kh in 0..p.k_h {
            for kw in 0..p.k_w {
                // SAFETY: as in `positions`, with sixteen floats per position and tap.
                unsafe {
                    let wv = _mm512_loadu_ps(w.add((kh * p.k_w + kw) * WIDE));
                    let base = src.add((band_row + kh) * row_len + (ow * sw + kw) * WIDE);
                    for (q, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(_mm512_loadu_ps(base.add(q * sw * WIDE)), wv, *a);
                    }
                }
            }
        }
        let low = acc.map(|v| _mm512_castps512_ps256(v));
        let high = acc.map(|v| _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))));
        let (low, high) = (self.avx2.transpose8(low), self.avx2.transpose8(high));
        std::array::from_fn(|c| if c < LANES { low[c] } else { high[c - LANES] })
    }
}

/// The terms one block adds to its output.
#[derive(Debug)]
struct Terms<'a> {
    bias: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
    activation: Activation,
}
