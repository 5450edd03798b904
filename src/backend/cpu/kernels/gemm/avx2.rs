//! The AVX2 + FMA micro-kernel (x86-64 only, chosen at run time), and the
//! direct-store entry points that hand AVX-512 tiles on to `avx512`.

use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps,
    _mm256_setzero_ps, _mm256_storeu_ps, _mm_prefetch, _MM_HINT_T0,
};

use super::epilogue::Epilogue;
use super::mat::MatRef;
use super::micro::{Tile, MR, NR};
use crate::backend::cpu::kernels::numeric::vector_activation::{
    with_activation, Activate, NoActivation, RegisterActivation,
};

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

/// `out = A_panel * B_panel` over `k` steps, in zmm registers when `AVX512` (see
/// [`Isa::Avx512F`](super::micro::Isa)), else in ymm.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and AVX-512F when `AVX512`. This is inlined
/// into its caller, which must be compiled with those features.
#[inline(always)]
pub(crate) unsafe fn micro_6x16<const AVX512: bool>(k: usize, a: &[f32], b: &[f32], out: &mut Tile) {
    if AVX512 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { super::avx512::tile_into(k, a, b, out) };
        return;
    }
    // SAFETY: the caller guarantees the features.
    let c = unsafe { product::<MR>(k, a, b) };
    let dst = out.as_mut_ptr();
    for (i, v) in c.iter().flatten().enumerate() {
        // SAFETY: `out` holds MR * NR = 12 * 8 floats; vector i goes to floats 8i..8i+8.
        unsafe { _mm256_storeu_ps(dst.add(8 * i), *v) };
    }
}

/// The epilogue terms a directly stored tile applies in registers (on the block's
/// last k-slice): those of an [`Epilogue`] whose activation has a register form
/// and whose residual rows are contiguous. Indices are the GEMM call's, as there.
#[derive(Copy, Clone)]
pub(crate) struct TileTerms<'a> {
    pub(super) row_bias: Option<&'a [f32]>,
    pub(super) col_bias: Option<&'a [f32]>,
    pub(super) residual: Option<MatRef<'a>>,
    pub(super) activation: RegisterActivation,
}

impl<'a> TileTerms<'a> {
    pub(crate) fn of(e: &Epilogue<'a>) -> Option<TileTerms<'a>> {
        if e.residual.is_some_and(|r| r.col_stride() != 1) {
            return None;
        }
        Some(TileTerms {
            row_bias: e.row_bias,
            col_bias: e.col_bias,
            residual: e.residual,
            activation: RegisterActivation::of(e.activation)?,
        })
    }
}

/// `rows[r][j..j + NR] = (A_panel * B_panel)[r]` for the first `R` rows, or `+=`
/// with `accumulate`, then `terms` (row `r` of the tile is row `i + r` of the
/// call): the tile goes from registers straight to the output, skipping the copy
/// through a [`Tile`] (a tenth of the time of a small-K product) and the separate
/// epilogue pass over the block (5 % of MobileNetV2). With `AVX512`, the
/// [`avx512`](super::avx512) instance.
///
/// # Safety
/// As [`micro_6x16`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn micro_rows_into<const R: usize, const AVX512: bool>(
    k: usize,
    a: &[f32],
    b: &[f32],
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    if AVX512 {
        // SAFETY: the caller guarantees AVX-512F.
        unsafe { super::avx512::rows_into::<R>(k, a, b, rows, i, j, accumulate, terms) };
        return;
    }
    prefetch_tile_rows(&rows[..R], j, NR);
    // SAFETY: the caller guarantees the features.
    let c = unsafe { product::<R>(k, a, b) };
    // One instance of the store loop per kind of activation, so none has a `match`
    // per vector. SAFETY (all arms): AVX2 + FMA per the caller.
    unsafe {
        match terms {
            None => store_rows(c, rows, i, j, accumulate, None, NoActivation),
            Some(t) => {
                with_activation!(t.activation, act => store_rows(c, rows, i, j, accumulate, Some(t), act))
            }
        }
    }
}

/// Fetches `row[j..j + width]` of each row into L1. The tile's rows are far apart
/// in C and rarely cached: fetching them while the product runs hides the miss the
/// stores (and `accumulate`'s loads) would take. (`gemm_gflops`, small-K shapes
/// with a residual: 51 -> 56 GFLOP/s.)
#[inline(always)]
pub(super) fn prefetch_tile_rows(rows: &[&mut [f32]], j: usize, width: usize) {
    for row in rows {
        let tile_row = &row[j..j + width];
        // Every cache line the span touches: one more than `width` covers when it
        // starts inside a line. (A plain loop: chaining the last element onto a
        // stepped range cost a shallow tile 2 % in iterator state.)
        let start = tile_row.as_ptr().cast::<i8>();
        let into_line = start as usize % 64;
        for line in 0..(into_line + 4 * width).div_ceil(64) {
            // SAFETY: prefetching is a hint that never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_sub(into_line).wrapping_add(64 * line)) };
        }
    }
}

/// The store half of [`micro_rows_into`], with `terms`' activation as `act`.
/// Always inlined: as a call, its twelve accumulators went through the stack, a
/// third of a 16-deep tile's time.
///
/// # Safety
/// The CPU must support AVX2 and FMA. This is inlined into its caller, which must
/// be compiled with them.
#[inline(always)]
unsafe fn store_rows<const R: usize, A: Activate>(
    c: [[__m256; 2]; R],
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
    act: A,
) {
    let halves = |s: &[f32]| {
        let s = &s[..NR];
        // SAFETY: `s` holds NR = 16 floats (checked by the slice above).
        unsafe { [_mm256_loadu_ps(s.as_ptr()), _mm256_loadu_ps(s.as_ptr().add(8))] }
    };
    let col_bias = terms.and_then(|t| t.col_bias).map(|cb| halves(&cb[j..]));
    for (r, (row, mut v)) in rows[..R].iter_mut().zip(c).enumerate() {
        let dst = &mut row[j..j + NR];
        if accumulate {
            let old = halves(dst);
            v = [_mm256_add_ps(v[0], old[0]), _mm256_add_ps(v[1], old[1])];
        }
        if let Some(t) = terms {
            if let Some(rb) = t.row_bias {
                let b = _mm256_set1_ps(rb[i + r]);
                v = [_mm256_add_ps(v[0], b), _mm256_add_ps(v[1], b)];
            }
            if let Some(cb) = col_bias {
                v = [_mm256_add_ps(v[0], cb[0]), _mm256_add_ps(v[1], cb[1])];
            }
            if let Some(res) = t.residual {
                let add = halves(res.row_slice(i + r, j, NR));
                v = [_mm256_add_ps(v[0], add[0]), _mm256_add_ps(v[1], add[1])];
            }
            // SAFETY: AVX2 + FMA per the caller.
            v = unsafe { [act.apply(v[0]), act.apply(v[1])] };
        }
        // SAFETY: `dst` is NR = 16 floats of the row (bounds-checked above); halves 0
        // and 1 are floats 0..8 and 8..16.
        unsafe {
            _mm256_storeu_ps(dst.as_mut_ptr(), v[0]);
            _mm256_storeu_ps(dst.as_mut_ptr().add(8), v[1]);
        }
    }
}

/// [`micro_rows_into`] for a tile that is not a full 6x16 one: `rows_in_tile`
/// (1 to MR) rows, `width` (1 to NR) columns. Without AVX-512 only whole 16-column
/// tiles are stored directly (`width` is NR). (A full tile calls
/// `micro_rows_into::<MR, _>` directly: through this dispatch it would pay a
/// second call per tile. Partial tiles take the call, to one out-of-line function
/// per instruction set.)
///
/// # Safety
/// As [`micro_6x16`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn micro_into<const AVX512: bool>(
    rows_in_tile: usize,
    width: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    // SAFETY: the caller guarantees the features of the chosen instance.
    unsafe {
        if AVX512 {
            super::avx512::partial_rows_into(rows_in_tile, width, k, a, b, rows, i, j, accumulate, terms)
        } else {
            assert_eq!(width, NR, "AVX2 tiles are stored directly only when whole");
            partial_rows_into(rows_in_tile, k, a, b, rows, i, j, accumulate, terms)
        }
    }
}

/// [`micro_into`]'s AVX2 instance.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn partial_rows_into(
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
    // SAFETY (all arms): AVX2 + FMA per the caller.
    unsafe {
        match rows_in_tile {
            6 => micro_rows_into::<6, false>(k, a, b, rows, i, j, accumulate, terms),
            5 => micro_rows_into::<5, false>(k, a, b, rows, i, j, accumulate, terms),
            4 => micro_rows_into::<4, false>(k, a, b, rows, i, j, accumulate, terms),
            3 => micro_rows_into::<3, false>(k, a, b, rows, i, j, accumulate, terms),
            2 => micro_rows_into::<2, false>(k, a, b, rows, i, j, accumulate, terms),
            1 => micro_rows_into::<1, false>(k, a, b, rows, i, j, accumulate, terms),
            _ => unreachable!("a tile has 1 to {MR} rows"),
        }
    }
}
