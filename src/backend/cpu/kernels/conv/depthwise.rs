//! Direct depthwise convolution (one input channel per group), 1-D and 2-D.
//!
//! With one input channel per group, im2col + GEMM degenerates into a GEMM with
//! M = channel multiplier (usually 1) and K = kernel taps: no reuse, all overhead.
//! Instead each output row accumulates `w * input_row` for every tap, an axpy over
//! contiguous slices when the stride is 1, which LLVM vectorises.

use super::super::gemm::Activation;
use super::super::window::Geometry;

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
}

impl Plane {
    pub fn new(g: &Geometry) -> Option<Plane> {
        match g.rank() {
            1 => Some(Plane {
                in_h: 1,
                in_w: g.input[0],
                out_h: 1,
                out_w: g.output[0],
                k_h: 1,
                k_w: g.kernel[0],
                stride: (1, g.strides[0]),
                dilation: (1, g.dilations[0]),
                pad: (0, g.pads_begin[0]),
            }),
            2 => Some(Plane {
                in_h: g.input[0],
                in_w: g.input[1],
                out_h: g.output[0],
                out_w: g.output[1],
                k_h: g.kernel[0],
                k_w: g.kernel[1],
                stride: (g.strides[0], g.strides[1]),
                dilation: (g.dilations[0], g.dilations[1]),
                pad: (g.pads_begin[0], g.pads_begin[1]),
            }),
            _ => None,
        }
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

/// One output plane: `out = act(bias + sum_taps w[tap] * x[shifted])`.
pub(crate) fn plane(p: &Plane, x: &[f32], w: &[f32], bias: f32, act: Activation, out: &mut [f32]) {
    let (sh, sw) = p.stride;
    let (dh, dw) = p.dilation;
    let (ph, pw) = (p.pad.0 as isize, p.pad.1 as isize);
    for (oh, orow) in out.chunks_exact_mut(p.out_w).take(p.out_h).enumerate() {
        orow.fill(bias);
        for kh in 0..p.k_h {
            let ih = (oh * sh + kh * dh) as isize - ph;
            if ih < 0 || ih >= p.in_h as isize {
                continue;
            }
            let irow = &x[ih as usize * p.in_w..][..p.in_w];
            for kw in 0..p.k_w {
                // Output columns whose input column is inside the row (not padding).
                let off = (kw * dw) as isize - pw;
                let (lo, hi) = valid_range(p.out_w, p.in_w, sw, off);
                if lo >= hi {
                    continue;
                }
                let wv = w[kh * p.k_w + kw];
                let first = (lo as isize * sw as isize + off) as usize;
                let dst = &mut orow[lo..hi];
                if sw == 1 {
                    let src = &irow[first..first + dst.len()];
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d += wv * s);
                } else {
                    let src = irow[first..].iter().step_by(sw);
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d += wv * s);
                }
            }
        }
        act.apply_slice(orow);
    }
}
