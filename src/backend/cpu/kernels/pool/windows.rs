//! Pooling windows, precomputed per axis at preparation.
//!
//! A window is a product of per-axis index ranges, so for each axis and output
//! index we store where the valid (non-padding) taps start, how many there are, and
//! how many taps lie inside the *padded* input (the `count_include_pad` divisor,
//! which with `ceil_mode` excludes the part of a window hanging past the padding).

use crate::error::{Error, Result};
use crate::ir::window::Geometry;

/// Spatial ranks above this are refused: it bounds the stack index arrays.
pub(crate) const MAX_RANK: usize = 8;

struct Axis {
    /// Input index of the first valid tap, per output index.
    first: Vec<usize>,
    /// Number of valid taps, per output index.
    valid: Vec<usize>,
    /// Number of taps inside the padded input, per output index.
    padded: Vec<usize>,
    /// Input distance between taps (the dilation).
    step: usize,
}

impl Axis {
    #[allow(clippy::too_many_arguments)]
    fn new(
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        pb: usize,
        pe: usize,
    ) -> Axis {
        let (input, kernel, d) = (input as isize, kernel as isize, dilation as isize);
        let mut axis = Axis {
            first: vec![],
            valid: vec![],
            padded: vec![],
            step: dilation,
        };
        for o in 0..output {
            let start = (o * stride) as isize - pb as isize;
            // Taps k with 0 <= start + k*d < input, and with start + k*d < input + pe.
            let lo = if start >= 0 { 0 } else { (-start + d - 1) / d };
            let below = |limit: isize| {
                if limit - start <= 0 {
                    0
                } else {
                    ((limit - start + d - 1) / d).min(kernel)
                }
            };
            let hi = below(input).max(lo);
            axis.first.push((start + lo * d).max(0) as usize);
            axis.valid.push((hi - lo) as usize);
            axis.padded.push(below(input + pe as isize) as usize);
        }
        axis
    }
}

/// The per-axis tables of a 1-D or 2-D pooling geometry (see [`Windows::planar`]).
pub(crate) struct Planar<'w> {
    pub rows_first: &'w [usize],
    pub rows_valid: &'w [usize],
    pub rows_padded: &'w [usize],
    pub row_step: usize,
    pub cols_first: &'w [usize],
    pub cols_valid: &'w [usize],
    pub cols_padded: &'w [usize],
    pub col_step: usize,
    pub in_width: usize,
}

/// All windows of one pooling geometry, for any spatial rank (1-D is handled as 2-D
/// with a leading axis of size 1, so the two innermost axes are always plain loops).
pub(crate) struct Windows {
    axes: Vec<Axis>,
    out_dims: Vec<usize>,
    in_strides: Vec<usize>,
}

impl Windows {
    pub fn new(g: &Geometry) -> Result<Windows> {
        let rank = g.rank();
        if rank == 0 || rank > MAX_RANK {
            return Err(Error::shape(
                "pool",
                format!("{rank} spatial dims are not supported"),
            ));
        }
        let mut axes = Vec::with_capacity(rank + 1);
        let (mut out_dims, mut in_dims) = (Vec::new(), Vec::new());
        if rank == 1 {
            axes.push(Axis::new(1, 1, 1, 1, 1, 0, 0));
            out_dims.push(1);
            in_dims.push(1);
        }
        for i in 0..rank {
            let (pb, pe) = (g.pads_begin[i], g.pads_end[i]);
            axes.push(Axis::new(
                g.input[i],
                g.output[i],
                g.kernel[i],
                g.strides[i],
                g.dilations[i],
                pb,
                pe,
            ));
            out_dims.push(g.output[i]);
            in_dims.push(g.input[i]);
        }
        let mut in_strides = vec![1; in_dims.len()];
        for i in (0..in_dims.len() - 1).rev() {
            in_strides[i] = in_strides[i + 1] * in_dims[i + 1];
        }
        Ok(Windows {
            axes,
            out_dims,
            in_strides,
        })
    }

    /// Calls `f(output_flat_index, output_multi_index)` for every output position.
    pub fn for_each_output(&self, mut f: impl FnMut(usize, &[usize])) {
        let rank = self.out_dims.len();
        let total: usize = self.out_dims.iter().product();
        let mut o = [0usize; MAX_RANK + 1];
        for flat in 0..total {
            f(flat, &o[..rank]);
            for axis in (0..rank).rev() {
                o[axis] += 1;
                if o[axis] < self.out_dims[axis] {
                    break;
                }
                o[axis] = 0;
            }
        }
    }

    /// Calls `f(input_flat_index)` for each non-padding element of the window of
    /// output position `o`, in row-major order.
    #[inline]
    pub fn visit(&self, o: &[usize], f: &mut impl FnMut(usize)) {
        self.visit_from(0, 0, o, f);
    }

    fn visit_from(&self, axis: usize, base: usize, o: &[usize], f: &mut impl FnMut(usize)) {
        let a = &self.axes[axis];
        let (first, count) = (a.first[o[axis]], a.valid[o[axis]]);
        if axis + 2 < self.axes.len() {
            for j in 0..count {
                let idx = base + (first + j * a.step) * self.in_strides[axis];
                self.visit_from(axis + 1, idx, o, f);
            }
            return;
        }
        // The two innermost axes: a plain double loop.
        let b = &self.axes[axis + 1];
        let (first_b, count_b) = (b.first[o[axis + 1]], b.valid[o[axis + 1]]);
        let row_stride = self.in_strides[axis];
        for j in 0..count {
            let row = base + (first + j * a.step) * row_stride + first_b;
            for i in 0..count_b {
                f(row + i * b.step);
            }
        }
    }

    /// For 1-D and 2-D windows: per axis (rows, then columns), the valid taps of
    /// each output index as `(first, count)`, their step, and the input row length.
    /// `None` for higher ranks.
    pub fn planar(&self) -> Option<Planar<'_>> {
        let [rows, cols] = self.axes.as_slice() else {
            return None;
        };
        Some(Planar {
            rows_first: &rows.first,
            rows_valid: &rows.valid,
            rows_padded: &rows.padded,
            row_step: rows.step,
            cols_first: &cols.first,
            cols_valid: &cols.valid,
            cols_padded: &cols.padded,
            col_step: cols.step,
            in_width: self.in_strides[0],
        })
    }

    /// Number of non-padding elements in the window of `o`.
    pub fn valid_count(&self, o: &[usize]) -> usize {
        self.axes.iter().zip(o).map(|(a, &i)| a.valid[i]).product()
    }

    /// Number of window elements inside the padded input (`count_include_pad`).
    pub fn padded_count(&self, o: &[usize]) -> usize {
        self.axes.iter().zip(o).map(|(a, &i)| a.padded[i]).product()
    }
}
