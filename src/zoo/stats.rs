//! Estimated activation statistics, used to scale random weights.
//!
//! A conv followed by an eval-mode BatchNorm is a fixed affine map, so nothing in
//! a zoo network re-normalizes activations: if an estimate of some feature map's
//! scale is off by a factor, every later layer inherits it, and a rule that is
//! biased the same way in every residual block compounds exponentially with depth.
//! The builder therefore tracks the mean and mean square of each feature map,
//! modelling values as Gaussian, which gets the ReLU after a residual add right
//! (its input has the positive mean of the skip path, so it keeps much more than
//! half of the mean square). Numbers use only `+ - * /` and `sqrt`, so they, and
//! the weights scaled by them, are bit-identical on every platform.

/// Mean and mean square of the values of a feature map.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(crate) struct Stats {
    pub mean: f64,
    pub m2: f64,
}

/// `E[gamma^2] * E[1 / running_var]` for gamma ~ U[0.5, 1.5), var ~ U[0.5, 2).
const BN_GAIN: f64 = (1.0 + 1.0 / 12.0) * 0.924_196_240_746_8;
/// Mean square of beta and of the running mean (both ~N(0, 0.1)).
const BN_SHIFT_M2: f64 = 0.01;
/// `E[s]` and `E[s^2]` of `s = sigmoid(z)`, `z ~ N(0, 1)`.
const SIGMOID_MEAN: f64 = 0.5;
const SIGMOID_M2: f64 = 0.2935;
/// Mean and mean square of the largest of nine standard normals (a 3x3 max pool).
const MAX9_MEAN: f64 = 1.4851;
const MAX9_M2: f64 = 2.5633;
/// Fraction of a feature map's variance that is between channels, i.e. survives
/// global average pooling (0.5 to 0.8 on the zoo networks, measured with ONNX Runtime).
const POOLED_VARIANCE: f64 = 0.6;

impl Stats {
    /// Standard-normal input.
    pub(crate) const UNIT: Stats = Stats { mean: 0.0, m2: 1.0 };

    fn std(self) -> f64 {
        // Guard against rounding making the variance negative or zero.
        (self.m2 - self.mean * self.mean).max(1e-12 * self.m2).sqrt()
    }

    /// After an eval-mode BatchNorm with the zoo's random statistics, applied to a
    /// conv output with these statistics.
    pub(crate) fn batch_norm(self) -> Stats {
        Stats {
            mean: 0.0,
            m2: BN_GAIN * (self.m2 + BN_SHIFT_M2) + BN_SHIFT_M2,
        }
    }

    /// After a ReLU (or ReLU6: values near 6 are rare at this scale), for a Gaussian
    /// input: `E[relu] = mu Phi(t) + sigma phi(t)` and
    /// `E[relu^2] = (mu^2 + sigma^2) Phi(t) + mu sigma phi(t)` with `t = mu / sigma`.
    pub(crate) fn relu(self) -> Stats {
        let (mu, sigma) = (self.mean, self.std());
        let t = mu / sigma;
        let (cdf, pdf) = (normal_cdf(t), normal_pdf(t));
        Stats {
            mean: mu * cdf + sigma * pdf,
            m2: self.m2 * cdf + mu * sigma * pdf,
        }
    }

    /// Sum of two independent feature maps.
    pub(crate) fn add(self, other: Stats) -> Stats {
        Stats {
            mean: self.mean + other.mean,
            m2: self.m2 + other.m2 + 2.0 * self.mean * other.mean,
        }
    }

    /// Scaled by an independent sigmoid gate of a roughly standard-normal input.
    pub(crate) fn sigmoid_gated(self) -> Stats {
        Stats {
            mean: self.mean * SIGMOID_MEAN,
            m2: self.m2 * SIGMOID_M2,
        }
    }

    /// After a 3x3 max pool of a ReLU of a zero-mean map (the ResNet stem), treating
    /// the nine values as independent.
    pub(crate) fn max_pool_3x3(self) -> Stats {
        // The pre-ReLU variance is twice the post-ReLU mean square.
        let sigma2 = 2.0 * self.m2;
        Stats {
            mean: MAX9_MEAN * sigma2.sqrt(),
            m2: MAX9_M2 * sigma2,
        }
    }

    /// After global average pooling: the mean stays, part of the variance goes.
    pub(crate) fn global_pool(self) -> Stats {
        let mean2 = self.mean * self.mean;
        Stats {
            mean: self.mean,
            m2: mean2 + POOLED_VARIANCE * (self.m2 - mean2).max(0.0),
        }
    }
}

/// `e^x`, from the Taylor series after reducing `x` to `[-ln2/2, ln2/2]` (accurate
/// to a few ulps, and the same on every platform, unlike libm's `exp`).
fn exp(x: f64) -> f64 {
    let x = x.clamp(-700.0, 700.0);
    let k = (x / std::f64::consts::LN_2).round();
    let r = x - k * std::f64::consts::LN_2;
    let (mut term, mut sum) = (1.0, 1.0);
    for i in 1..=14 {
        term *= r / f64::from(i);
        sum += term;
    }
    // An exact power of two, built from its bits: k is within the normal range.
    let scale = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    sum * scale
}

fn normal_pdf(t: f64) -> f64 {
    // 1 / sqrt(2 pi)
    0.398_942_280_401_432_7 * exp(-0.5 * t * t)
}

/// `Phi(t)` via the complementary error function of Numerical Recipes' `erfcc`
/// (fractional error below 1.2e-7 everywhere).
fn normal_cdf(t: f64) -> f64 {
    let x = -t / std::f64::consts::SQRT_2;
    let z = x.abs();
    let u = 1.0 / (1.0 + 0.5 * z);
    let poly = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ]
    .iter()
    .rev()
    .fold(0.0, |acc, &c| acc * u + c);
    let erfc = u * exp(-z * z + poly);
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_functions_are_accurate() {
        for x in [-50.0, -3.3, -1.0, -1e-3, 0.0, 0.5, 1.0, 2.7, 10.0] {
            let rel = (exp(x) - f64::exp(x)).abs() / f64::exp(x);
            assert!(rel < 1e-14, "exp({x}): {rel}");
        }
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_746).abs() < 1e-7);
        assert!((normal_cdf(-2.0) - 0.022_750_132).abs() < 1e-8);
    }

    #[test]
    fn relu_moments() {
        // ReLU of N(0, 1): mean 1/sqrt(2 pi), mean square 1/2.
        let r = Stats::UNIT.relu();
        assert!(
            (r.mean - 0.398_942_28).abs() < 1e-6 && (r.m2 - 0.5).abs() < 1e-6,
            "{r:?}"
        );
        // A large positive mean passes through nearly unchanged.
        let r = Stats {
            mean: 10.0,
            m2: 101.0,
        }
        .relu();
        assert!(
            (r.mean - 10.0).abs() < 1e-6 && (r.m2 - 101.0).abs() < 1e-4,
            "{r:?}"
        );
    }
}
