//! The output transform `Y = Aᵀ M A`, eight tiles per vector, with the bias added
//! in registers and each finished output row given its residual and activation
//! while it is in L1.

use super::super::lanes::{Lanes, Portable, LANES};
use super::super::PlaneEpilogue;

/// The output plane the tiles are written into.
#[derive(Copy, Clone, Debug)]
pub(super) struct OutputPlane {
    pub out_h: usize,
    pub out_w: usize,
    pub tiles_w: usize,
}

/// Transforms the products of one output channel for tile rows `ty0..ty0 + rows`
/// into its plane `y`: the product at transformed position ξ of tile `t` (numbered
/// row-major from the block's first tile) is `m[ξ * stride + t]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn transform(
    p: &OutputPlane,
    m: &[f32],
    stride: usize,
    ty0: usize,
    rows: usize,
    y: &mut [f32],
    e: &PlaneEpilogue<'_>,
) {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx) = super::super::lanes::Avx2::detect() {
        // SAFETY: the token proves the CPU supports AVX2 and FMA.
        unsafe { transform_avx2(avx, p, m, stride, ty0, rows, y, e) };
        return;
    }
    transform_with(Portable, p, m, stride, ty0, rows, y, e);
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
    p: &OutputPlane,
    m: &[f32],
    stride: usize,
    ty0: usize,
    rows: usize,
    y: &mut [f32],
    e: &PlaneEpilogue<'_>,
) {
    transform_with(avx, p, m, stride, ty0, rows, y, e)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn transform_with<L: Lanes>(
    l: L,
    p: &OutputPlane,
    m: &[f32],
    stride: usize,
    ty0: usize,
    rows: usize,
    y: &mut [f32],
    e: &PlaneEpilogue<'_>,
) {
    let bias = l.splat(e.bias);
    for i in 0..rows {
        let ty = ty0 + i;
        let out_rows = 4.min(p.out_h.saturating_sub(4 * ty));
        for j0 in (0..p.tiles_w).step_by(LANES) {
            let n = LANES.min(p.tiles_w - j0);
            let t0 = i * p.tiles_w + j0;
            let load = |xi: usize| {
                let src = &m[xi * stride + t0..];
                if n == LANES {
                    l.load(src)
                } else {
                    l.load_first(src, n)
                }
            };
            let tiles = tile_chunk(l, load);
            // The chunk covers output columns 4 * j0 .. 4 * j0 + 32 of each row.
            let x0 = 4 * j0;
            for (r, quads) in tiles.chunks_exact(4).take(out_rows).enumerate() {
                let oy = 4 * ty + r;
                let row = &mut y[oy * p.out_w..][..p.out_w];
                let spans = l.interleave4([quads[0], quads[1], quads[2], quads[3]]);
                for (g, span) in spans.into_iter().enumerate() {
                    let c0 = x0 + g * LANES;
                    if c0 >= p.out_w {
                        break;
                    }
                    let span = l.add(span, bias);
                    match p.out_w - c0 {
                        left if left >= LANES => l.store(span, &mut row[c0..]),
                        left => l.store_first(span, &mut row[c0..], left),
                    }
                }
            }
        }
        for r in 0..out_rows {
            let oy = 4 * ty + r;
            e.finish_row(&mut y[oy * p.out_w..][..p.out_w], oy * p.out_w);
        }
    }
}

/// The 4x4 outputs of eight tiles from their 36 products (`load(ξ)`), as 16
/// vectors in row-major order (`[r * 4 + c]`, one tile per lane).
#[inline(always)]
fn tile_chunk<L: Lanes>(l: L, load: impl Fn(usize) -> L::V) -> [L::V; 16] {
    // Rows of the 6x6 first: s[a][c] = Σ_b Aᵀ[c][b] m[a][b].
    let mut s = [l.splat(0.0); 24];
    for a in 0..6 {
        let row: [L::V; 6] = std::array::from_fn(|b| load(a * 6 + b));
        s[a * 4..][..4].copy_from_slice(&at(l, row));
    }
    // Then columns: out[r][c] = Σ_a Aᵀ[r][a] s[a][c].
    let mut out = [l.splat(0.0); 16];
    for c in 0..4 {
        let column: [L::V; 6] = std::array::from_fn(|a| s[a * 4 + c]);
        for (r, v) in at(l, column).into_iter().enumerate() {
            out[r * 4 + c] = v;
        }
    }
    out
}

/// `Aᵀ m` over six vectors:
/// ```text
/// Aᵀ = [ 1  1  1  1  1  0 ]
///      [ 0  1 -1  2 -2  0 ]
///      [ 0  1  1  4  4  0 ]
///      [ 0  1 -1  8 -8  1 ]
/// ```
#[inline(always)]
pub(super) fn at<L: Lanes>(l: L, m: [L::V; 6]) -> [L::V; 4] {
    let [m0, m1, m2, m3, m4, m5] = m;
    let (sum12, dif12) = (l.add(m1, m2), l.sub(m1, m2));
    let (sum34, dif34) = (l.add(m3, m4), l.sub(m3, m4));
    [
        l.add(m0, l.add(sum12, sum34)),
        l.mul_add(dif34, 2.0, dif12),
        l.mul_add(sum34, 4.0, sum12),
        l.mul_add(dif34, 8.0, l.add(dif12, m5)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::kernels::compute_tests::Rng;
    use crate::ir::ops::Activation;

    /// Ragged planes and blocks that start mid-plane, with bias, residual and
    /// activation, by both lane types: the block's rows must be written in full
    /// (the plane starts as NaN), the rest left alone, and the two must agree.
    #[test]
    fn avx2_matches_portable() {
        #[cfg(target_arch = "x86_64")]
        let Some(avx) = super::super::super::lanes::Avx2::detect() else {
            println!("skipped: this CPU has no AVX2 + FMA");
            return;
        };
        let mut rng = Rng::new(42);
        for (out_h, out_w, ty0, rows) in [
            (4usize, 4usize, 0usize, 1usize),
            (14, 14, 0, 4),
            (13, 19, 1, 3),
            (9, 37, 0, 3),
            (3, 70, 0, 1),
        ] {
            let tiles_w = out_w.div_ceil(4);
            let p = OutputPlane {
                out_h,
                out_w,
                tiles_w,
            };
            let tiles = rows * tiles_w;
            let m = rng.vec(super::super::POINTS * tiles);
            let residual = rng.vec(out_h * out_w);
            let e = PlaneEpilogue {
                bias: 0.25,
                residual: Some(&residual),
                activation: Activation::Relu,
            };
            let run = |use_avx: bool| {
                let mut y = vec![f32::NAN; out_h * out_w];
                #[cfg(target_arch = "x86_64")]
                if use_avx {
                    // SAFETY: `avx` proves AVX2 + FMA.
                    unsafe { transform_avx2(avx, &p, &m, tiles, ty0, rows, &mut y, &e) };
                    return y;
                }
                assert!(!use_avx);
                transform_with(Portable, &p, &m, tiles, ty0, rows, &mut y, &e);
                y
            };
            let (want, got) = (run(false), run(cfg!(target_arch = "x86_64")));
            let block = 4 * ty0 * out_w..(4 * (ty0 + rows) * out_w).min(out_h * out_w);
            for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
                if block.contains(&i) {
                    assert!(w.is_finite(), "{out_h}x{out_w}: value {i} not written");
                    assert!(
                        (w - g).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{out_h}x{out_w}: value {i}: {g} vs {w}"
                    );
                } else {
                    assert!(
                        w.is_nan() && g.is_nan(),
                        "{out_h}x{out_w}: value {i} outside the block written"
                    );
                }
            }
        }
    }
}
