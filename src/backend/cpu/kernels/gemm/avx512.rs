//! The AVX-512F tile product (x86-64 only, chosen at run time).
//!
//! The tile keeps the AVX2 kernel's shape and packing (6 rows x 16 columns): one
//! zmm accumulator per row, the A value broadcast straight from memory into the
//! FMA. The finished rows leave as ymm halves, so bias, residual, activation and
//! the stores are the AVX2 code in `avx2`.

use std::arch::x86_64::{
    __m256, _mm256_castpd_ps, _mm256_setzero_ps, _mm512_add_ps, _mm512_castps512_ps256, _mm512_castps_pd,
    _mm512_extractf64x4_pd, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
};

use super::avx2::{dispatch_rows, TileTerms};
use super::micro::{MR, NR};

// One zmm register holds a tile row.
const _: () = assert!(NR == 16);

/// The first `R` rows of `A_panel * B_panel` over `k` steps, as `[low, high]`
/// ymm halves of each row.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub(super) unsafe fn product<const R: usize>(k: usize, a: &[f32], b: &[f32]) -> [[__m256; 2]; R] {
    const { assert!(R >= 1 && R <= MR) };
    // Slicing checks the panels really hold `k` steps, so the pointer walk below
    // stays inside them.
    let a = &a[..k * MR];
    let b = &b[..k * NR];
    let mut pa = a.as_ptr();
    let mut pb = b.as_ptr();
    let mut c = [_mm512_setzero_ps(); R];
    // A step's FMA waits for the previous step's result in the same register (4
    // cycles): with fewer than four rows that latency, not the FMA units, would set
    // the pace (a batch-1 classifier is a one-row product). Such tiles keep two
    // accumulators per row, for even and odd steps.
    let mut odd = [_mm512_setzero_ps(); R];
    let split = R < 4;
    let mut steps = k;
    if split {
        for _ in 0..k / 2 {
            // SAFETY: two steps, each as in the loop below; `steps` counts what is
            // left, and at least two are.
            unsafe {
                let (b0, b1) = (_mm512_loadu_ps(pb), _mm512_loadu_ps(pb.add(NR)));
                for (i, (even, odd)) in c.iter_mut().zip(&mut odd).enumerate() {
                    *even = _mm512_fmadd_ps(_mm512_set1_ps(*pa.add(i)), b0, *even);
                    *odd = _mm512_fmadd_ps(_mm512_set1_ps(*pa.add(MR + i)), b1, *odd);
                }
                pa = pa.add(2 * MR);
                pb = pb.add(2 * NR);
            }
        }
        steps = k % 2;
    }
    for _ in 0..steps {
        // SAFETY: each step reads R <= MR floats at `pa` and NR floats at `pb`, then
        // advances by MR and NR; `k` steps fit in the slices checked above.
        unsafe {
            let bv = _mm512_loadu_ps(pb);
            for (i, row) in c.iter_mut().enumerate() {
                *row = _mm512_fmadd_ps(_mm512_set1_ps(*pa.add(i)), bv, *row);
            }
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
    }
    if split {
        for (row, odd) in c.iter_mut().zip(odd) {
            *row = _mm512_add_ps(*row, odd);
        }
    }
    let mut halves = [[_mm256_setzero_ps(); 2]; R];
    for (h, v) in halves.iter_mut().zip(c) {
        let high = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
        *h = [_mm512_castps512_ps256(v), _mm256_castpd_ps(high)];
    }
    halves
}

/// `avx2::micro_into`'s AVX-512 instance.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn partial_rows_into(
    rows_in_tile: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    // SAFETY: AVX-512F, AVX2 and FMA per the caller.
    unsafe { dispatch_rows::<true>(rows_in_tile, k, a, b, rows, i, j, accumulate, terms) }
}
