//! Packing operands into micro-panels, and whole matrices packed ahead of time.
//!
//! A panels: `MR` rows interleaved per k step (`[a(0,p) .. a(MR-1,p)]` for each p).
//! B panels: `NR` columns per k step. Ragged edges are zero-filled so the
//! micro-kernel always runs full tiles; the store step clips them.
//! Packing turns any stride pattern into the unit-stride stream the micro-kernel
//! wants, and it is done once per cache block, not once per tile.

use super::buffers::AlignedVec;
use super::mat::MatRef;
use super::micro::{MR, NR};
use super::KC;

/// Floats needed to pack an `rows x k` block of A.
pub(crate) fn packed_a_len(rows: usize, k: usize) -> usize {
    rows.div_ceil(MR) * MR * k
}

/// Floats needed to pack a `k x cols` block of B.
pub(crate) fn packed_b_len(k: usize, cols: usize) -> usize {
    cols.div_ceil(NR) * NR * k
}

/// Packs all of `a` (`mc x kc`) into `dst` as MR-row panels.
pub(crate) fn pack_a(a: MatRef<'_>, dst: &mut [f32]) {
    let (mc, kc) = (a.rows(), a.cols());
    if kc == 0 {
        return;
    }
    for (ip, panel) in dst.chunks_exact_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
        let i0 = ip * MR;
        let m = MR.min(mc - i0);
        if a.row_stride() == 1 {
            for (p, step) in panel.chunks_exact_mut(MR).enumerate() {
                let src = a.col_slice(i0, p, m);
                if let Ok(full) = <&[f32; MR]>::try_from(src) {
                    // A fixed-size copy is a few moves; a `copy_from_slice` of
                    // unknown length is a memcpy call per k step.
                    step.copy_from_slice(full);
                } else {
                    step[..m].copy_from_slice(src);
                    step[m..].fill(0.0);
                }
            }
        } else {
            for r in 0..MR {
                if r >= m {
                    panel.iter_mut().skip(r).step_by(MR).for_each(|d| *d = 0.0);
                } else if a.col_stride() == 1 {
                    let src = a.row_slice(i0 + r, 0, kc);
                    panel
                        .iter_mut()
                        .skip(r)
                        .step_by(MR)
                        .zip(src)
                        .for_each(|(d, &s)| *d = s);
                } else {
                    let dst = panel.iter_mut().skip(r).step_by(MR);
                    dst.enumerate().for_each(|(p, d)| *d = a.at(i0 + r, p));
                }
            }
        }
    }
}

/// Writes row `p` (`nc` values) of a `kc`-deep block into its NR-column panels,
/// zero-filling the last panel's missing columns.
#[inline(always)]
fn scatter_row(row: &[f32], p: usize, kc: usize, dst: &mut [f32]) {
    for (q, chunk) in row.chunks(NR).enumerate() {
        let step = &mut dst[(q * kc + p) * NR..][..NR];
        if let Ok(full) = <&[f32; NR]>::try_from(chunk) {
            // Fixed-size copies compile to two vector moves instead of a memcpy call.
            step.copy_from_slice(full);
        } else {
            step[..chunk.len()].copy_from_slice(chunk);
            step[chunk.len()..].fill(0.0);
        }
    }
}

/// Packs all of `b` (`kc x nc`) into `dst` as NR-column panels.
pub(crate) fn pack_b(b: MatRef<'_>, dst: &mut [f32]) {
    let (kc, nc) = (b.rows(), b.cols());
    if kc == 0 {
        return;
    }
    if b.col_stride() == 1 {
        // Row by row: each source row is read sequentially. Going panel by panel
        // instead reads one cache line per row with a stride of a whole row, which
        // defeats the prefetchers and made packing cost as much as the arithmetic on
        // wide matrices (im2col outputs, activations).
        for p in 0..kc {
            scatter_row(b.row_slice(p, 0, nc), p, kc, dst);
        }
        return;
    }
    for (jp, panel) in dst.chunks_exact_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
        let j0 = jp * NR;
        let n = NR.min(nc - j0);
        for c in 0..NR {
            if c >= n {
                panel.iter_mut().skip(c).step_by(NR).for_each(|d| *d = 0.0);
            } else if b.row_stride() == 1 {
                let src = b.col_slice(0, j0 + c, kc);
                panel
                    .iter_mut()
                    .skip(c)
                    .step_by(NR)
                    .zip(src)
                    .for_each(|(d, &s)| *d = s);
            } else {
                let dst = panel.iter_mut().skip(c).step_by(NR);
                dst.enumerate().for_each(|(p, d)| *d = b.at(p, j0 + c));
            }
        }
    }
}

/// A right operand produced row by row on demand instead of read from memory:
/// im2col packs straight into B panels this way, with no column matrix in between.
pub trait RowSource: Sync {
    /// `(rows, cols)` of the matrix.
    fn dims(&self) -> (usize, usize);
    /// Writes row `p`, columns `j0..j0 + dst.len()`, into `dst`.
    fn fill_row(&self, p: usize, j0: usize, dst: &mut [f32]);
}

/// Packs rows `p0..p0 + kc`, columns `j0..j0 + nc` of `src` into `dst` as NR-column
/// panels, one row at a time through `row` (at least `nc` floats of scratch).
pub(crate) fn pack_b_rows(
    src: &dyn RowSource,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    row: &mut [f32],
    dst: &mut [f32],
) {
    let row = &mut row[..nc];
    for p in 0..kc {
        src.fill_row(p0 + p, j0, row);
        scatter_row(row, p, kc, dst);
    }
}

/// A whole A matrix packed once (constant weights): for each KC-deep slice of k,
/// all of its MR-row panels. Any MR-aligned row block of a slice is contiguous.
#[derive(Clone, Debug)]
pub struct PackedA {
    data: AlignedVec,
    rows: usize,
    k: usize,
}

impl PackedA {
    pub fn new(a: MatRef<'_>) -> PackedA {
        let (rows, k) = (a.rows(), a.cols());
        let padded = rows.div_ceil(MR) * MR;
        let mut data = AlignedVec::zeros(padded * k);
        let dst = data.as_mut_slice();
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            pack_a(a.sub(0, p0, rows, kc), &mut dst[p0 * padded..(p0 + kc) * padded]);
        }
        PackedA { data, rows, k }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    /// Panels of rows `i0..i0 + mc` (`i0` a multiple of MR) for k-slice `p0..p0 + kc`.
    pub(crate) fn block(&self, i0: usize, mc: usize, p0: usize, kc: usize) -> &[f32] {
        debug_assert!(i0 % MR == 0 && p0 % KC == 0);
        let padded = self.rows.div_ceil(MR) * MR;
        let start = p0 * padded + i0 * kc;
        &self.data.as_slice()[start..start + packed_a_len(mc, kc)]
    }
}

/// A whole B matrix packed once (constant weights of a fully connected layer).
#[derive(Clone, Debug)]
pub struct PackedB {
    data: AlignedVec,
    k: usize,
    cols: usize,
}

impl PackedB {
    pub fn new(b: MatRef<'_>) -> PackedB {
        let (k, cols) = (b.rows(), b.cols());
        let padded = cols.div_ceil(NR) * NR;
        let mut data = AlignedVec::zeros(padded * k);
        let dst = data.as_mut_slice();
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            pack_b(b.sub(p0, 0, kc, cols), &mut dst[p0 * padded..(p0 + kc) * padded]);
        }
        PackedB { data, k, cols }
    }

    pub fn rows(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Panels of columns `j0..j0 + nc` (`j0` a multiple of NR) for k-slice `p0..p0 + kc`.
    pub(crate) fn block(&self, j0: usize, nc: usize, p0: usize, kc: usize) -> &[f32] {
        debug_assert!(j0 % NR == 0 && p0 % KC == 0);
        let padded = self.cols.div_ceil(NR) * NR;
        let start = p0 * padded + j0 * kc;
        &self.data.as_slice()[start..start + packed_b_len(kc, nc)]
    }
}
