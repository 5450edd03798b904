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

/// Rows packed together: each B panel then receives `ROW_GROUP` consecutive k
/// steps (`ROW_GROUP` cache lines in a row) at a time.
///
/// A panel is `kc * NR` floats, a multiple of 4 KiB for every usual `kc`, so one
/// source row scatters into lines that all share an L1 set and sit a page apart:
/// row-at-a-time packing took every line as a conflict miss the prefetchers could
/// not foresee, and cost 29 % of a 64x3136x256 product. Eight rows at a time give
/// each panel a sequential run of eight lines, while the eight source rows are
/// still read as eight sequential streams. (In-process A/B, 1 thread, GFLOP/s:
/// GEMM 64x3136x256 69 -> 80 and 128x784x1152 72 -> 80, small-k shapes unchanged,
/// 4 and 16 rows slower than 8; convolutions 1x1 256->64 @56 67 -> 77, im2col
/// 3x3/2 128 @56 68 -> 71.)
pub(crate) const ROW_GROUP: usize = 8;

/// Writes `rows` (consecutive k steps `p0..`, each `nc` values) of a `kc`-deep
/// block into its NR-column panels, zero-filling the last panel's missing columns.
#[inline(always)]
fn scatter_rows(rows: &[&[f32]], p0: usize, nc: usize, kc: usize, dst: &mut [f32]) {
    for (q, j0) in (0..nc).step_by(NR).enumerate() {
        let w = NR.min(nc - j0);
        for (p, row) in (p0..).zip(rows) {
            let step = &mut dst[(q * kc + p) * NR..][..NR];
            let chunk = &row[j0..j0 + w];
            if let Ok(full) = <&[f32; NR]>::try_from(chunk) {
                // Fixed-size copies compile to vector moves instead of a memcpy call.
                step.copy_from_slice(full);
            } else {
                step[..w].copy_from_slice(chunk);
                step[w..].fill(0.0);
            }
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
        // Along the rows: each source row is read sequentially. Going panel by panel
        // instead reads one cache line per row with a stride of a whole row, which
        // defeats the prefetchers and made packing cost as much as the arithmetic on
        // wide matrices (im2col outputs, activations).
        for p0 in (0..kc).step_by(ROW_GROUP) {
            let rows = ROW_GROUP.min(kc - p0);
            let group: [&[f32]; ROW_GROUP] =
                std::array::from_fn(|r| if r < rows { b.row_slice(p0 + r, 0, nc) } else { &[] });
            scatter_rows(&group[..rows], p0, nc, kc, dst);
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

/// Floats of row scratch [`pack_b_rows`] needs for blocks `nc` columns wide.
pub(crate) fn row_scratch_len(nc: usize) -> usize {
    ROW_GROUP * nc
}

/// Packs rows `p0..p0 + kc`, columns `j0..j0 + nc` of `src` into `dst` as NR-column
/// panels, [`ROW_GROUP`] rows at a time through `scratch` (at least
/// [`row_scratch_len`]`(nc)` floats).
pub(crate) fn pack_b_rows(
    src: &dyn RowSource,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    scratch: &mut [f32],
    dst: &mut [f32],
) {
    let scratch = &mut scratch[..row_scratch_len(nc)];
    for g0 in (0..kc).step_by(ROW_GROUP) {
        let rows = ROW_GROUP.min(kc - g0);
        for (r, row) in scratch.chunks_exact_mut(nc).take(rows).enumerate() {
            src.fill_row(p0 + g0 + r, j0, row);
        }
        let mut filled = scratch.chunks_exact(nc);
        let group: [&[f32]; ROW_GROUP] = std::array::from_fn(|_| filled.next().unwrap_or_default());
        scatter_rows(&group[..rows], g0, nc, kc, dst);
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
        debug_assert!(i0.is_multiple_of(MR) && p0.is_multiple_of(KC));
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
        debug_assert!(j0.is_multiple_of(NR) && p0.is_multiple_of(KC));
        let padded = self.cols.div_ceil(NR) * NR;
        let start = p0 * padded + j0 * kc;
        &self.data.as_slice()[start..start + packed_b_len(kc, nc)]
    }
}
