//! Row-streaming depthwise convolution (AVX2 + FMA): two output rows per pass,
//! from a small ring of zero-padded input rows straight into the output, with the
//! bias, residual and activation applied in registers.
//!
//! The flat path of [`super::depthwise`] pads the whole plane, accumulates the
//! whole plane into scratch, then copies it out row by row and runs the epilogue
//! as a second pass: three extra trips through a plane that does not fit L1 at
//! 56x56 and up, and per-row `memcpy` calls that dominate at 14x14. Here each
//! input row is copied once (vector loads, masked only at the row's end so the
//! right padding comes out as zeros) into a ring of `k_h + 3 * stride` rows, which
//! stays in L1: the rows of the pass being computed and of the next one, which are
//! copied *before* this pass reads the ring, so no tap reads a row whose stores
//! are still in flight (a load spanning two pending stores cannot be forwarded and
//! waits for both to commit). The pass's two output rows share their input loads.
//!
//! A stride of 2 splits each padded row into its even and odd columns while
//! copying, so every tap is again a contiguous vector load. Square 3x3, 5x5 and 7x7
//! windows with equal strides of 1 or 2 take this path (every depthwise layer of
//! MobileNet V2/V3 and EfficientNet); the weights then live in registers.

use std::arch::x86_64::{
    __m256, __m256d, _mm256_add_ps, _mm256_castpd_ps, _mm256_castps_pd, _mm256_fmadd_ps, _mm256_loadu_ps,
    _mm256_permute4x64_pd, _mm256_set1_ps, _mm256_setzero_ps, _mm256_shuffle_ps, _mm256_storeu_ps,
};

use super::depthwise::Plane;
use super::lanes::{Avx2, Lanes, LANES};
use super::PlaneEpilogue;
use crate::backend::cpu::kernels::numeric::vector_activation::{
    with_activation, Activate, RegisterActivation,
};

/// The ring layout of one plane's row kernel.
#[derive(Clone, Debug)]
pub(crate) struct RowLayout {
    /// Output vectors per row (the last may be partial).
    vectors: usize,
    /// Ring slots: the input rows of two passes of two output rows each (one
    /// being computed, the next being copied).
    slots: usize,
    /// Floats per phase row; a slot holds `stride.1` phases.
    pitch: usize,
    /// Vector stores that fill one phase row from `offset` on.
    stores: usize,
    split: Split,
}

impl RowLayout {
    /// The layout for `p`, or `None` if the row kernel does not handle it.
    pub fn new(p: &Plane) -> Option<RowLayout> {
        if !p.streams_rows() {
            return None;
        }
        let (sh, sw) = p.stride;
        let vectors = p.out_w.div_ceil(LANES);
        // A tap reads phase indices up to `vectors * 8 - 1 + (k_w - 1) / sw`: the
        // stores must write (zeros past the input) at least that far.
        let reach = vectors * LANES + (p.k_w - 1) / sw;
        let stores = reach.div_ceil(LANES);
        let split = Split::of(p);
        let pitch = (split.max_offset() + stores * LANES).next_multiple_of(LANES);
        Some(RowLayout {
            split,
            vectors,
            slots: p.k_h + 3 * sh,
            pitch,
            stores,
        })
    }

    /// Scratch floats [`plane`] needs.
    pub fn scratch_len(&self, p: &Plane) -> usize {
        self.slots * p.stride.1 * self.pitch
    }
}

/// Where the even and the odd input columns start in their phase rows, and which
/// phase row each goes to. Padded column `c = iw + pl` lives in phase `c % sw` at
/// index `c / sw`; with stride 1 every column is "even".
#[derive(Copy, Clone, Debug)]
struct Split {
    /// `(phase, index of the first column)` of the even input columns `2t` (stride 2)
    /// or of all columns (stride 1).
    even: (usize, usize),
    /// The same for the odd input columns `2t + 1` (stride 2 only).
    odd: (usize, usize),
}

impl Split {
    fn of(p: &Plane) -> Split {
        let pl = p.pad.1;
        match p.stride.1 {
            1 => Split {
                even: (0, pl),
                odd: (0, 0),
            },
            // Column 2t lands at index t + pl / 2, column 2t + 1 at t + (pl + 1) / 2.
            _ => Split {
                even: (pl % 2, pl / 2),
                odd: ((pl + 1) % 2, pl.div_ceil(2)),
            },
        }
    }

    fn max_offset(&self) -> usize {
        self.even.1.max(self.odd.1)
    }
}

/// One output plane: `out = act(bias + sum_taps w[tap] * x[shifted] + residual)`.
/// `scratch` holds [`RowLayout::scratch_len`] floats.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plane(
    avx2: Avx2,
    p: &Plane,
    layout: &RowLayout,
    x: &[f32],
    w: &[f32],
    epilogue: &PlaneEpilogue<'_>,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let job = Job {
        p,
        layout,
        x,
        w,
        bias: epilogue.bias,
        residual: epilogue.residual,
    };
    // One instance per window size, stride and kind of activation, so the weights,
    // the tap offsets and the activation's constants all stay in registers.
    let in_registers = RegisterActivation::of(epilogue.activation);
    let act = in_registers.unwrap_or(RegisterActivation::None);
    with_activation!(act, a => job.run_with(avx2, a, scratch, out));
    if in_registers.is_none() {
        for row in out.chunks_exact_mut(p.out_w).take(p.out_h) {
            epilogue.activation.apply_slice(row);
        }
    }
}

/// One plane's operands.
struct Job<'a> {
    p: &'a Plane,
    layout: &'a RowLayout,
    x: &'a [f32],
    w: &'a [f32],
    bias: f32,
    residual: Option<&'a [f32]>,
}

impl Job<'_> {
    fn run_with<A: Activate>(&self, avx2: Avx2, act: A, scratch: &mut [f32], out: &mut [f32]) {
        // SAFETY (all arms): an `Avx2` token exists only on CPUs with AVX2 and FMA.
        unsafe {
            match (self.p.k_h, self.p.stride.1) {
                (3, 1) => self.rows::<3, 1, A>(avx2, act, scratch, out),
                (3, _) => self.rows::<3, 2, A>(avx2, act, scratch, out),
                (5, 1) => self.rows::<5, 1, A>(avx2, act, scratch, out),
                (5, _) => self.rows::<5, 2, A>(avx2, act, scratch, out),
                (_, 1) => self.rows::<7, 1, A>(avx2, act, scratch, out),
                (_, _) => self.rows::<7, 2, A>(avx2, act, scratch, out),
            }
        }
    }

    /// The plane for a `K x K` window with stride `S` both ways.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows<const K: usize, const S: usize, A: Activate>(
        &self,
        avx2: Avx2,
        act: A,
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        let (p, layout) = (self.p, self.layout);
        let (pitch, slots) = (layout.pitch, layout.slots);
        assert!(p.k_h == K && p.k_w == K && p.stride == (S, S) && self.w.len() >= K * K);
        assert!(self.x.len() >= p.in_h * p.in_w && out.len() >= p.out_h * p.out_w);
        assert!(self.residual.is_none_or(|r| r.len() >= p.out_h * p.out_w));
        // Every read below is inside one slot: `o + 8 + kw / S <= vectors * 8 +
        // (K - 1) / S <= stores * 8 <= pitch` floats into a phase row.
        assert!(layout.vectors * LANES + (K - 1) / S <= pitch && S + K <= MAX_PASS_ROWS.min(slots));
        let slot_len = S * pitch;
        let scratch = &mut scratch[..slots * slot_len];
        let weights: [[__m256; K]; K] =
            std::array::from_fn(|kh| std::array::from_fn(|kw| _mm256_set1_ps(self.w[kh * K + kw])));
        let bias = _mm256_set1_ps(self.bias);
        // Padded rows `oh * S .. (oh + 1) * S + K` feed output rows `oh` and `oh + 1`;
        // row `r` lives in slot `r % slots`. Both counters advance by whole rows, so
        // the slots are tracked by wrapping instead of dividing (a division per row
        // cost as much as a 7-wide row's taps).
        let (mut copied, mut copy_slot) = (0, 0);
        // A macro, not a closure: a closure would not inherit AVX2, and the
        // intrinsics `copy_row` inlines would stay calls (perf put a third of the
        // kernel's time in the copy).
        macro_rules! copy_until {
            ($scratch:expr, $end:expr) => {{
                let end = $end;
                while copied < end {
                    let slot = &mut $scratch[copy_slot * slot_len..][..slot_len];
                    let ih = copied.checked_sub(p.pad.0).filter(|&ih| ih < p.in_h);
                    let row = match ih {
                        Some(ih) => Some(&self.x[ih * p.in_w..][..p.in_w]),
                        None => None,
                    };
                    // SAFETY: AVX2 per the caller.
                    unsafe { copy_row::<S>(avx2, p, layout, row, slot) };
                    copied += 1;
                    copy_slot = if copy_slot + 1 == slots {
                        0
                    } else {
                        copy_slot + 1
                    };
                }
            }};
        }
        // The input rows of the pass starting at output row `oh`.
        let rows_of_pass = |oh: usize| (oh + 2).min(p.out_h).saturating_sub(1) * S + K;
        copy_until!(scratch, rows_of_pass(0));
        let (mut oh, mut first) = (0, 0);
        while oh < p.out_h {
            let pair = oh + 1 < p.out_h;
            let next = oh + if pair { 2 } else { 1 };
            // The next pass's new input rows, before this pass reads the ring.
            if next < p.out_h {
                copy_until!(scratch, rows_of_pass(next));
            }
            let wrap = |slot: usize| if slot < slots { slot } else { slot - slots };
            // (Rows `j >= S + K` are never read; `first + j < 2 * slots` below that.)
            let bases: [*const f32; MAX_PASS_ROWS] = std::array::from_fn(|j| match j < S + K {
                // SAFETY: a wrapped slot is below `slots`: its start is inside `scratch`.
                true => unsafe { scratch.as_ptr().add(wrap(first + j) * slot_len) },
                false => scratch.as_ptr(),
            });
            first = wrap(first + (next - oh) * S);
            let pass = Pass {
                bases: &bases,
                pitch,
                weights: &weights,
                bias,
            };
            // SAFETY (both): AVX2 + FMA per the caller; reads inside the slots as
            // asserted above.
            unsafe {
                match pair {
                    true => self.store_rows::<K, S, 2, A>(avx2, act, &pass, oh, out),
                    false => self.store_rows::<K, S, 1, A>(avx2, act, &pass, oh, out),
                }
            }
            oh = next;
        }
    }

    /// Output rows `oh .. oh + R` of one pass: taps, residual, activation, store.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; the pass's rows hold every column read.
    #[inline(always)]
    unsafe fn store_rows<const K: usize, const S: usize, const R: usize, A: Activate>(
        &self,
        avx2: Avx2,
        act: A,
        pass: &Pass<'_, K>,
        oh: usize,
        out: &mut [f32],
    ) {
        let w = self.p.out_w;
        let full = w / LANES;
        for o in (0..full * LANES).step_by(LANES) {
            // SAFETY: per the caller.
            let v = unsafe { pass.taps::<S, R>(o) };
            for (r, &v) in v.iter().enumerate().take(R) {
                let at = (oh + r) * w + o;
                let v = match self.residual {
                    Some(res) => _mm256_add_ps(v, avx2.load(&res[at..])),
                    None => v,
                };
                // SAFETY: AVX2 + FMA per the caller.
                avx2.store(unsafe { act.apply(v) }, &mut out[at..]);
            }
        }
        let o = full * LANES;
        if o < w {
            let n = w - o;
            // SAFETY: per the caller.
            let v = unsafe { pass.taps::<S, R>(o) };
            for (r, &v) in v.iter().enumerate().take(R) {
                let at = (oh + r) * w + o;
                let v = match self.residual {
                    Some(res) => _mm256_add_ps(v, avx2.load_first(&res[at..], n)),
                    None => v,
                };
                // SAFETY: AVX2 + FMA per the caller.
                avx2.store_first(unsafe { act.apply(v) }, &mut out[at..], n);
            }
        }
    }
}

/// Input rows one pass may read: two output rows of a 7x7 window at stride 2.
const MAX_PASS_ROWS: usize = 2 + 7;

/// What one pass of (one or two) output rows reads.
struct Pass<'a, const K: usize> {
    /// The ring slot of each of the pass's input rows.
    bases: &'a [*const f32; MAX_PASS_ROWS],
    pitch: usize,
    weights: &'a [[__m256; K]; K],
    bias: __m256,
}

impl<const K: usize> Pass<'_, K> {
    /// Outputs `o .. o + 8` of the pass's first `R` rows (stride `S`). Each input
    /// vector is loaded once and used by every output row it feeds, and each row
    /// sums two accumulators (even and odd window rows): one chain of K * K
    /// dependent FMAs is latency-bound on rows only a few vectors wide.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; every slot holds the columns
    /// `o .. o + 8 + (K - 1) / S` in each phase row.
    #[inline(always)]
    unsafe fn taps<const S: usize, const R: usize>(&self, o: usize) -> [__m256; 2] {
        let zero = _mm256_setzero_ps();
        let mut acc = [[self.bias, zero]; 2];
        for (j, base) in self.bases.iter().enumerate().take((R - 1) * S + K) {
            for kw in 0..K {
                // Tap `kw` of output column `o` reads padded column `o * S + kw`:
                // phase `kw % S`, index `o + kw / S`.
                // SAFETY: per the caller.
                let xv = unsafe { _mm256_loadu_ps(base.add((kw % S) * self.pitch + kw / S + o)) };
                for (r, acc) in acc.iter_mut().enumerate().take(R) {
                    if let Some(kh) = j.checked_sub(r * S).filter(|&kh| kh < K) {
                        let a = &mut acc[kh % 2];
                        *a = _mm256_fmadd_ps(xv, self.weights[kh][kw], *a);
                    }
                }
            }
        }
        acc.map(|[a, b]| _mm256_add_ps(a, b))
    }
}

/// Writes padded input row `row` (`None`: a padding row) into its ring slot:
/// zeros left of the data, the data split into `sw` phases, zeros to the end of
/// each phase row.
///
/// Always inlined into the AVX2 kernel, for its intrinsics to inline too: a call
/// per row cost as much as the taps of a 28-wide row.
///
/// # Safety
/// The CPU must support AVX2.
#[inline(always)]
unsafe fn copy_row<const S: usize>(
    avx2: Avx2,
    p: &Plane,
    layout: &RowLayout,
    row: Option<&[f32]>,
    slot: &mut [f32],
) {
    let pitch = layout.pitch;
    assert!(slot.len() >= S * pitch && p.stride.1 == S);
    let zero = _mm256_setzero_ps();
    let dst = slot.as_mut_ptr();
    let Some(row) = row else {
        for i in (0..S * pitch).step_by(LANES) {
            // SAFETY: `pitch` is a multiple of 8, so `i + 8 <= sw * pitch <= slot.len()`.
            unsafe { _mm256_storeu_ps(dst.add(i), zero) };
        }
        return;
    };
    let split = layout.split;
    let phases = &[split.even, split.odd][..S];
    // Left padding: whole zero vectors over `0..offset`; the data stores that follow
    // overwrite any overlap.
    for &(phase, offset) in phases {
        for i in (0..offset).step_by(LANES) {
            // SAFETY: `i < offset <= max_offset`, and `max_offset + 8 <= pitch`.
            unsafe { _mm256_storeu_ps(dst.add(phase * pitch + i), zero) };
        }
    }
    // The `stores` vectors of each phase row from its offset: `offset + stores * 8 <=
    // pitch`. Loads are masked to the row, so columns past it read as zeros.
    // (A macro, not a closure, for `load_first`'s intrinsics to inline.)
    macro_rules! load {
        ($from:expr) => {{
            let from = $from;
            match row.len().saturating_sub(from) {
                0 => zero,
                left => avx2.load_first(&row[from..], left.min(LANES)),
            }
        }};
    }
    let at = |(phase, offset): (usize, usize), s: usize| phase * pitch + offset + s * LANES;
    for s in 0..layout.stores {
        // SAFETY (both arms): each store lands at `offset + s * 8` of its phase row,
        // and `offset + stores * 8 <= pitch`.
        match S {
            1 => unsafe { _mm256_storeu_ps(dst.add(at(split.even, s)), load!(s * LANES)) },
            _ => unsafe {
                let (even, odd) = deinterleave(load!(2 * s * LANES), load!(2 * s * LANES + LANES));
                _mm256_storeu_ps(dst.add(at(split.even, s)), even);
                _mm256_storeu_ps(dst.add(at(split.odd, s)), odd);
            },
        }
    }
}

/// The even- and odd-indexed floats of the sixteen in `a` then `b`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn deinterleave(a: __m256, b: __m256) -> (__m256, __m256) {
    // Within each 128-bit half: [a0 a2 b0 b2 | a4 a6 b4 b6]; then 64-bit pairs
    // reordered 0, 2, 1, 3 to [a0 a2 a4 a6 b0 b2 b4 b6].
    let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
    let odd = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
    let order = |v: __m256| -> __m256 {
        let v: __m256d = _mm256_castps_pd(v);
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(v))
    };
    (order(even), order(odd))
}
