//! Row-streaming depthwise convolution with AVX-512: two output rows per pass,
//! sixteen outputs per vector, read straight from the input plane, with the bias,
//! residual and activation applied in registers.
//!
//! The AVX2 row kernel ([`super::depthwise_rows`]) first copies every input row
//! into a zero-padded ring; perf put a third of its time in that copy. Here nothing
//! is copied. AVX-512 loads take a lane mask, and masked-off lanes read as zero
//! without touching memory, so a vector reaching left of column 0 or past the row's
//! end is loaded in place with its padding lanes masked off. Only the vectors at a
//! row's two ends need masks; those between take plain loads. A padding row (above
//! or below the plane) is a row of zeros in scratch.
//!
//! A stride of 2 reads every other column. Each pair of vectors (32 consecutive
//! columns) is split into its even and its odd columns by two permutes: tap `2m` of
//! sixteen outputs is the even half of the pair starting `2m` columns on, tap
//! `2m + 1` its odd half.
//!
//! Square 3x3, 5x5 and 7x7 windows with equal strides of 1 or 2 take this path
//! (every depthwise layer of MobileNet V2/V3 and EfficientNet). The two output rows
//! of a pass share their input loads, and each row sums two accumulators (even and
//! odd window rows): one chain of K * K dependent FMAs is latency-bound.

use std::arch::x86_64::{
    __m512, __m512i, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_permutex2var_ps, _mm512_set1_ps, _mm512_setr_epi32, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

use super::depthwise::Plane;
use super::PlaneEpilogue;
use crate::backend::cpu::kernels::numeric::vector_activation::{
    with_activation, Activate, RegisterActivation,
};

/// Floats per vector.
const LANES: usize = 16;

/// Output rows per pass. (Four, at stride 1, read fewer input vectors per output,
/// but LLVM then kept the accumulators in memory: three times slower.)
const R: usize = 2;

/// Input rows one pass may read: two output rows of a 7x7 window at stride 2.
const MAX_PASS_ROWS: usize = (R - 1) * 2 + 7;

/// Loads per input row per vector: `K <= 7` at stride 1, `2 * ceil(K / 2) <= 8`
/// (pairs) at stride 2.
const MAX_LOADS: usize = 8;

/// The lane masks of the vectors at a plane's left and right ends, computed once
/// per layer: per vector, `None` when all its loads are inside the input row, else
/// the mask of each of its loads. (Computed in the loop, the masks cost more than
/// the taps of the row's end vectors.)
#[derive(Clone, Debug)]
pub(crate) struct RowMasks {
    vectors: Vec<Option<[u16; MAX_LOADS]>>,
}

impl RowMasks {
    /// The masks for `p`, or `None` if this kernel does not compute it.
    pub fn new(p: &Plane) -> Option<RowMasks> {
        if !p.streams_rows() {
            return None;
        }
        let sw = p.stride.1;
        let vectors = (0..p.out_w)
            .step_by(LANES)
            .map(|o| {
                let first = (o * sw) as isize - p.pad.1 as isize;
                let starts = load_starts(p.k_w, sw).map(|s| first + s);
                let masks = starts.map(|at| columns_inside(at, p.in_w));
                masks.iter().any(|&m| m != u16::MAX).then_some(masks)
            })
            .collect();
        Some(RowMasks { vectors })
    }
}

/// Where each load of a vector starts, from its first column: tap `kw` at stride 1;
/// at stride 2 the pairs of vectors from column `2 * m`, as `[lo, hi]` for each `m`.
/// Unused slots repeat the last load.
fn load_starts(k: usize, stride: usize) -> [isize; MAX_LOADS] {
    std::array::from_fn(|i| match stride {
        1 => i.min(k - 1) as isize,
        _ => {
            let pair = (i / 2).min(k.div_ceil(2) - 1);
            (2 * pair + (i % 2) * LANES) as isize
        }
    })
}

/// The mask of the lanes of a vector from column `at` that fall inside `0..in_w`.
fn columns_inside(at: isize, in_w: usize) -> u16 {
    let lo = (-at).clamp(0, LANES as isize);
    let hi = (in_w as isize - at).clamp(lo, LANES as isize);
    (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
}

/// Scratch floats [`plane`] needs: one row of zeros, read for padding rows.
pub(crate) fn scratch_len(p: &Plane) -> usize {
    p.in_w
}

/// One output plane: `out = act(bias + sum_taps w[tap] * x[shifted] + residual)`.
/// `scratch` holds [`scratch_len`] floats.
///
/// # Safety
/// The CPU must support AVX-512F.
pub(crate) unsafe fn plane(
    p: &Plane,
    masks: &RowMasks,
    x: &[f32],
    w: &[f32],
    epilogue: &PlaneEpilogue<'_>,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let zeros = &mut scratch[..p.in_w];
    zeros.fill(0.0);
    let job = Job {
        p,
        masks,
        x,
        w,
        bias: epilogue.bias,
        residual: epilogue.residual,
        zeros,
    };
    // One instance per window size, stride and kind of activation, so the weights
    // and the activation's constants stay in registers.
    let in_registers = RegisterActivation::of(epilogue.activation);
    let act = in_registers.unwrap_or(RegisterActivation::None);
    // SAFETY: AVX-512F per the caller.
    with_activation!(act, a => unsafe { job.run_with(a, out) });
    if in_registers.is_none() {
        for row in out.chunks_exact_mut(p.out_w).take(p.out_h) {
            epilogue.activation.apply_slice(row);
        }
    }
}

/// One plane's operands.
struct Job<'a> {
    p: &'a Plane,
    masks: &'a RowMasks,
    x: &'a [f32],
    w: &'a [f32],
    bias: f32,
    residual: Option<&'a [f32]>,
    /// A row of zeros, at least `p.in_w` long.
    zeros: &'a [f32],
}

impl Job<'_> {
    /// # Safety
    /// The CPU must support AVX-512F.
    unsafe fn run_with<A: Activate>(&self, act: A, out: &mut [f32]) {
        // SAFETY (all arms): AVX-512F per the caller.
        unsafe {
            match (self.p.k_h, self.p.stride.1) {
                (3, 1) => self.rows::<3, 1, A>(act, out),
                (3, _) => self.rows::<3, 2, A>(act, out),
                (5, 1) => self.rows::<5, 1, A>(act, out),
                (5, _) => self.rows::<5, 2, A>(act, out),
                (_, 1) => self.rows::<7, 1, A>(act, out),
                (_, _) => self.rows::<7, 2, A>(act, out),
            }
        }
    }

    /// The plane for a `K x K` window with stride `S` both ways.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows<const K: usize, const S: usize, A: Activate>(&self, act: A, out: &mut [f32]) {
        let p = self.p;
        assert!(p.k_h == K && p.k_w == K && p.stride == (S, S) && self.w.len() >= K * K);
        assert!(self.x.len() >= p.in_h * p.in_w && self.zeros.len() >= p.in_w);
        assert!(out.len() >= p.out_h * p.out_w && self.masks.vectors.len() == p.out_w.div_ceil(LANES));
        assert!(self.residual.is_none_or(|r| r.len() >= p.out_h * p.out_w));
        let weights: [[__m512; K]; K] =
            std::array::from_fn(|kh| std::array::from_fn(|kw| _mm512_set1_ps(self.w[kh * K + kw])));
        let taps = Taps {
            weights: &weights,
            bias: _mm512_set1_ps(self.bias),
        };
        let (pad_top, pad_left) = (p.pad.0 as isize, p.pad.1 as isize);
        let mut oh = 0;
        while oh < p.out_h {
            // The pass's input rows (padding rows read the zeros). A last, single
            // row is computed as a pair whose second row is not stored.
            let rows: [*const f32; MAX_PASS_ROWS] = std::array::from_fn(|j| {
                let ih = (oh * S + j) as isize - pad_top;
                match usize::try_from(ih).ok().filter(|&ih| ih < p.in_h) {
                    Some(ih) => self.x[ih * p.in_w..].as_ptr(),
                    None => self.zeros.as_ptr(),
                }
            });
            let stored = (p.out_h - oh).min(R);
            for (o, masks) in (0..p.out_w).step_by(LANES).zip(&self.masks.vectors) {
                let first = (o * S) as isize - pad_left;
                // SAFETY (both): AVX-512F per the caller. Each row pointer starts
                // an `in_w`-float row; a vector without masks reads only inside
                // it, and a masked load touches only the lanes inside it.
                let acc = unsafe {
                    match masks {
                        None => taps.pass::<S, false>(&rows, first, &[u16::MAX; MAX_LOADS]),
                        Some(masks) => taps.pass::<S, true>(&rows, first, masks),
                    }
                };
                let n = LANES.min(p.out_w - o);
                for (r, &v) in acc.iter().enumerate().take(stored) {
                    let at = (oh + r) * p.out_w + o;
                    // SAFETY: AVX-512F per the caller; `at + n <= out_h * out_w`.
                    unsafe { self.store(act, v, at, n, out) };
                }
            }
            oh += stored;
        }
    }

    /// Adds the residual to outputs `at .. at + n` (`n <= 16`), applies the
    /// activation and stores them.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Inlined into a caller that has it.
    #[inline(always)]
    unsafe fn store<A: Activate>(&self, act: A, v: __m512, at: usize, n: usize, out: &mut [f32]) {
        let out = &mut out[at..at + n];
        let residual = self.residual.map(|r| &r[at..at + n]);
        // SAFETY: AVX-512F per the caller; every access is to the first `n` floats
        // of a slice that long (masked below 16).
        unsafe {
            if n == LANES {
                let v = match residual {
                    Some(r) => _mm512_add_ps(v, _mm512_loadu_ps(r.as_ptr())),
                    None => v,
                };
                _mm512_storeu_ps(out.as_mut_ptr(), act.apply512(v));
            } else {
                let mask = first_lanes(n);
                let v = match residual {
                    Some(r) => _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, r.as_ptr())),
                    None => v,
                };
                _mm512_mask_storeu_ps(out.as_mut_ptr(), mask, act.apply512(v));
            }
        }
    }
}

/// What the taps of every pass share.
struct Taps<'a, const K: usize> {
    weights: &'a [[__m512; K]; K],
    bias: __m512,
}

impl<const K: usize> Taps<'_, K> {
    /// Sixteen outputs of two rows, the first reading input column `first` (which
    /// may be negative: left padding). `rows[j]` is the pass's input row `j`. With
    /// `EDGE`, load `i` (in [`load_starts`] order) reads only the lanes of
    /// `masks[i]`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Every row pointer starts an input row, and
    /// the lanes read (all without `EDGE`) are inside it.
    #[inline(always)]
    unsafe fn pass<const S: usize, const EDGE: bool>(
        &self,
        rows: &[*const f32; MAX_PASS_ROWS],
        first: isize,
        masks: &[u16; MAX_LOADS],
    ) -> [__m512; R] {
        let zero = _mm512_setzero_ps();
        let mut acc = [[self.bias, zero]; R];
        // The permute indices picking the even and the odd floats of a pair.
        let even: __m512i = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd: __m512i = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for (j, &row) in rows.iter().enumerate().take((R - 1) * S + K) {
            // Input row `j` is window row `j` of output row 0, `j - S` of row 1.
            // (A macro, not a closure: a closure would not inherit AVX-512.)
            macro_rules! fma {
                ($kw:expr, $xv:expr) => {{
                    let xv = $xv;
                    for (r, acc) in acc.iter_mut().enumerate() {
                        if let Some(kh) = j.checked_sub(r * S).filter(|&kh| kh < K) {
                            let a = &mut acc[kh % 2];
                            *a = _mm512_fmadd_ps(xv, self.weights[kh][$kw], *a);
                        }
                    }
                }};
            }
            match S {
                1 => {
                    for (kw, &mask) in masks.iter().enumerate().take(K) {
                        // SAFETY: per the caller.
                        fma!(kw, unsafe { load::<EDGE>(row, first + kw as isize, mask) });
                    }
                }
                _ => {
                    for m in 0..K.div_ceil(2) {
                        let at = first + 2 * m as isize;
                        // SAFETY: per the caller.
                        let (lo, hi) = unsafe {
                            (
                                load::<EDGE>(row, at, masks[2 * m]),
                                load::<EDGE>(row, at + LANES as isize, masks[2 * m + 1]),
                            )
                        };
                        fma!(2 * m, _mm512_permutex2var_ps(lo, even, hi));
                        if 2 * m + 1 < K {
                            fma!(2 * m + 1, _mm512_permutex2var_ps(lo, odd, hi));
                        }
                    }
                }
            }
        }
        acc.map(|[a, b]| _mm512_add_ps(a, b))
    }
}

/// The sixteen floats of `row` from column `at`; with `EDGE`, only the lanes of
/// `mask` (the others read as zero).
///
/// # Safety
/// The CPU must support AVX-512F; the lanes read (all without `EDGE`) are inside
/// the allocation `row` points into.
#[inline(always)]
unsafe fn load<const EDGE: bool>(row: *const f32, at: isize, mask: u16) -> __m512 {
    if EDGE {
        // A load with no lane inside the row is still issued, at most 38 floats
        // past the row's end: inside the next row, but for a plane's last row. (In
        // `depthwise_nhwc.rs` such loads far past the input stalled; skipping them
        // here with a branch cost 10 % at stride 2.)
        // SAFETY: per the caller; the masked-off lanes are not accessed, so the
        // addresses they would have may lie outside the row.
        unsafe { _mm512_maskz_loadu_ps(mask, row.wrapping_offset(at)) }
    } else {
        // SAFETY: per the caller.
        unsafe { _mm512_loadu_ps(row.offset(at)) }
    }
}

/// The mask of the first `n` lanes (`n <= 16`).
#[inline(always)]
fn first_lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}
