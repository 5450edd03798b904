//! Per-axis interpolation taps of `Resize`, computed once at preparation.
//!
//! Resize is separable: output index `x` on an axis maps to a fractional input
//! coordinate, which picks a few input indices (1 nearest, 2 linear, 4 cubic) with
//! weights. Coordinates and weights follow the ONNX reference implementation
//! (computed in f64; the float output extent `scale * input` is used by
//! align_corners, pytorch_half_pixel and tf_crop_and_resize, as the reference does).

use crate::ir::ops::{CoordTransform, NearestMode, Resize, ResizeMode};

/// One axis: its sizes, scale and (tf_crop_and_resize) region of interest.
#[derive(Copy, Clone, Debug)]
pub(crate) struct AxisSpec {
    pub input: usize,
    pub output: usize,
    pub scale: f64,
    pub roi: (f64, f64),
}

/// Taps of every output index of one axis.
#[derive(Debug)]
pub(crate) struct AxisTaps {
    /// Output index `x` uses `taps[start[x]..start[x + 1]]`.
    pub start: Vec<usize>,
    /// (input index, weight); zero weights are dropped.
    pub taps: Vec<(usize, f32)>,
    /// Output indices whose coordinate falls outside the input (tf_crop_and_resize):
    /// they get `extrapolation_value`.
    pub outside: Vec<bool>,
}

impl AxisTaps {
    pub fn of(&self, x: usize) -> &[(usize, f32)] {
        &self.taps[self.start[x]..self.start[x + 1]]
    }
}

/// The input coordinate output index `x` maps to, or `None` when tf_crop_and_resize
/// puts it outside the input.
fn source_coord(r: &Resize, a: &AxisSpec, x: f64) -> Option<f64> {
    let (input, scale) = (a.input as f64, a.scale);
    let out_float = scale * input;
    Some(match r.coord {
        CoordTransform::HalfPixel => (x + 0.5) / scale - 0.5,
        CoordTransform::HalfPixelSymmetric => {
            let adjustment = a.output as f64 / out_float;
            let offset = input / 2.0 * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
        CoordTransform::PytorchHalfPixel if out_float == 1.0 => -0.5,
        CoordTransform::PytorchHalfPixel => (x + 0.5) / scale - 0.5,
        CoordTransform::AlignCorners if out_float == 1.0 => 0.0,
        CoordTransform::AlignCorners => x * (input - 1.0) / (out_float - 1.0),
        CoordTransform::Asymmetric => x / scale,
        CoordTransform::TfCropAndResize => {
            let (lo, hi) = a.roi;
            let c = if out_float == 1.0 {
                (hi - lo) * (input - 1.0) / 2.0
            } else {
                x * (hi - lo) * (input - 1.0) / (out_float - 1.0)
            } + lo * (input - 1.0);
            if c < 0.0 || c > input - 1.0 {
                return None;
            }
            c
        }
    })
}

/// Weights for taps `base + first_tap ..` at fractional position `t` in `(0, 1]`
/// past `base` (the reference's convention: an integral coordinate has `t = 1`).
fn coefficients(r: &Resize, t: f64) -> (isize, Vec<f64>) {
    match r.mode {
        ResizeMode::Nearest => {
            let upper = t == 1.0
                || match r.nearest {
                    NearestMode::RoundPreferFloor => t > 0.5,
                    NearestMode::RoundPreferCeil => t >= 0.5,
                    NearestMode::Floor => false,
                    NearestMode::Ceil => true,
                };
            (0, if upper { vec![0.0, 1.0] } else { vec![1.0, 0.0] })
        }
        ResizeMode::Linear => (0, vec![1.0 - t, t]),
        ResizeMode::Cubic => {
            let a = r.cubic_coeff_a as f64;
            let (p, q) = (t + 1.0, 2.0 - t);
            let s = 1.0 - t;
            let coeffs = vec![
                ((a * p - 5.0 * a) * p + 8.0 * a) * p - 4.0 * a,
                ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
                ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
                ((a * q - 5.0 * a) * q + 8.0 * a) * q - 4.0 * a,
            ];
            (-1, coeffs)
        }
    }
}

/// The taps of one axis.
pub(crate) fn axis_taps(r: &Resize, a: &AxisSpec) -> AxisTaps {
    let mut out = AxisTaps {
        start: vec![0],
        taps: Vec::new(),
        outside: Vec::new(),
    };
    let last = a.input as isize - 1;
    for x in 0..a.output {
        let Some(c) = source_coord(r, a, x as f64) else {
            out.outside.push(true);
            out.start.push(out.taps.len());
            continue;
        };
        out.outside.push(false);
        // base = ceil(c) - 1, so t = c - base is in (0, 1].
        let base = c.ceil() - 1.0;
        let (first, mut weights) = coefficients(r, c - base);
        let index = |i: usize| base as isize + first + i as isize;
        if r.exclude_outside {
            for (i, w) in weights.iter_mut().enumerate() {
                if index(i) < 0 || index(i) > last {
                    *w = 0.0;
                }
            }
            let sum: f64 = weights.iter().sum();
            weights.iter_mut().for_each(|w| *w /= sum);
        }
        for (i, &w) in weights.iter().enumerate() {
            if w != 0.0 {
                // Taps past the edges repeat the edge value ("edge" padding).
                out.taps.push((index(i).clamp(0, last.max(0)) as usize, w as f32));
            }
        }
        out.start.push(out.taps.len());
    }
    out
}
