//! Eight-lane float vectors for the direct convolution kernels. The Winograd
//! transforms are written once over [`Lanes`] and compiled twice: with AVX2
//! intrinsics, and portably (arrays that LLVM vectorises for the build's baseline,
//! NEON or SSE), the portable form being the oracle the AVX2 one is tested
//! against. The depthwise row kernel uses the [`Avx2`] token and its edge loads
//! and stores.
//!
//! A [`Lanes`] value is a token: holding an [`Avx2`] proves the CPU has AVX2 and
//! FMA (its only constructor checks), which is what makes its safe methods sound.

/// Lanes per vector: one tile per lane.
pub(super) const LANES: usize = 8;

/// The vector operations the transforms use. Every method is `#[inline(always)]`,
/// so inside a function compiled with the ISA's target features the intrinsics
/// inline too.
pub(super) trait Lanes: Copy {
    type V: Copy;

    fn splat(self, v: f32) -> Self::V;
    /// The first [`LANES`] floats of `src`.
    fn load(self, src: &[f32]) -> Self::V;
    /// The first `n` floats of `src` (`n <= LANES`); the other lanes are zero.
    fn load_first(self, src: &[f32], n: usize) -> Self::V;
    /// Writes all lanes to the first [`LANES`] floats of `dst`.
    fn store(self, v: Self::V, dst: &mut [f32]);
    /// Writes the first `n` lanes (`n <= LANES`) to `dst`.
    fn store_first(self, v: Self::V, dst: &mut [f32], n: usize);
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * k + b` (fused where the ISA has FMA).
    fn mul_add(self, a: Self::V, k: f32, b: Self::V) -> Self::V;
    /// Four vectors holding 8 groups of 4 consecutive floats (`v[0]` = floats 0..8,
    /// and so on), split by position in the group: output `s` lane `t` is input
    /// float `4t + s`.
    fn deinterleave4(self, v: [Self::V; 4]) -> [Self::V; 4];
    /// The inverse of [`Lanes::deinterleave4`].
    fn interleave4(self, q: [Self::V; 4]) -> [Self::V; 4];
}

/// Portable lanes: plain arrays.
#[derive(Copy, Clone, Debug)]
pub(super) struct Portable;

impl Lanes for Portable {
    type V = [f32; LANES];

    #[inline(always)]
    fn splat(self, v: f32) -> Self::V {
        [v; LANES]
    }

    #[inline(always)]
    fn load(self, src: &[f32]) -> Self::V {
        let mut v = [0.0; LANES];
        v.copy_from_slice(&src[..LANES]);
        v
    }

    #[inline(always)]
    fn load_first(self, src: &[f32], n: usize) -> Self::V {
        let mut v = [0.0; LANES];
        v[..n].copy_from_slice(&src[..n]);
        v
    }

    #[inline(always)]
    fn store(self, v: Self::V, dst: &mut [f32]) {
        dst[..LANES].copy_from_slice(&v);
    }

    #[inline(always)]
    fn store_first(self, v: Self::V, dst: &mut [f32], n: usize) {
        dst[..n].copy_from_slice(&v[..n]);
    }

    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] + b[i])
    }

    #[inline(always)]
    fn sub(self, a: Self::V, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] - b[i])
    }

    #[inline(always)]
    fn mul_add(self, a: Self::V, k: f32, b: Self::V) -> Self::V {
        std::array::from_fn(|i| a[i] * k + b[i])
    }

    #[inline(always)]
    fn deinterleave4(self, v: [Self::V; 4]) -> [Self::V; 4] {
        std::array::from_fn(|s| std::array::from_fn(|t| v[t / 2][(t % 2) * 4 + s]))
    }

    #[inline(always)]
    fn interleave4(self, q: [Self::V; 4]) -> [Self::V; 4] {
        std::array::from_fn(|o| std::array::from_fn(|i| q[i % 4][2 * o + i / 4]))
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use avx2::Avx2;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m128i, __m256, __m256i, _mm256_add_ps, _mm256_castps256_ps128, _mm256_extractf128_ps,
        _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_loadu_si256, _mm256_maskload_ps, _mm256_permute2f128_ps,
        _mm256_permutevar8x32_ps, _mm256_set1_ps, _mm256_setr_epi32, _mm256_shuffle_ps, _mm256_storeu_ps,
        _mm256_sub_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps, _mm_castps_si128, _mm_movehl_ps, _mm_store_ss,
        _mm_storel_epi64, _mm_storeu_ps,
    };

    use super::{Lanes, LANES};

    /// AVX2 + FMA lanes. Only [`Avx2::detect`] makes one.
    #[derive(Copy, Clone, Debug)]
    pub(in super::super) struct Avx2(());

    impl Avx2 {
        /// `Some` when the CPU supports AVX2 and FMA.
        pub fn detect() -> Option<Avx2> {
            (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx2(()))
        }

        /// A mask selecting the first `n` lanes.
        #[inline(always)]
        fn first(self, n: usize) -> __m256i {
            const ONES_THEN_ZEROS: [i32; 2 * LANES] =
                [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
            let from = LANES - n.min(LANES);
            // SAFETY: AVX is present (this token exists); `from + 8 <= 16` floats
            // are read from the table.
            unsafe { _mm256_loadu_si256(ONES_THEN_ZEROS.as_ptr().add(from).cast()) }
        }

        /// The 8x8 transpose of eight row vectors: pairs of rows interleaved, then
        /// quadruples, then the 128-bit halves swapped (the classic three stages).
        #[inline(always)]
        pub fn transpose8(self, r: [__m256; 8]) -> [__m256; 8] {
            // SAFETY: AVX is present (this token exists); register operations only.
            unsafe {
                let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                [
                    _mm256_permute2f128_ps::<0x20>(s0, s4),
                    _mm256_permute2f128_ps::<0x20>(s1, s5),
                    _mm256_permute2f128_ps::<0x20>(s2, s6),
                    _mm256_permute2f128_ps::<0x20>(s3, s7),
                    _mm256_permute2f128_ps::<0x31>(s0, s4),
                    _mm256_permute2f128_ps::<0x31>(s1, s5),
                    _mm256_permute2f128_ps::<0x31>(s2, s6),
                    _mm256_permute2f128_ps::<0x31>(s3, s7),
                ]
            }
        }
    }

    // SAFETY (every `unsafe` block below): an `Avx2` value exists only if the CPU
    // supports AVX2 and FMA; memory accesses are to slices checked just before.
    impl Lanes for Avx2 {
        type V = __m256;

        #[inline(always)]
        fn splat(self, v: f32) -> __m256 {
            // SAFETY: see the impl.
            unsafe { _mm256_set1_ps(v) }
        }

        #[inline(always)]
        fn load(self, src: &[f32]) -> __m256 {
            let src = &src[..LANES];
            // SAFETY: see the impl; `src` holds 8 floats.
            unsafe { _mm256_loadu_ps(src.as_ptr()) }
        }

        #[inline(always)]
        fn load_first(self, src: &[f32], n: usize) -> __m256 {
            // A whole vector is a plain load: masked loads cost several times more
            // on Zen.
            if n >= LANES {
                return self.load(src);
            }
            let src = &src[..n];
            // SAFETY: see the impl; the mask reads only the first `n` floats.
            unsafe { _mm256_maskload_ps(src.as_ptr(), self.first(n)) }
        }

        #[inline(always)]
        fn store(self, v: __m256, dst: &mut [f32]) {
            let dst = &mut dst[..LANES];
            // SAFETY: see the impl; `dst` holds 8 floats.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
        }

        #[inline(always)]
        fn store_first(self, v: __m256, dst: &mut [f32], n: usize) {
            // Halves, pairs, then one float: `vmaskmovps` stores are microcoded on
            // AMD Zen and cost more than the transforms around them.
            if n >= LANES {
                return self.store(v, dst);
            }
            let dst = &mut dst[..n];
            let p = dst.as_mut_ptr();
            // SAFETY: see the impl; `n < 8`, and each store writes floats
            // `at..at + width` with `at + width <= n`, inside `dst`.
            unsafe {
                let (mut rest, mut at) = (_mm256_castps256_ps128(v), 0);
                if n >= 4 {
                    _mm_storeu_ps(p, rest);
                    rest = _mm256_extractf128_ps::<1>(v);
                    at = 4;
                }
                if n - at >= 2 {
                    // (`_mm_storel_pd` would need 8-byte alignment: Miri caught it.)
                    _mm_storel_epi64(p.add(at).cast::<__m128i>(), _mm_castps_si128(rest));
                    rest = _mm_movehl_ps(rest, rest);
                    at += 2;
                }
                if n - at == 1 {
                    _mm_store_ss(p.add(at), rest);
                }
            }
        }

        #[inline(always)]
        fn add(self, a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl.
            unsafe { _mm256_add_ps(a, b) }
        }

        #[inline(always)]
        fn sub(self, a: __m256, b: __m256) -> __m256 {
            // SAFETY: see the impl.
            unsafe { _mm256_sub_ps(a, b) }
        }

        #[inline(always)]
        fn mul_add(self, a: __m256, k: f32, b: __m256) -> __m256 {
            // SAFETY: see the impl.
            unsafe { _mm256_fmadd_ps(a, _mm256_set1_ps(k), b) }
        }

        #[inline(always)]
        fn deinterleave4(self, v: [__m256; 4]) -> [__m256; 4] {
            // SAFETY: see the impl.
            unsafe {
                // Within each 128-bit half: pairs, then quadruples, which leaves tile
                // order 0 2 4 6 | 1 3 5 7; one permute per output restores it.
                let t0 = _mm256_unpacklo_ps(v[0], v[1]);
                let t1 = _mm256_unpackhi_ps(v[0], v[1]);
                let t2 = _mm256_unpacklo_ps(v[2], v[3]);
                let t3 = _mm256_unpackhi_ps(v[2], v[3]);
                let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
                [
                    _mm256_permutevar8x32_ps(_mm256_shuffle_ps::<0x44>(t0, t2), order),
                    _mm256_permutevar8x32_ps(_mm256_shuffle_ps::<0xEE>(t0, t2), order),
                    _mm256_permutevar8x32_ps(_mm256_shuffle_ps::<0x44>(t1, t3), order),
                    _mm256_permutevar8x32_ps(_mm256_shuffle_ps::<0xEE>(t1, t3), order),
                ]
            }
        }

        #[inline(always)]
        fn interleave4(self, q: [__m256; 4]) -> [__m256; 4] {
            // SAFETY: see the impl.
            unsafe {
                // Groups of four for tiles (t, t + 4) in each half, then halves
                // recombined into consecutive tile pairs.
                let lo01 = _mm256_unpacklo_ps(q[0], q[1]);
                let hi01 = _mm256_unpackhi_ps(q[0], q[1]);
                let lo23 = _mm256_unpacklo_ps(q[2], q[3]);
                let hi23 = _mm256_unpackhi_ps(q[2], q[3]);
                let t04 = _mm256_shuffle_ps::<0x44>(lo01, lo23);
                let t15 = _mm256_shuffle_ps::<0xEE>(lo01, lo23);
                let t26 = _mm256_shuffle_ps::<0x44>(hi01, hi23);
                let t37 = _mm256_shuffle_ps::<0xEE>(hi01, hi23);
                [
                    _mm256_permute2f128_ps::<0x20>(t04, t15),
                    _mm256_permute2f128_ps::<0x20>(t26, t37),
                    _mm256_permute2f128_ps::<0x31>(t04, t15),
                    _mm256_permute2f128_ps::<0x31>(t26, t37),
                ]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(base: f32) -> [[f32; LANES]; 4] {
        std::array::from_fn(|v| std::array::from_fn(|i| base + (v * LANES + i) as f32))
    }

    #[test]
    fn portable_deinterleave_splits_by_position_and_interleave_inverts_it() {
        let v = iota(0.0);
        let q = Portable.deinterleave4(v);
        for (s, lanes) in q.iter().enumerate() {
            for (t, &x) in lanes.iter().enumerate() {
                assert_eq!(x, (4 * t + s) as f32);
            }
        }
        assert_eq!(Portable.interleave4(q), v);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_lanes_match_portable() {
        let Some(avx) = Avx2::detect() else {
            println!("skipped: this CPU has no AVX2 + FMA");
            return;
        };
        let to_avx = |v: [[f32; LANES]; 4]| v.map(|a| avx.load(&a));
        let from_avx = |v: [std::arch::x86_64::__m256; 4]| {
            v.map(|a| {
                let mut out = [0.0; LANES];
                avx.store(a, &mut out);
                out
            })
        };
        let v = iota(1.0);
        assert_eq!(from_avx(avx.deinterleave4(to_avx(v))), Portable.deinterleave4(v));
        assert_eq!(from_avx(avx.interleave4(to_avx(v))), Portable.interleave4(v));
        let src: Vec<f32> = (0..LANES).map(|i| i as f32 + 0.5).collect();
        for n in 0..=LANES {
            let mut got = [-1.0; LANES];
            avx.store_first(avx.load_first(&src, n), &mut got, n);
            let mut want = [-1.0; LANES];
            Portable.store_first(Portable.load_first(&src, n), &mut want, n);
            assert_eq!(got, want, "first {n} lanes");
        }
    }
}
