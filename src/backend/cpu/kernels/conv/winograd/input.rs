//! The input transform `V = Bᵀ d B`, eight tiles per vector.
//!
//! Tile `(i, j)` reads the zero-padded input at rows `4i..4i + 6` and columns
//! `4j..4j + 6`. Splitting each padded row by column mod 4 (its *phases*) makes
//! column `4j + l` of eight neighbouring tiles one contiguous vector: phase `l % 4`
//! at `j + l / 4`. Each row is split once and read by the two tile rows it belongs
//! to; the 6x6 transform then runs in registers and stores its 36 results straight
//! into the GEMM operand.

use super::super::lanes::{Lanes, Portable, LANES};
use super::POINTS;

/// Where one image plane's tiles come from.
#[derive(Copy, Clone, Debug)]
pub(super) struct InputPlane {
    pub in_h: usize,
    pub in_w: usize,
    pub pad_t: usize,
    pub pad_l: usize,
    pub tiles_w: usize,
}

impl InputPlane {
    /// Floats per phase row: room for every chunk of eight tiles plus the one-tile
    /// shift that columns 4 and 5 read.
    fn phase_len(&self) -> usize {
        self.tiles_w.div_ceil(LANES) * LANES + LANES
    }

    /// Scratch [`transform`] needs for `rows` tile rows.
    pub fn scratch_len(&self, rows: usize) -> usize {
        // The phases, and the padded rows they are split from.
        2 * (4 * rows + 2) * 4 * self.phase_len()
    }
}

/// Transforms tile rows `ty0..ty0 + rows` of the channel plane `x` into `v`:
/// transformed position ξ of tile `t` (numbered row-major from the block's first
/// tile) goes to `v[ξ * stride + t]`. `stride` must be at least [`LANES`] more than
/// the block's tiles: every chunk of eight tiles is stored whole, so a tile row's
/// last chunk spills into the next row (written after it) or into that slack.
pub(super) fn transform(
    p: &InputPlane,
    x: &[f32],
    ty0: usize,
    rows: usize,
    v: &mut [f32],
    stride: usize,
    scratch: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx) = super::super::lanes::Avx2::detect() {
        // SAFETY: the token proves the CPU supports AVX2 and FMA.
        unsafe { transform_avx2(avx, p, x, ty0, rows, v, stride, scratch) };
        return;
    }
    transform_with(Portable, p, x, ty0, rows, v, stride, scratch);
}

/// [`transform_with`] compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA (which `avx` proves).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_avx2(
    avx: super::super::lanes::Avx2,
    p: &InputPlane,
    x: &[f32],
    ty0: usize,
    rows: usize,
    v: &mut [f32],
    stride: usize,
    scratch: &mut [f32],
) {
    transform_with(avx, p, x, ty0, rows, v, stride, scratch)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn transform_with<L: Lanes>(
    l: L,
    p: &InputPlane,
    x: &[f32],
    ty0: usize,
    rows: usize,
    v: &mut [f32],
    stride: usize,
    scratch: &mut [f32],
) {
    let q = p.phase_len();
    let padded_rows = 4 * rows + 2;
    let (phases, padded) = scratch.split_at_mut(padded_rows * 4 * q);
    let padded = &mut padded[..padded_rows * 4 * q];
    // All rows are padded before any is split: splitting a row right after copying
    // it stalled every vector load on store forwarding (a third of the time).
    pad_rows(p, x, 4 * ty0, 4 * q, padded);
    for (src, dst) in padded.chunks_exact(4 * q).zip(phases.chunks_exact_mut(4 * q)) {
        split_row(l, src, dst);
    }
    let phases: &[f32] = phases;
    assert!(stride >= rows * p.tiles_w + LANES, "no slack after the tiles");
    for i in 0..rows {
        let row_phases = &phases[4 * i * 4 * q..];
        for j0 in (0..p.tiles_w).step_by(LANES) {
            let t0 = i * p.tiles_w + j0;
            for (xi, out) in tile_chunk(l, row_phases, q, j0).into_iter().enumerate() {
                l.store(out, &mut v[xi * stride + t0..]);
            }
        }
    }
}

/// Copies the zero-padded rows `pr0..` of the plane `x` into `dst`, `pitch` floats
/// per row.
fn pad_rows(p: &InputPlane, x: &[f32], pr0: usize, pitch: usize, dst: &mut [f32]) {
    dst.fill(0.0);
    let lead = p.pad_l.min(pitch);
    let len = p.in_w.min(pitch - lead);
    for (i, row) in dst.chunks_exact_mut(pitch).enumerate() {
        if let Some(r) = (pr0 + i).checked_sub(p.pad_t).filter(|&r| r < p.in_h) {
            row[lead..lead + len].copy_from_slice(&x[r * p.in_w..][..len]);
        }
    }
}

/// Splits one padded row into its four phases of `q` floats each:
/// `dst[s * q + t]` = padded column `4t + s`.
#[inline(always)]
fn split_row<L: Lanes>(l: L, src: &[f32], dst: &mut [f32]) {
    let q = dst.len() / 4;
    let (d0, rest) = dst.split_at_mut(q);
    let (d1, rest) = rest.split_at_mut(q);
    let (d2, d3) = rest.split_at_mut(q);
    for t0 in (0..q).step_by(LANES) {
        let src = &src[4 * t0..];
        let groups = [
            l.load(src),
            l.load(&src[LANES..]),
            l.load(&src[2 * LANES..]),
            l.load(&src[3 * LANES..]),
        ];
        let [s0, s1, s2, s3] = l.deinterleave4(groups);
        l.store(s0, &mut d0[t0..]);
        l.store(s1, &mut d1[t0..]);
        l.store(s2, &mut d2[t0..]);
        l.store(s3, &mut d3[t0..]);
    }
}

/// The 36 transformed values of the eight tiles `j0..j0 + 8` of one tile row.
/// `phases` starts at the tile row's first padded row; each padded row is 4 phases
/// of `q` floats.
#[inline(always)]
fn tile_chunk<L: Lanes>(l: L, phases: &[f32], q: usize, j0: usize) -> [L::V; POINTS] {
    // Columns of the tile first: tmp[a][c] = Σ_r Bᵀ[a][r] d[r][c].
    let mut tmp = [l.splat(0.0); POINTS];
    for c in 0..6 {
        let at = (c % 4) * q + j0 + c / 4;
        let d: [L::V; 6] = std::array::from_fn(|r| l.load(&phases[r * 4 * q + at..]));
        let t = bt(l, d);
        for (a, &ta) in t.iter().enumerate() {
            tmp[a * 6 + c] = ta;
        }
    }
    // Then rows: out[a][b] = Σ_c Bᵀ[b][c] tmp[a][c].
    let mut out = tmp;
    for a in 0..6 {
        let row: [L::V; 6] = std::array::from_fn(|c| tmp[a * 6 + c]);
        out[a * 6..][..6].copy_from_slice(&bt(l, row));
    }
    out
}

/// `Bᵀ d` over six vectors:
/// ```text
/// Bᵀ = [ 4  0 -5  0  1  0 ]
///      [ 0 -4 -4  1  1  0 ]
///      [ 0  4 -4 -1  1  0 ]
///      [ 0 -2 -1  2  1  0 ]
///      [ 0  2 -1 -2  1  0 ]
///      [ 0  4  0 -5  0  1 ]
/// ```
#[inline(always)]
pub(super) fn bt<L: Lanes>(l: L, d: [L::V; 6]) -> [L::V; 6] {
    let [d0, d1, d2, d3, d4, d5] = d;
    let f_c = l.sub(d4, d2);
    let e_b = l.sub(d3, d1);
    [
        l.mul_add(d0, 4.0, l.mul_add(d2, -5.0, d4)),
        l.mul_add(l.add(d1, d2), -4.0, l.add(d3, d4)),
        l.mul_add(l.sub(d1, d2), 4.0, l.sub(d4, d3)),
        l.mul_add(e_b, 2.0, f_c),
        l.mul_add(e_b, -2.0, f_c),
        l.mul_add(d1, 4.0, l.mul_add(d3, -5.0, d5)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::kernels::compute_tests::Rng;

    /// Planes with ragged widths, heights and paddings, and blocks that start
    /// mid-plane, transformed by both lane types; every value of the block must be
    /// written (the output starts as NaN) and the two must agree.
    #[test]
    fn avx2_matches_portable() {
        #[cfg(target_arch = "x86_64")]
        let Some(avx) = super::super::super::lanes::Avx2::detect() else {
            println!("skipped: this CPU has no AVX2 + FMA");
            return;
        };
        let mut rng = Rng::new(41);
        for (in_h, in_w, pad, ty0, rows) in [
            (5, 5, 1, 0, 2),
            (14, 14, 1, 0, 4),
            (13, 19, 1, 1, 3),
            (9, 37, 0, 0, 2),
            (28, 28, 2, 2, 5),
            (3, 70, 1, 0, 1),
        ] {
            let out = |len: usize| len + 2 * pad - 2;
            let (tiles_h, tiles_w) = (out(in_h).div_ceil(4), out(in_w).div_ceil(4));
            assert!(ty0 + rows <= tiles_h);
            let p = InputPlane {
                in_h,
                in_w,
                pad_t: pad,
                pad_l: pad,
                tiles_w,
            };
            let x = rng.vec(in_h * in_w);
            let (tiles, stride) = (rows * tiles_w, rows * tiles_w + LANES);
            let run = |use_avx: bool| {
                let mut v = vec![f32::NAN; POINTS * stride];
                let mut scratch = vec![f32::NAN; p.scratch_len(rows)];
                #[cfg(target_arch = "x86_64")]
                if use_avx {
                    // SAFETY: `avx` proves AVX2 + FMA.
                    unsafe { transform_avx2(avx, &p, &x, ty0, rows, &mut v, stride, &mut scratch) };
                    return v;
                }
                assert!(!use_avx);
                transform_with(Portable, &p, &x, ty0, rows, &mut v, stride, &mut scratch);
                v
            };
            let (want, got) = (run(false), run(cfg!(target_arch = "x86_64")));
            let tiles_of = |v: &[f32]| -> Vec<f32> {
                v.chunks_exact(stride).flat_map(|r| r[..tiles].to_vec()).collect()
            };
            let (want, got) = (tiles_of(&want), tiles_of(&got));
            for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
                assert!(w.is_finite(), "{in_h}x{in_w}: value {i} not written");
                assert!(
                    (w - g).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{in_h}x{in_w}: value {i}: {g} vs {w}"
                );
            }
        }
    }
}
