//! IR op -> [`CudaKernel`]: cuDNN for the convolutions it takes, cuBLAS for Gemm,
//! and the GPU kernel library shared with wgpu (kernels/*.cu here) for everything
//! else. Host-side only, so CUDA plans are built and checked without a GPU.

use crate::backend::gpu::codes::UnaryCode;
use crate::backend::gpu::{c_strides, gemm_dims, ConvShape, GpuKernel, GpuPrepare, Inputs};
use crate::error::Result;
use crate::ir::ops::{FusedConv, Gemm, Op};
use crate::ir::window::Geometry;
use crate::plan::{InputDesc, OutputDesc, Prepare};

/// What runs one IR node on CUDA.
#[derive(Clone, Debug)]
pub enum CudaKernel {
    /// Launches of the shared GPU kernel library.
    Library(GpuKernel),
    /// A cuDNN convolution, then kiln's epilogue for what cuDNN did not fuse.
    Conv(ConvCall),
    /// A cuBLAS product, then kiln's epilogue (C, activation).
    Gemm(GemmCall),
}

impl CudaKernel {
    /// A short name for profiles and tests.
    pub fn label(&self) -> &'static str {
        match self {
            CudaKernel::Library(k) => k.label,
            CudaKernel::Conv(_) => "cudnn conv",
            CudaKernel::Gemm(_) => "cublas gemm",
        }
    }
}

/// A 2-D NCHW convolution as cuDNN takes it (1-D ones run as H = 1). Inputs: 0 the
/// image, 1 the weights (ONNX's OIHW is cuDNN's layout), 2 the bias, 3 the
/// residual; the output is written, then the epilogue adds bias and residual and
/// applies the activation in place.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvCall {
    pub batch: usize,
    pub in_channels: usize,
    pub in_hw: [usize; 2],
    pub out_channels: usize,
    pub out_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub groups: usize,
    /// Symmetric pads (cuDNN's only kind), strides, dilations, as (h, w).
    pub pads: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub has_bias: bool,
    pub residual: bool,
    pub activation: UnaryCode,
}

impl ConvCall {
    /// Whether the epilogue kernel has anything to do.
    pub fn needs_epilogue(&self) -> bool {
        self.has_bias || self.residual || self.activation != UnaryCode::IDENTITY
    }
}

/// `Y(m, n) = alpha * op(A) op(B)`, then the epilogue adds `beta * C` (C broadcast
/// through `c_strides`). Inputs: 0 A, 1 B, 2 C.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmCall {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    /// C's (row, column) strides when C takes part (0 where broadcast).
    pub c_strides: Option<[usize; 2]>,
}

/// Which implementation runs a convolution.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConvRoute {
    Cudnn,
    /// kiln's implicit GEMM / direct depthwise kernels (shared with wgpu).
    Library,
}

/// The one place the CUDA backend chooses a convolution's implementation.
/// cuDNN takes 1-D and 2-D convs with symmetric padding (its descriptors have one
/// pad per axis); everything else, and every conv when cuDNN is not installed,
/// runs on kiln's kernels.
pub fn conv_route(cudnn: bool, geometry: &Geometry) -> ConvRoute {
    let symmetric = geometry.pads_begin == geometry.pads_end;
    if cudnn && geometry.rank() <= 2 && symmetric {
        ConvRoute::Cudnn
    } else {
        ConvRoute::Library
    }
}

/// The CUDA backend's [`Prepare`]: which optional libraries the device has decides
/// the routes.
#[derive(Copy, Clone, Debug)]
pub struct CudaPrepare {
    pub cudnn: bool,
    pub cublas: bool,
}

impl Prepare for CudaPrepare {
    type Kernel = CudaKernel;

    fn prepare(&self, op: &Op, inputs: &[Option<InputDesc>], outputs: &[OutputDesc]) -> Result<CudaKernel> {
        let ins = Inputs::new(op, inputs);
        let routed = match op {
            Op::Conv(c) => self.conv(&FusedConv::plain(c.clone()), &ins, outputs)?,
            Op::FusedConv(f) => self.conv(f, &ins, outputs)?,
            Op::Gemm(g) if self.cublas => Some(gemm(g, &ins, outputs)?),
            _ => None,
        };
        match routed {
            Some(kernel) => Ok(kernel),
            None => GpuPrepare.prepare(op, inputs, outputs).map(CudaKernel::Library),
        }
    }
}

impl CudaPrepare {
    /// The cuDNN call for a conv it takes, `None` for the library kernels.
    fn conv(&self, op: &FusedConv, ins: &Inputs, outputs: &[OutputDesc]) -> Result<Option<CudaKernel>> {
        let ConvShape {
            batch,
            in_channels,
            out_channels,
            groups,
            geometry: geom,
        } = ConvShape::of(op, ins, outputs)?;
        if conv_route(self.cudnn, &geom) == ConvRoute::Library {
            return Ok(None);
        }
        let has_bias = ins.get(2).is_some();
        if has_bias {
            ins.tensor(2)?;
        }
        if op.residual {
            ins.tensor(3)?;
        }
        // (h, w) of a 2-D window; a 1-D one is a 2-D one of height 1.
        let hw = |v: &[usize], one: usize| -> [usize; 2] {
            match v {
                [w] => [one, *w],
                [h, w] => [*h, *w],
                _ => [one, one],
            }
        };
        Ok(Some(CudaKernel::Conv(ConvCall {
            batch,
            in_channels,
            in_hw: hw(&geom.input, 1),
            out_channels,
            out_hw: hw(&geom.output, 1),
            kernel: hw(&geom.kernel, 1),
            groups,
            pads: hw(&geom.pads_begin, 0),
            strides: hw(&geom.strides, 1),
            dilations: hw(&geom.dilations, 1),
            has_bias,
            residual: op.residual,
            activation: UnaryCode::activation(op.activation),
        })))
    }
}

/// ONNX Gemm on cuBLAS: A and B are matrices (transposes are cuBLAS flags), C
/// broadcasts to (m, n).
fn gemm(g: &Gemm, ins: &Inputs, outputs: &[OutputDesc]) -> Result<CudaKernel> {
    let (a, b) = (ins.tensor(0)?, ins.tensor(1)?);
    let (m, n, k) = gemm_dims(g, a.shape, b.shape, &outputs[0].shape)?;
    let c_strides = match ins.get(2) {
        Some(c) if g.beta != 0.0 => {
            ins.tensor(2)?;
            Some(c_strides(c.shape, m, n))
        }
        _ => None,
    };
    Ok(CudaKernel::Gemm(GemmCall {
        m,
        n,
        k,
        trans_a: g.trans_a,
        trans_b: g.trans_b,
        alpha: g.alpha,
        beta: g.beta,
        c_strides,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{AutoPad, Window};

    fn geometry(pads: [usize; 4]) -> Geometry {
        let window = Window {
            kernel_shape: vec![3, 3],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            pads: pads.to_vec(),
            auto_pad: AutoPad::NotSet,
        };
        let out = [10 + pads[0] + pads[2] - 2, 10 + pads[1] + pads[3] - 2];
        Geometry::new(&window, &[10, 10], &[3, 3], false, &out).unwrap()
    }

    #[test]
    fn convs_route_to_cudnn_when_it_can_take_them() {
        assert_eq!(conv_route(true, &geometry([1, 1, 1, 1])), ConvRoute::Cudnn);
        // Asymmetric pads (TF-style SAME on even sizes): kiln's kernels.
        assert_eq!(conv_route(true, &geometry([0, 0, 1, 1])), ConvRoute::Library);
        // No cuDNN installed: kiln's kernels.
        assert_eq!(conv_route(false, &geometry([1, 1, 1, 1])), ConvRoute::Library);
    }
}
