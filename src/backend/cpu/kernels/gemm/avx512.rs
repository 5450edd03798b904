//! The AVX-512F tile kernels (x86-64 only, chosen at run time).
//!
//! The tiles keep the AVX2 kernel's packing (6-row A panels, 16-column B panels):
//! one zmm accumulator per row and B panel, the A value broadcast straight from
//! memory into the FMAs. Finished rows are stored as they are, one zmm per tile
//! row, with bias, residual and activation applied on the way (as ymm halves
//! through the AVX2 store code, a 16-deep product spent a fifth of its time on the
//! extra splits, adds and stores). A tile short of 16 columns, the last one of a
//! row whose length is not a multiple of 16 (a 14x14 or 7x7 plane), is stored
//! through a mask.
//!
//! Where two full B panels lie side by side the tile is 6x32 ([`wide_rows_into`]):
//! a CPU with two 512-bit FMA units (Zen 5) keeps eight FMAs in flight (two units,
//! four cycles each), which the 6x16 tile's six accumulators cannot feed, and
//! each step's two B loads then serve twelve FMAs instead of six.

use crate::backend::cpu::kernels::numeric::vector_activation::{with_activation, Activate, NoActivation};
use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps, _mm_prefetch, _MM_HINT_T1,
};

use super::avx2::{prefetch_tile_rows, TileTerms};
use super::driver::STREAM_EVERY;
use super::micro::{Tile, MR, NR};

// One zmm register holds a tile row.
const _: () = assert!(NR == 16);

/// The first `R` rows of `A_panel * B_panel` over `k` steps, one zmm per row.
///
/// # Safety
/// The CPU must support AVX-512F. Always inlined, into a caller compiled with it
/// (its intrinsics inline there too): as a call, the rows came back through the
/// stack.
#[inline(always)]
unsafe fn product<const R: usize>(k: usize, a: &[f32], b: &[f32]) -> [__m512; R] {
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
    c
}

/// Prefetches (into L2) the line at `p`, then returns the next one, up to `last`.
#[inline(always)]
fn stream_line(p: *const f32, last: *const f32) -> *const f32 {
    // SAFETY: a prefetch is a hint and never faults; `p` lies in the stream.
    unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) };
    if p < last {
        p.wrapping_add(16)
    } else {
        p
    }
}

/// The first `R` rows of the 6x32 tile `A_panel * [B_0 B_1]` over `k` steps, as
/// the two 6x16 tiles' rows. Step `p` reads `b0[p * b_step..][..NR]` and
/// `b1[p * b_step..][..NR]`: `b_step` is NR for packed panels, B's row stride
/// where B is read in place (see `driver::BRows`). The cache lines of `stream`
/// are prefetched on the way, one every [`STREAM_EVERY`] steps, as many as fit
/// (full tiles only: partial ones are given none).
///
/// # Safety
/// The CPU must support AVX-512F. Always inlined, as [`product`] (once the
/// prefetch stream made it larger, `#[inline]` left it a call: 38 % of
/// MobileNetV2's time in one out-of-line function).
#[inline(always)]
unsafe fn product_wide<const R: usize, const A_IN_PLACE: bool>(
    k: usize,
    a: &[f32],
    a_ld: usize,
    b0: &[f32],
    b1: &[f32],
    b_step: usize,
    stream: &[f32],
) -> [[__m512; R]; 2] {
    const { assert!(R >= 1 && R <= MR) };
    // Step `p` of row `i` is `a[p * a_step + i * a_row]`: a packed panel holds each
    // step's MR values together, A read in place its rows `a_ld` apart.
    let (a_step, a_row) = if A_IN_PLACE { (1, a_ld) } else { (MR, 1) };
    // Slicing checks the operands really hold `k` steps, so the pointer walk below
    // stays inside them.
    let a_len = match k {
        0 => 0,
        _ if A_IN_PLACE => (R - 1) * a_ld + k,
        _ => k * MR,
    };
    let a = &a[..a_len];
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
                    let (even, odd) = (
                        _mm512_set1_ps(*pa.add(i * a_row)),
                        _mm512_set1_ps(*pa.add(a_step + i * a_row)),
                    );
                    left[i] = _mm512_fmadd_ps(even, v0, left[i]);
                    right[i] = _mm512_fmadd_ps(even, v1, right[i]);
                    odd_left[i] = _mm512_fmadd_ps(odd, w0, odd_left[i]);
                    odd_right[i] = _mm512_fmadd_ps(odd, w1, odd_right[i]);
                }
                pa = pa.add(2 * a_step);
                pb0 = pb0.add(2 * b_step);
                pb1 = pb1.add(2 * b_step);
            }
        }
        steps = k % 2;
    }
    // A macro, not a closure: a closure would not inherit the target feature.
    macro_rules! step {
        () => {
            // SAFETY: each step reads R floats `a_row` apart from `pa` and NR floats
            // at `pb0` and `pb1`, then advances by `a_step` and `b_step`; `k` steps
            // fit in the slices checked above.
            unsafe {
                let (v0, v1) = (_mm512_loadu_ps(pb0), _mm512_loadu_ps(pb1));
                for (i, (l, r)) in left.iter_mut().zip(&mut right).enumerate() {
                    let av = _mm512_set1_ps(*pa.add(i * a_row));
                    *l = _mm512_fmadd_ps(av, v0, *l);
                    *r = _mm512_fmadd_ps(av, v1, *r);
                }
                pa = pa.add(a_step);
                pb0 = pb0.add(b_step);
                pb1 = pb1.add(b_step);
            }
        };
    }
    if split || stream.is_empty() {
        for _ in 0..steps {
            step!();
        }
    } else {
        let lines = stream.len().div_ceil(16).min(k / STREAM_EVERY).max(1);
        let (mut p, last) = (stream.as_ptr(), stream[(lines - 1) * 16..].as_ptr());
        for _ in 0..k / STREAM_EVERY {
            p = stream_line(p, last);
            for _ in 0..STREAM_EVERY {
                step!();
            }
        }
        for _ in 0..k % STREAM_EVERY {
            step!();
        }
    }
    if split {
        for i in 0..R {
            left[i] = _mm512_add_ps(left[i], odd_left[i]);
            right[i] = _mm512_add_ps(right[i], odd_right[i]);
        }
    }
    [left, right]
}

/// `out = A_panel * B_panel` over `k` steps.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn tile_into(k: usize, a: &[f32], b: &[f32], out: &mut Tile) {
    // SAFETY: AVX-512F per the caller.
    let c = unsafe { product::<MR>(k, a, b) };
    for (dst, v) in out.chunks_exact_mut(NR).zip(c) {
        // SAFETY: each chunk is NR = 16 floats.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), v) };
    }
}

/// The first `width` (1 to NR) floats of a row as a vector: loaded whole when
/// `MASKED` is false (then `width` is NR), else through a mask, the rest zero.
///
/// # Safety
/// The CPU must support AVX-512F.
#[inline(always)]
unsafe fn load_row<const MASKED: bool>(s: &[f32], width: usize) -> __m512 {
    let s = &s[..width];
    // SAFETY: `s` holds `width` floats (checked by the slice above); the masked
    // load touches only those, the whole one `width` = NR of them.
    unsafe {
        if MASKED {
            _mm512_maskz_loadu_ps(first(width), s.as_ptr())
        } else {
            _mm512_loadu_ps(s.as_ptr())
        }
    }
}

/// The mask of the first `width` (below NR) lanes.
#[inline(always)]
fn first(width: usize) -> __mmask16 {
    ((1u32 << width) - 1) as __mmask16
}

/// `rows[r][j..j + width] = c[r]` for the first `R` rows, or `+=` with
/// `accumulate`, then `terms` (row `r` of the tile is row `i + r` of the call),
/// with `terms`' activation as `act`. `width` is NR unless `MASKED`. Always
/// inlined: as a call, the accumulators went through the stack.
///
/// # Safety
/// The CPU must support AVX-512F. This is inlined into its caller, which must be
/// compiled with it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn store_rows<const R: usize, const MASKED: bool, A: Activate>(
    c: [__m512; R],
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    width: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
    act: A,
) {
    debug_assert!(MASKED || width == NR);
    // SAFETY (all loads): AVX-512F per the caller; `load_row` bounds-checks.
    let col_bias = terms
        .and_then(|t| t.col_bias)
        .map(|cb| unsafe { load_row::<MASKED>(&cb[j..], width) });
    for (r, (row, mut v)) in rows[..R].iter_mut().zip(c).enumerate() {
        let dst = &mut row[j..j + width];
        if accumulate {
            v = _mm512_add_ps(v, unsafe { load_row::<MASKED>(dst, width) });
        }
        if let Some(t) = terms {
            if let Some(rb) = t.row_bias {
                v = _mm512_add_ps(v, _mm512_set1_ps(rb[i + r]));
            }
            if let Some(cb) = col_bias {
                v = _mm512_add_ps(v, cb);
            }
            if let Some(res) = t.residual {
                v = _mm512_add_ps(v, unsafe {
                    load_row::<MASKED>(res.row_slice(i + r, j, width), width)
                });
            }
            // SAFETY: AVX-512F per the caller.
            v = unsafe { act.apply512(v) };
        }
        // SAFETY: `dst` is `width` floats of the row (bounds-checked above), all 16
        // of them unless `MASKED`, when the mask stores only the first `width`.
        unsafe {
            if MASKED {
                _mm512_mask_storeu_ps(dst.as_mut_ptr(), first(width), v);
            } else {
                _mm512_storeu_ps(dst.as_mut_ptr(), v);
            }
        }
    }
}

/// [`store_rows`] with `terms`' activation, one instance per kind of activation,
/// so none has a `match` per vector.
///
/// # Safety
/// As [`store_rows`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn store_rows_with<const R: usize, const MASKED: bool>(
    c: [__m512; R],
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    width: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    // SAFETY (all arms): AVX-512F per the caller.
    unsafe {
        match terms {
            None => store_rows::<R, MASKED, _>(c, rows, i, j, width, accumulate, None, NoActivation),
            Some(t) => with_activation!(t.activation, act => {
                store_rows::<R, MASKED, _>(c, rows, i, j, width, accumulate, Some(t), act)
            }),
        }
    }
}

/// `rows[r][j..j + NR] = (A_panel * B_panel)[r]` for the first `R` rows, or `+=`
/// with `accumulate`, then `terms` (row `r` of the tile is row `i + r` of the
/// call): the tile goes from registers straight to the output, skipping the copy
/// through a [`Tile`] and the separate epilogue pass over the block.
///
/// # Safety
/// The CPU must support AVX-512F. This is inlined into its caller, which must be
/// compiled with it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn rows_into<const R: usize>(
    k: usize,
    a: &[f32],
    b: &[f32],
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    prefetch_tile_rows(&rows[..R], j, NR);
    // SAFETY: the caller guarantees the feature.
    unsafe { store_rows_with::<R, false>(product::<R>(k, a, b), rows, i, j, NR, accumulate, terms) }
}

/// [`rows_into`] for a tile of `rows_in_tile` (1 to MR) rows and `width` (1 to NR)
/// columns that is not a full 6x16 one, out of line: a partial last row panel, or
/// the last column panel of a row whose length is not a multiple of NR (its
/// packed B panel is zero-padded, only the store is cut short).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn partial_rows_into(
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
    macro_rules! rows {
        ($r:literal) => {{
            prefetch_tile_rows(&rows[..$r], j, width);
            let c = product::<$r>(k, a, b);
            if width == NR {
                store_rows_with::<$r, false>(c, rows, i, j, width, accumulate, terms)
            } else {
                store_rows_with::<$r, true>(c, rows, i, j, width, accumulate, terms)
            }
        }};
    }
    assert!((1..=NR).contains(&width), "a tile is 1 to {NR} columns wide");
    // SAFETY (all arms): AVX-512F per the caller.
    unsafe {
        match rows_in_tile {
            6 => rows!(6),
            5 => rows!(5),
            4 => rows!(4),
            3 => rows!(3),
            2 => rows!(2),
            1 => rows!(1),
            _ => unreachable!("a tile has 1 to {MR} rows"),
        }
    }
}

/// [`rows_into`] for the first `R` rows of a 6x32 tile: `rows[r][j..j + 2 * NR]`
/// from `A_panel * [B_0 B_1]` (`b0`, `b1`: columns `j..j + NR` and
/// `j + NR..j + 2 * NR`, steps `b_step` apart, as in [`product_wide`]),
/// prefetching `stream` on the way. `a` is a packed A panel, or with `a_ld` A's
/// first tile row where it lies, its rows `a_ld` apart.
///
/// # Safety
/// The CPU must support AVX-512F. This is inlined into its caller, which must be
/// compiled with it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn wide_rows_into<const R: usize>(
    k: usize,
    a: &[f32],
    a_ld: Option<usize>,
    b0: &[f32],
    b1: &[f32],
    b_step: usize,
    stream: &[f32],
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    prefetch_tile_rows(&rows[..R], j, 2 * NR);
    // SAFETY: the caller guarantees the feature.
    let [left, right] = unsafe {
        match a_ld {
            None => product_wide::<R, false>(k, a, 0, b0, b1, b_step, stream),
            Some(ld) => product_wide::<R, true>(k, a, ld, b0, b1, b_step, stream),
        }
    };
    // SAFETY (all arms): AVX-512F per the caller.
    unsafe {
        match terms {
            None => {
                store_rows::<R, false, _>(left, rows, i, j, NR, accumulate, None, NoActivation);
                store_rows::<R, false, _>(right, rows, i, j + NR, NR, accumulate, None, NoActivation);
            }
            Some(t) => with_activation!(t.activation, act => {
                store_rows::<R, false, _>(left, rows, i, j, NR, accumulate, Some(t), act);
                store_rows::<R, false, _>(right, rows, i, j + NR, NR, accumulate, Some(t), act);
            }),
        }
    }
}

/// [`wide_rows_into`] for a partial tile's `rows_in_tile` (1 to MR - 1) rows, out
/// of line like [`partial_rows_into`].
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn partial_wide_rows_into(
    rows_in_tile: usize,
    k: usize,
    a: &[f32],
    a_ld: Option<usize>,
    b0: &[f32],
    b1: &[f32],
    b_step: usize,
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    // SAFETY (all arms): AVX-512F per the caller.
    unsafe {
        match rows_in_tile {
            5 => wide_rows_into::<5>(k, a, a_ld, b0, b1, b_step, &[], rows, i, j, accumulate, terms),
            4 => wide_rows_into::<4>(k, a, a_ld, b0, b1, b_step, &[], rows, i, j, accumulate, terms),
            3 => wide_rows_into::<3>(k, a, a_ld, b0, b1, b_step, &[], rows, i, j, accumulate, terms),
            2 => wide_rows_into::<2>(k, a, a_ld, b0, b1, b_step, &[], rows, i, j, accumulate, terms),
            1 => wide_rows_into::<1>(k, a, a_ld, b0, b1, b_step, &[], rows, i, j, accumulate, terms),
            _ => unreachable!("a partial tile has 1 to {} rows", MR - 1),
        }
    }
}

/// Where a row sweep finds B's 32-column groups ([`wide_sweep_into`]): group `g`'s
/// two panels start at `g * group` and `g * group + half`, and a step is `step`
/// floats (packed panels: `2 kc NR`, `kc NR` and NR; B read in place: 32, 16 and
/// its row stride).
#[derive(Copy, Clone, Debug)]
pub(super) struct SweepB<'b> {
    pub data: &'b [f32],
    pub group: usize,
    pub half: usize,
    pub step: usize,
}

/// The 6x32 tiles `0..groups` of one row panel, left to right: `rows[r][j + 32 g..]
/// [..32]` from `A_panel * B`'s group `g`, as [`wide_rows_into`] would store them
/// one call at a time. A shallow product's tile is a few hundred cycles of
/// arithmetic, and the per-tile work of the block loop (slicing the operands and
/// C's rows again, prefetch bookkeeping, dispatching the activation) cost it a
/// third of its time: here the activation is chosen once per sweep, A's panel and
/// C's rows stay put, and only B and the columns move. The next tile's part of C
/// is fetched while a tile computes.
///
/// # Safety
/// The CPU must support AVX-512F. This is inlined into its caller, which must be
/// compiled with it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) unsafe fn wide_sweep_into<const R: usize>(
    k: usize,
    a: &[f32],
    a_ld: Option<usize>,
    b: SweepB<'_>,
    groups: usize,
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    macro_rules! sweep {
        ($in_place:literal, $ld:expr) => {
            // SAFETY (both arms): AVX-512F per the caller.
            unsafe {
                match terms {
                    None => sweep::<R, $in_place, _>(k, a, $ld, b, groups, rows, i, j, accumulate, None, NoActivation),
                    Some(t) => with_activation!(t.activation, act => {
                        sweep::<R, $in_place, _>(k, a, $ld, b, groups, rows, i, j, accumulate, Some(t), act)
                    }),
                }
            }
        };
    }
    match a_ld {
        None => sweep!(false, 0),
        Some(ld) => sweep!(true, ld),
    }
}

/// [`wide_sweep_into`] with A's layout and the activation fixed.
///
/// # Safety
/// As [`wide_sweep_into`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn sweep<const R: usize, const A_IN_PLACE: bool, A: Activate>(
    k: usize,
    a: &[f32],
    a_ld: usize,
    b: SweepB<'_>,
    groups: usize,
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
    act: A,
) {
    if groups > 0 {
        prefetch_tile_rows(&rows[..R], j, 2 * NR);
    }
    for g in 0..groups {
        let (jg, bg) = (j + g * 2 * NR, &b.data[g * b.group..]);
        if g + 1 < groups {
            prefetch_tile_rows(&rows[..R], jg + 2 * NR, 2 * NR);
        }
        // SAFETY (all): AVX-512F per the caller; `product_wide` and `store_rows`
        // bounds-check the operands and rows they are given.
        unsafe {
            let [left, right] = product_wide::<R, A_IN_PLACE>(k, a, a_ld, bg, &bg[b.half..], b.step, &[]);
            store_rows::<R, false, A>(left, rows, i, jg, NR, accumulate, terms, act);
            store_rows::<R, false, A>(right, rows, i, jg + NR, NR, accumulate, terms, act);
        }
    }
}

/// [`wide_sweep_into`] for a partial row panel's `rows_in_tile` (1 to MR - 1)
/// rows, out of line like [`partial_rows_into`].
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn partial_wide_sweep_into(
    rows_in_tile: usize,
    k: usize,
    a: &[f32],
    a_ld: Option<usize>,
    b: SweepB<'_>,
    groups: usize,
    rows: &mut [&mut [f32]; MR],
    i: usize,
    j: usize,
    accumulate: bool,
    terms: Option<&TileTerms<'_>>,
) {
    // SAFETY (all arms): AVX-512F per the caller.
    unsafe {
        match rows_in_tile {
            5 => wide_sweep_into::<5>(k, a, a_ld, b, groups, rows, i, j, accumulate, terms),
            4 => wide_sweep_into::<4>(k, a, a_ld, b, groups, rows, i, j, accumulate, terms),
            3 => wide_sweep_into::<3>(k, a, a_ld, b, groups, rows, i, j, accumulate, terms),
            2 => wide_sweep_into::<2>(k, a, a_ld, b, groups, rows, i, j, accumulate, terms),
            1 => wide_sweep_into::<1>(k, a, a_ld, b, groups, rows, i, j, accumulate, terms),
            _ => unreachable!("a partial tile has 1 to {} rows", MR - 1),
        }
    }
}
