//! Direct depthwise convolution (one input channel per group), 1-D and 2-D.
//!
//! With one input channel per group, im2col + GEMM degenerates into a GEMM with
//! M = channel multiplier (usually 1) and K = kernel taps: no reuse, all overhead.
//! Instead every tap is an axpy `acc += w * shifted input`, which LLVM vectorises.
//!
//! Undilated windows (every real CNN's) take the *flat* path. The input plane is
//! copied once into a zero-padded buffer, split into `stride_h x stride_w` phase
//! planes, so that each tap reads one contiguous run. Each tap is then a single axpy
//! over the whole output plane, with rows at the padded pitch; the extra columns are
//! garbage and are dropped when the epilogue stores the row. Small planes (7x7, 14x14
//! in the late layers) thus get long vector loops instead of 7-wide ones. Dilated
//! windows keep the row-by-row path.

#[cfg(target_arch = "x86_64")]
use super::depthwise_rows::{self, RowLayout};
#[cfg(target_arch = "x86_64")]
use super::depthwise_rows_avx512::{self, RowMasks};
#[cfg(target_arch = "x86_64")]
use super::lanes::Avx2;
use super::PlaneEpilogue;
use crate::backend::cpu::kernels::gemm::micro::Isa;
use crate::ir::window::Geometry;

/// 2-D view of a 1-D or 2-D window (1-D gets a height of 1).
#[derive(Clone, Debug)]
pub(crate) struct Plane {
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    pub pad: (usize, usize),
    /// Per horizontal tap: the output columns `lo..hi` it reaches inside the row,
    /// and where their inputs start in the phase-split row (see [`plane_body`]).
    /// Precomputed: the divisions cost more than the short axpys they guard.
    cols: Vec<(usize, usize, usize)>,
    /// The padded phase-plane layout, for undilated windows.
    flat: Option<FlatLayout>,
    /// The AVX2 row kernel's ring layout, for the windows it handles.
    #[cfg(target_arch = "x86_64")]
    rows: Option<RowLayout>,
    /// The AVX-512 row kernel's edge masks, for the windows it handles.
    #[cfg(target_arch = "x86_64")]
    masks: Option<RowMasks>,
}

/// Layout of the flat path's scratch: `stride_h * stride_w` phase planes of
/// `rows x pitch` floats (plus slack), then the accumulator of `out_h x pitch`
/// floats rounded up to whole vectors.
#[derive(Clone, Debug)]
struct FlatLayout {
    rows: usize,
    pitch: usize,
    /// Where each tap's run starts in the phase planes.
    starts: Vec<usize>,
    /// `out_h * pitch` rounded up to a multiple of [`VECTOR`]: the accumulator is
    /// computed in whole vectors, so no tap loop has a scalar tail. The extra
    /// elements are garbage columns like the pitch overrun, never stored.
    acc_len: usize,
    /// The phase planes plus the slack the rounded-up accumulator reads past them.
    phases_len: usize,
}

impl FlatLayout {
    fn new(p: &Plane) -> Option<FlatLayout> {
        let ((sh, sw), (pt, pl)) = (p.stride, p.pad);
        if p.dilation != (1, 1) || p.in_h == 0 || p.in_w == 0 || p.out_h == 0 || p.out_w == 0 {
            return None;
        }
        // Rows: every input row must have a place, and the taps of the last output
        // row read `(k_h - 1) / sh` rows further, plus one row of slack for the
        // pitch overrun of the right-most taps.
        let rows = ((p.in_h - 1 + pt) / sh + 1).max(p.out_h + (p.k_h - 1) / sh) + 1;
        let pitch = ((p.in_w - 1 + pl) / sw + 1).max(p.out_w + (p.k_w - 1) / sw);
        let phase_len = rows * pitch;
        // Padded input position (r, c) lives in phase (r % sh, c % sw) at (r / sh, c / sw).
        let starts: Vec<usize> = (0..p.k_h * p.k_w)
            .map(|t| {
                let (kh, kw) = (t / p.k_w, t % p.k_w);
                ((kh % sh) * sw + kw % sw) * phase_len + (kh / sh) * pitch + kw / sw
            })
            .collect();
        let acc_len = (p.out_h * pitch).next_multiple_of(VECTOR);
        let last_read = starts.iter().max().map_or(0, |s| s + acc_len);
        let phases_len = (sh * sw * phase_len).max(last_read);
        Some(FlatLayout {
            rows,
            pitch,
            starts,
            acc_len,
            phases_len,
        })
    }

    fn phase_len(&self) -> usize {
        self.rows * self.pitch
    }
}

impl Plane {
    pub fn new(g: &Geometry) -> Option<Plane> {
        let mut p = match g.rank() {
            1 => Plane {
                in_h: 1,
                in_w: g.input[0],
                out_h: 1,
                out_w: g.output[0],
                k_h: 1,
                k_w: g.kernel[0],
                stride: (1, g.strides[0]),
                dilation: (1, g.dilations[0]),
                pad: (0, g.pads_begin[0]),
                cols: vec![],
                flat: None,
                #[cfg(target_arch = "x86_64")]
                rows: None,
                #[cfg(target_arch = "x86_64")]
                masks: None,
            },
            2 => Plane {
                in_h: g.input[0],
                in_w: g.input[1],
                out_h: g.output[0],
                out_w: g.output[1],
                k_h: g.kernel[0],
                k_w: g.kernel[1],
                stride: (g.strides[0], g.strides[1]),
                dilation: (g.dilations[0], g.dilations[1]),
                pad: (g.pads_begin[0], g.pads_begin[1]),
                cols: vec![],
                flat: None,
                #[cfg(target_arch = "x86_64")]
                rows: None,
                #[cfg(target_arch = "x86_64")]
                masks: None,
            },
            _ => return None,
        };
        let sw = p.stride.1;
        let phase_len = p.in_w.div_ceil(sw);
        p.cols = (0..p.k_w)
            .map(|kw| {
                let off = (kw * p.dilation.1) as isize - p.pad.1 as isize;
                let (lo, hi) = valid_range(p.out_w, p.in_w, sw, off);
                let first = (lo as isize * sw as isize + off).max(0) as usize;
                (lo, hi, (first % sw) * phase_len + first / sw)
            })
            .collect();
        p.flat = FlatLayout::new(&p);
        #[cfg(target_arch = "x86_64")]
        {
            p.rows = RowLayout::new(&p);
            p.masks = RowMasks::new(&p);
        }
        Some(p)
    }

    /// Whether the row kernels (`depthwise_rows.rs` with AVX2,
    /// `depthwise_rows_avx512.rs`) take this plane: a non-empty square 3x3, 5x5 or
    /// 7x7 window, undilated, with equal strides of 1 or 2.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn streams_rows(&self) -> bool {
        let (sh, sw) = self.stride;
        let square = self.k_h == self.k_w && matches!(self.k_h, 3 | 5 | 7);
        let empty = self.in_h == 0 || self.in_w == 0 || self.out_h == 0 || self.out_w == 0;
        square && !empty && self.dilation == (1, 1) && sh == sw && matches!(sw, 1 | 2)
    }
}

/// Output positions `o` in `0..out` whose input `o * stride + off` is in `0..input`.
fn valid_range(out: usize, input: usize, stride: usize, off: isize) -> (usize, usize) {
    let (input, stride) = (input as isize, stride as isize);
    let lo = if off >= 0 { 0 } else { (-off + stride - 1) / stride };
    let hi = if input - off <= 0 {
        0
    } else {
        (input - off + stride - 1) / stride
    };
    let (lo, hi) = (lo.min(out as isize) as usize, hi.min(out as isize) as usize);
    (lo, hi.max(lo))
}

/// Scratch floats [`plane`] needs: the padded phase planes and accumulator of the
/// flat path, or the input row split into `stride` phases for the row path.
pub(crate) fn scratch_len(p: &Plane) -> usize {
    let generic = match &p.flat {
        Some(f) => f.phases_len + f.acc_len,
        None => p.in_w.div_ceil(p.stride.1) * p.stride.1,
    };
    #[cfg(target_arch = "x86_64")]
    let generic = generic
        .max(p.rows.as_ref().map_or(0, |rows| rows.scratch_len(p)))
        .max(
            p.masks
                .as_ref()
                .map_or(0, |_| depthwise_rows_avx512::scratch_len(p)),
        );
    generic
}

/// One output plane: `out = act(bias + sum_taps w[tap] * x[shifted] + residual)`.
/// `phases` is scratch of [`scratch_len`] floats.
pub(crate) fn plane(
    p: &Plane,
    x: &[f32],
    w: &[f32],
    epilogue: &PlaneEpilogue<'_>,
    phases: &mut [f32],
    out: &mut [f32],
) {
    plane_with(Isa::detect(), p, x, w, epilogue, phases, out)
}

/// [`plane`] with an explicit instruction set (tests compare them).
pub(crate) fn plane_with(
    isa: Isa,
    p: &Plane,
    x: &[f32],
    w: &[f32],
    epilogue: &PlaneEpilogue<'_>,
    phases: &mut [f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if let (Isa::Avx512F, Some(masks)) = (isa, &p.masks) {
        if isa.is_supported() {
            // SAFETY: the CPU supports AVX-512F (just checked).
            return unsafe { depthwise_rows_avx512::plane(p, masks, x, w, epilogue, phases, out) };
        }
    }
    match isa {
        // The flat path has no AVX-512 form: AVX2 serves both.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma | Isa::Avx512F if isa.is_supported() => match (&p.rows, Avx2::detect()) {
            (Some(rows), Some(avx2)) => depthwise_rows::plane(avx2, p, rows, x, w, epilogue, phases, out),
            // SAFETY: the CPU supports AVX2 and FMA, checked by the arm's guard.
            _ => unsafe { plane_avx2(p, x, w, epilogue, phases, out) },
        },
        _ => plane_body(p, x, w, epilogue, phases, out, accumulate_generic),
    }
}

/// [`plane_body`] compiled for AVX2, with the FMA accumulator.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn plane_avx2(
    p: &Plane,
    x: &[f32],
    w: &[f32],
    epilogue: &PlaneEpilogue<'_>,
    phases: &mut [f32],
    out: &mut [f32],
) {
    let accumulate = |acc: &mut [f32], phases: &[f32], starts: &[usize], w: &[f32], bias: f32| {
        // SAFETY: this function only runs on CPUs with AVX2 and FMA.
        unsafe { accumulate_avx2(acc, phases, starts, w, bias) }
    };
    plane_body(p, x, w, epilogue, phases, out, accumulate)
}

/// The flat path (see the module docs).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn flat_body(
    p: &Plane,
    f: &FlatLayout,
    x: &[f32],
    w: &[f32],
    epilogue: &PlaneEpilogue<'_>,
    scratch: &mut [f32],
    out: &mut [f32],
    accumulate: impl Fn(&mut [f32], &[f32], &[usize], &[f32], f32),
) {
    let ((sh, sw), (pt, pl), pitch) = (p.stride, p.pad, f.pitch);
    let phase_len = f.phase_len();
    let (phases, acc) = scratch.split_at_mut(f.phases_len);
    let acc = &mut acc[..f.acc_len];
    // Padded input position (r, c) lives in phase (r % sh, c % sw) at (r / sh, c / sw).
    phases.fill(0.0);
    for (ih, row) in x.chunks_exact(p.in_w).take(p.in_h).enumerate() {
        let r = ih + pt;
        let base = (r % sh) * sw * phase_len + (r / sh) * pitch;
        match sw {
            1 => phases[base + pl..][..p.in_w].copy_from_slice(row),
            2 => split_pairs(row, pl, &mut phases[base..], phase_len),
            _ => {
                // Column phase q holds input columns iw0, iw0 + sw, ... contiguously.
                for q in 0..sw {
                    let iw0 = (q + sw - pl % sw) % sw;
                    if iw0 >= p.in_w {
                        continue;
                    }
                    let dst = &mut phases[base + q * phase_len + (iw0 + pl) / sw..];
                    dst.iter_mut()
                        .zip(row[iw0..].iter().step_by(sw))
                        .for_each(|(d, &v)| *d = v);
                }
            }
        }
    }
    let taps = p.k_h * p.k_w;
    accumulate(acc, phases, &f.starts, &w[..taps], epilogue.bias);
    for (oh, orow) in out.chunks_exact_mut(p.out_w).take(p.out_h).enumerate() {
        orow.copy_from_slice(&acc[oh * pitch..][..p.out_w]);
        epilogue.finish_row(orow, oh * p.out_w);
    }
}

/// Stride-2 column split of one input row, left padding `pl`: even input columns
/// go to one phase, odd ones to the other (`phases` starts at the row in phase 0;
/// phase 1 is `phase_len` further). A loop LLVM turns into vector shuffles.
#[inline(always)]
fn split_pairs(row: &[f32], pl: usize, phases: &mut [f32], phase_len: usize) {
    // Padded column c = iw + pl goes to phase c % 2, index c / 2.
    let (even_at, odd_at) = (
        (pl % 2) * phase_len + pl / 2,
        ((pl + 1) % 2) * phase_len + pl.div_ceil(2),
    );
    let pairs = row.len() / 2;
    let (lo, hi) = phases.split_at_mut(phase_len);
    let (even, odd) = match pl % 2 {
        0 => (
            &mut lo[even_at..][..pairs + row.len() % 2],
            &mut hi[odd_at - phase_len..][..pairs],
        ),
        _ => (
            &mut hi[even_at - phase_len..][..pairs + row.len() % 2],
            &mut lo[odd_at..][..pairs],
        ),
    };
    for ((pair, e), o) in row.chunks_exact(2).zip(even.iter_mut()).zip(odd.iter_mut()) {
        *e = pair[0];
        *o = pair[1];
    }
    if row.len() % 2 == 1 {
        even[pairs] = row[row.len() - 1];
    }
}

/// Lanes of one accumulator vector (AVX2's 8 floats); the flat accumulator is a
/// whole number of them.
const VECTOR: usize = 8;

/// `acc[i] = bias + sum_t w[t] * phases[starts[t] + i]`, [`VECTOR`] outputs at a
/// time. Portable: LLVM vectorises the fixed-size inner loop; the oracle the AVX2
/// accumulator is tested against.
#[inline(always)]
fn accumulate_generic(acc: &mut [f32], phases: &[f32], starts: &[usize], w: &[f32], bias: f32) {
    for (c, chunk) in acc.chunks_exact_mut(VECTOR).enumerate() {
        let mut a = [bias; VECTOR];
        for (&s, &wv) in starts.iter().zip(w) {
            let src = &phases[s + c * VECTOR..][..VECTOR];
            for (d, &v) in a.iter_mut().zip(src) {
                *d += wv * v;
            }
        }
        chunk.copy_from_slice(&a);
    }
}

/// [`accumulate_generic`] with FMAs, four vectors (32 outputs) at a time: they stay
/// in registers while every tap is added.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2(acc: &mut [f32], phases: &[f32], starts: &[usize], w: &[f32], bias: f32) {
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_storeu_ps};

    let len = acc.len();
    assert!(len.is_multiple_of(VECTOR) && starts.len() == w.len());
    // Every read below is `phases[s + i]` with `i < len`: bounds-check once here.
    assert!(starts.iter().all(|&s| s + len <= phases.len()));
    let (src, dst) = (phases.as_ptr(), acc.as_mut_ptr());
    let mut i = 0;
    while i + 4 * VECTOR <= len {
        // SAFETY: AVX2/FMA per the caller; reads are at `s + i + 0..32 <= s + len`,
        // inside `phases` (asserted above); writes are `acc[i..i + 32]`, `i + 32 <= len`.
        unsafe {
            let mut a = [_mm256_set1_ps(bias); 4];
            for (&s, &wv) in starts.iter().zip(w) {
                let (p, wv) = (src.add(s + i), _mm256_set1_ps(wv));
                for (v, a) in a.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p.add(v * VECTOR)), *a);
                }
            }
            for (v, a) in a.iter().enumerate() {
                _mm256_storeu_ps(dst.add(i + v * VECTOR), *a);
            }
        }
        i += 4 * VECTOR;
    }
    while i < len {
        // SAFETY: as above, for one vector: `i + 8 <= len` since `len % 8 == 0`.
        unsafe {
            let mut a = _mm256_set1_ps(bias);
            for (&s, &wv) in starts.iter().zip(w) {
                a = _mm256_fmadd_ps(_mm256_set1_ps(wv), _mm256_loadu_ps(src.add(s + i)), a);
            }
            _mm256_storeu_ps(dst.add(i), a);
        }
        i += VECTOR;
    }
}

/// One plane, flat or row by row; `accumulate` is the flat path's tap loop.
#[inline(always)]
fn plane_body(
    p: &Plane,
    x: &[f32],
    w: &[f32],
    epilogue: &PlaneEpilogue<'_>,
    phases: &mut [f32],
    out: &mut [f32],
    accumulate: impl Fn(&mut [f32], &[f32], &[usize], &[f32], f32),
) {
    if let Some(f) = &p.flat {
        return flat_body(p, f, x, w, epilogue, phases, out, accumulate);
    }
    let (sh, sw) = p.stride;
    let dh = p.dilation.0;
    let ph = p.pad.0 as isize;
    // With a horizontal stride s, output column o reads input column o*s + off:
    // splitting the input row into s phases (columns q, q+s, q+2s, ...) makes every
    // tap a contiguous axpy again.
    let phase_len = p.in_w.div_ceil(sw);
    for (oh, orow) in out.chunks_exact_mut(p.out_w).take(p.out_h).enumerate() {
        orow.fill(epilogue.bias);
        for kh in 0..p.k_h {
            let ih = (oh * sh + kh * dh) as isize - ph;
            if ih < 0 || ih >= p.in_h as isize {
                continue;
            }
            let irow = &x[ih as usize * p.in_w..][..p.in_w];
            let src_row: &[f32] = if sw == 1 {
                irow
            } else {
                for q in 0..sw.min(p.in_w) {
                    let phase = &mut phases[q * phase_len..][..phase_len];
                    phase
                        .iter_mut()
                        .zip(irow[q..].iter().step_by(sw))
                        .for_each(|(d, &v)| *d = v);
                }
                phases
            };
            for (kw, &(lo, hi, start)) in p.cols.iter().enumerate() {
                // Only output columns whose input column is inside the row (not padding).
                if lo >= hi {
                    continue;
                }
                let wv = w[kh * p.k_w + kw];
                let dst = &mut orow[lo..hi];
                let src = &src_row[start..start + dst.len()];
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += wv * s);
            }
        }
        epilogue.finish_row(orow, oh * p.out_w);
    }
}
