//! Strided matrix views: what the GEMM reads (`MatRef`) and where it writes (`OutRows`).
//!
//! Arbitrary row and column strides let one packing routine serve plain, transposed
//! and sub-matrix operands. Construction checks every element is inside the slice,
//! so later indexing cannot go out of bounds.

use super::micro::MR;
use crate::error::{Error, Result};

/// A read-only `rows x cols` matrix: element `(i, j)` is `data[off + i * rs + j * cs]`.
#[derive(Copy, Clone, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    off: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A view with explicit strides; fails if any element would lie outside `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Result<Self> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1)
                .checked_mul(rs)
                .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)));
            if !matches!(last, Some(l) if l < data.len()) {
                return Err(Error::shape(
                    "gemm",
                    format!(
                        "{rows}x{cols} matrix (strides {rs}, {cs}) does not fit in {} elements",
                        data.len()
                    ),
                ));
            }
        }
        Ok(MatRef {
            data,
            off: 0,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A dense row-major matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Rows `r0..r0 + rows`, columns `c0..c0 + cols`; the caller keeps it in range.
    pub(crate) fn sub(self, r0: usize, c0: usize, rows: usize, cols: usize) -> Self {
        debug_assert!(r0 + rows <= self.rows && c0 + cols <= self.cols);
        MatRef {
            off: self.off + r0 * self.rs + c0 * self.cs,
            rows,
            cols,
            ..self
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub(crate) fn row_stride(&self) -> usize {
        self.rs
    }

    pub(crate) fn col_stride(&self) -> usize {
        self.cs
    }

    /// The elements from `(0, 0)` on and the row stride, when columns are contiguous
    /// (what the GEMM reads in place instead of packing).
    pub(crate) fn contiguous_rows(&self) -> Option<(&'a [f32], usize)> {
        if self.cs != 1 {
            return None;
        }
        Some((self.data.get(self.off..)?, self.rs))
    }

    #[inline(always)]
    pub(crate) fn at(&self, i: usize, j: usize) -> f32 {
        self.data[self.off + i * self.rs + j * self.cs]
    }

    /// The first `len` elements of row `i` from column `j`, when columns are contiguous.
    #[inline(always)]
    pub(crate) fn row_slice(&self, i: usize, j: usize, len: usize) -> &'a [f32] {
        let start = self.off + i * self.rs + j;
        &self.data[start..start + len]
    }

    /// The first `len` elements of column `j` from row `i`, when rows are contiguous.
    #[inline(always)]
    pub(crate) fn col_slice(&self, i: usize, j: usize, len: usize) -> &'a [f32] {
        let start = self.off + i + j * self.cs;
        &self.data[start..start + len]
    }
}

/// Row access to the output matrix. Two layouts: one dense slice with a leading
/// dimension (the usual case, no allocation), or a list of row slices (one thread's
/// block of the output when the work is split: blocks of a row-major matrix are not
/// contiguous, but their row segments are disjoint slices).
pub trait OutRows {
    /// Row `i`, starting at the block's first column, at least as long as the block is wide.
    fn row(&mut self, i: usize) -> &mut [f32];

    /// Rows `i..i + MR` at once (disjoint), for micro-kernels that store a tile
    /// straight from registers, and how many of them exist: past the last row the
    /// array holds empty slices.
    fn tile_rows(&mut self, i: usize) -> ([&mut [f32]; MR], usize);
}

/// Up to `MR` items of `it` as an array padded with empty slices, and their count.
#[inline(always)]
fn take_tile<'r>(mut it: impl Iterator<Item = &'r mut [f32]>) -> ([&'r mut [f32]; MR], usize) {
    // A plain loop: `array::from_fn` became a call per tile once the macro loop
    // grew past the inliner's budget.
    let mut rows: [&mut [f32]; MR] = Default::default();
    let mut count = 0;
    for (slot, row) in rows.iter_mut().zip(&mut it) {
        *slot = row;
        count += 1;
    }
    (rows, count)
}

/// `rows` rows of `cols` elements, `ld` apart, in one slice.
pub struct Dense<'a> {
    data: &'a mut [f32],
    ld: usize,
    rows: usize,
    cols: usize,
}

impl<'a> Dense<'a> {
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Result<Self> {
        let fits = rows == 0
            || cols == 0
            || (ld >= cols
                && (rows - 1)
                    .checked_mul(ld)
                    .and_then(|v| v.checked_add(cols))
                    .is_some_and(|n| n <= data.len()));
        if !fits {
            return Err(Error::shape(
                "gemm",
                format!(
                    "output {rows}x{cols} (ld {ld}) does not fit in {} elements",
                    data.len()
                ),
            ));
        }
        Ok(Dense { data, ld, rows, cols })
    }

    /// The rows, each cut to the block width.
    pub(crate) fn rows_mut(&mut self) -> impl Iterator<Item = &mut [f32]> {
        let cols = self.cols;
        self.data
            .chunks_mut(self.ld.max(1))
            .take(self.rows)
            .map(move |r| &mut r[..cols])
    }
}

impl OutRows for Dense<'_> {
    #[inline(always)]
    fn row(&mut self, i: usize) -> &mut [f32] {
        let start = i * self.ld;
        &mut self.data[start..start + self.cols]
    }

    #[inline(always)]
    fn tile_rows(&mut self, i: usize) -> ([&mut [f32]; MR], usize) {
        let (cols, rows) = (self.cols, self.rows.saturating_sub(i));
        let start = (i * self.ld).min(self.data.len());
        let rows = self.data[start..].chunks_mut(self.ld.max(1)).take(rows);
        take_tile(rows.map(move |r| {
            let n = cols.min(r.len());
            &mut r[..n]
        }))
    }
}

impl OutRows for Vec<&mut [f32]> {
    #[inline(always)]
    fn row(&mut self, i: usize) -> &mut [f32] {
        self[i]
    }

    #[inline(always)]
    fn tile_rows(&mut self, i: usize) -> ([&mut [f32]; MR], usize) {
        take_tile(self.iter_mut().skip(i).map(|r| &mut **r))
    }
}
