//! A cuDNN convolution: descriptors built once per shape, the algorithm chosen
//! once, by timing cuDNN's candidates on the real buffers
//! (cudnnFindConvolutionForwardAlgorithmEx), when the program is made resident.

use cudarc::cudnn::sys as d;
use cudarc::driver::sys::CUdeviceptr;

use super::device::{dnn_check, Dnn};
use super::prepare::ConvCall;
use super::Precision;
use crate::error::{Error, Result};

/// Candidates cuDNN times per convolution.
const CANDIDATES: usize = 8;

pub struct CudnnConv {
    x: d::cudnnTensorDescriptor_t,
    w: d::cudnnFilterDescriptor_t,
    conv: d::cudnnConvolutionDescriptor_t,
    y: d::cudnnTensorDescriptor_t,
    algo: d::cudnnConvolutionFwdAlgo_t,
    /// Workspace bytes the chosen algorithm needs.
    pub workspace: usize,
}

// SAFETY: descriptors are plain host objects, used under `Cuda::exclusive`.
unsafe impl Send for CudnnConv {}
// SAFETY: as above.
unsafe impl Sync for CudnnConv {}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Limit(format!("{v} exceeds cuDNN's 32-bit sizes")))
}

impl CudnnConv {
    /// Descriptors for `call` in `precision`: f16 data on Tensor Cores, TF32 when
    /// allowed, strict f32 (FMA) otherwise. Accumulation is f32 in all three.
    pub fn new(call: &ConvCall, precision: Precision) -> Result<CudnnConv> {
        let data = if precision.stores_f16() {
            d::cudnnDataType_t::CUDNN_DATA_HALF
        } else {
            d::cudnnDataType_t::CUDNN_DATA_FLOAT
        };
        let math = match precision {
            Precision::F32 => d::cudnnMathType_t::CUDNN_FMA_MATH,
            Precision::Tf32 => d::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            Precision::F16 => d::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
        };
        let nchw = d::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let mut c = CudnnConv {
            x: std::ptr::null_mut(),
            w: std::ptr::null_mut(),
            conv: std::ptr::null_mut(),
            y: std::ptr::null_mut(),
            algo: d::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
            workspace: 0,
        };
        // SAFETY: descriptor creation and setup on host memory; `c` owns them and
        // Drop destroys whichever were created, even after an error here.
        unsafe {
            dnn_check(
                "cudnnCreateTensorDescriptor",
                d::cudnnCreateTensorDescriptor(&mut c.x),
            )?;
            dnn_check(
                "cudnnCreateTensorDescriptor",
                d::cudnnCreateTensorDescriptor(&mut c.y),
            )?;
            dnn_check(
                "cudnnCreateFilterDescriptor",
                d::cudnnCreateFilterDescriptor(&mut c.w),
            )?;
            dnn_check(
                "cudnnCreateConvolutionDescriptor",
                d::cudnnCreateConvolutionDescriptor(&mut c.conv),
            )?;
            dnn_check(
                "cudnnSetTensor4dDescriptor(x)",
                d::cudnnSetTensor4dDescriptor(
                    c.x,
                    nchw,
                    data,
                    int(call.batch)?,
                    int(call.in_channels)?,
                    int(call.in_hw[0])?,
                    int(call.in_hw[1])?,
                ),
            )?;
            dnn_check(
                "cudnnSetTensor4dDescriptor(y)",
                d::cudnnSetTensor4dDescriptor(
                    c.y,
                    nchw,
                    data,
                    int(call.batch)?,
                    int(call.out_channels)?,
                    int(call.out_hw[0])?,
                    int(call.out_hw[1])?,
                ),
            )?;
            dnn_check(
                "cudnnSetFilter4dDescriptor",
                d::cudnnSetFilter4dDescriptor(
                    c.w,
                    data,
                    nchw,
                    int(call.out_channels)?,
                    int(call.in_channels / call.groups)?,
                    int(call.kernel[0])?,
                    int(call.kernel[1])?,
                ),
            )?;
            dnn_check(
                "cudnnSetConvolution2dDescriptor",
                d::cudnnSetConvolution2dDescriptor(
                    c.conv,
                    int(call.pads[0])?,
                    int(call.pads[1])?,
                    int(call.strides[0])?,
                    int(call.strides[1])?,
                    int(call.dilations[0])?,
                    int(call.dilations[1])?,
                    d::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                    d::cudnnDataType_t::CUDNN_DATA_FLOAT,
                ),
            )?;
            dnn_check(
                "cudnnSetConvolutionGroupCount",
                d::cudnnSetConvolutionGroupCount(c.conv, int(call.groups)?),
            )?;
            dnn_check(
                "cudnnSetConvolutionMathType",
                d::cudnnSetConvolutionMathType(c.conv, math),
            )?;
        }
        Ok(c)
    }

    /// Times cuDNN's candidate algorithms on the program's own buffers (their
    /// contents do not matter) within `workspace_limit` bytes of `workspace`, and
    /// keeps the fastest.
    pub fn choose(
        &mut self,
        dnn: &Dnn,
        [x, w, y]: [CUdeviceptr; 3],
        workspace: CUdeviceptr,
        workspace_limit: usize,
    ) -> Result<()> {
        // SAFETY: all-zero bytes are a valid value of every field (0 is a declared
        // discriminant of each enum: IMPLICIT_GEMM, SUCCESS, NON_DETERMINISTIC,
        // DEFAULT_MATH); cuDNN overwrites the entries it returns.
        let mut perf: [d::cudnnConvolutionFwdAlgoPerf_t; CANDIDATES] = unsafe { std::mem::zeroed() };
        let mut returned = 0;
        // SAFETY: x, w and y are live device buffers of the descriptors' sizes, and
        // `workspace` holds `workspace_limit` bytes (the executor allocates them).
        unsafe {
            dnn_check(
                "cudnnFindConvolutionForwardAlgorithmEx",
                d::cudnnFindConvolutionForwardAlgorithmEx(
                    dnn.handle,
                    self.x,
                    x as *const _,
                    self.w,
                    w as *const _,
                    self.conv,
                    self.y,
                    y as *mut _,
                    CANDIDATES as i32,
                    &mut returned,
                    perf.as_mut_ptr(),
                    workspace as *mut _,
                    workspace_limit,
                ),
            )?;
        }
        // Sorted fastest first; the first that ran is the choice.
        let best = perf[..returned.max(0) as usize]
            .iter()
            .find(|p| p.status == d::cudnnStatus_t::CUDNN_STATUS_SUCCESS)
            .ok_or_else(|| Error::Device("cuDNN found no algorithm for a convolution".into()))?;
        self.algo = best.algo;
        self.workspace = best.memory;
        // The math type the timing used (cuDNN's advice for FindEx results).
        // SAFETY: setting a field of a live descriptor.
        unsafe {
            dnn_check(
                "cudnnSetConvolutionMathType",
                d::cudnnSetConvolutionMathType(self.conv, best.mathType),
            )?;
        }
        Ok(())
    }

    /// Enqueues `y = conv(x, w)` on the handle's stream.
    ///
    /// # Safety
    /// `x`, `w`, `y` must be live device buffers of the descriptors' sizes and
    /// `workspace` must hold at least `self.workspace` bytes.
    pub unsafe fn enqueue(
        &self,
        dnn: &Dnn,
        [x, w, y]: [CUdeviceptr; 3],
        workspace: CUdeviceptr,
    ) -> Result<()> {
        let (one, zero) = (1.0f32, 0.0f32);
        dnn_check(
            "cudnnConvolutionForward",
            d::cudnnConvolutionForward(
                dnn.handle,
                &one as *const f32 as *const _,
                self.x,
                x as *const _,
                self.w,
                w as *const _,
                self.conv,
                self.algo,
                workspace as *mut _,
                self.workspace,
                &zero as *const f32 as *const _,
                self.y,
                y as *mut _,
            ),
        )
    }
}

impl Drop for CudnnConv {
    fn drop(&mut self) {
        // SAFETY: each descriptor is destroyed once, and only if it was created.
        unsafe {
            if !self.x.is_null() {
                d::cudnnDestroyTensorDescriptor(self.x);
            }
            if !self.y.is_null() {
                d::cudnnDestroyTensorDescriptor(self.y);
            }
            if !self.w.is_null() {
                d::cudnnDestroyFilterDescriptor(self.w);
            }
            if !self.conv.is_null() {
                d::cudnnDestroyConvolutionDescriptor(self.conv);
            }
        }
    }
}
