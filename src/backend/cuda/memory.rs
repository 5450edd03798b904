//! Raw device and pinned host allocations, freed on drop. kiln addresses its arena
//! by offsets, so it needs plain pointers rather than cudarc's typed slices (which
//! also track events per slice, which a single-stream graph does not need).

use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext};

use super::device::device_error;
use crate::error::Result;

/// Every device allocation and arena offset is aligned to this many bytes (what
/// cuDNN and cuBLAS want for their fastest paths).
pub const ALIGN: usize = 256;

pub struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    ctx: Arc<CudaContext>,
}

impl DeviceBuffer {
    pub fn new(ctx: &Arc<CudaContext>, bytes: usize) -> Result<DeviceBuffer> {
        ctx.bind_to_thread()
            .map_err(|e| device_error("binding the context", e))?;
        // SAFETY: a plain allocation in the bound context; freed in Drop.
        let ptr = unsafe { result::malloc_sync(bytes.max(ALIGN)) }
            .map_err(|e| device_error(&format!("allocating {bytes} bytes of GPU memory"), e))?;
        Ok(DeviceBuffer {
            ptr,
            bytes,
            ctx: ctx.clone(),
        })
    }

    pub fn ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: `ptr` came from malloc_sync and is freed once; the stream that
        // used it was synchronised by the owner's drop (or never ran).
        let _ = unsafe { result::free_sync(self.ptr) };
    }
}

// SAFETY: a device address; the memory is only touched through the owner's stream.
unsafe impl Send for DeviceBuffer {}
// SAFETY: as above.
unsafe impl Sync for DeviceBuffer {}

/// Page-locked host memory, so input and output copies are true DMA transfers
/// (and can be captured in a CUDA graph).
pub struct PinnedBuffer {
    ptr: *mut u8,
    bytes: usize,
    ctx: Arc<CudaContext>,
}

impl PinnedBuffer {
    pub fn new(ctx: &Arc<CudaContext>, bytes: usize) -> Result<PinnedBuffer> {
        ctx.bind_to_thread()
            .map_err(|e| device_error("binding the context", e))?;
        let bytes = bytes.max(ALIGN);
        // SAFETY: a plain page-locked allocation; freed in Drop.
        let ptr = unsafe { result::malloc_host(bytes, 0) }
            .map_err(|e| device_error(&format!("allocating {bytes} bytes of pinned memory"), e))?;
        // SAFETY: the allocation is `bytes` long and exclusively ours.
        unsafe { std::ptr::write_bytes(ptr as *mut u8, 0, bytes) };
        Ok(PinnedBuffer {
            ptr: ptr as *mut u8,
            bytes,
            ctx: ctx.clone(),
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is a live allocation of `bytes` bytes, initialised at creation.
        unsafe { std::slice::from_raw_parts(self.ptr, self.bytes) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.bytes) }
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: `ptr` came from malloc_host and is freed once.
        let _ = unsafe { result::free_host(self.ptr as *mut _) };
    }
}

// SAFETY: host memory owned by this value alone.
unsafe impl Send for PinnedBuffer {}
// SAFETY: shared access is read-only (`as_slice`).
unsafe impl Sync for PinnedBuffer {}
