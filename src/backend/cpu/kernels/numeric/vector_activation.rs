//! Activations applied to a vector register, for kernels that finish their output
//! in registers (the depthwise kernels, the GEMM's full tiles). Only those without `exp`
//! have a register form; the rest go through [`Activation::apply_slice`] after the
//! store.

use std::arch::x86_64::{
    __m256, __m512, _mm256_blendv_ps, _mm256_cmp_ps, _mm256_fmadd_ps, _mm256_max_ps, _mm256_min_ps,
    _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm512_cmp_ps_mask, _mm512_fmadd_ps,
    _mm512_mask_blend_ps, _mm512_max_ps, _mm512_min_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _CMP_LT_OQ,
};

use crate::ir::ops::Activation;

/// The activations cheap enough to apply in registers (no `exp`).
#[derive(Copy, Clone, Debug)]
pub(crate) enum RegisterActivation {
    None,
    Clamp {
        min: f32,
        max: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    /// `clamp(alpha * x + beta, 0, 1)`, times `x` when `times_x` (HardSwish).
    HardSigmoid {
        alpha: f32,
        beta: f32,
        times_x: bool,
    },
}

impl RegisterActivation {
    /// The register form of `activation`, if it has one.
    pub(crate) fn of(activation: Activation) -> Option<RegisterActivation> {
        Some(match activation {
            Activation::None => RegisterActivation::None,
            Activation::Relu => RegisterActivation::Clamp {
                min: 0.0,
                max: f32::INFINITY,
            },
            Activation::Clamp { min, max } => RegisterActivation::Clamp { min, max },
            Activation::LeakyRelu { alpha } => RegisterActivation::LeakyRelu { alpha },
            Activation::HardSigmoid { alpha, beta } => RegisterActivation::HardSigmoid {
                alpha,
                beta,
                times_x: false,
            },
            Activation::HardSwish => RegisterActivation::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5,
                times_x: true,
            },
            Activation::Sigmoid | Activation::Silu => return None,
        })
    }

    /// The activation of eight values.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(crate) unsafe fn apply_avx2(self, x: __m256) -> __m256 {
        // `max(x, lo)` then `min(.., hi)`, operands ordered as `Activation::apply_slice`'s
        // `x.max(min).min(max)` so NaN handling matches the scalar path.
        let clamp = |x: __m256, lo: f32, hi: f32| {
            _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(lo)), _mm256_set1_ps(hi))
        };
        match self {
            RegisterActivation::None => x,
            RegisterActivation::Clamp { min, max } => clamp(x, min, max),
            RegisterActivation::LeakyRelu { alpha } => {
                let scaled = _mm256_mul_ps(x, _mm256_set1_ps(alpha));
                let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
                _mm256_blendv_ps(x, scaled, negative)
            }
            RegisterActivation::HardSigmoid { alpha, beta, times_x } => {
                let y = _mm256_fmadd_ps(x, _mm256_set1_ps(alpha), _mm256_set1_ps(beta));
                let y = clamp(y, 0.0, 1.0);
                if times_x {
                    _mm256_mul_ps(x, y)
                } else {
                    y
                }
            }
        }
    }

    /// The activation of sixteen values, as [`apply_avx2`](Self::apply_avx2) does
    /// eight.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) unsafe fn apply_avx512(self, x: __m512) -> __m512 {
        match self {
            RegisterActivation::None => x,
            RegisterActivation::Clamp { min, max } => clamp_avx512(x, min, max),
            RegisterActivation::LeakyRelu { alpha } => {
                let scaled = _mm512_mul_ps(x, _mm512_set1_ps(alpha));
                let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
                _mm512_mask_blend_ps(negative, x, scaled)
            }
            RegisterActivation::HardSigmoid { alpha, beta, times_x } => {
                let y = _mm512_fmadd_ps(x, _mm512_set1_ps(alpha), _mm512_set1_ps(beta));
                let y = clamp_avx512(y, 0.0, 1.0);
                if times_x {
                    _mm512_mul_ps(x, y)
                } else {
                    y
                }
            }
        }
    }
}

/// `min(max(x, lo), hi)`, ordered as [`RegisterActivation::apply_avx2`]'s clamp.
#[target_feature(enable = "avx512f")]
#[inline]
fn clamp_avx512(x: __m512, lo: f32, hi: f32) -> __m512 {
    _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(lo)), _mm512_set1_ps(hi))
}

/// An activation applied to a vector register.
pub(crate) trait Activate: Copy {
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    unsafe fn apply(self, v: __m256) -> __m256;

    /// # Safety
    /// The CPU must support AVX-512F.
    unsafe fn apply512(self, v: __m512) -> __m512;
}

#[derive(Copy, Clone)]
pub(crate) struct NoActivation;

impl Activate for NoActivation {
    #[inline(always)]
    unsafe fn apply(self, v: __m256) -> __m256 {
        v
    }

    #[inline(always)]
    unsafe fn apply512(self, v: __m512) -> __m512 {
        v
    }
}

/// [`RegisterActivation::Clamp`] as a type of its own, so the kernel instance for
/// it (ReLU, ReLU6: nearly every depthwise layer and pointwise convolution) has no
/// activation `match` inside.
#[derive(Copy, Clone)]
pub(crate) struct Clamp {
    pub min: f32,
    pub max: f32,
}

impl Activate for Clamp {
    #[inline(always)]
    unsafe fn apply(self, v: __m256) -> __m256 {
        let (min, max) = (self.min, self.max);
        // SAFETY: AVX2 + FMA per the caller.
        unsafe { RegisterActivation::Clamp { min, max }.apply_avx2(v) }
    }

    #[inline(always)]
    unsafe fn apply512(self, v: __m512) -> __m512 {
        // SAFETY: AVX-512F per the caller.
        unsafe { clamp_avx512(v, self.min, self.max) }
    }
}

impl Activate for RegisterActivation {
    #[inline(always)]
    unsafe fn apply(self, v: __m256) -> __m256 {
        // SAFETY: AVX2 + FMA per the caller.
        unsafe { self.apply_avx2(v) }
    }

    #[inline(always)]
    unsafe fn apply512(self, v: __m512) -> __m512 {
        // SAFETY: AVX-512F per the caller.
        unsafe { self.apply_avx512(v) }
    }
}

/// Evaluates `$body` with `$a` bound to `$act` (a [`RegisterActivation`]) as a type
/// of its own: [`NoActivation`], [`Clamp`] (ReLU, ReLU6), or the enum itself for the
/// rarer forms. Kernels generic over [`Activate`] then get one instance per kind,
/// with no `match` per vector (perf showed the jump table in the hot loop).
macro_rules! with_activation {
    ($act:expr, $a:ident => $body:expr) => {{
        use $crate::backend::cpu::kernels::numeric::vector_activation::{
            Clamp, NoActivation, RegisterActivation,
        };
        match $act {
            RegisterActivation::None => {
                let $a = NoActivation;
                $body
            }
            RegisterActivation::Clamp { min, max } => {
                let $a = Clamp { min, max };
                $body
            }
            other => {
                let $a = other;
                $body
            }
        }
    }};
}
pub(crate) use with_activation;
