//! Indirect convolution: the swapped GEMM (positions on the tile rows, output
//! channels on the vector lanes, see [`super::swapped`]) with its left operand read
//! straight from a zero-padded copy of the input instead of an im2col matrix.
//!
//! A micro-tile of 6 positions x 16 channels (twelve positions with AVX-512,
//! whose 32 registers hold that many accumulators) keeps one pointer per position
//! (the top-left of its window in the padded input); every step of the reduction
//! over (input channel, tap) adds one precomputed offset to all of them and
//! broadcasts the values found there. No column matrix is built or packed: im2col cost more than
//! the arithmetic on convolutions with few output channels per group (RegNet's
//! 16-channel groups, 3-channel stems), where each column element feeds only
//! `Mg` multiply-adds. The weights are packed once, transposed, as the swapped
//! GEMM packs them.
//!
//! Tiles are stored transposed into the NCHW output; bias, residual and
//! activation then run along the finished output rows, a chunk of positions at a
//! time while it is in cache.

use rayon::prelude::*;

use super::depthwise::Plane;
use super::swapped::{self, RowEpilogue};
use crate::backend::cpu::kernels::gemm::buffers::{with_scratch, Slot};
use crate::backend::cpu::kernels::gemm::micro::{Isa, Tile, MR, NR};
use crate::backend::cpu::kernels::gemm::{PackedB, KC};
use crate::error::Result;
use crate::ir::window::Geometry;

/// Positions whose output rows get their epilogue together: a multiple of the tile
/// height, small enough that 16 rows of it stay in L1.
const EPILOGUE_POSITIONS: usize = 40 * MR;

/// A prepared indirect convolution (1-D or 2-D windows).
#[derive(Debug)]
pub(super) struct Indirect {
    c_g: usize,
    m_g: usize,
    /// Input and output planes as 2-D (1-D has a height of 1).
    in_hw: (usize, usize),
    out_hw: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    /// The padded plane: `rows x pitch`, large enough for every window.
    rows: usize,
    pitch: usize,
    /// Per reduction step `k = c * taps + tap`: the offset of its input value from
    /// a window's top-left in the padded input.
    offsets: Offsets,
    /// Per group, the transposed `[Kg, Mg]` weights in KC-deep slices of
    /// 16-channel panels (zero past `Mg`).
    panels: Vec<PackedB>,
}

impl Indirect {
    /// `Ok(None)` for windows of more than two spatial axes.
    pub fn new(
        geom: &Geometry,
        c_in: usize,
        c_out: usize,
        group: usize,
        w: &[f32],
    ) -> Result<Option<Indirect>> {
        let Some(p) = Plane::new(geom) else {
            return Ok(None);
        };
        let (in_hw, out_hw, kernel) = ((p.in_h, p.in_w), (p.out_h, p.out_w), (p.k_h, p.k_w));
        let (stride, dilation, pad) = (p.stride, p.dilation, p.pad);
        let span = |out: usize, s: usize, k: usize, d: usize| (out.max(1) - 1) * s + (k - 1) * d + 1;
        let rows = (pad.0 + in_hw.0).max(span(out_hw.0, stride.0, kernel.0, dilation.0));
        let pitch = (pad.1 + in_hw.1).max(span(out_hw.1, stride.1, kernel.1, dilation.1));
        let (c_g, m_g) = (c_in / group, c_out / group);
        let taps = kernel.0 * kernel.1;
        let offsets: Vec<usize> = (0..c_g * taps)
            .map(|k| {
                let (c, tap) = (k / taps, k % taps);
                let (kh, kw) = (tap / kernel.1, tap % kernel.1);
                c * rows * pitch + kh * dilation.0 * pitch + kw * dilation.1
            })
            .collect();
        let panels = swapped::pack_weights(w, group, m_g, offsets.len())?;
        Ok(Some(Indirect {
            c_g,
            m_g,
            in_hw,
            out_hw,
            stride,
            pad,
            rows,
            pitch,
            offsets: Offsets::new(offsets),
            panels,
        }))
    }

    /// One image and group: `x` holds the group's `Cg` input planes, `y` its `Mg`
    /// output planes. `parallel`: split the channel panels over threads.
    pub fn run(&self, g: usize, x: &[f32], y: &mut [f32], epilogue: &RowEpilogue<'_>, parallel: bool) {
        let positions = self.out_hw.0 * self.out_hw.1;
        if positions == 0 || self.m_g == 0 {
            return;
        }
        let plane = self.rows * self.pitch;
        let isa = Isa::detect();
        // With AVX-512 a job is two channel panels, computed as 6x32 tiles (see
        // `gemm::avx512`); its second panel may be partial (zero weights past `Mg`).
        let panels_per_job = if wide_tiles(isa) { 2 } else { 1 };
        with_scratch(Slot::Columns, self.c_g * plane, |padded| {
            self.pad_input(x, padded);
            let padded: &[f32] = padded;
            let job = |(n, rows): (usize, &mut [f32])| {
                let j = n * panels_per_job;
                if rows.len() > NR * positions {
                    self.panel_pair(isa, g, j, padded, rows, epilogue)
                } else {
                    self.panel(isa, g, j, padded, rows, epilogue)
                }
            };
            let job_len = panels_per_job * NR * positions;
            if parallel {
                y.par_chunks_mut(job_len).enumerate().for_each(job);
            } else {
                y.chunks_mut(job_len).enumerate().for_each(job);
            }
        });
    }

    /// Copies the input planes into `padded`, zero around them. Only the border is
    /// cleared: the copy overwrites the rest.
    fn pad_input(&self, x: &[f32], padded: &mut [f32]) {
        let ((in_h, in_w), (pt, pl)) = (self.in_hw, self.pad);
        let plane = self.rows * self.pitch;
        if in_h == 0 || in_w == 0 {
            padded.fill(0.0);
            return;
        }
        for (src, dst) in x.chunks_exact(in_h * in_w).zip(padded.chunks_exact_mut(plane)) {
            let (top, rest) = dst.split_at_mut(pt * self.pitch);
            top.fill(0.0);
            for (r, row) in rest.chunks_exact_mut(self.pitch).enumerate() {
                let (left, rest) = row.split_at_mut(pl);
                left.fill(0.0);
                match src.get(r * in_w..(r + 1) * in_w) {
                    Some(line) => {
                        rest[..in_w].copy_from_slice(line);
                        rest[in_w..].fill(0.0);
                    }
                    None => rest.fill(0.0),
                }
            }
        }
    }

    /// Output channels `16 j ..` (`rows`: their output planes) of group `g`.
    fn panel(&self, isa: Isa, g: usize, j: usize, padded: &[f32], rows: &mut [f32], e: &RowEpilogue<'_>) {
        let positions = self.out_hw.0 * self.out_hw.1;
        let k_g = self.offsets.steps.len();
        let mut tiles: [Tile; 2] = [[0.0; MR * NR]; 2];
        let twelve = wide_tiles(isa);
        for q0 in (0..positions).step_by(EPILOGUE_POSITIONS) {
            let q1 = (q0 + EPILOGUE_POSITIONS).min(positions);
            // KC steps of weights (16 KiB) stay in L1 while every tile of the chunk
            // uses them; each later slice adds to what the earlier ones stored.
            for k0 in (0..k_g.max(1)).step_by(KC) {
                let k1 = (k0 + KC).min(k_g);
                let offsets = self.offsets.slice(k0..k1);
                let weights = self.panels[g].block(j * NR, NR, k0, k1 - k0);
                let mut p0 = q0;
                while p0 < q1 {
                    // Twelve positions at a time where the CPU has the registers
                    // (see `tile_pair_with`), else six.
                    let span = if twelve && q1 - p0 > MR { 2 * MR } else { MR };
                    let n = span.min(q1 - p0);
                    // Past the last position, repeat it: a valid read, never stored.
                    let base = |i: usize| self.window_base(p0 + i.min(n - 1));
                    if span == MR {
                        let bases: [usize; MR] = std::array::from_fn(base);
                        tile_with(isa, padded, &bases, offsets, weights, &mut tiles[0]);
                    } else {
                        let bases: [usize; 2 * MR] = std::array::from_fn(base);
                        tile_pair_with(isa, padded, &bases, offsets, weights, &mut tiles);
                    }
                    for (l, row) in rows.chunks_exact_mut(positions).enumerate() {
                        let dst = row[p0..p0 + n].iter_mut().enumerate();
                        let at = |i: usize| tiles[i / MR][i % MR * NR + l];
                        match k0 {
                            0 => dst.for_each(|(i, d)| *d = at(i)),
                            _ => dst.for_each(|(i, d)| *d += at(i)),
                        }
                    }
                    p0 += n;
                }
            }
            for (l, row) in rows.chunks_exact_mut(positions).enumerate() {
                e.apply(j * NR + l, &mut row[q0..q1], positions, q0);
            }
        }
    }

    /// Output channels `16 j ..` of group `g` for two panels (`rows`: their 17 to 32
    /// output planes), 6 positions x 32 channels at a time ([`pair_with`]). Each tile
    /// runs the whole reduction in registers, its weights streamed from L2. (The
    /// narrow loop keeps a KC slice of weights in L1, but stores every tile once per
    /// slice, scalar and transposed.)
    fn panel_pair(
        &self,
        isa: Isa,
        g: usize,
        j: usize,
        padded: &[f32],
        rows: &mut [f32],
        e: &RowEpilogue<'_>,
    ) {
        let positions = self.out_hw.0 * self.out_hw.1;
        let mut out = [[0.0; NR]; 2 * MR];
        for q0 in (0..positions).step_by(EPILOGUE_POSITIONS) {
            let q1 = (q0 + EPILOGUE_POSITIONS).min(positions);
            for p0 in (q0..q1).step_by(MR) {
                let n = MR.min(q1 - p0);
                // Past the last position, repeat it: a valid read, never stored.
                let bases: [usize; MR] = std::array::from_fn(|i| self.window_base(p0 + i.min(n - 1)));
                pair_with(
                    isa,
                    padded,
                    &bases,
                    &self.offsets,
                    &self.panels[g],
                    j * NR,
                    &mut out,
                );
                for (l, row) in rows.chunks_exact_mut(positions).enumerate() {
                    let (h, lane) = (l / NR, l % NR);
                    for (i, d) in row[p0..p0 + n].iter_mut().enumerate() {
                        *d = out[h * MR + i][lane];
                    }
                }
            }
            for (l, row) in rows.chunks_exact_mut(positions).enumerate() {
                e.apply(j * NR + l, &mut row[q0..q1], positions, q0);
            }
        }
    }

    /// Where the window of output position `p` starts in a padded plane.
    fn window_base(&self, p: usize) -> usize {
        let (oh, ow) = (p / self.out_hw.1, p % self.out_hw.1);
        oh * self.stride.0 * self.pitch + ow * self.stride.1
    }
}

/// The reduction steps' input offsets with their maximum, computed once: a tile
/// checks its reads against the maximum instead of scanning every offset.
#[derive(Debug)]
pub(super) struct Offsets {
    steps: Vec<usize>,
    max: usize,
}

/// A run of [`Offsets`], none above `max`.
#[derive(Copy, Clone)]
pub(super) struct OffsetSlice<'a> {
    steps: &'a [usize],
    max: usize,
}

impl Offsets {
    pub fn new(steps: Vec<usize>) -> Offsets {
        let max = steps.iter().copied().max().unwrap_or(0);
        Offsets { steps, max }
    }

    pub fn slice(&self, range: std::ops::Range<usize>) -> OffsetSlice<'_> {
        OffsetSlice {
            steps: &self.steps[range],
            max: self.max,
        }
    }
}

/// `out = sum_k a_k (x) b_k` over the steps `k`: row `i` of `a_k` is
/// `x[bases[i] + offsets[k]]`, `b_k` is `b[k * NR..][..NR]`.
pub(super) fn tile_with(
    isa: Isa,
    x: &[f32],
    bases: &[usize; MR],
    offsets: OffsetSlice<'_>,
    b: &[f32],
    out: &mut Tile,
) {
    // Every read the kernels make is checked here, once per tile: no offset
    // exceeds `offsets.max` (by construction of `Offsets`).
    let (max_offset, offsets) = (offsets.max, offsets.steps);
    assert!(bases.iter().all(|&base| base + max_offset < x.len()));
    assert!(b.len() >= offsets.len() * NR);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard checks the CPU's features; the reads are in bounds per
        // the asserts above.
        Isa::Avx512F if isa.is_supported() => unsafe { tile_avx512::<MR>(x, bases, offsets, b, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma if isa.is_supported() => unsafe { tile_avx2(x, bases, offsets, b, out) },
        _ => tile_generic(x, bases, offsets, b, out),
    }
}

/// [`tile_with`] for twelve positions (`bases`), into `out[0]` (the first six) and
/// `out[1]`. With AVX-512 they share each step's weight load in one kernel of
/// twelve accumulators: six, one per position, leave the FMA units waiting on
/// their latency (RegNet's 16-channel groups, one panel per group).
pub(super) fn tile_pair_with(
    isa: Isa,
    x: &[f32],
    bases: &[usize; 2 * MR],
    offsets: OffsetSlice<'_>,
    b: &[f32],
    out: &mut [Tile; 2],
) {
    let halves = |i: usize| -> [usize; MR] { std::array::from_fn(|r| bases[i * MR + r]) };
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512F if isa.is_supported() => {
            // Every read is checked here, once: no offset exceeds `offsets.max`.
            assert!(bases.iter().all(|&base| base + offsets.max < x.len()));
            assert!(b.len() >= offsets.steps.len() * NR);
            // SAFETY: the guard checks the CPU's features; the reads are in bounds
            // per the asserts above.
            unsafe { tile_avx512::<{ 2 * MR }>(x, bases, offsets.steps, b, out.as_flattened_mut()) }
        }
        _ => {
            let [first, second] = out;
            tile_with(isa, x, &halves(0), offsets, b, first);
            tile_with(isa, x, &halves(1), offsets, b, second);
        }
    }
}

/// Whether `isa` computes 6x32 tiles (two channel panels at once).
pub(super) fn wide_tiles(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512F {
        return true;
    }
    let _ = isa;
    false
}

/// `out[h * MR + i]` = position `i`'s (window at `bases[i]`) outputs in channel
/// panel `j0 / NR + h` (`h` = 0, 1), over every reduction step: [`tile_with`] for
/// two panels of `w` at once, held in registers across the KC slices.
pub(super) fn pair_with(
    isa: Isa,
    x: &[f32],
    bases: &[usize; MR],
    offsets: &Offsets,
    w: &PackedB,
    j0: usize,
    out: &mut [[f32; NR]; 2 * MR],
) {
    assert!(w.rows() == offsets.steps.len() && j0 + 2 * NR <= w.cols().div_ceil(NR) * NR);
    // Every read `pair_avx512` makes is checked here: no offset exceeds the maximum.
    assert!(bases.iter().all(|&base| base + offsets.max < x.len()));
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard checks the CPU's features; the reads are in bounds per
        // the asserts above (and the weight slices are bounds-checked).
        Isa::Avx512F if isa.is_supported() => unsafe { pair_avx512(x, bases, offsets, w, j0, out) },
        _ => {
            // Definition order, in f32: the oracle of the tests.
            for (e, dst) in out.iter_mut().enumerate() {
                let (h, base) = (e / MR, bases[e % MR]);
                dst.fill(0.0);
                for k0 in (0..offsets.steps.len()).step_by(KC) {
                    let steps = &offsets.steps[k0..(k0 + KC).min(offsets.steps.len())];
                    let panel = w.block(j0 + h * NR, NR, k0, steps.len());
                    for (&o, wk) in steps.iter().zip(panel.chunks_exact(NR)) {
                        let a = x[base + o];
                        dst.iter_mut().zip(wk).for_each(|(d, &wv)| *d += a * wv);
                    }
                }
            }
        }
    }
}

/// Portable tile; the oracle the SIMD ones are tested against.
fn tile_generic(x: &[f32], bases: &[usize; MR], offsets: &[usize], b: &[f32], out: &mut Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    for (&o, bk) in offsets.iter().zip(b.chunks_exact(NR)) {
        for (row, &base) in acc.iter_mut().zip(bases) {
            let a = x[base + o];
            for (c, &bv) in row.iter_mut().zip(bk) {
                *c += a * bv;
            }
        }
    }
    for (dst, row) in out.chunks_exact_mut(NR).zip(&acc) {
        dst.copy_from_slice(row);
    }
}

/// The tile in 12 ymm accumulators, like the GEMM's 6x16 kernel, with the six
/// broadcasts read through the position pointers.
///
/// # Safety
/// AVX2 and FMA; `bases[i] + o < x.len()` for every offset `o`, and `b` holds
/// `offsets.len() * NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(x: &[f32], bases: &[usize; MR], offsets: &[usize], b: &[f32], out: &mut Tile) {
    use std::arch::x86_64::{
        __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let x = x.as_ptr();
    let mut pb = b.as_ptr();
    let mut c: [__m256; 2 * MR] = [_mm256_setzero_ps(); 2 * MR];
    for &o in offsets {
        // SAFETY: `bases[i] + o` is inside `x` and `pb` walks `b` NR floats per
        // step, per this function's contract.
        unsafe {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for i in 0..MR {
                let a = _mm256_broadcast_ss(&*x.add(bases[i] + o));
                c[2 * i] = _mm256_fmadd_ps(a, b0, c[2 * i]);
                c[2 * i + 1] = _mm256_fmadd_ps(a, b1, c[2 * i + 1]);
            }
            pb = pb.add(NR);
        }
    }
    let dst = out.as_mut_ptr();
    for (i, v) in c.iter().enumerate() {
        // SAFETY: `out` holds MR * NR = 12 * 8 floats; vector i goes to 8i..8i+8.
        unsafe { _mm256_storeu_ps(dst.add(8 * i), *v) };
    }
}

/// [`tile_with`]'s tile (`P` = 6 positions) or [`tile_pair_with`]'s (12) x 16
/// channels, one zmm accumulator per position; position `i` goes to `out[16 i..]`.
///
/// # Safety
/// AVX-512F; `bases[i] + o < x.len()` for every offset `o`, and `b` holds
/// `offsets.len() * NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const P: usize>(
    x: &[f32],
    bases: &[usize; P],
    offsets: &[usize],
    b: &[f32],
    out: &mut [f32],
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };
    const { assert!(NR == 16) };
    let out = &mut out[..P * NR];
    let x = x.as_ptr();
    let mut pb = b.as_ptr();
    let mut c: [__m512; P] = [_mm512_setzero_ps(); P];
    for &o in offsets {
        // SAFETY: `bases[i] + o` is inside `x` and `pb` walks `b` NR floats per
        // step, per this function's contract.
        unsafe {
            let bv = _mm512_loadu_ps(pb);
            for (row, &base) in c.iter_mut().zip(bases) {
                *row = _mm512_fmadd_ps(_mm512_set1_ps(*x.add(base + o)), bv, *row);
            }
            pb = pb.add(NR);
        }
    }
    let dst = out.as_mut_ptr();
    for (i, v) in c.iter().enumerate() {
        // SAFETY: `out` holds P * NR floats (sliced above); row i goes to 16i..16i+16.
        unsafe { _mm512_storeu_ps(dst.add(NR * i), *v) };
    }
}

/// [`pair_with`]'s 6x32 tile: two zmm accumulators per position, one per panel.
///
/// # Safety
/// AVX-512F; `bases[i] + o < x.len()` for every offset `o` of `offsets`, and the
/// panels `j0 / NR` and the next exist in `w`, whose depth is `offsets`' length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pair_avx512(
    x: &[f32],
    bases: &[usize; MR],
    offsets: &Offsets,
    w: &PackedB,
    j0: usize,
    out: &mut [[f32; NR]; 2 * MR],
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };
    const { assert!(NR == 16) };
    let k = offsets.steps.len();
    let x = x.as_ptr();
    let mut acc: [[__m512; 2]; MR] = [[_mm512_setzero_ps(); 2]; MR];
    for k0 in (0..k).step_by(KC) {
        let steps = &offsets.steps[k0..(k0 + KC).min(k)];
        // The slice's two panels, one after the other (bounds-checked).
        let block = w.block(j0, 2 * NR, k0, steps.len());
        let (mut p0, mut p1) = (block.as_ptr(), block[steps.len() * NR..].as_ptr());
        for &o in steps {
            // SAFETY: `bases[i] + o` is inside `x` per the contract; `p0` and `p1`
            // walk the two panels of `block`, NR floats per step, `steps.len()`
            // steps each.
            unsafe {
                let (b0, b1) = (_mm512_loadu_ps(p0), _mm512_loadu_ps(p1));
                for (row, &base) in acc.iter_mut().zip(bases) {
                    let a = _mm512_set1_ps(*x.add(base + o));
                    row[0] = _mm512_fmadd_ps(a, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(a, b1, row[1]);
                }
                p0 = p0.add(NR);
                p1 = p1.add(NR);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (h, v) in row.iter().enumerate() {
            // SAFETY: `out` has 2 * MR rows of NR floats.
            unsafe { _mm512_storeu_ps(out[h * MR + i].as_mut_ptr(), *v) };
        }
    }
}
