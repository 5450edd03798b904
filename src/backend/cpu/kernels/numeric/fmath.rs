//! Transcendental functions for the elementwise kernels.
//!
//! The f32 versions are branch-free (selects only) so that LLVM vectorizes the loops
//! calling them; libm's `expf` is a call per element. Accuracy is a few ulp, far
//! inside the 1e-3 relative tolerance the ONNX tests and real models need. `erf` has
//! no std implementation at all, so an f64 one is here too.

// Split constants (Cody–Waite) and series coefficients are written with every digit on purpose.
#![allow(clippy::excessive_precision, clippy::approx_constant)]

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n * LN2_HI` is exact for any |n| < 4096 (12 trailing zero bits).
const LN2_HI: f32 = 0.693_115_234_375;
const LN2_LO: f32 = 3.194_618_5e-5;
/// Adding then subtracting 1.5 * 2^23 rounds an f32 of magnitude < 2^22 to an integer
/// with SSE2 alone (no `roundps`), so it vectorizes on baseline x86-64.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Above ln(f32::MAX) exp overflows.
const EXP_HI: f32 = 88.722_84;
/// Below this exp underflows to 0 even as a subnormal.
const EXP_LO: f32 = -104.0;

/// 2^n for an integer-valued `n` in [-126, 127], built from the exponent bits.
#[inline(always)]
fn pow2i(n: f32) -> f32 {
    f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// e^x with ≤ 2 ulp error on normal results; subnormal results are approximate.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // Comparisons written so that NaN falls through both clamps and propagates.
    let xc = if x > EXP_HI { EXP_HI } else { x };
    let xc = if xc < EXP_LO { EXP_LO } else { xc };
    // x = n ln2 + r with |r| <= ln2 / 2.
    let n = (xc * LOG2E + ROUND_MAGIC) - ROUND_MAGIC;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // Taylor series of e^r to degree 7: truncation error < 6e-9 relative on |r| <= 0.347.
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // n is in [-150, 128]: split the scale in two so each factor stays a normal float
    // and a subnormal result is rounded only once.
    let n1 = (n * 0.5 + ROUND_MAGIC) - ROUND_MAGIC;
    let y = p * pow2i(n1) * pow2i(n - n1);
    if x > EXP_HI {
        f32::INFINITY
    } else {
        y
    }
}

/// tanh(x): odd Taylor series near 0, `1 - 2 / (e^2x + 1)` elsewhere.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = f32::abs(x);
    // |x| < 0.25: the series to x^9 is exact to ~1e-8 relative.
    let z = x * x;
    let s = 62.0 / 2835.0;
    let s = s * z - 17.0 / 315.0;
    let s = s * z + 2.0 / 15.0;
    let s = s * z - 1.0 / 3.0;
    let small = x + x * z * s;
    // Large |x|: e^2a overflows to inf and the quotient goes to 1, as it should.
    let big = 1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0);
    let big = f32::copysign(big, x);
    if a < 0.25 {
        small
    } else {
        big
    }
}

/// erf(x) = x P(x²) / Q(x²) on [-4, 4] (±1 beyond in f32). The coefficients are a
/// weighted least-squares fit of erf(x)/x made for kiln; max relative error 4e-7.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = if x > 4.0 { 4.0 } else { x };
    let x = if x < -4.0 { -4.0 } else { x };
    let t = x * x;
    let p = 1.943_761_6e-8;
    let p = p * t - 1.938_391e-6;
    let p = p * t + 1.430_260_5e-4;
    let p = p * t + 3.792_130_7e-3;
    let p = p * t + 5.088_058_3e-2;
    let p = p * t + 2.023_390_9e-1;
    let p = p * t + 1.128_379_1;
    let q = 9.747_479e-4;
    let q = q * t + 1.454_771_6e-2;
    let q = q * t + 1.159_840_2e-1;
    let q = q * t + 5.126_500_2e-1;
    let q = q * t + 1.0;
    x * p / q
}

/// erf(x) in f64, accurate to ~1e-15 relative.
pub fn erf_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        erf_series(a)
    } else {
        1.0 - erfc_fraction(a)
    };
    r.copysign(x)
}

/// erfc(x) in f64, accurate in the tail too (no cancellation for large x).
pub fn erfc_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x >= 2.5 {
        erfc_fraction(x)
    } else if x > -2.5 {
        1.0 - x.signum() * erf_series(x.abs())
    } else {
        2.0 - erfc_fraction(-x)
    }
}

/// erf(a) = 2/√π · e^(-a²) · Σ 2ⁿ a^(2n+1) / (1·3·…·(2n+1)) for 0 <= a < 2.5. All
/// terms are positive, so there is no cancellation; ≤ 45 terms reach f64 precision.
fn erf_series(a: f64) -> f64 {
    let a2 = a * a;
    let (mut term, mut sum) = (a, a);
    for n in 1..64 {
        term *= 2.0 * a2 / (2 * n + 1) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    std::f64::consts::FRAC_2_SQRT_PI * (-a2).exp() * sum
}

/// erfc(a) for a >= 2.5 by the continued fraction
/// e^(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))), evaluated bottom-up; 40
/// levels reach f64 precision at a = 2.5 and converge faster beyond.
fn erfc_fraction(a: f64) -> f64 {
    if a > 27.0 {
        return 0.0; // e^(-a²) underflows
    }
    let mut t = a;
    for k in (1..=40).rev() {
        t = a + (k as f64 * 0.5) / t;
    }
    (-a * a).exp() / (std::f64::consts::PI.sqrt() * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / b.abs().max(1e-300)
        }
    }

    #[test]
    fn exp_matches_f64() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.7 {
            worst = worst.max(rel(exp_f32(x) as f64, (x as f64).exp()));
            x += 0.0137;
        }
        assert!(worst < 3e-7, "exp worst relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        // Subnormal results stay close in absolute terms.
        assert!((exp_f32(-95.0) as f64 - (-95.0f64).exp()).abs() < 1e-44);
    }

    #[test]
    fn tanh_matches_f64() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            worst = worst.max(rel(tanh_f32(x) as f64, (x as f64).tanh()));
            x += 0.00731;
        }
        assert!(worst < 1e-6, "tanh worst relative error {worst}");
        assert_eq!(tanh_f32(1e-30), 1e-30);
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn erf_f64_known_values() {
        // Values from the standard tables (Abramowitz & Stegun 7.1, extended precision).
        let cases = [
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
        ];
        for (x, want) in cases {
            assert!(rel(erf_f64(x), want) < 1e-14, "erf({x})");
            assert!(rel(erf_f64(-x), -want) < 1e-14, "erf(-{x})");
        }
        assert!(rel(erfc_f64(5.0), 1.537_459_794_428_035e-12) < 1e-12);
        assert!(rel(erfc_f64(-5.0), 2.0 - 1.537_459_794_428_035e-12) < 1e-15);
        assert!(rel(erfc_f64(0.5), 1.0 - 0.520_499_877_813_046_5) < 1e-14);
        assert_eq!(erf_f64(30.0), 1.0);
        assert_eq!(erf_f64(-30.0), -1.0);
        assert!(erf_f64(f64::NAN).is_nan());
    }

    #[test]
    fn erf_f32_matches_f64() {
        let mut worst = 0.0f64;
        let mut x = -6.0f32;
        while x < 6.0 {
            worst = worst.max(rel(erf_f32(x) as f64, erf_f64(x as f64)));
            x += 0.00917;
        }
        for e in -30..0 {
            let x = 10f32.powi(e);
            worst = worst.max(rel(erf_f32(x) as f64, erf_f64(x as f64)));
        }
        assert!(worst < 1e-6, "erf worst relative error {worst}");
    }
}
