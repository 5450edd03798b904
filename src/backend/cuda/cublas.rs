//! ONNX Gemm on cuBLAS. kiln's matrices are row-major and cuBLAS's column-major,
//! so `Y = op(A) op(B)` is computed as `Y^T = op(B)^T op(A)^T`: the same memory,
//! operands swapped.

use cudarc::cublas::sys as b;
use cudarc::driver::sys::CUdeviceptr;

use super::device::{blas_check, Blas};
use super::prepare::GemmCall;
use super::Precision;
use crate::error::{Error, Result};

/// A resolved cuBLAS product.
pub struct BlasGemm {
    pub call: GemmCall,
    pub precision: Precision,
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Limit(format!("{v} exceeds cuBLAS's 32-bit sizes")))
}

impl BlasGemm {
    /// Enqueues `y = alpha * op(a) op(b)` on the handle's stream.
    ///
    /// # Safety
    /// `a`, `b` and `y` must be live device buffers holding the call's matrices.
    pub unsafe fn enqueue(&self, blas: &Blas, a: CUdeviceptr, bm: CUdeviceptr, y: CUdeviceptr) -> Result<()> {
        let c = &self.call;
        let (m, n, k) = (int(c.m)?, int(c.n)?, int(c.k)?);
        // Column-major views of the row-major storage (see the module comment).
        let (op_b, ldb) = if c.trans_b {
            (b::cublasOperation_t::CUBLAS_OP_T, k)
        } else {
            (b::cublasOperation_t::CUBLAS_OP_N, n)
        };
        let (op_a, lda) = if c.trans_a {
            (b::cublasOperation_t::CUBLAS_OP_T, m)
        } else {
            (b::cublasOperation_t::CUBLAS_OP_N, k)
        };
        let (data, compute) = match self.precision {
            Precision::F32 => (
                b::cudaDataType::CUDA_R_32F,
                b::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
            Precision::Tf32 => (
                b::cudaDataType::CUDA_R_32F,
                b::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
            ),
            Precision::F16 => (
                b::cudaDataType::CUDA_R_16F,
                b::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
        };
        let zero = 0.0f32;
        blas_check(
            "cublasGemmEx",
            b::cublasGemmEx(
                blas.handle,
                op_b,
                op_a,
                n,
                m,
                k,
                &c.alpha as *const f32 as *const _,
                bm as *const _,
                data,
                ldb,
                a as *const _,
                data,
                lda,
                &zero as *const f32 as *const _,
                y as *mut _,
                data,
                n,
                compute,
                b::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            ),
        )
    }
}
