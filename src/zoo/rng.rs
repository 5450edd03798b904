//! A small seeded PRNG for zoo weights: SplitMix64, plus approximate normals.
//!
//! The zoo must write the same bytes on every platform, so golden hashes and
//! cross-machine comparisons work. That rules out Box–Muller: `ln`, `sin` and `cos`
//! come from the platform's libm and may differ in the last bit. Normals here are
//! Irwin–Hall sums of four uniforms, computed in integers and scaled by one `f32`
//! multiply, which IEEE arithmetic makes bit-exact everywhere. They are bounded at
//! about ±3.46σ, which suits weight initialisation (a truncated normal) fine.

/// SplitMix64 (Steele, Lea, Flood 2014): one add and a few multiply-xorshifts per
/// output, and every seed (including 0) gives a good stream.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

/// Mean and spread of a sum of four 16-bit uniforms.
const IH_MEAN: f32 = 4.0 * 65535.0 / 2.0;
/// `1 / sqrt(4 * (65536^2 - 1) / 12)`
const IH_INV_STD: f32 = 2.642_899_8e-5;

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// A stream seeded from a name (FNV-1a), so each model gets its own weights.
    pub fn from_name(name: &str) -> Rng {
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Rng::new(hash)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 random bits (every value exactly representable).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// Approximately standard normal: mean 0, variance 1, bounded at ±3.46.
    pub fn normal(&mut self) -> f32 {
        let r = self.next_u64();
        let sum = (r & 0xffff) + (r >> 16 & 0xffff) + (r >> 32 & 0xffff) + (r >> 48);
        (sum as f32 - IH_MEAN) * IH_INV_STD
    }

    /// `n` values of `mean + std * normal()`.
    pub fn normals(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        (0..n).map(|_| mean + std * self.normal()).collect()
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn uniforms(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_fixed() {
        // SplitMix64's published first output for seed 0.
        assert_eq!(Rng::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::from_name("resnet18");
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::from_name("resnet18");
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(
            Rng::from_name("resnet18").next_u64(),
            Rng::from_name("resnet34").next_u64()
        );
    }

    #[test]
    fn normals_have_unit_moments() {
        let v = Rng::new(7).normals(200_000, 0.0, 1.0);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        assert!(v.iter().all(|x| x.abs() < 3.5));
        let u = Rng::new(9).uniforms(10_000, 0.5, 2.0);
        assert!(u.iter().all(|&x| (0.5..2.0).contains(&x)));
    }
}
