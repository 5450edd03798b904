//! The AVX-512F tile products (x86-64 only, chosen at run time).
//!
//! The tiles keep the AVX2 kernel's packing (6-row A panels, 16-column B panels):
//! one zmm accumulator per row and B panel, the A value broadcast straight from
//! memory into the FMAs. The finished rows leave as ymm halves, so bias, residual,
//! activation and the stores are the AVX2 code in `avx2`.
//!
//! Where two full B panels lie side by side the tile is 6x32 ([`wide_rows_into`]):
//! a CPU with two 512-bit FMA units (Zen 5) keeps eight FMAs in flight (two units,
//! four cycles each), which the 6x16 tile's six accumulators cannot feed, and
//! each step's two B loads then serve twelve FMAs instead of six.

use crate::backend::cpu::kernels::numeric::vector_activation::{with_activation, NoActivation};
use std::arch::x86_64::{
    __m256, __m512, _mm256_castpd_ps, _mm256_setzero_ps, _mm512_add_ps, _mm512_castps512_ps256,
    _mm512_castps_pd, _mm512_extractf64x4_pd, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps,
    _mm512_setzero_ps,
};

use super::avx2::{dispatch_rows, prefetch_tile_rows, store_rows, TileTerms};
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
    halves(c)
}

/// The rows as `[low, high]` ymm halves, for the AVX2 store code.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
fn halves<const R: usize>(rows: [__m512; R]) -> [[__m256; 2]; R] {
    let mut halves = [[_mm256_setzero_ps(); 2]; R];
    for (h, v) in halves.iter_mut().zip(rows) {
        let high = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
        *h = [_mm512_castps512_ps256(v), _mm256_castpd_ps(high)];
    }
    halves
}

/// The first `R` rows of the 6x32 tile `A_panel * [B_0 B_1]` over `k` steps, as
/// the two 6x16 tiles' rows in ymm halves. Step `p` reads `b0[p * b_step..][..NR]`
/// and `b1[p * b_step..][..NR]`: `b_step` is NR for packed panels, B's row stride
/// where B is read in place (see `driver::BRows`).
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn product_wide<const R: usize>(
    k: usize,
    a: &[f32],
    b0: &[f32],
    b1: &[f32],
    b_step: usize,
) -> [[[__m256; 2]; R]; 2] {
    const { assert!(R >= 1 && R <= MR) };
    // Slicing checks the operands really hold `k` steps, so the pointer walk below
    // stays inside them.
    let a = &a[..k * MR];
    let b_len = if k == 0 { 0 } else { (k - 1) * b_step + NR };
    let (b0, b1) = (&b0[..b_len], &b1[..b_len]);
    let (mut pa, mut pb0, mut pb1) = (a.as_ptr(), b0.as_ptr(), b1.as_ptr());
    let mut left = [_mm512_setzero_ps(); R];
    let mut right = [_mm512_setzero_ps(); R];
    // Fewer than four rows are fewer than eight accumulators, too few to cover the
    // FMA latency: they keep a second set for odd steps (see `product`).
    let mut odd_left = [_mm512_setzero_ps(); R];
    let mut odd_right = [_mm512_setzero_ps(); R];
    let split = R < 4;
    let mut steps = k;
    if split {
        for _ in 0..k / 2 {
            // SAFETY: two steps, each as in the loop below; `steps` counts what is
            // left, and at least two are.
            unsafe {
                let (v0, v1) = (_mm512_loadu_ps(pb0), _mm512_loadu_ps(pb1));
                let (w0, w1) = (_mm512_loadu_ps(pb0.add(b_step)), _mm512_loadu_ps(pb1.add(b_step)));
                for i in 0..R {
                    let (even, odd) = (_mm512_set1_ps(*pa.add(i)), _mm512_set1_ps(*pa.add(MR + i)));
                    left[i] = _mm512_fmadd_ps(even, v0, left[i]);
                    right[i] = _mm512_fmadd_ps(even, v1, right[i]);
                    odd_left[i] = _mm512_fmadd_ps(odd, w0, odd_left[i]);
                    odd_right[i] = _mm512_fmadd_ps(odd, w1, odd_right[i]);
                }
                pa = pa.add(2 * MR);
                pb0 = pb0.add(2 * b_step);
                pb1 = pb1.add(2 * b_step);
            }
        }
        steps = k % 2;
    }
    for _ in 0..steps {
        // SAFETY: each step reads R <= MR floats at `pa` and NR floats at `pb0` and
        // `pb1`, then advances by MR and `b_step`; `k` steps fit in the slices
        // checked above.
        unsafe {
            let (v0, v1) = (_mm512_loadu_ps(pb0), _mm512_loadu_ps(pb1));
            for (i, (l, r)) in left.iter_mut().zip(&mut right).enumerate() {
                let av = _mm512_set1_ps(*pa.add(i));
                *l = _mm512_fmadd_ps(av, v0, *l);
                *r = _mm512_fmadd_ps(av, v1, *r);
            }
            pa = pa.add(MR);
            pb0 = pb0.add(b_step);
            pb1 = pb1.add(b_step);
        }
    }
    if split {
        for i in 0..R {
            left[i] = _mm512_add_ps(left[i], odd_left[i]);
            right[i] = _mm512_add_ps(right[i], odd_right[i]);
        }
    }
    [halves(left), halves(right)]
}

/// [`avx2::micro_rows_into`](super::avx2::micro_rows_into) for the first `R` rows
/// of a 6x32 tile: `rows[r][j..j + 2 * NR]` from `A_panel * [B_0 B_1]` (`b0`, `b1`:
/// columns `j..j + NR` and `j + NR..j + 2 * NR`, steps `b_step` apart, as in
/// [`product_wide`]).
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA. This is inlined into its caller,
/// which must be compiled with them.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn wide_rows_into<const R: usize>(
    k: usize,
    a: &[f32],
    b0: &[f32],
    b1: &[f32],
    b_step: usize,
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    prefetch_tile_rows(&rows[..R], j, 2 * NR);
    // SAFETY: the caller guarantees the features.
    let [left, right] = unsafe { product_wide::<R>(k, a, b0, b1, b_step) };
    // SAFETY (all arms): AVX2 + FMA per the caller.
    unsafe {
        match terms {
            None => {
                store_rows(left, rows, i, j, accumulate, None, NoActivation);
                store_rows(right, rows, i, j + NR, accumulate, None, NoActivation);
            }
            Some(t) => with_activation!(t.activation, act => {
                store_rows(left, rows, i, j, accumulate, Some(t), act);
                store_rows(right, rows, i, j + NR, accumulate, Some(t), act);
            }),
        }
    }
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

/// [`wide_rows_into`] for a partial tile's `rows_in_tile` (1 to MR - 1) rows, out
/// of line like [`partial_rows_into`].
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn partial_wide_rows_into(
    rows_in_tile: usize,
    k: usize,
    a: &[f32],
    b0: &[f32],
    b1: &[f32],
    b_step: usize,
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    // SAFETY (all arms): AVX-512F, AVX2 and FMA per the caller.
    unsafe {
        match rows_in_tile {
            5 => wide_rows_into::<5>(k, a, b0, b1, b_step, rows, i, j, accumulate, terms),
            4 => wide_rows_into::<4>(k, a, b0, b1, b_step, rows, i, j, accumulate, terms),
            3 => wide_rows_into::<3>(k, a, b0, b1, b_step, rows, i, j, accumulate, terms),
            2 => wide_rows_into::<2>(k, a, b0, b1, b_step, rows, i, j, accumulate, terms),
            1 => wide_rows_into::<1>(k, a, b0, b1, b_step, rows, i, j, accumulate, terms),
            _ => unreachable!("a partial tile has 1 to {} rows", MR - 1),
        }
    }
}
