//! The AVX2 + FMA micro-kernel (x86-64 only, chosen at run time).

use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    _mm256_storeu_ps, _mm_prefetch, _MM_HINT_T0,
};

use super::micro::{Tile, MR, NR};

// The register allocation below is written for exactly this tile.
const _: () = assert!(MR == 6 && NR == 16);

/// `A_panel * B_panel` over `k` steps: the 6x16 tile in 12 ymm accumulators.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn product(k: usize, a: &[f32], b: &[f32]) -> [__m256; 2 * MR] {
    // Slicing checks the panels really hold `k` steps, so the pointer walk below
    // stays inside them.
    let a = &a[..k * MR];
    let b = &b[..k * NR];
    let mut pa = a.as_ptr();
    let mut pb = b.as_ptr();
    let mut c: [__m256; 2 * MR] = [_mm256_setzero_ps(); 2 * MR];
    for _ in 0..k {
        // SAFETY: each step reads MR floats at `pa` and NR floats at `pb`, then
        // advances by exactly that; `k` steps fit in the slices checked above.
        unsafe {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for i in 0..MR {
                let av = _mm256_broadcast_ss(&*pa.add(i));
                c[2 * i] = _mm256_fmadd_ps(av, b0, c[2 * i]);
                c[2 * i + 1] = _mm256_fmadd_ps(av, b1, c[2 * i + 1]);
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
    let c = unsafe { product(k, a, b) };
    let dst = out.as_mut_ptr();
    for (i, v) in c.iter().enumerate() {
        // SAFETY: `out` holds MR * NR = 12 * 8 floats; vector i goes to floats 8i..8i+8.
        unsafe { _mm256_storeu_ps(dst.add(8 * i), *v) };
    }
}

/// `rows[i][j..j + NR] = (A_panel * B_panel)[i]`, or `+=` with `accumulate`: the
/// tile goes from registers straight to the output, skipping the copy through a
/// [`Tile`] (which costs a tenth of the time of a small-K product).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn micro_6x16_into(
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
    for row in rows.iter() {
        let tile_row = &row[j..j + NR];
        // SAFETY: prefetching is a hint that never faults; both addresses lie inside
        // the (bounds-checked) row.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(tile_row.as_ptr().cast());
            _mm_prefetch::<_MM_HINT_T0>(tile_row.as_ptr().add(NR - 1).cast());
        }
    }
    // SAFETY: the caller guarantees AVX2 + FMA.
    let c = unsafe { product(k, a, b) };
    for (i, row) in rows.iter_mut().enumerate() {
        let dst = row[j..j + NR].as_mut_ptr();
        // SAFETY: `dst` points at NR = 16 floats of the row (the slice above is
        // bounds-checked); halves 0 and 1 are floats 0..8 and 8..16.
        unsafe {
            let (lo, hi) = (dst, dst.add(8));
            if accumulate {
                _mm256_storeu_ps(lo, _mm256_add_ps(_mm256_loadu_ps(lo), c[2 * i]));
                _mm256_storeu_ps(hi, _mm256_add_ps(_mm256_loadu_ps(hi), c[2 * i + 1]));
            } else {
                _mm256_storeu_ps(lo, c[2 * i]);
                _mm256_storeu_ps(hi, c[2 * i + 1]);
            }
        }
    }
}
