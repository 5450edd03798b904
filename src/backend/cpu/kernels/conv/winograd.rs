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
//! 1. input transform, one task per input channel. The channel's block is split
//!    into 4x4 *phase planes* (padded position (4i + s, 4j + r) goes to plane
//!    (s, r) at (i, j)), which makes each of the 36 inputs of every tile a
//!    contiguous run over the tiles, so both 1-D transforms are long vector loops;
//! 2. the 36 independent GEMMs against `U_ξ`, transformed and packed at prepare;
//! 3. output transform, one task per output channel, then bias, residual and
//!    activation on each finished output row.
//!
//! The transformed weights take 4x the memory of the originals (36 vs 9 values per
//! channel pair). The error is a few units in the 6th digit (measured in the tests
//! against an f64 direct convolution), far inside the 1e-4 parity budget.

use rayon::prelude::*;

use super::super::gemm::buffers::{with_scratch, Slot};
use super::super::gemm::{gemm, Activation, Epilogue, LhsSource, MatRef, PackedA, RhsSource};
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
/// Tiles per strip of the transforms: their temporaries (36 rows of this) stay in L1.
const STRIP_TILES: usize = 64;

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
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    pad_t: usize,
    pad_l: usize,
    tiles_h: usize,
    tiles_w: usize,
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
            in_h: geom.input[0],
            in_w: geom.input[1],
            out_h,
            out_w,
            pad_t: geom.pads_begin[0],
            pad_l: geom.pads_begin[1],
            tiles_h,
            tiles_w,
            block_rows: (BLOCK_FLOATS / per_row).clamp(1, tiles_h),
            u,
        })
    }

    /// One image: `x` is `[c_in, in_h, in_w]`, `y` is `[c_out, out_h, out_w]`.
    pub fn run(&self, x: &[f32], y: &mut [f32], epilogue: &ImageEpilogue<'_>) -> Result<()> {
        let (in_len, out_len) = (self.in_h * self.in_w, self.out_h * self.out_w);
        if x.len() != self.c_in * in_len || y.len() != self.c_out * out_len {
            return Err(Error::shape(
                "Conv",
                "Winograd input or output has the wrong size",
            ));
        }
        let block_tiles = self.block_rows * self.tiles_w;
        with_scratch(Slot::Transformed, POINTS * self.c_in * block_tiles, |v| {
            with_scratch(Slot::Products, POINTS * self.c_out * block_tiles, |m| {
                for ty0 in (0..self.tiles_h).step_by(self.block_rows) {
                    let rows = self.block_rows.min(self.tiles_h - ty0);
                    let tiles = rows * self.tiles_w;
                    let v = &mut v[..POINTS * self.c_in * tiles];
                    let m = &mut m[..POINTS * self.c_out * tiles];
                    v.par_chunks_mut(POINTS * tiles)
                        .zip(x.par_chunks(in_len))
                        .for_each(|(v_c, x_c)| self.input_channel(x_c, ty0, rows, v_c));
                    m.par_chunks_mut(self.c_out * tiles)
                        .enumerate()
                        .try_for_each(|(xi, m_xi)| {
                            let v_xi = MatRef::new(&v[xi * tiles..], self.c_in, tiles, POINTS * tiles, 1)?;
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
                        self.output_channel(m, k, ty0, rows, y_k, &plane);
                    });
                }
                Ok(())
            })
        })
    }

    /// Transforms tile rows `ty0..ty0 + rows` of one input channel into `v`
    /// (`[36][rows * tiles_w]`).
    fn input_channel(&self, x: &[f32], ty0: usize, rows: usize, v: &mut [f32]) {
        let (qh, qw) = (rows + 1, self.tiles_w + 1);
        let plane_len = qh * qw;
        let strip_rows = (STRIP_TILES / qw).max(1);
        let strip_len = strip_rows * qw;
        let padded_row = TILE * qw;
        let scratch = TILE * TILE * plane_len + padded_row + 2 * POINTS * strip_len;
        with_scratch(Slot::Row, scratch, |s| {
            let (phases, rest) = s.split_at_mut(TILE * TILE * plane_len);
            let (row_buf, rest) = rest.split_at_mut(padded_row);
            let (tmp, out) = rest.split_at_mut(POINTS * strip_len);
            self.split_phases(x, ty0, qh, qw, row_buf, phases);
            // Flat tile index t = i * qw + j over the phase grid; j = tiles_w is a
            // dummy column (its results are dropped), and the very last one is
            // skipped because its right neighbour would be outside the planes.
            let last = rows * qw - 1;
            for r0 in (0..rows).step_by(strip_rows) {
                let start = r0 * qw;
                let n = strip_len.min(last - start);
                // Tile t's input (row j, column l) is phase plane (j % 4, l % 4) at
                // t + (j / 4) * qw + l / 4.
                let inputs = |j: usize, l: usize| {
                    let plane = (j % TILE) * TILE + l % TILE;
                    &phases[plane * plane_len + start + (j / TILE) * qw + l / TILE..][..n]
                };
                input_strip(&inputs, n, tmp, out, strip_len);
                for r in r0..(r0 + strip_rows).min(rows) {
                    for xi in 0..POINTS {
                        let src = &out[xi * strip_len + (r - r0) * qw..][..self.tiles_w];
                        v[xi * rows * self.tiles_w + r * self.tiles_w..][..self.tiles_w].copy_from_slice(src);
                    }
                }
            }
        });
    }

    /// Fills the 16 phase planes (`qh x qw` each) of the zero-padded block of
    /// input rows `4 * ty0 - pad_t ..`.
    fn split_phases(
        &self,
        x: &[f32],
        ty0: usize,
        qh: usize,
        qw: usize,
        row_buf: &mut [f32],
        phases: &mut [f32],
    ) {
        let plane_len = qh * qw;
        for i in 0..qh {
            for s in 0..TILE {
                let y = TILE * (ty0 + i) + s;
                let src_row = y.checked_sub(self.pad_t).filter(|&r| r < self.in_h);
                row_buf.fill(0.0);
                if let Some(r) = src_row {
                    // The padded row: pad_l zeros, the input row, zeros to the end.
                    let len = self.in_w.min(row_buf.len().saturating_sub(self.pad_l));
                    row_buf[self.pad_l..][..len].copy_from_slice(&x[r * self.in_w..][..len]);
                }
                for r in 0..TILE {
                    let dst = &mut phases[(s * TILE + r) * plane_len + i * qw..][..qw];
                    dst.iter_mut()
                        .zip(row_buf[r..].iter().step_by(TILE))
                        .for_each(|(d, &v)| *d = v);
                }
            }
        }
    }

    /// Output transform of channel `k` for tile rows `ty0..ty0 + rows`, from the
    /// products `m` (`[36][c_out][rows * tiles_w]`), into the channel's plane `y`.
    fn output_channel(
        &self,
        m: &[f32],
        k: usize,
        ty0: usize,
        rows: usize,
        y: &mut [f32],
        e: &PlaneEpilogue<'_>,
    ) {
        let tiles = rows * self.tiles_w;
        let strip_rows = (STRIP_TILES / self.tiles_w).max(1);
        let strip_len = strip_rows * self.tiles_w;
        with_scratch(Slot::Row, (24 + 16) * strip_len, |s| {
            let (tmp, out) = s.split_at_mut(24 * strip_len);
            for r0 in (0..rows).step_by(strip_rows) {
                let r1 = (r0 + strip_rows).min(rows);
                let (t0, n) = (r0 * self.tiles_w, (r1 - r0) * self.tiles_w);
                let inputs = |xi: usize| &m[(xi * self.c_out + k) * tiles + t0..][..n];
                output_strip(&inputs, n, tmp, out, strip_len);
                // Scatter the 4x4 tiles into the plane's rows, then finish each row.
                for r in r0..r1 {
                    for p in 0..TILE {
                        let oy = TILE * (ty0 + r) + p;
                        if oy >= self.out_h {
                            break;
                        }
                        let row = &mut y[oy * self.out_w..][..self.out_w];
                        for q in 0..TILE {
                            let src =
                                &out[(p * TILE + q) * strip_len + (r - r0) * self.tiles_w..][..self.tiles_w];
                            row.iter_mut()
                                .skip(q)
                                .step_by(TILE)
                                .zip(src)
                                .for_each(|(d, &v)| *d = v);
                        }
                        if e.bias != 0.0 {
                            row.iter_mut().for_each(|d| *d += e.bias);
                        }
                        e.finish_row(row, oy * self.out_w);
                    }
                }
            }
        });
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

/// Input transform of `n` tiles: `out[ξ][t] = (Bᵀ d_t B)[ξ]`, with `inputs(j, l)`
/// the run of input values at row `j`, column `l` of each tile. `tmp` and `out`
/// hold 36 rows of `stride` floats.
fn input_strip<'p>(
    inputs: &dyn Fn(usize, usize) -> &'p [f32],
    n: usize,
    tmp: &mut [f32],
    out: &mut [f32],
    stride: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { input_strip_avx2(inputs, n, tmp, out, stride) };
        return;
    }
    input_strip_body(inputs, n, tmp, out, stride);
}

/// [`input_strip_body`] compiled for AVX2: the transforms run 8 tiles wide.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn input_strip_avx2<'p>(
    inputs: &dyn Fn(usize, usize) -> &'p [f32],
    n: usize,
    tmp: &mut [f32],
    out: &mut [f32],
    stride: usize,
) {
    input_strip_body(inputs, n, tmp, out, stride)
}

#[inline(always)]
fn input_strip_body<'p>(
    inputs: &dyn Fn(usize, usize) -> &'p [f32],
    n: usize,
    tmp: &mut [f32],
    out: &mut [f32],
    stride: usize,
) {
    let d = |j: usize, l: usize| &inputs(j, l)[..n];
    // Columns first: tmp[l][i] = Σ_j Bᵀ[i][j] d[j][l].
    for l in 0..SPAN {
        let rows = six_rows(tmp, l * SPAN * stride, stride, n);
        bt_1d([d(0, l), d(1, l), d(2, l), d(3, l), d(4, l), d(5, l)], rows);
    }
    // Then rows: out[i][m] = Σ_l Bᵀ[m][l] tmp[l][i].
    for i in 0..SPAN {
        let src = |l: usize| &tmp[(l * SPAN + i) * stride..][..n];
        let srcs = [src(0), src(1), src(2), src(3), src(4), src(5)];
        bt_1d(srcs, six_rows(out, i * SPAN * stride, stride, n));
    }
}

/// Output transform of `n` tiles: `out[p][q][t] = (Aᵀ m_t A)[p][q]`, with
/// `inputs(ξ)` the products of transformed position ξ. `tmp` holds 24 rows and `out`
/// 16 rows of `stride` floats.
fn output_strip<'m>(
    inputs: &dyn Fn(usize) -> &'m [f32],
    n: usize,
    tmp: &mut [f32],
    out: &mut [f32],
    stride: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, checked just above.
        unsafe { output_strip_avx2(inputs, n, tmp, out, stride) };
        return;
    }
    output_strip_body(inputs, n, tmp, out, stride);
}

/// [`output_strip_body`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_strip_avx2<'m>(
    inputs: &dyn Fn(usize) -> &'m [f32],
    n: usize,
    tmp: &mut [f32],
    out: &mut [f32],
    stride: usize,
) {
    output_strip_body(inputs, n, tmp, out, stride)
}

#[inline(always)]
fn output_strip_body<'m>(
    inputs: &dyn Fn(usize) -> &'m [f32],
    n: usize,
    tmp: &mut [f32],
    out: &mut [f32],
    stride: usize,
) {
    // Rows first: tmp[a][q] = Σ_b Aᵀ[q][b] m[a][b].
    for a in 0..SPAN {
        let m = |b: usize| inputs(a * SPAN + b);
        let rows = four_rows(tmp, a * TILE * stride, stride, n);
        at_1d([m(0), m(1), m(2), m(3), m(4), m(5)], rows);
    }
    // Then columns: out[p][q] = Σ_a Aᵀ[p][a] tmp[a][q].
    for q in 0..TILE {
        let src = |a: usize| &tmp[(a * TILE + q) * stride..][..n];
        let srcs = [src(0), src(1), src(2), src(3), src(4), src(5)];
        at_1d(srcs, four_rows(out, q * stride, TILE * stride, n));
    }
}

/// Six disjoint `n`-float rows of `buf`, at `start + o * stride`.
fn six_rows(buf: &mut [f32], start: usize, stride: usize, n: usize) -> [&mut [f32]; 6] {
    let rest = &mut buf[start..];
    let (r0, rest) = rest.split_at_mut(stride);
    let (r1, rest) = rest.split_at_mut(stride);
    let (r2, rest) = rest.split_at_mut(stride);
    let (r3, rest) = rest.split_at_mut(stride);
    let (r4, r5) = rest.split_at_mut(stride);
    [
        &mut r0[..n],
        &mut r1[..n],
        &mut r2[..n],
        &mut r3[..n],
        &mut r4[..n],
        &mut r5[..n],
    ]
}

/// Four disjoint `n`-float rows of `buf`, at `start + o * stride`.
fn four_rows(buf: &mut [f32], start: usize, stride: usize, n: usize) -> [&mut [f32]; 4] {
    let rest = &mut buf[start..];
    let (r0, rest) = rest.split_at_mut(stride);
    let (r1, rest) = rest.split_at_mut(stride);
    let (r2, r3) = rest.split_at_mut(stride);
    [&mut r0[..n], &mut r1[..n], &mut r2[..n], &mut r3[..n]]
}

/// `r = Bᵀ d`, elementwise over runs:
/// ```text
/// Bᵀ = [ 4  0 -5  0  1  0 ]
///      [ 0 -4 -4  1  1  0 ]
///      [ 0  4 -4 -1  1  0 ]
///      [ 0 -2 -1  2  1  0 ]
///      [ 0  2 -1 -2  1  0 ]
///      [ 0  4  0 -5  0  1 ]
/// ```
#[inline(always)]
fn bt_1d(d: [&[f32]; 6], r: [&mut [f32]; 6]) {
    let [d0, d1, d2, d3, d4, d5] = d;
    let [r0, r1, r2, r3, r4, r5] = r;
    let n = r0.len();
    let (d0, d1, d2, d3, d4, d5) = (&d0[..n], &d1[..n], &d2[..n], &d3[..n], &d4[..n], &d5[..n]);
    let (r1, r2, r3, r4, r5) = (
        &mut r1[..n],
        &mut r2[..n],
        &mut r3[..n],
        &mut r4[..n],
        &mut r5[..n],
    );
    for t in 0..n {
        let (a, b, c, e, f, g) = (d0[t], d1[t], d2[t], d3[t], d4[t], d5[t]);
        r0[t] = 4.0 * a - 5.0 * c + f;
        r1[t] = (e + f) - 4.0 * (b + c);
        r2[t] = (f - e) + 4.0 * (b - c);
        r3[t] = (f - c) + 2.0 * (e - b);
        r4[t] = (f - c) - 2.0 * (e - b);
        r5[t] = 4.0 * b - 5.0 * e + g;
    }
}

/// `o = Aᵀ m`, elementwise over runs:
/// ```text
/// Aᵀ = [ 1  1  1  1  1  0 ]
///      [ 0  1 -1  2 -2  0 ]
///      [ 0  1  1  4  4  0 ]
///      [ 0  1 -1  8 -8  1 ]
/// ```
#[inline(always)]
fn at_1d(m: [&[f32]; 6], o: [&mut [f32]; 4]) {
    let [m0, m1, m2, m3, m4, m5] = m;
    let [o0, o1, o2, o3] = o;
    let n = o0.len();
    let (m0, m1, m2, m3, m4, m5) = (&m0[..n], &m1[..n], &m2[..n], &m3[..n], &m4[..n], &m5[..n]);
    let (o1, o2, o3) = (&mut o1[..n], &mut o2[..n], &mut o3[..n]);
    for t in 0..n {
        let (sum12, dif12) = (m1[t] + m2[t], m1[t] - m2[t]);
        let (sum34, dif34) = (m3[t] + m4[t], m3[t] - m4[t]);
        o0[t] = m0[t] + sum12 + sum34;
        o1[t] = dif12 + 2.0 * dif34;
        o2[t] = sum12 + 4.0 * sum34;
        o3[t] = dif12 + 8.0 * dif34 + m5[t];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1-D identity the kernel rests on: `Aᵀ [(G g) ⊙ (Bᵀ d)]` is the 4-output
    /// cross-correlation of `d` (6 values) with `g` (3 taps).
    #[test]
    fn one_dimensional_identity() {
        let d = [0.3f32, -1.2, 2.5, 0.7, -0.4, 1.9];
        let g = [0.5f64, -0.25, 1.5];
        let gd: Vec<f64> = G.iter().map(|row| (0..3).map(|i| row[i] * g[i]).sum()).collect();
        let mut bd = [[0.0f32; 1]; 6];
        {
            let [b0, b1, b2, b3, b4, b5] = &mut bd;
            let runs = [&d[0..1], &d[1..2], &d[2..3], &d[3..4], &d[4..5], &d[5..6]];
            bt_1d(runs, [b0, b1, b2, b3, b4, b5]);
        }
        let prod: Vec<f32> = (0..6).map(|i| (gd[i] * bd[i][0] as f64) as f32).collect();
        let mut y = [[0.0f32; 1]; 4];
        {
            let [y0, y1, y2, y3] = &mut y;
            let runs = [
                &prod[0..1],
                &prod[1..2],
                &prod[2..3],
                &prod[3..4],
                &prod[4..5],
                &prod[5..6],
            ];
            at_1d(runs, [y0, y1, y2, y3]);
        }
        for (i, yi) in y.iter().enumerate() {
            let want: f64 = (0..3).map(|k| d[i + k] as f64 * g[k]).sum();
            assert!(
                (yi[0] as f64 - want).abs() < 1e-5,
                "output {i}: {} vs {want}",
                yi[0]
            );
        }
    }
}
