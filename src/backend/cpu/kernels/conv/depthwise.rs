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

use super::PlaneEpilogue;
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
}

/// Layout of the flat path's scratch: `stride_h * stride_w` phase planes of
/// `rows x pitch` floats, then the `out_h x pitch` accumulator.
#[derive(Clone, Debug)]
struct FlatLayout {
    rows: usize,
    pitch: usize,
}

impl FlatLayout {
    fn new(p: &Plane) -> Option<FlatLayout> {
        let ((sh, sw), (pt, pl)) = (p.stride, p.pad);
        if p.dilation != (1, 1) || p.in_h == 0 || p.in_w == 0 {
            return None;
        }
        // Rows: every input row must have a place, and the taps of the last output
        // row read `(k_h - 1) / sh` rows further, plus one row of slack for the
        // pitch overrun of the right-most taps.
        let rows = ((p.in_h - 1 + pt) / sh + 1).max(p.out_h + (p.k_h - 1) / sh) + 1;
        let pitch = ((p.in_w - 1 + pl) / sw + 1).max(p.out_w + (p.k_w - 1) / sw);
        Some(FlatLayout { rows, pitch })
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
        Some(p)
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
    match &p.flat {
        Some(f) => p.stride.0 * p.stride.1 * f.phase_len() + p.out_h * f.pitch,
        None => p.in_w.div_ceil(p.stride.1) * p.stride.1,
    }
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
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { plane_avx2(p, x, w, epilogue, phases, out) };
        return;
    }
    plane_body(p, x, w, epilogue, phases, out);
}

/// [`plane_body`] compiled for AVX2: the row axpys run 8 lanes wide.
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
    plane_body(p, x, w, epilogue, phases, out)
}

/// The flat path (see the module docs).
#[inline(always)]
fn flat_body(
    p: &Plane,
    f: &FlatLayout,
    x: &[f32],
    w: &[f32],
    epilogue: &PlaneEpilogue<'_>,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let ((sh, sw), (pt, pl), pitch) = (p.stride, p.pad, f.pitch);
    let phase_len = f.phase_len();
    let (phases, acc) = scratch.split_at_mut(sh * sw * phase_len);
    let acc = &mut acc[..p.out_h * pitch];
    // Padded input position (r, c) lives in phase (r % sh, c % sw) at (r / sh, c / sw).
    phases.fill(0.0);
    for (ih, row) in x.chunks_exact(p.in_w).take(p.in_h).enumerate() {
        let r = ih + pt;
        let base = (r % sh) * sw * phase_len + (r / sh) * pitch;
        if sw == 1 {
            phases[base + pl..][..p.in_w].copy_from_slice(row);
        } else {
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
    // Where each tap's run starts in the phase planes.
    let taps = p.k_h * p.k_w;
    let tap_start = |t: usize| {
        let (kh, kw) = (t / p.k_w, t % p.k_w);
        ((kh % sh) * sw + kw % sw) * phase_len + (kh / sh) * pitch + kw / sw
    };
    if taps <= MAX_CHUNKED_TAPS {
        let mut starts = [0usize; MAX_CHUNKED_TAPS];
        for (t, s) in starts.iter_mut().enumerate().take(taps) {
            *s = tap_start(t);
        }
        accumulate_chunked(acc, phases, &starts[..taps], &w[..taps], epilogue.bias);
    } else {
        acc.fill(epilogue.bias);
        for (t, &wv) in w.iter().enumerate().take(taps) {
            let start = tap_start(t);
            let src = &phases[start..start + acc.len()];
            acc.iter_mut().zip(src).for_each(|(a, &v)| *a += wv * v);
        }
    }
    for (oh, orow) in out.chunks_exact_mut(p.out_w).take(p.out_h).enumerate() {
        orow.copy_from_slice(&acc[oh * pitch..][..p.out_w]);
        epilogue.finish_row(orow, oh * p.out_w);
    }
}

/// Windows of up to this many taps (7x7) accumulate chunk by chunk.
const MAX_CHUNKED_TAPS: usize = 49;
/// Outputs accumulated at once: 4 AVX registers, kept there across all the taps.
const CHUNK: usize = 32;

/// `acc[i] = bias + sum_t w[t] * phases[starts[t] + i]`, a chunk of outputs at a
/// time: each chunk stays in registers while every tap is added, instead of the
/// accumulator making a round trip through memory per tap. Same order of
/// additions as tap by tap, so the same rounding.
#[inline(always)]
fn accumulate_chunked(acc: &mut [f32], phases: &[f32], starts: &[usize], w: &[f32], bias: f32) {
    let len = acc.len();
    let mut c0 = 0;
    while c0 + CHUNK <= len {
        let mut a = [bias; CHUNK];
        for (&s, &wv) in starts.iter().zip(w) {
            let src: &[f32; CHUNK] = phases[s + c0..s + c0 + CHUNK]
                .try_into()
                .expect("CHUNK-long slice");
            for i in 0..CHUNK {
                a[i] += wv * src[i];
            }
        }
        acc[c0..c0 + CHUNK].copy_from_slice(&a);
        c0 += CHUNK;
    }
    let tail = &mut acc[c0..];
    tail.fill(bias);
    for (&s, &wv) in starts.iter().zip(w) {
        let src = &phases[s + c0..s + c0 + tail.len()];
        tail.iter_mut().zip(src).for_each(|(a, &v)| *a += wv * v);
    }
}

#[inline(always)]
fn plane_body(
    p: &Plane,
    x: &[f32],
    w: &[f32],
    epilogue: &PlaneEpilogue<'_>,
    phases: &mut [f32],
    out: &mut [f32],
) {
    if let Some(f) = &p.flat {
        return flat_body(p, f, x, w, epilogue, phases, out);
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
