//! The copy engine behind Transpose, Slice, Expand, Tile and DepthToSpace/SpaceToDepth.
//!
//! Each of those ops writes a contiguous output whose element at multi-index `i`
//! is read from the input at `offset + Σ i_k * stride_k`: a transpose permutes the
//! strides, a slice scales them by its steps (negative steps give negative strides),
//! a broadcast uses stride 0. One engine serves them all and every dtype, because it
//! moves fixed-size byte elements (`[u8; N]`, `N = dtype.size()`).
//!
//! Planning merges adjacent axes that are contiguous in both tensors, so the common
//! cases collapse to a few long runs; the innermost run is then copied with
//! `copy_from_slice` (contiguous), `fill` (broadcast), a cache-blocked 2-D transpose
//! (when another axis has source stride 1) or, last resort, an element loop.

use rayon::prelude::*;

use crate::backend::cpu::kernel::{required, Kernel};
use crate::error::{Error, Result};
use crate::tensor::{View, ViewMut};

/// Copies of fewer bytes stay on the calling thread: splitting them across rayon
/// workers costs more than the copy itself.
pub(crate) const PARALLEL_MIN_BYTES: usize = 1 << 18;

/// Work items per rayon thread, so uneven chunks still balance.
const TASKS_PER_THREAD: usize = 4;

/// Edge of the square blocks of the blocked transpose: 32×32 elements of up to 8
/// bytes (8 KiB read + 8 KiB written) stay in L1.
const TILE: usize = 32;

/// Runs `$f::<N>(args...)` with `N` the element size in bytes; every ONNX dtype kiln
/// supports is 1, 2, 4 or 8 bytes wide.
macro_rules! by_elem_size {
    ($esize:expr, $kernel:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $esize {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            4 => $f::<4>($($arg),*),
            8 => $f::<8>($($arg),*),
            n => Err($crate::error::Error::shape($kernel, format!("unsupported element size {n}"))),
        }
    };
}
pub(crate) use by_elem_size;

/// Views raw bytes as `N`-byte elements.
pub(crate) fn elems<'a, const N: usize>(bytes: &'a [u8], kernel: &str) -> Result<&'a [[u8; N]]>
where
    [u8; N]: bytemuck::Pod,
{
    bytemuck::try_cast_slice(bytes).map_err(|_| {
        Error::shape(
            kernel,
            format!("{} bytes are not whole {N}-byte elements", bytes.len()),
        )
    })
}

/// Views raw bytes as mutable `N`-byte elements.
pub(crate) fn elems_mut<'a, const N: usize>(bytes: &'a mut [u8], kernel: &str) -> Result<&'a mut [[u8; N]]>
where
    [u8; N]: bytemuck::Pod,
{
    let len = bytes.len();
    bytemuck::try_cast_slice_mut(bytes)
        .map_err(|_| Error::shape(kernel, format!("{len} bytes are not whole {N}-byte elements")))
}

/// A planned gather of a strided source view into a contiguous destination.
#[derive(Clone, Debug)]
pub(crate) struct StridedCopy {
    kernel: &'static str,
    esize: usize,
    /// Output axes after merging, outermost first; empty for a scalar.
    dims: Vec<usize>,
    /// Source stride of each merged axis, in elements.
    strides: Vec<isize>,
    /// Source index of the first output element.
    offset: isize,
    src_len: usize,
    dst_len: usize,
}

impl StridedCopy {
    /// Plans the copy of the view (`dims`, `strides`, `offset`, all in elements) of a
    /// source of `src_len` elements. Fails if the view reaches outside the source, so
    /// running can never index out of bounds.
    pub(crate) fn new(
        kernel: &'static str,
        esize: usize,
        dims: &[usize],
        strides: &[isize],
        offset: usize,
        src_len: usize,
    ) -> Result<StridedCopy> {
        if dims.len() != strides.len() {
            return Err(Error::shape(
                kernel,
                "strided view: dims and strides differ in length",
            ));
        }
        let dst_len = super::params::numel(dims, kernel)?;
        if dst_len > 0 {
            let (mut lo, mut hi) = (offset as i128, offset as i128);
            for (&d, &s) in dims.iter().zip(strides) {
                let span = (d as i128 - 1) * s as i128;
                if span < 0 {
                    lo += span;
                } else {
                    hi += span;
                }
            }
            if lo < 0 || hi >= src_len as i128 {
                return Err(Error::shape(kernel, "strided view reaches outside its source"));
            }
        }
        // Merge from the innermost axis outwards: an axis whose stride spans exactly
        // the (merged) axis inside it continues that axis in both tensors.
        let (mut md, mut ms): (Vec<usize>, Vec<isize>) = (Vec::new(), Vec::new());
        for (&d, &s) in dims.iter().zip(strides).rev() {
            if d == 1 {
                continue;
            }
            if let (Some(ld), Some(&ls)) = (md.last_mut(), ms.last()) {
                if s as i128 == ls as i128 * *ld as i128 {
                    *ld *= d;
                    continue;
                }
            }
            md.push(d);
            ms.push(s);
        }
        md.reverse();
        ms.reverse();
        if dst_len == 0 {
            (md, ms) = (vec![0], vec![0]);
        }
        let offset = if dst_len == 0 { 0 } else { offset as isize };
        Ok(StridedCopy {
            kernel,
            esize,
            dims: md,
            strides: ms,
            offset,
            src_len,
            dst_len,
        })
    }

    /// The merged axes, for tests and profiles.
    #[cfg(test)]
    pub(crate) fn merged_dims(&self) -> &[usize] {
        &self.dims
    }

    /// Copies the view out of `src` (raw bytes) into all of `dst`.
    pub(crate) fn run(&self, src: &[u8], dst: &mut [u8]) -> Result<()> {
        if src.len() != self.src_len * self.esize || dst.len() != self.dst_len * self.esize {
            return Err(Error::shape(
                self.kernel,
                format!(
                    "buffers of {} and {} bytes, prepared for {} and {} elements of {} bytes",
                    src.len(),
                    dst.len(),
                    self.src_len,
                    self.dst_len,
                    self.esize
                ),
            ));
        }
        if self.dst_len == 0 {
            return Ok(());
        }
        by_elem_size!(self.esize, self.kernel, run_elems(self, src, dst))
    }
}

/// A kernel that is one fully planned [`StridedCopy`] from input 0 to output 0.
pub(crate) struct StridedKernel {
    pub(crate) in_shape: Vec<usize>,
    pub(crate) plan: StridedCopy,
    pub(crate) label: &'static str,
}

impl Kernel for StridedKernel {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?;
        super::params::expect_shape(x.shape, &self.in_shape, "input", self.plan.kernel)?;
        let y = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(self.plan.kernel, "missing output 0"))?;
        self.plan.run(x.data.as_bytes(), y.data.as_bytes_mut())
    }

    fn label(&self) -> &'static str {
        self.label
    }
}

fn run_elems<const N: usize>(plan: &StridedCopy, src: &[u8], dst: &mut [u8]) -> Result<()>
where
    [u8; N]: bytemuck::Pod,
{
    let src = elems::<N>(src, plan.kernel)?;
    let dst = elems_mut::<N>(dst, plan.kernel)?;
    run_typed(plan, src, dst);
    Ok(())
}

fn run_typed<T: bytemuck::Pod + Send + Sync>(plan: &StridedCopy, src: &[T], dst: &mut [T]) {
    let (dims, strides) = (&plan.dims[..], &plan.strides[..]);
    if dims.is_empty() {
        dst[0] = src[plan.offset as usize];
        return;
    }
    let threads = rayon::current_num_threads();
    if plan.dst_len * plan.esize < PARALLEL_MIN_BYTES || threads == 1 {
        copy_box(dst, src, dims, strides, plan.offset);
        return;
    }
    // Split the output into equal runs of "units" (one index of axis `d`), with `d`
    // the outermost axis that yields enough units; each run is a contiguous range
    // of `dst`, cut further where it crosses an index of the axes outside `d`.
    let want = threads * TASKS_PER_THREAD;
    let (mut d, mut units) = (0, dims[0]);
    while units < want && d + 1 < dims.len() {
        d += 1;
        units *= dims[d];
    }
    let unit: usize = dims[d + 1..].iter().product();
    let chunk_units = units.div_ceil(want);
    dst.par_chunks_mut(chunk_units * unit)
        .enumerate()
        .for_each(|(ci, chunk)| {
            let (mut u, end) = (ci * chunk_units, ci * chunk_units + chunk.len() / unit);
            let mut pos = 0;
            let mut sub = dims[d..].to_vec();
            while u < end {
                let (mut prefix, r0) = (u / dims[d], u % dims[d]);
                let n = (dims[d] - r0).min(end - u);
                let mut off = plan.offset + r0 as isize * strides[d];
                for j in (0..d).rev() {
                    off += (prefix % dims[j]) as isize * strides[j];
                    prefix /= dims[j];
                }
                sub[0] = n;
                copy_box(&mut chunk[pos..pos + n * unit], src, &sub, &strides[d..], off);
                pos += n * unit;
                u += n;
            }
        });
}

/// Copies the box `dims` (every extent ≥ 1) of source strides `strides`, starting at
/// source index `offset`, into the contiguous `dst`.
fn copy_box<T: bytemuck::Pod>(dst: &mut [T], src: &[T], dims: &[usize], strides: &[isize], offset: isize) {
    let inner = dims.len() - 1;
    let dst_strides = super::params::contiguous_strides(dims);
    let (len, s) = (dims[inner], strides[inner]);
    if s == 1 {
        for_each_index(
            &dims[..inner],
            &strides[..inner],
            &dst_strides[..inner],
            |so, o| {
                let so = (offset + so) as usize;
                dst[o..o + len].copy_from_slice(&src[so..so + len]);
            },
        );
        return;
    }
    if let Some(k) = (0..inner).rev().find(|&k| strides[k] == 1) {
        // The source is contiguous along axis `k` and the destination along the
        // innermost axis: copy square tiles so both sides stay in cache.
        let rest: Vec<usize> = (0..inner).filter(|&j| j != k).collect();
        let od: Vec<usize> = rest.iter().map(|&j| dims[j]).collect();
        let os: Vec<isize> = rest.iter().map(|&j| strides[j]).collect();
        let odst: Vec<usize> = rest.iter().map(|&j| dst_strides[j]).collect();
        let (kd, kdst) = (dims[k], dst_strides[k]);
        let mut tile = [[T::zeroed(); TILE]; TILE];
        for_each_index(&od, &os, &odst, |so, o| {
            for b0 in (0..kd).step_by(TILE) {
                let tb = TILE.min(kd - b0);
                for a0 in (0..len).step_by(TILE) {
                    let ta = TILE.min(len - a0);
                    // Read `ta` contiguous source runs, then write `tb` contiguous
                    // destination runs; the tile in between stays in L1.
                    for (a, col) in tile[..ta].iter_mut().enumerate() {
                        let p = (offset + so + b0 as isize + (a0 + a) as isize * s) as usize;
                        col[..tb].copy_from_slice(&src[p..p + tb]);
                    }
                    for b in 0..tb {
                        let d0 = o + (b0 + b) * kdst + a0;
                        for (x, col) in dst[d0..d0 + ta].iter_mut().zip(&tile) {
                            *x = col[b];
                        }
                    }
                }
            }
        });
        return;
    }
    for_each_index(
        &dims[..inner],
        &strides[..inner],
        &dst_strides[..inner],
        |so, o| {
            let row = &mut dst[o..o + len];
            let mut p = offset + so;
            if s == 0 {
                row.fill(src[p as usize]);
            } else {
                for x in row {
                    *x = src[p as usize];
                    p += s;
                }
            }
        },
    );
}

/// Calls `f(source offset, destination offset)` for every multi-index of `dims`, in
/// row-major order. Calls it once for zero axes.
pub(crate) fn for_each_index(
    dims: &[usize],
    src_strides: &[isize],
    dst_strides: &[usize],
    mut f: impl FnMut(isize, usize),
) {
    if dims.contains(&0) {
        return;
    }
    let n = dims.len();
    let mut idx = vec![0usize; n];
    let (mut s, mut d) = (0isize, 0usize);
    loop {
        f(s, d);
        let mut j = n;
        loop {
            if j == 0 {
                return;
            }
            j -= 1;
            idx[j] += 1;
            s += src_strides[j];
            d += dst_strides[j];
            if idx[j] < dims[j] {
                break;
            }
            s -= src_strides[j] * dims[j] as isize;
            d -= dst_strides[j] * dims[j];
            idx[j] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::kernels::layout::testutil::Rng;

    /// Element-by-element reference of the same gather.
    fn reference(src: &[u32], dims: &[usize], strides: &[isize], offset: usize) -> Vec<u32> {
        let n: usize = dims.iter().product();
        let mut out = Vec::with_capacity(n);
        for lin in 0..n {
            let (mut rem, mut off) = (lin, offset as isize);
            for (&d, &s) in dims.iter().zip(strides).rev() {
                off += (rem % d) as isize * s;
                rem /= d;
            }
            out.push(src[off as usize]);
        }
        out
    }

    fn check(src: &[u32], dims: &[usize], strides: &[isize], offset: usize) {
        let plan = StridedCopy::new("test", 4, dims, strides, offset, src.len()).unwrap();
        let want = reference(src, dims, strides, offset);
        let mut dst = vec![0xDEAD_BEEFu32; want.len()];
        plan.run(bytemuck::cast_slice(src), bytemuck::cast_slice_mut(&mut dst))
            .unwrap();
        assert_eq!(dst, want, "dims {dims:?} strides {strides:?} offset {offset}");
    }

    #[test]
    fn random_views_match_the_reference() {
        let mut rng = Rng::new(7);
        for _ in 0..300 {
            let rank = rng.below(5);
            let in_shape: Vec<usize> = (0..rank).map(|_| rng.below(5) + 1).collect();
            let n: usize = in_shape.iter().product();
            let src: Vec<u32> = (0..n as u32).collect();
            let in_strides = crate::backend::cpu::kernels::layout::params::contiguous_strides(&in_shape);
            // A random permutation with random reversals and broadcasts.
            let mut perm: Vec<usize> = (0..rank).collect();
            rng.shuffle(&mut perm);
            let mut dims = Vec::new();
            let mut strides = Vec::new();
            let mut offset = 0usize;
            for &p in &perm {
                match rng.below(4) {
                    0 => {
                        dims.push(in_shape[p]);
                        strides.push(-(in_strides[p] as isize));
                        offset += (in_shape[p] - 1) * in_strides[p];
                    }
                    1 => {
                        dims.push(rng.below(3) + 1);
                        strides.push(0);
                    }
                    _ => {
                        dims.push(in_shape[p]);
                        strides.push(in_strides[p] as isize);
                    }
                }
            }
            check(&src, &dims, &strides, offset);
        }
    }

    #[test]
    fn large_transposes_use_tiles_and_threads() {
        let (a, b, c) = (3usize, 301usize, 257usize);
        let src: Vec<u32> = (0..(a * b * c) as u32).collect();
        // [a, b, c] -> [a, c, b] and [c, a, b]
        check(&src, &[a, c, b], &[(b * c) as isize, 1, c as isize], 0);
        check(&src, &[c, a, b], &[1, (b * c) as isize, c as isize], 0);
        // Broadcast and reversed rows, large enough to run in parallel.
        check(&src, &[4, a * b, c], &[0, c as isize, -1], c - 1);
    }

    #[test]
    fn contiguous_axes_merge() {
        let plan = StridedCopy::new("test", 4, &[2, 1, 3, 4], &[12, 99, 4, 1], 0, 24).unwrap();
        assert_eq!(plan.merged_dims(), &[24]);
        let plan = StridedCopy::new("test", 4, &[2, 3, 4], &[1, 0, 0], 0, 2).unwrap();
        assert_eq!(plan.merged_dims(), &[2, 12]);
    }

    #[test]
    fn out_of_bounds_views_and_wrong_buffers_are_errors() {
        assert!(StridedCopy::new("test", 4, &[3], &[2], 0, 4).is_err());
        assert!(StridedCopy::new("test", 4, &[3], &[2], 0, 5).is_ok());
        assert!(StridedCopy::new("test", 4, &[3], &[-1], 1, 5).is_err());
        assert!(StridedCopy::new("test", 4, &[0, 3], &[100, 100], 0, 0).is_ok());
        let plan = StridedCopy::new("test", 4, &[3], &[1], 0, 3).unwrap();
        let mut dst = [0u8; 8];
        assert!(plan.run(&[0u8; 12], &mut dst).is_err());
    }
}
