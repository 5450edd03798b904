//! What happens to a finished tile on its way to memory:
//! `C = act(alpha * A*B + beta * C + row_bias[i] + col_bias[j] + residual[i, j])`.
//!
//! Applying bias, residual and activation while the tile is still in cache saves a
//! full pass over the output per fused op; the optimizer fuses Conv+Add+Relu and
//! friends into one GEMM call through this hook.

use super::mat::{MatRef, OutRows};
use super::micro::{Tile, NR};
use crate::backend::cpu::kernels::numeric::fmath::exp_f32;
use crate::error::{Error, Result};

pub use crate::ir::ops::Activation;

// The IR defines what each activation means; this is the CPU's slice evaluation of
// it (inherent impls may live anywhere in the defining crate).
impl Activation {
    /// Applies the activation in place. Written as plain loops over branch-free
    /// bodies so LLVM vectorizes each arm.
    #[inline(always)]
    pub fn apply_slice(self, xs: &mut [f32]) {
        let sigmoid = |x: f32| 1.0 / (1.0 + exp_f32(-x));
        match self {
            Activation::None => {}
            Activation::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
            Activation::Clamp { min, max } => xs.iter_mut().for_each(|x| *x = x.max(min).min(max)),
            Activation::LeakyRelu { alpha } => xs
                .iter_mut()
                .for_each(|x| *x = if *x >= 0.0 { *x } else { *x * alpha }),
            Activation::Sigmoid => xs.iter_mut().for_each(|x| *x = sigmoid(*x)),
            Activation::HardSigmoid { alpha, beta } => xs
                .iter_mut()
                .for_each(|x| *x = (alpha * *x + beta).clamp(0.0, 1.0)),
            Activation::HardSwish => xs
                .iter_mut()
                .for_each(|x| *x *= (*x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)),
            Activation::Silu => xs.iter_mut().for_each(|x| *x *= sigmoid(*x)),
        }
    }
}

/// Extra terms added to each output element once its dot product is complete.
/// Indices are relative to the GEMM call's output block.
#[derive(Copy, Clone, Debug, Default)]
pub struct Epilogue<'a> {
    /// One value per output row (a convolution's per-channel bias).
    pub row_bias: Option<&'a [f32]>,
    /// One value per output column (a fully connected layer's bias).
    pub col_bias: Option<&'a [f32]>,
    /// A matrix of the output's shape added before the activation (a residual branch).
    pub residual: Option<MatRef<'a>>,
    pub activation: Activation,
}

impl<'a> Epilogue<'a> {
    pub fn is_identity(&self) -> bool {
        self.row_bias.is_none()
            && self.col_bias.is_none()
            && self.residual.is_none()
            && self.activation == Activation::None
    }

    /// Checks every term covers an `m x n` output.
    pub(crate) fn validate(&self, m: usize, n: usize) -> Result<()> {
        let short = |what: &str| {
            Err(Error::shape(
                "gemm",
                format!("epilogue {what} is smaller than {m}x{n}"),
            ))
        };
        if self.row_bias.is_some_and(|b| b.len() < m) {
            return short("row bias");
        }
        if self.col_bias.is_some_and(|b| b.len() < n) {
            return short("column bias");
        }
        if self.residual.is_some_and(|r| r.rows() < m || r.cols() < n) {
            return short("residual");
        }
        Ok(())
    }

    /// The same epilogue for the output block starting at `(r0, c0)` of size `m x n`.
    pub(crate) fn shifted(&self, r0: usize, c0: usize, m: usize, n: usize) -> Epilogue<'a> {
        Epilogue {
            row_bias: self.row_bias.map(|b| &b[r0..r0 + m]),
            col_bias: self.col_bias.map(|b| &b[c0..c0 + n]),
            residual: self.residual.map(|r| r.sub(r0, c0, m, n)),
            activation: self.activation,
        }
    }
}

/// How one k-slice of the product is combined with `C`.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Store<'e, 'a> {
    pub alpha: f32,
    /// `beta` for the first k-slice, 1 for the following ones (accumulate).
    pub beta: f32,
    /// Set on the last k-slice only, when there is something to apply.
    pub epilogue: Option<&'e Epilogue<'a>>,
}

/// Writes the `m x n` top-left part of `acc` at `(i0, j0)` of `c` (scale and
/// accumulate only: the epilogue runs per cache block, see [`finish_block`]).
/// With `beta == 0` C is never read: its previous contents may be garbage or NaN.
#[inline(always)]
pub(crate) fn store_tile<C: OutRows + ?Sized>(
    acc: &Tile,
    c: &mut C,
    i0: usize,
    j0: usize,
    m: usize,
    n: usize,
    how: &Store<'_, '_>,
) {
    let (alpha, beta) = (how.alpha, how.beta);
    for (r, src) in acc.chunks_exact(NR).take(m).enumerate() {
        let dst = &mut c.row(i0 + r)[j0..j0 + n];
        let src = &src[..n];
        if beta == 0.0 {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = alpha * s);
        } else if beta == 1.0 {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += alpha * s);
        } else {
            dst.iter_mut()
                .zip(src)
                .for_each(|(d, &s)| *d = alpha * s + beta * *d);
        }
    }
}

/// Applies the epilogue to the finished `m x n` block at `(i0, j0)` of `c`.
///
/// Run once per cache block, right after its last k-slice is stored, while the
/// block is still in L2: each term is then one long vectorized loop per row. Done
/// per 6x16 tile with these slice loops instead, the epilogue's fixed per-row
/// overhead cost more than a separate pass over memory on small-K convolutions (a
/// stem, a pointwise layer). Tiles the AVX2 kernel stores straight from registers
/// apply the terms there instead (`avx2::TileTerms`), which is cheaper still; this
/// pass serves the rest.
#[inline(always)]
pub(crate) fn finish_block<C: OutRows + ?Sized>(
    c: &mut C,
    i0: usize,
    m: usize,
    j0: usize,
    n: usize,
    e: &Epilogue<'_>,
) {
    for i in i0..i0 + m {
        let dst = &mut c.row(i)[j0..j0 + n];
        if let Some(b) = e.row_bias {
            let b = b[i];
            dst.iter_mut().for_each(|d| *d += b);
        }
        if let Some(b) = e.col_bias {
            dst.iter_mut().zip(&b[j0..j0 + n]).for_each(|(d, &b)| *d += b);
        }
        if let Some(res) = e.residual {
            if res.col_stride() == 1 {
                dst.iter_mut()
                    .zip(res.row_slice(i, j0, n))
                    .for_each(|(d, &v)| *d += v);
            } else {
                dst.iter_mut()
                    .enumerate()
                    .for_each(|(j, d)| *d += res.at(i, j0 + j));
            }
        }
        e.activation.apply_slice(dst);
    }
}
