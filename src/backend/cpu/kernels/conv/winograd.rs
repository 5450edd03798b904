//! Winograd F(4x4, 3x3): stride-1, undilated, ungrouped 3x3 convolution with a
//! quarter of the multiply-adds.
//!
//! Each 4x4 output tile comes from the 6x6 input tile `d` around it (Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2015; interpolation points
//! 0, ±1, ±2 and infinity):
//!
//! ```text
//! Y[k] = Aᵀ [ Σ_c (G g[k,c] Gᵀ) ⊙ (Bᵀ d[c] B) ] A
//! ```
//!
//! For each of the 36 positions ξ of the transformed 6x6 tile, the sum over input
//! channels is one GEMM, `M_ξ [K x tiles] = U_ξ [K x C] · V_ξ [C x tiles]`: 36
//! multiply-adds per tile and channel pair instead of 16 · 9 = 144, at GEMM speed.
//! The transforms cost a few adds per element, linear in the image.
//!
//! Per image, and per block of tile rows (the block bounds the scratch):
//! 1. input transform ([`input`]), one task per input channel, eight tiles per
//!    vector: each padded row is split by column mod 4, which makes a column of
//!    eight neighbouring tiles one contiguous load;
//! 2. the 36 independent GEMMs against `U_ξ`, transformed and packed at prepare;
//! 3. output transform ([`output`]), one task per output channel, eight tiles per
//!    vector, then bias, residual and activation on each finished output row.
//!
//! Both transforms are written once over [`lanes::Lanes`] and compiled for AVX2
//! and portably.
//!
//! The transformed weights take 4x the memory of the originals (36 vs 9 values per
//! channel pair). The error is a few units in the 6th digit (measured in the tests
//! against an f64 direct convolution), far inside the 1e-4 parity budget.

mod input;
mod output;

use rayon::prelude::*;

use self::input::InputPlane;
use self::output::OutputPlane;
use super::super::gemm::buffers::{with_scratch, Slot};
use super::super::gemm::{gemm, Activation, Epilogue, LhsSource, MatRef, PackedA, RhsSource};
use super::lanes;
use super::PlaneEpilogue;
use crate::error::{Error, Result};
use crate::ir::window::Geometry;

/// Output tile side.
const TILE: usize = 4;
/// Input tile side: `TILE + 3 - 1`.
const SPAN: usize = 6;
/// Positions of a transformed tile: one GEMM each.
const POINTS: usize = SPAN * SPAN;
/// Floats of transformed input (or of products) one block may take: 2 MiB, so a
/// block's GEMM operands stay in L2 + L3 on the machines this was tuned on.
const BLOCK_FLOATS: usize = 1 << 19;

/// `G` (6x3): the weight transform.
const G: [[f64; 3]; SPAN] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// A prepared Winograd convolution (constant weights only).
pub(super) struct Winograd {
    c_in: usize,
    c_out: usize,
    /// Where the input transform reads its tiles (padding, tiles per row).
    input: InputPlane,
    /// Where the output transform writes them.
    output: OutputPlane,
    tiles_h: usize,
    /// Tile rows per block.
    block_rows: usize,
    /// `U_ξ = (G g Gᵀ)[ξ]` for every (k, c): one packed `[c_out x c_in]` matrix per ξ.
    u: Vec<PackedA>,
}

/// Bias, residual and activation of one image's output.
pub(super) struct ImageEpilogue<'a> {
    pub bias: Option<&'a [f32]>,
    /// Shaped like the image's output.
    pub residual: Option<&'a [f32]>,
    pub activation: Activation,
}

impl Winograd {
    /// Whether the window is one this kernel computes: 2-D, 3x3, stride 1, undilated.
    pub fn fits(geom: &Geometry) -> bool {
        geom.rank() == 2
            && geom.kernel == [3, 3]
            && geom.strides == [1, 1]
            && geom.dilations == [1, 1]
            && geom.output.iter().all(|&o| o > 0)
    }

    /// Transforms and packs `weights` (`[c_out, c_in, 3, 3]`).
    pub fn new(geom: &Geometry, c_in: usize, c_out: usize, weights: &[f32]) -> Result<Winograd> {
        if !Self::fits(geom) || weights.len() != c_out * c_in * 9 {
            return Err(Error::shape(
                "Conv",
                "Winograd needs a stride-1, undilated 3x3 window",
            ));
        }
        let mut u = vec![0.0f32; POINTS * c_out * c_in];
        for (kc, g) in weights.chunks_exact(9).enumerate() {
            for (xi, v) in transform_weight(g).into_iter().enumerate() {
                u[xi * c_out * c_in + kc] = v;
            }
        }
        let u = u
            .chunks_exact(c_out * c_in)
            .map(|m| Ok(PackedA::new(MatRef::row_major(m, c_out, c_in)?)))
            .collect::<Result<Vec<_>>>()?;
        let (out_h, out_w) = (geom.output[0], geom.output[1]);
        let (tiles_h, tiles_w) = (out_h.div_ceil(TILE), out_w.div_ceil(TILE));
        let per_row = POINTS * c_in.max(c_out) * tiles_w;
        Ok(Winograd {
            c_in,
            c_out,
            input: InputPlane {
                in_h: geom.input[0],
                in_w: geom.input[1],
                pad_t: geom.pads_begin[0],
                pad_l: geom.pads_begin[1],
                tiles_w,
            },
            output: OutputPlane {
                out_h,
                out_w,
                tiles_w,
            },
            tiles_h,
            block_rows: (BLOCK_FLOATS / per_row).clamp(1, tiles_h),
            u,
        })
    }

    /// One image: `x` is `[c_in, in_h, in_w]`, `y` is `[c_out, out_h, out_w]`.
    pub fn run(&self, x: &[f32], y: &mut [f32], epilogue: &ImageEpilogue<'_>) -> Result<()> {
        let (in_plane, out_plane) = (&self.input, &self.output);
        let (in_len, out_len) = (in_plane.in_h * in_plane.in_w, out_plane.out_h * out_plane.out_w);
        if x.len() != self.c_in * in_len || y.len() != self.c_out * out_len {
            return Err(Error::shape(
                "Conv",
                "Winograd input or output has the wrong size",
            ));
        }
        let tiles_w = out_plane.tiles_w;
        let block_tiles = self.block_rows * tiles_w;
        // Each channel's run of tiles per ξ has a vector of slack: the input
        // transform stores whole vectors.
        let runs = |tiles: usize| tiles + lanes::LANES;
        with_scratch(Slot::Transformed, POINTS * self.c_in * runs(block_tiles), |v| {
            with_scratch(Slot::Products, POINTS * self.c_out * block_tiles, |m| {
                for ty0 in (0..self.tiles_h).step_by(self.block_rows) {
                    let rows = self.block_rows.min(self.tiles_h - ty0);
                    let (tiles, run) = (rows * tiles_w, runs(rows * tiles_w));
                    let v = &mut v[..POINTS * self.c_in * run];
                    let m = &mut m[..POINTS * self.c_out * tiles];
                    let scratch = in_plane.scratch_len(rows);
                    v.par_chunks_mut(POINTS * run)
                        .zip(x.par_chunks(in_len))
                        .for_each(|(v_c, x_c)| {
                            with_scratch(Slot::Row, scratch, |s| {
                                input::transform(in_plane, x_c, ty0, rows, v_c, run, s)
                            })
                        });
                    m.par_chunks_mut(self.c_out * tiles)
                        .enumerate()
                        .try_for_each(|(xi, m_xi)| {
                            let v_xi = MatRef::new(&v[xi * run..], self.c_in, tiles, POINTS * run, 1)?;
                            gemm(
                                LhsSource::Packed(&self.u[xi]),
                                RhsSource::Mat(v_xi),
                                m_xi,
                                tiles,
                                1.0,
                                0.0,
                                &Epilogue::default(),
                                false,
                            )
                        })?;
                    let m = &*m;
                    y.par_chunks_mut(out_len).enumerate().for_each(|(k, y_k)| {
                        let plane = PlaneEpilogue {
                            bias: epilogue.bias.map_or(0.0, |b| b[k]),
                            residual: epilogue.residual.map(|r| &r[k * out_len..][..out_len]),
                            activation: epilogue.activation,
                        };
                        let m_k = &m[k * tiles..];
                        output::transform(out_plane, m_k, self.c_out * tiles, ty0, rows, y_k, &plane);
                    });
                }
                Ok(())
            })
        })
    }
}

/// `G g Gᵀ` of one 3x3 filter, computed in f64, as 36 values (row-major 6x6).
fn transform_weight(g: &[f32]) -> [f32; POINTS] {
    let mut gg = [[0.0f64; 3]; SPAN];
    for (a, row) in gg.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|i| G[a][i] * g[i * 3 + j] as f64).sum();
        }
    }
    let mut u = [0.0f32; POINTS];
    for a in 0..SPAN {
        for b in 0..SPAN {
            u[a * SPAN + b] = (0..3).map(|j| gg[a][j] * G[b][j]).sum::<f64>() as f32;
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::lanes::{Lanes, Portable};

    /// The 1-D identity the kernel rests on: `Aᵀ [(G g) ⊙ (Bᵀ d)]` is the 4-output
    /// cross-correlation of `d` (6 values) with `g` (3 taps). (Lane 0 of the
    /// transforms' vectors carries the example.)
    #[test]
    fn one_dimensional_identity() {
        let d = [0.3f32, -1.2, 2.5, 0.7, -0.4, 1.9];
        let g = [0.5f64, -0.25, 1.5];
        let gd: Vec<f64> = G.iter().map(|row| (0..3).map(|i| row[i] * g[i]).sum()).collect();
        let bd = input::bt(Portable, d.map(|v| Portable.splat(v)));
        let prod: [f32; 6] = std::array::from_fn(|i| (gd[i] * bd[i][0] as f64) as f32);
        let y = output::at(Portable, prod.map(|v| Portable.splat(v)));
        for (i, yi) in y.iter().enumerate() {
            let want: f64 = (0..3).map(|k| d[i + k] as f64 * g[k]).sum();
            assert!(
                (yi[0] as f64 - want).abs() < 1e-5,
                "output {i}: {} vs {want}",
                yi[0]
            );
        }
    }

    /// Time of each transform alone on ResNet's Winograd layer sizes, one thread,
    /// best of many runs: `cargo test --release transform_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn transform_speed() {
        use crate::backend::cpu::kernels::compute_tests::{best_seconds, Rng};
        let mut rng = Rng::new(3);
        for (channels, hw) in [(64usize, 56usize), (128, 28), (256, 14)] {
            let tiles_w = hw.div_ceil(TILE);
            let tiles = tiles_w * tiles_w;
            let run = tiles + lanes::LANES;
            let x = rng.vec(channels * hw * hw);
            let input = InputPlane {
                in_h: hw,
                in_w: hw,
                pad_t: 1,
                pad_l: 1,
                tiles_w,
            };
            let output = OutputPlane {
                out_h: hw,
                out_w: hw,
                tiles_w,
            };
            let mut v = vec![0.0; POINTS * run * channels];
            let mut y = vec![0.0; hw * hw * channels];
            let mut scratch = vec![0.0; input.scratch_len(tiles_w)];
            let best = |f: &mut dyn FnMut()| best_seconds(1, 200, |_| f())[0] * 1e6;
            let forward = best(&mut || {
                for (v_c, x_c) in v.chunks_exact_mut(POINTS * run).zip(x.chunks_exact(hw * hw)) {
                    input::transform(&input, x_c, 0, tiles_w, v_c, run, &mut scratch);
                }
            });
            let plane = PlaneEpilogue {
                bias: 0.5,
                residual: None,
                activation: Activation::Relu,
            };
            let m = &v[..POINTS * channels * tiles];
            let backward = best(&mut || {
                for (k, y_k) in y.chunks_exact_mut(hw * hw).enumerate() {
                    output::transform(
                        &output,
                        &m[k * tiles..],
                        channels * tiles,
                        0,
                        tiles_w,
                        y_k,
                        &plane,
                    );
                }
            });
            println!("{channels} channels @{hw}: input transform {forward:.0} us, output transform {backward:.0} us");
        }
    }
}
