//! im2col and col2im over any number of spatial axes, one panel of positions at a time.
//!
//! Both walk a panel of consecutive positions of a "source" grid and map each to a
//! "target" grid position `t_d = o_d * stride_d + offset_d` (offset = kernel tap
//! times dilation minus begin padding). For im2col the source is the output grid
//! and the target the input (gather, zero outside); for col2im the source is the
//! input grid and the target the output (scatter-add, skip outside). Positions are
//! handled in runs along the last axis, so the inner loops are plain slices.

use std::ops::Range;

/// Source grid -> target grid mapping for one kernel tap.
pub(crate) struct Mapping<'g> {
    pub source: &'g [usize],
    pub target: &'g [usize],
    pub strides: &'g [usize],
    /// `tap_d * dilation_d - pad_begin_d` per axis (see [`tap_offsets`]).
    pub offsets: &'g [isize],
}

/// For every kernel tap (flat index over `kernel`, row-major), the per-axis offset
/// `tap_d * dilation_d - pad_begin_d`, flattened: `rank` entries per tap. Computed
/// once at preparation so the run loops do no index arithmetic per tap.
pub(crate) fn tap_offsets(kernel: &[usize], dilations: &[usize], pads_begin: &[isize]) -> Vec<isize> {
    let rank = kernel.len();
    let taps: usize = kernel.iter().product();
    let mut out = vec![0isize; taps * rank];
    for (tap, offsets) in out.chunks_exact_mut(rank.max(1)).take(taps).enumerate() {
        let mut rest = tap;
        for axis in (0..rank).rev() {
            let k = rest % kernel[axis];
            rest /= kernel[axis];
            offsets[axis] = (k * dilations[axis]) as isize - pads_begin[axis];
        }
    }
    out
}

/// A stretch of panel positions: all outside the target, or inside with target flat
/// index `first + i * step` for the i-th position.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Segment {
    Outside,
    Inside { first: usize, step: usize },
}

/// Calls `f(panel_range, segment)` for positions `p0..p0 + len` of the source grid,
/// covering the panel exactly once, in order.
pub(crate) fn for_each_segment(
    map: &Mapping<'_>,
    p0: usize,
    len: usize,
    mut f: impl FnMut(Range<usize>, Segment),
) {
    let rank = map.source.len();
    if rank == 0 || len == 0 {
        return;
    }
    let last = rank - 1;
    let width = map.source[last];
    let (t_len, stride, off) = (
        map.target[last] as isize,
        map.strides[last] as isize,
        map.offsets[last],
    );
    let mut done = 0;
    while done < len {
        let pos = p0 + done;
        let o0 = pos % width;
        let run = (width - o0).min(len - done);
        let panel = done..done + run;
        done += run;
        let Some(base) = outer_base(map, pos / width) else {
            f(panel, Segment::Outside);
            continue;
        };
        // Positions o of this run whose target t = o * stride + off is in [0, t_len).
        let lo = if off >= 0 { 0 } else { (-off + stride - 1) / stride };
        let hi = if t_len - off <= 0 {
            0
        } else {
            (t_len - off + stride - 1) / stride
        };
        let (start, end) = (o0 as isize, (o0 + run) as isize);
        let (lo, hi) = (
            lo.clamp(start, end),
            hi.clamp(start, end).max(lo.clamp(start, end)),
        );
        let (lo_i, hi_i) = (
            panel.start + (lo - start) as usize,
            panel.start + (hi - start) as usize,
        );
        if lo_i > panel.start {
            f(panel.start..lo_i, Segment::Outside);
        }
        if hi_i > lo_i {
            let first = base + (lo * stride + off) as usize;
            f(
                lo_i..hi_i,
                Segment::Inside {
                    first,
                    step: stride as usize,
                },
            );
        }
        if panel.end > hi_i {
            f(hi_i..panel.end, Segment::Outside);
        }
    }
}

/// Flat target offset of the start of the last-axis row that source row `outer`
/// maps to, or `None` if it falls outside the target on some outer axis.
fn outer_base(map: &Mapping<'_>, mut outer: usize) -> Option<usize> {
    let last = map.source.len() - 1;
    let mut base = 0usize;
    let mut target_stride = map.target[last];
    for axis in (0..last).rev() {
        let o = outer % map.source[axis];
        outer /= map.source[axis];
        let t = o as isize * map.strides[axis] as isize + map.offsets[axis];
        if t < 0 || t >= map.target[axis] as isize {
            return None;
        }
        base += t as usize * target_stride;
        target_stride *= map.target[axis];
    }
    Some(base)
}

/// One im2col row: `dst[i] = x[target(p0 + i)]`, 0 where the window is in the padding.
pub(crate) fn gather_row(map: &Mapping<'_>, x: &[f32], p0: usize, dst: &mut [f32]) {
    let len = dst.len();
    for_each_segment(map, p0, len, |range, seg| {
        read_segment(seg, 0, x, &mut dst[range])
    });
}

/// Fills `out` from positions `skip..` of segment `seg` of `x`.
#[inline(always)]
fn read_segment(seg: Segment, skip: usize, x: &[f32], out: &mut [f32]) {
    match seg {
        Segment::Outside => out.fill(0.0),
        Segment::Inside { first, step: 1 } => {
            let at = first + skip;
            out.copy_from_slice(&x[at..at + out.len()]);
        }
        Segment::Inside { first, step: 2 } => {
            // The first of each pair: a de-interleave LLVM vectorises, where the
            // stepped walk below stays scalar (a 1x1/2 projection's gather was a
            // third of its time).
            let at = first + skip * 2;
            if let Some((last, body)) = out.split_last_mut() {
                let src = &x[at..at + 2 * body.len() + 1];
                body.iter_mut()
                    .zip(src.chunks_exact(2))
                    .for_each(|(d, pair)| *d = pair[0]);
                *last = src[2 * body.len()];
            }
        }
        Segment::Inside { first, step } => {
            let src = x[first + skip * step..].iter().step_by(step);
            out.iter_mut().zip(src).for_each(|(d, &s)| *d = s);
        }
    }
}

/// One col2im row: `y[target(p0 + i)] += src[i]` where the target is inside.
pub(crate) fn scatter_add_row(map: &Mapping<'_>, src: &[f32], p0: usize, y: &mut [f32]) {
    for_each_segment(map, p0, src.len(), |range, seg| {
        if let Segment::Inside { first, step } = seg {
            let dst = y[first..].iter_mut().step_by(step);
            dst.zip(&src[range]).for_each(|(d, &s)| *d += s);
        }
    });
}

/// Most segments a [`GatherPlan`] may hold (about 24 MiB); beyond that im2col maps
/// positions on the fly.
const MAX_PLANNED_SEGMENTS: usize = 1 << 20;

/// Segments shorter than this on average make [`GatherPlan`] keep one source index
/// per position instead: a copy call per 7-float run (a 7x7 plane) costs several
/// times the copy itself.
const MIN_MEAN_SEGMENT: usize = 16;

/// Marks a padding position in an indexed plan (any index past the plane reads 0).
const PADDING: u32 = u32::MAX;

/// im2col's source positions for every tap over the whole output grid, computed once
/// at prepare, so im2col rows need no index arithmetic at run time: on small planes
/// (7x7, 14x14) the arithmetic cost more than the copies it guards.
#[derive(Debug)]
pub(crate) enum GatherPlan {
    /// Per tap: `(source positions, segment)` in order, covering the grid.
    Segments(Vec<Vec<(Range<usize>, Segment)>>),
    /// Per tap: the source index of every position (`PADDING` in the padding).
    Indexed { grid_len: usize, index: Vec<u32> },
}

impl GatherPlan {
    /// `None` when the plan would be too large to be worth keeping.
    pub fn new<'m>(maps: impl Iterator<Item = Mapping<'m>>, grid_len: usize) -> Option<GatherPlan> {
        let mut taps = Vec::new();
        let mut total = 0;
        for map in maps {
            let mut segments = Vec::new();
            for_each_segment(&map, 0, grid_len, |range, seg| segments.push((range, seg)));
            total += segments.len();
            if total > MAX_PLANNED_SEGMENTS {
                return None;
            }
            taps.push(segments);
        }
        let positions = taps.len().saturating_mul(grid_len);
        let short = total.saturating_mul(MIN_MEAN_SEGMENT) > positions;
        if !short || positions > MAX_PLANNED_SEGMENTS || u32::try_from(grid_len).is_err() {
            return Some(GatherPlan::Segments(taps));
        }
        let mut index = Vec::with_capacity(positions);
        for segments in &taps {
            for (range, seg) in segments {
                match *seg {
                    Segment::Outside => index.extend(range.clone().map(|_| PADDING)),
                    Segment::Inside { first, step } => index
                        .extend((0..range.len()).map(|i| u32::try_from(first + i * step).unwrap_or(PADDING))),
                }
            }
        }
        Some(GatherPlan::Indexed { grid_len, index })
    }

    /// [`gather_row`] for `tap`, reading the channel plane `x`.
    pub fn gather_row(&self, tap: usize, x: &[f32], p0: usize, dst: &mut [f32]) {
        let segments = match self {
            GatherPlan::Segments(taps) => &taps[tap],
            GatherPlan::Indexed { grid_len, index } => {
                let index = &index[tap * grid_len + p0..][..dst.len()];
                for (d, &i) in dst.iter_mut().zip(index) {
                    *d = x.get(i as usize).copied().unwrap_or(0.0);
                }
                return;
            }
        };
        let end = p0 + dst.len();
        let first = segments.partition_point(|(r, _)| r.end <= p0);
        for (range, seg) in &segments[first..] {
            if range.start >= end {
                break;
            }
            let (lo, hi) = (range.start.max(p0), range.end.min(end));
            read_segment(*seg, lo - range.start, x, &mut dst[lo - p0..hi - p0]);
        }
    }
}
