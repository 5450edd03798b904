//! Buffers for packed operands: 64-byte aligned owned storage, and per-thread
//! scratch reused across runs so the hot path does not allocate.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Floats of slack needed to reach a 64-byte (cache line) boundary.
const ALIGN_FLOATS: usize = 16;

/// The `len` floats of `v` starting at its first cache-line boundary (grows `v` as needed).
/// Packed panels are read in 64-byte rows; alignment keeps vector loads from straddling
/// two cache lines.
fn aligned_window(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len + ALIGN_FLOATS {
        v.resize(len + ALIGN_FLOATS, 0.0);
    }
    let off = v.as_ptr().align_offset(64).min(ALIGN_FLOATS);
    &mut v[off..off + len]
}

/// An owned, cache-line aligned float buffer (prepacked weights).
#[derive(Clone, Debug, Default)]
pub struct AlignedVec {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl AlignedVec {
    pub fn zeros(len: usize) -> Self {
        let mut buf = Vec::new();
        aligned_window(&mut buf, len);
        let off = buf.as_ptr().align_offset(64).min(ALIGN_FLOATS);
        AlignedVec { buf, off, len }
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Independent per-thread scratch areas; a caller may hold several at once.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Slot {
    PackA,
    PackB,
    /// The convolution kernels' column data: col2im panels, the indirect
    /// convolution's zero-padded input.
    Columns,
    /// One row of a [`super::pack::RowSource`] on its way into B panels; also the
    /// per-task temporaries of the direct and Winograd convolution kernels.
    Row,
    /// Winograd: the transformed input of one block.
    Transformed,
    /// Winograd: the 36 GEMM products of one block.
    Products,
    /// A product computed transposed, before it is stored in its final layout.
    Staging,
}

thread_local! {
    static PACK_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PACK_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static ROW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static TRANSFORMED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PRODUCTS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static STAGING: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` floats of this thread's `slot` scratch (aligned, contents
/// unspecified). If the slot is already in use on this thread (a rayon task stolen
/// while an outer kernel waits holds it), a temporary buffer is used instead of
/// failing.
pub(crate) fn with_scratch<R>(slot: Slot, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let key: &'static LocalKey<RefCell<Vec<f32>>> = match slot {
        Slot::PackA => &PACK_A,
        Slot::PackB => &PACK_B,
        Slot::Columns => &COLUMNS,
        Slot::Row => &ROW,
        Slot::Transformed => &TRANSFORMED,
        Slot::Products => &PRODUCTS,
        Slot::Staging => &STAGING,
    };
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => f(aligned_window(&mut v, len)),
        Err(_) => f(aligned_window(&mut Vec::new(), len)),
    })
}
