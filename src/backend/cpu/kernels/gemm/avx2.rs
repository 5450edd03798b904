//! The AVX2 + FMA micro-kernel (x86-64 only, chosen at run time).

use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    _mm256_storeu_ps, _mm_prefetch, _MM_HINT_T0,
};

use super::micro::{Tile, MR, NR};

// The register allocation below is written for exactly this tile.
const _: () = assert!(MR == 6 && NR == 16);

/// The first `R` rows of `A_panel * B_panel` over `k` steps: up to the 6x16 tile
/// in 12 ymm accumulators. (Fewer rows serve a block's last, partial row panel
/// without computing the zero rows its packing added.)
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn product<const R: usize>(k: usize, a: &[f32], b: &[f32]) -> [[__m256; 2]; R] {
    const { assert!(R >= 1 && R <= MR) };
    // Slicing checks the panels really hold `k` steps, so the pointer walk below
    // stays inside them.
    let a = &a[..k * MR];
    let b = &b[..k * NR];
    let mut pa = a.as_ptr();
    let mut pb = b.as_ptr();
    let mut c = [[_mm256_setzero_ps(); 2]; R];
    for _ in 0..k {
        // SAFETY: each step reads R <= MR floats at `pa` and NR floats at `pb`, then
        // advances by MR and NR; `k` steps fit in the slices checked above.
        unsafe {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for (i, row) in c.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*pa.add(i));
                row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                row[1] = _mm256_fmadd_ps(av, b1, row[1]);
            }
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
    }
    c
}

/// `out = A_panel * B_panel` over `k` steps.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn micro_6x16(k: usize, a: &[f32], b: &[f32], out: &mut Tile) {
    // SAFETY: the caller guarantees AVX2 + FMA.
    let c = unsafe { product::<MR>(k, a, b) };
    let dst = out.as_mut_ptr();
    for (i, v) in c.iter().flatten().enumerate() {
        // SAFETY: `out` holds MR * NR = 12 * 8 floats; vector i goes to floats 8i..8i+8.
        unsafe { _mm256_storeu_ps(dst.add(8 * i), *v) };
    }
}

/// `rows[i][j..j + NR] = (A_panel * B_panel)[i]` for the first `R` rows, or `+=`
/// with `accumulate`: the tile goes from registers straight to the output,
/// skipping the copy through a [`Tile`] (which costs a tenth of the time of a
/// small-K product).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn micro_rows_into<const R: usize>(
    k: usize,
    a: &[f32],
    b: &[f32],
    rows: &mut [&mut [f32]; MR],
    j: usize,
    accumulate: bool,
) {
    // The tile's rows are far apart in C and rarely cached: fetching them while the
    // product runs hides the miss the stores (and `accumulate`'s loads) would take.
    // (`gemm_gflops`, small-K shapes with a residual: 51 -> 56 GFLOP/s.)
    for row in rows[..R].iter() {
        let tile_row = &row[j..j + NR];
        // SAFETY: prefetching is a hint that never faults; both addresses lie inside
        // the (bounds-checked) row.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(tile_row.as_ptr().cast());
            _mm_prefetch::<_MM_HINT_T0>(tile_row.as_ptr().add(NR - 1).cast());
        }
    }
    // SAFETY: the caller guarantees AVX2 + FMA.
    let c = unsafe { product::<R>(k, a, b) };
    for (row, v) in rows[..R].iter_mut().zip(c) {
        let dst = row[j..j + NR].as_mut_ptr();
        // SAFETY: `dst` points at NR = 16 floats of the row (the slice above is
        // bounds-checked); halves 0 and 1 are floats 0..8 and 8..16.
        unsafe {
            let (lo, hi) = (dst, dst.add(8));
            if accumulate {
                _mm256_storeu_ps(lo, _mm256_add_ps(_mm256_loadu_ps(lo), v[0]));
                _mm256_storeu_ps(hi, _mm256_add_ps(_mm256_loadu_ps(hi), v[1]));
            } else {
                _mm256_storeu_ps(lo, v[0]);
                _mm256_storeu_ps(hi, v[1]);
            }
        }
    }
}

/// [`micro_rows_into`] for a partial tile's `rows_in_tile` (1 to MR - 1) rows.
/// (A full tile calls `micro_rows_into::<MR>` directly: through this dispatch it
/// would pay a second call per tile.)
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn micro_into(
    rows_in_tile: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    rows: &mut [&mut [f32]; MR],
    j: usize,
    accumulate: bool,
) {
    // SAFETY (all arms): the caller guarantees AVX2 + FMA.
    unsafe {
        match rows_in_tile {
            5 => micro_rows_into::<5>(k, a, b, rows, j, accumulate),
            4 => micro_rows_into::<4>(k, a, b, rows, j, accumulate),
            3 => micro_rows_into::<3>(k, a, b, rows, j, accumulate),
            2 => micro_rows_into::<2>(k, a, b, rows, j, accumulate),
            1 => micro_rows_into::<1>(k, a, b, rows, j, accumulate),
            _ => unreachable!("a partial tile has 1 to {} rows", MR - 1),
        }
    }
}
