//! The pointwise convolution GEMM with its operands swapped: `Y^T = X^T x W^T`.
//!
//! The usual orientation puts output channels on the micro-tile's MR = 6 rows and
//! output positions on its NR = 16 columns. Late layers have few positions (7x7 =
//! 49 fill four 16-wide panels, the last with one real column: 31 % of the tile
//! work wasted) and grouped layers few channels per group (RegNet's 16 fill three
//! 6-row panels, 12 % waste). Swapped, positions go on the rows (49 -> 54) and the
//! channels on the columns (16 -> 16, 400 -> 400), which is where the vector
//! lanes then run: the same layout choice ORT's NCHWc kernels make.
//!
//! The product lands position-major in scratch and is transposed into the NCHW
//! output, adding bias and residual and applying the activation on the way (in
//! registers, eight channels by eight positions at a time, with AVX2). The weights
//! are prepacked transposed (as B panels), once, at prepare. [`prefers_swapped`]
//! decides per convolution.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::__m256;

use rayon::prelude::*;

use super::lanes::LANES;
#[cfg(target_arch = "x86_64")]
use super::lanes::{Avx2, Lanes};
use crate::backend::cpu::kernels::gemm::buffers::{with_scratch, Slot};
use crate::backend::cpu::kernels::gemm::micro::{MR, NR};
use crate::backend::cpu::kernels::gemm::{gemm, Epilogue, LhsSource, MatRef, PackedB, RhsSource};
#[cfg(target_arch = "x86_64")]
use crate::backend::cpu::kernels::numeric::vector_activation::{
    with_activation, Activate, RegisterActivation,
};
use crate::error::Result;
use crate::ir::ops::Activation;

/// How much cheaper the swapped orientation must promise to be before it is used
/// for a pointwise convolution.
const MIN_SAVING: f32 = 0.05;

/// The same for an im2col convolution. Swapped, its column matrix is built whole
/// (the left operand is packed from it), which the usual orientation never does.
/// Measured (`swapped_vs_usual_gflops`, ignored test, 1 thread): 512x49x4608
/// (ResNet's 7x7 3x3 layers, 16 % cheaper by [`swapped_saving`]) 64 -> 76
/// GFLOP/s; 256x196x2304 (5 % cheaper) 77 -> 68.
const MIN_SAVING_IM2COL: f32 = 0.10;

/// What the transposing store costs per output element, in multiply-adds of tile
/// work: a strided read of the staged product and the epilogue's pass over the
/// row. Small reductions make it the larger term: RegNet's 32-channel 56x56
/// pointwise layer (a 32-deep reduction) ran at 21 GFLOP/s swapped.
const TRANSPOSE_COST: usize = 8;

/// Most floats of swapped product staged per job (512 KiB, this machine's L2): the
/// transposing store must find it in cache. Large planes (112x112) have both
/// orientations' tiles nearly full anyway.
const MAX_STAGING_FLOATS: usize = 128 * 1024;

/// Most floats of column matrix an im2col convolution builds to swap (4 MiB).
const MAX_COLUMN_FLOATS: usize = 1 << 20;

/// Micro-tile work (including the zero padding of ragged edges) of an `m x n` output.
fn padded_work(m: usize, n: usize) -> f32 {
    (m.div_ceil(MR) * MR * n.div_ceil(NR) * NR) as f32
}

/// The fraction of the usual orientation's cost that swapping saves for an
/// `m_g`-channel x `positions` output reduced over `k_g`: tile work (positions on
/// the 6 rows and channels on the 16 lanes instead of the other way round) plus
/// the transposing store. Negative when swapping costs more.
fn swapped_saving(m_g: usize, positions: usize, k_g: usize) -> f32 {
    let k = k_g as f32;
    let usual = padded_work(m_g, positions) * k;
    let swapped = padded_work(positions, m_g) * k + (TRANSPOSE_COST * m_g * positions) as f32;
    if usual > 0.0 {
        1.0 - swapped / usual
    } else {
        0.0
    }
}

/// Whether a pointwise convolution (`k_g` input channels per group, `m_g` output
/// channels x `positions`) is cheaper computed swapped (and small enough to stage).
pub(super) fn prefers_swapped(m_g: usize, positions: usize, k_g: usize) -> bool {
    m_g.saturating_mul(positions) <= MAX_STAGING_FLOATS && swapped_saving(m_g, positions, k_g) >= MIN_SAVING
}

/// Whether an im2col convolution (`k_g` rows of columns, `m_g` channels x
/// `positions` of output) is cheaper computed swapped.
pub(super) fn im2col_prefers_swapped(m_g: usize, positions: usize, k_g: usize) -> bool {
    m_g.saturating_mul(positions) <= MAX_STAGING_FLOATS
        && k_g.saturating_mul(positions) <= MAX_COLUMN_FLOATS
        && swapped_saving(m_g, positions, k_g) >= MIN_SAVING_IM2COL
}

/// Each group's `[Mg, Kg]` weights, transposed and packed as `[Kg, Mg]` B panels.
pub(super) fn pack_weights(w: &[f32], group: usize, m_g: usize, k_g: usize) -> Result<Vec<PackedB>> {
    (0..group)
        .map(|g| {
            let w_g = MatRef::row_major(&w[g * m_g * k_g..][..m_g * k_g], m_g, k_g)?;
            Ok(PackedB::new(w_g.t()))
        })
        .collect()
}

/// What the transposing stores apply to each output channel's row.
pub(super) struct RowEpilogue<'a> {
    /// The group's bias, one per output channel.
    pub bias: Option<&'a [f32]>,
    /// The group's residual, `[Mg, positions]` like the output.
    pub residual: Option<&'a [f32]>,
    pub activation: Activation,
}

impl RowEpilogue<'_> {
    /// `row = act(row + bias[c] + residual[c, p0..])`: positions `p0..` of channel
    /// `c`'s output row, in a plane of `positions`.
    #[inline]
    pub fn apply(&self, c: usize, row: &mut [f32], positions: usize, p0: usize) {
        if let Some(b) = self.bias {
            let b = b[c];
            row.iter_mut().for_each(|d| *d += b);
        }
        if let Some(r) = self.residual {
            let r = &r[c * positions + p0..][..row.len()];
            row.iter_mut().zip(r).for_each(|(d, &v)| *d += v);
        }
        self.activation.apply_slice(row);
    }
}

/// `y = epilogue(cols^T x W^T)^T` for one image and group: `cols` is the
/// `[Kg, positions]` column matrix (a pointwise convolution's input itself, or a
/// built im2col matrix), `y` the `[Mg, positions]` output.
pub(super) fn conv_gemm(
    w_t: &PackedB,
    cols: &[f32],
    y: &mut [f32],
    epilogue: &RowEpilogue<'_>,
    parallel: bool,
) -> Result<()> {
    let (k_g, m_g) = (w_t.rows(), w_t.cols());
    let positions = y.len() / m_g.max(1);
    let a = MatRef::row_major(&cols[..k_g * positions], k_g, positions)?.t();
    conv_gemm_from(w_t, a, y, epilogue, parallel)
}

/// [`conv_gemm`] from the `[positions, Kg]` left operand `a` (the column matrix
/// transposed, or a channels-last image itself).
pub(super) fn conv_gemm_from(
    w_t: &PackedB,
    a: MatRef<'_>,
    y: &mut [f32],
    epilogue: &RowEpilogue<'_>,
    parallel: bool,
) -> Result<()> {
    let m_g = w_t.cols();
    let positions = a.rows();
    with_scratch(Slot::Staging, positions * m_g, |t| {
        gemm(
            LhsSource::Mat(a),
            RhsSource::Packed(w_t),
            t,
            m_g,
            1.0,
            0.0,
            &Epilogue::default(),
            parallel,
        )?;
        store_transposed(t, positions, m_g, y, epilogue, parallel);
        Ok(())
    })
}

/// Output values from which [`store_transposed`] splits its blocks of channels over
/// threads, when the product did: below, a task costs more than its share. (At 2
/// threads the serial store was a sixth of a 7x7 layer's time: RegNet's 400 -> 400
/// convs, 49 positions, ~35 us each.)
const PARALLEL_STORE_MIN: usize = 4096;

/// `y[c, p] = act(t[p, c] + bias[c] + residual[c, p])`, `t` being `positions x m`
/// row-major and `y` `m x positions`: blocks of [`LANES`] channels, in parallel
/// with `parallel`.
fn store_transposed(
    t: &[f32],
    positions: usize,
    m: usize,
    y: &mut [f32],
    e: &RowEpilogue<'_>,
    parallel: bool,
) {
    if positions == 0 || m == 0 {
        return;
    }
    let y = &mut y[..m * positions];
    let blocks = |c0: usize, rows: &mut [f32]| {
        for (b, rows) in rows.chunks_mut(LANES * positions).enumerate() {
            store_channels(t, positions, m, c0 + b * LANES, rows, e);
        }
    };
    if parallel && m * positions >= PARALLEL_STORE_MIN {
        // One task per thread: the blocks are too small to schedule one by one.
        let per_task = m.div_ceil(LANES).div_ceil(rayon::current_num_threads()) * LANES;
        y.par_chunks_mut(per_task * positions)
            .enumerate()
            .for_each(|(i, rows)| blocks(i * per_task, rows));
    } else {
        blocks(0, y);
    }
}

/// [`store_transposed`] for channels `c0..` (`rows`: their output rows, at most
/// [`LANES`]): through a register transpose where they are a whole block and the
/// activation has a register form, else row by row.
fn store_channels(t: &[f32], positions: usize, m: usize, c0: usize, rows: &mut [f32], e: &RowEpilogue<'_>) {
    #[cfg(target_arch = "x86_64")]
    if rows.len() == LANES * positions {
        if let (Some(avx2), Some(act)) = (Avx2::detect(), RegisterActivation::of(e.activation)) {
            // SAFETY (all arms): the token proves AVX2 + FMA.
            unsafe { with_activation!(act, a => transposed_block(avx2, t, positions, m, c0, rows, e, a)) };
            return;
        }
    }
    store_transposed_rows(t, positions, m, c0, rows, e);
}

/// [`store_channels`] one output row at a time: neighbouring channels read the
/// same cache lines of `t` (a few hundred KiB at most, in L2), and each output row
/// is written once, in order.
fn store_transposed_rows(
    t: &[f32],
    positions: usize,
    m: usize,
    c0: usize,
    rows: &mut [f32],
    e: &RowEpilogue<'_>,
) {
    for (i, row) in rows.chunks_exact_mut(positions).enumerate() {
        let c = c0 + i;
        row.iter_mut()
            .zip(t[c..].iter().step_by(m))
            .for_each(|(d, &v)| *d = v);
        e.apply(c, row, positions, 0);
    }
}

/// [`store_channels`] for a whole block of eight channels, eight positions at a
/// time through an 8x8 register transpose, with the epilogue applied in registers
/// (`act` is `e.activation`'s register form). (The row-at-a-time store was 9 % of
/// MobileNetV2's swapped layers; this one made them 2-7 % faster, in-model A/B at
/// 1 thread on a noisy machine.)
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn transposed_block<A: Activate>(
    avx2: Avx2,
    t: &[f32],
    positions: usize,
    m: usize,
    c0: usize,
    rows: &mut [f32],
    e: &RowEpilogue<'_>,
    act: A,
) {
    for p0 in (0..positions).step_by(LANES) {
        let n = LANES.min(positions - p0);
        // Rows p0..p0 + n of `t`, channels c0..c0 + 8; then one vector per channel.
        let inputs: [__m256; LANES] = std::array::from_fn(|q| match q < n {
            true => avx2.load(&t[(p0 + q) * m + c0..]),
            false => avx2.splat(0.0),
        });
        for (l, mut v) in avx2.transpose8(inputs).into_iter().enumerate() {
            let c = c0 + l;
            if let Some(b) = e.bias {
                v = avx2.add(v, avx2.splat(b[c]));
            }
            if let Some(r) = e.residual {
                v = avx2.add(v, avx2.load_first(&r[c * positions + p0..], n));
            }
            // SAFETY: AVX2 + FMA per the caller.
            v = unsafe { act.apply(v) };
            avx2.store_first(v, &mut rows[l * positions + p0..], n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_where_the_usual_tiles_waste_most() {
        // 7x7 positions: 49 -> 64 columns usually, 54 rows swapped (RegNet's
        // 400-channel layers).
        assert!(prefers_swapped(400, 49, 400));
        // 16-channel groups at 28x28: 18 rows usually, 16 columns swapped.
        assert!(prefers_swapped(16, 784, 144));
        // ... unless the reduction is so short that the transposing store dominates.
        assert!(!prefers_swapped(16, 784, 16));
        assert!(!prefers_swapped(32, 3136, 32));
        // Large planes with many channels: both orientations fit the tiles.
        assert!(!prefers_swapped(64, 3136, 256));
        // Too large to stage in cache, however ragged the usual tiles.
        assert!(!prefers_swapped(16, 112 * 112, 256));
        // One output channel would waste 15 of every 16 lanes swapped.
        assert!(!prefers_swapped(1, 49, 256));
    }

    #[test]
    fn im2col_swaps_only_for_a_large_saving() {
        // ResNet's 7x7 3x3 layers: 16 % less tile work.
        assert!(im2col_prefers_swapped(512, 49, 4608));
        // 14x14 with 256 channels saves 5 %: enough for pointwise, not im2col.
        assert!(prefers_swapped(256, 196, 2304));
        assert!(!im2col_prefers_swapped(256, 196, 2304));
        // A column matrix too large to build.
        assert!(!im2col_prefers_swapped(512, 49, 64 * 1024));
    }
}
