//! A dense tensor seen as kept and reduced axis groups.
//!
//! Size-1 axes are dropped and neighbouring axes that are both kept or both reduced
//! are merged, so `[N, C, H, W]` reduced over `(2, 3)` becomes kept `[N·C]` and
//! reduced `[H·W]` with stride 1: a contiguous row per output element.

use crate::error::{Error, Result};
use crate::tensor::checked_numel;

/// A set of axes with input strides: the points of an index lattice.
#[derive(Clone, Debug, Default)]
pub struct Lattice {
    /// `(size, stride)`, outermost first.
    dims: Vec<(usize, usize)>,
}

impl Lattice {
    pub fn count(&self) -> usize {
        self.dims.iter().map(|d| d.0).product()
    }

    /// The offset of the `flat`-th point (row-major over the lattice's axes).
    pub fn offset_of(&self, mut flat: usize) -> usize {
        let mut off = 0;
        for &(size, stride) in self.dims.iter().rev() {
            off += (flat % size) * stride;
            flat /= size;
        }
        off
    }

    /// Calls `f(base + offset)` for every point, in row-major order.
    #[inline]
    pub fn visit(&self, base: usize, mut f: impl FnMut(usize)) {
        let Some((&(inner, step), outer)) = self.dims.split_last() else {
            f(base);
            return;
        };
        if inner == 0 || outer.iter().any(|d| d.0 == 0) {
            return;
        }
        let mut idx = vec![0usize; outer.len()];
        let mut off = base;
        loop {
            for i in 0..inner {
                f(off + i * step);
            }
            // Odometer over the outer axes.
            let mut d = outer.len();
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                off += outer[d].1;
                if idx[d] < outer[d].0 {
                    break;
                }
                off -= outer[d].0 * outer[d].1;
                idx[d] = 0;
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub kept: Lattice,
    pub reduced: Lattice,
    pub in_len: usize,
}

impl Layout {
    pub fn new(node: &str, shape: &[usize], reduced: &[bool]) -> Result<Layout> {
        let in_len =
            checked_numel(shape).ok_or_else(|| Error::shape(node, format!("shape {shape:?} overflows")))?;
        let mut groups: Vec<(usize, usize, bool)> = Vec::new();
        let mut stride = 1usize;
        for (&size, &red) in shape.iter().zip(reduced).rev() {
            if size != 1 {
                match groups.last_mut() {
                    Some(g) if g.2 == red => g.0 *= size,
                    _ => groups.push((size, stride, red)),
                }
            }
            stride = stride.saturating_mul(size);
        }
        groups.reverse();
        let pick = |want: bool| Lattice {
            dims: groups
                .iter()
                .filter(|g| g.2 == want)
                .map(|g| (g.0, g.1))
                .collect(),
        };
        Ok(Layout {
            kept: pick(false),
            reduced: pick(true),
            in_len,
        })
    }

    /// True when each output element reduces one contiguous run: `[outer, K]`.
    pub fn trailing(&self) -> bool {
        match self.reduced.dims.last() {
            None => self.reduced.dims.is_empty(),
            Some(&(_, stride)) => self.reduced.dims.len() == 1 && stride == 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_merge_and_visit_in_order() {
        let l = Layout::new("t", &[2, 3, 4, 5], &[false, false, true, true]).unwrap();
        assert!(l.trailing());
        assert_eq!((l.kept.count(), l.reduced.count()), (6, 20));
        assert_eq!(l.kept.offset_of(5), 100);
        let l = Layout::new("t", &[2, 3, 1, 4], &[true, false, true, true]).unwrap();
        assert!(!l.trailing());
        let mut seen = vec![];
        l.reduced.visit(1, |o| seen.push(o));
        assert_eq!(seen, vec![1, 2, 3, 4, 13, 14, 15, 16]);
        assert_eq!(l.kept.offset_of(2), 8);
        let l = Layout::new("t", &[3, 0, 2], &[false, true, false]).unwrap();
        let mut n = 0;
        l.reduced.visit(0, |_| n += 1);
        assert_eq!((n, l.reduced.count(), l.kept.count()), (0, 0, 6));
    }
}
