//! One CUDA device opened for kiln: context, stream, the compiled kernel module,
//! and the cuBLAS and cuDNN handles, all bound to that one stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{sys, CudaContext, CudaFunction, CudaStream};

use super::libraries::{unavailable, Libraries};
use super::memory::DeviceBuffer;
use super::{source, Precision};
use crate::backend::gpu::Entry;
use crate::error::{Error, Result};

/// Environment variable choosing the GPU by ordinal (default 0).
pub const DEVICE_ENV: &str = "KILN_CUDA_DEVICE";

/// cuBLAS's workspace, set explicitly so that captured graphs never see it
/// allocate (NVIDIA's recommendation for graph capture: 32 MiB on Hopper).
const CUBLAS_WORKSPACE_BYTES: usize = 32 << 20;

/// A driver, NVRTC, cuBLAS or cuDNN failure as a kiln error, with what was being
/// done.
pub(super) fn device_error(doing: &str, e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("{doing}: {e:?}"))
}

pub struct Cuda {
    pub(super) ctx: Arc<CudaContext>,
    pub(super) stream: Arc<CudaStream>,
    pub precision: Precision,
    pub libraries: Libraries,
    name: String,
    capability: (i32, i32),
    functions: HashMap<&'static str, CudaFunction>,
    pub(super) blas: Option<Blas>,
    pub(super) dnn: Option<Dnn>,
    /// The library handles are not thread-safe: one run at a time per device.
    lock: Mutex<()>,
}

impl Cuda {
    /// Opens the GPU chosen by `KILN_CUDA_DEVICE` (default 0) and compiles the
    /// kernels for it. Missing libraries or no GPU: `BackendUnavailable`.
    pub fn open(precision: Precision) -> Result<Cuda> {
        let libraries = Libraries::probe().require()?;
        let ordinal = match std::env::var(DEVICE_ENV) {
            Ok(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| Error::Usage(format!("{DEVICE_ENV}={v} is not a device number")))?,
            Err(_) => 0,
        };
        let count = CudaContext::device_count()
            .map_err(|e| unavailable(format!("the CUDA driver did not start: {e:?}")))?;
        if ordinal >= count.max(0) as usize {
            return Err(unavailable(if count <= 0 {
                "the CUDA driver sees no GPU".into()
            } else {
                format!("{DEVICE_ENV}={ordinal}, but the driver sees {count} GPU(s)")
            }));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| unavailable(format!("cannot open GPU {ordinal}: {e:?}")))?;
        let name = ctx.name().unwrap_or_else(|_| format!("CUDA device {ordinal}"));
        let capability = ctx
            .compute_capability()
            .map_err(|e| device_error("reading the compute capability", e))?;
        if precision == Precision::Tf32 && capability.0 < 8 {
            return Err(unavailable(format!(
                "{name} (sm_{}{}) has no TF32 Tensor Cores (sm_80 and newer)",
                capability.0, capability.1
            )));
        }
        // Graph capture needs a stream of our own (not the legacy default stream).
        let stream = ctx
            .new_stream()
            .map_err(|e| device_error("creating a stream", e))?;
        let ptx = source::compile(precision, capability)?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| device_error("loading kiln's kernels", e))?;
        let mut functions = HashMap::new();
        for name in Entry::ALL.iter().map(|e| e.name()).chain([source::EPILOGUE]) {
            let f = module
                .load_function(name)
                .map_err(|e| device_error(&format!("loading kernel {name}"), e))?;
            functions.insert(name, f);
        }
        let blas = if libraries.cublas {
            Some(Blas::new(&ctx, &stream)?)
        } else {
            None
        };
        let dnn = if libraries.cudnn {
            Some(Dnn::new(&stream)?)
        } else {
            None
        };
        Ok(Cuda {
            ctx,
            stream,
            precision,
            libraries,
            name,
            capability,
            functions,
            blas,
            dnn,
            lock: Mutex::new(()),
        })
    }

    /// `NVIDIA H200 (sm_90), cuBLAS yes, cuDNN yes`.
    pub fn describe(&self) -> String {
        format!(
            "{} (sm_{}{}), {}",
            self.name,
            self.capability.0,
            self.capability.1,
            self.libraries.describe()
        )
    }

    pub(super) fn function(&self, name: &str) -> Result<sys::CUfunction> {
        self.functions
            .get(name)
            .map(|f| f.cu_function())
            .ok_or_else(|| Error::invalid(format!("internal: no CUDA kernel named {name}")))
    }

    /// Serialises runs on this device (the cuBLAS and cuDNN handles are shared).
    pub(super) fn exclusive(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn cu_stream(&self) -> sys::CUstream {
        self.stream.cu_stream()
    }
}

/// A cuBLAS handle on kiln's stream, with a fixed workspace.
pub(super) struct Blas {
    pub handle: cudarc::cublas::sys::cublasHandle_t,
    _workspace: DeviceBuffer,
}

// SAFETY: the handle is only used under `Cuda::exclusive`, one thread at a time.
unsafe impl Send for Blas {}
// SAFETY: as above.
unsafe impl Sync for Blas {}

impl Blas {
    fn new(ctx: &Arc<CudaContext>, stream: &Arc<CudaStream>) -> Result<Blas> {
        use cudarc::cublas::sys as b;
        let workspace = DeviceBuffer::new(ctx, CUBLAS_WORKSPACE_BYTES)?;
        let mut handle = std::ptr::null_mut();
        // SAFETY: plain cuBLAS setup calls with a live stream and a live workspace
        // allocation that the handle owns for its whole life (dropped after it).
        unsafe {
            blas_check("cublasCreate", b::cublasCreate_v2(&mut handle))?;
            blas_check(
                "cublasSetStream",
                b::cublasSetStream_v2(handle, stream.cu_stream() as _),
            )?;
            blas_check(
                "cublasSetWorkspace",
                b::cublasSetWorkspace_v2(handle, workspace.ptr() as *mut _, CUBLAS_WORKSPACE_BYTES),
            )?;
        }
        Ok(Blas {
            handle,
            _workspace: workspace,
        })
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: the handle was created by cublasCreate and is destroyed once.
        unsafe {
            cudarc::cublas::sys::cublasDestroy_v2(self.handle);
        }
    }
}

pub(super) fn blas_check(call: &str, status: cudarc::cublas::sys::cublasStatus_t) -> Result<()> {
    if status == cudarc::cublas::sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(device_error(call, status))
    }
}

/// A cuDNN handle on kiln's stream.
pub(super) struct Dnn {
    pub handle: cudarc::cudnn::sys::cudnnHandle_t,
}

// SAFETY: the handle is only used under `Cuda::exclusive`, one thread at a time.
unsafe impl Send for Dnn {}
// SAFETY: as above.
unsafe impl Sync for Dnn {}

impl Dnn {
    fn new(stream: &Arc<CudaStream>) -> Result<Dnn> {
        use cudarc::cudnn::sys as d;
        let mut handle = std::ptr::null_mut();
        // SAFETY: plain cuDNN setup calls with a live stream.
        unsafe {
            dnn_check("cudnnCreate", d::cudnnCreate(&mut handle))?;
            dnn_check(
                "cudnnSetStream",
                d::cudnnSetStream(handle, stream.cu_stream() as _),
            )?;
        }
        Ok(Dnn { handle })
    }
}

impl Drop for Dnn {
    fn drop(&mut self) {
        // SAFETY: the handle was created by cudnnCreate and is destroyed once.
        unsafe {
            cudarc::cudnn::sys::cudnnDestroy(self.handle);
        }
    }
}

pub(super) fn dnn_check(call: &str, status: cudarc::cudnn::sys::cudnnStatus_t) -> Result<()> {
    if status == cudarc::cudnn::sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(device_error(call, status))
    }
}
