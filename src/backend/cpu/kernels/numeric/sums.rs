//! Sums and extrema of float slices that vectorize and stay accurate.
//!
//! A plain `for` loop adding into one accumulator neither vectorizes (float addition
//! is not associative, so LLVM keeps the order) nor stays accurate over millions of
//! elements. Here sums go into [`LANES`] independent f64 accumulators: the loop
//! vectorizes, and f64 keeps sums like softmax's `1 + tiny` exact enough for its log.
//! These loops are bound by memory bandwidth, so the wider adds cost nothing.

use super::traits::{Float, FloatStore, Num};

const LANES: usize = 8;

/// Σ g(x) over `x`, with `g` computed in the compute type and the sum in f64.
#[inline]
pub fn sum_map<T: FloatStore>(x: &[T], g: impl Fn(T::C) -> T::C) -> f64 {
    let mut acc = [0.0f64; LANES];
    let mut lanes = x.chunks_exact(LANES);
    for c in &mut lanes {
        for j in 0..LANES {
            acc[j] += g(c[j].load()).to_f64();
        }
    }
    let tail: f64 = lanes.remainder().iter().map(|&v| g(v.load()).to_f64()).sum();
    acc.iter().sum::<f64>() + tail
}

/// Mean and (population) variance of `x`, in two passes for accuracy.
#[inline]
pub fn mean_var<T: FloatStore>(x: &[T]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = sum_map(x, |v| v) / n;
    let m = <T::C as Float>::lit(mean);
    let var = sum_map(x, |v| (v - m) * (v - m)) / n;
    (mean, var)
}

/// Maximum (`max = true`) or minimum of `x` with numpy's NaN propagation; the
/// identity (-inf / +inf) for an empty slice.
#[inline]
pub fn extremum<T: FloatStore>(x: &[T], max: bool) -> T::C {
    let init = if max {
        <T::C as Num>::LOWEST
    } else {
        <T::C as Num>::HIGHEST
    };
    let mut acc = [init; LANES];
    let mut nan = false;
    let mut lanes = x.chunks_exact(LANES);
    for c in &mut lanes {
        for j in 0..LANES {
            let v = c[j].load();
            // NaN is tracked on the side so the compare-select stays a plain max/min.
            nan |= v.is_nan();
            let better = if max { v > acc[j] } else { v < acc[j] };
            acc[j] = if better { v } else { acc[j] };
        }
    }
    let mut r = init;
    for &v in acc.iter() {
        r = if max { r.max_nan(v) } else { r.min_nan(v) };
    }
    for &v in lanes.remainder() {
        r = if max {
            r.max_nan(v.load())
        } else {
            r.min_nan(v.load())
        };
    }
    if nan {
        <T::C as Float>::lit(f64::NAN)
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn sums_are_accurate_over_many_elements() {
        let x: Vec<f32> = (0..1_000_003)
            .map(|i| ((i % 1000) as f32) * 0.001 + 0.1)
            .collect();
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        let got = sum_map(&x, |v| v);
        assert!((got - want).abs() / want < 1e-6);
        let (mean, var) = mean_var(&x);
        let wm = want / x.len() as f64;
        let wv = x.iter().map(|&v| (v as f64 - wm).powi(2)).sum::<f64>() / x.len() as f64;
        assert!((mean - wm).abs() < 1e-6 && (var - wv).abs() / wv < 1e-5);
        let h: Vec<f16> = [1.0f32, 2.0, 3.5].iter().map(|&v| f16::from_f32(v)).collect();
        assert_eq!(sum_map(&h, |v| v * v), 1.0 + 4.0 + 12.25);
    }

    #[test]
    fn extremum_propagates_nan_and_handles_tails() {
        let mut x: Vec<f32> = (0..37).map(|i| ((i * 17) % 37) as f32 - 5.0).collect();
        assert_eq!(extremum(&x, true), 31.0);
        assert_eq!(extremum(&x, false), -5.0);
        assert_eq!(extremum::<f32>(&[], true), f32::NEG_INFINITY);
        x[20] = f32::NAN;
        assert!(extremum(&x, true).is_nan() && extremum(&x, false).is_nan());
        let x = [1.0f64, -2.0, 3.0];
        assert_eq!(extremum(&x, false), -2.0);
    }
}
