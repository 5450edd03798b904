//! IR op -> [`GpuKernel`]: the GPU backends' kernel choice, one file per family.
//! Everything here is host-side arithmetic on shapes and constants.

pub(crate) mod conv;
mod copy;
mod elementwise;
pub(crate) mod gemm;
mod rows;
mod squeeze_excite;
mod window;

use crate::error::{Error, Result, Unsupported};
use crate::ir::ops::{Op, PadMode, PoolKind};
use crate::plan::{InputDesc, OutputDesc, Prepare};
use crate::tensor::DType;

use super::program::GpuKernel;

/// The GPU backends' shared [`Prepare`]: kernels are host-side descriptions, uploaded
/// when the plan is first run.
#[derive(Copy, Clone, Debug, Default)]
pub struct GpuPrepare;

impl Prepare for GpuPrepare {
    type Kernel = GpuKernel;

    fn prepare(&self, op: &Op, inputs: &[Option<InputDesc>], outputs: &[OutputDesc]) -> Result<GpuKernel> {
        for o in outputs {
            if o.dtype != DType::F32 {
                return Err(unsupported(
                    op,
                    format!("the GPU backends compute f32 tensors, not {}", o.dtype),
                ));
            }
        }
        let ins = Inputs::new(op, inputs);
        match op {
            Op::Conv(c) => conv::prepare(&crate::ir::ops::FusedConv::plain(c.clone()), &ins, outputs),
            Op::FusedConv(f) => conv::prepare(f, &ins, outputs),
            Op::BatchNorm { epsilon } => elementwise::batch_norm(*epsilon, &ins, outputs),
            Op::ChannelAffine { activation } => elementwise::channel_affine(*activation, &ins, outputs),
            Op::Unary(u) => elementwise::unary(*u, &ins, outputs),
            Op::Clip => elementwise::clip(&ins, outputs),
            Op::Binary(b) => elementwise::binary(*b, &ins, outputs),
            Op::FusedElementwise { steps } => elementwise::chain(steps, &ins, outputs),
            Op::Variadic { op, mean } => elementwise::variadic(*op, *mean, &ins, outputs),
            Op::Pool(p) => window::pool(p, &ins, outputs),
            Op::GlobalPool(kind) => rows::global_pool(*kind, &ins, outputs),
            Op::Softmax { axis, legacy, log } => rows::softmax(*axis, *legacy, *log, &ins, outputs),
            Op::LayerNorm { axis, epsilon } => rows::layer_norm(*axis, *epsilon, &ins, outputs),
            Op::Gemm(g) => gemm::gemm(g, &ins, outputs),
            Op::MatMul => gemm::matmul(&ins, outputs),
            Op::SqueezeExcite { hidden, gate } => squeeze_excite::prepare(*hidden, *gate, &ins, outputs),
            Op::Concat { axis } => copy::concat(*axis, &ins, outputs),
            Op::Split { axis } => copy::split(*axis, &ins, outputs),
            Op::Slice => copy::slice(&ins, outputs),
            Op::Transpose { perm } => copy::transpose(perm.as_deref(), &ins, outputs),
            Op::Expand => copy::expand(&ins, outputs),
            Op::Pad {
                mode: PadMode::Constant,
            } => copy::pad(&ins, outputs),
            Op::Identity | Op::Dropout => copy::identity(&ins, outputs),
            other => Err(unsupported(other, "not implemented by the GPU backends".into())),
        }
    }
}

/// Whether the GPU kernel library has a kernel for `op` at all (dtypes and shapes are
/// checked when a plan is built). Sessions check every node up front, so a model
/// the backend cannot run fails at load with all its unsupported nodes listed.
pub fn claims(op: &Op) -> bool {
    match op {
        Op::Pool(p) => !matches!(p.kind, PoolKind::Lp { .. }),
        Op::GlobalPool(kind) => !matches!(kind, PoolKind::Lp { .. }),
        Op::Pad { mode } => *mode == PadMode::Constant,
        Op::Unary(u) => super::codes::UnaryCode::of(*u).is_some(),
        Op::Binary(b) | Op::Variadic { op: b, .. } => super::codes::binary_code(*b).is_some(),
        Op::Conv(_)
        | Op::FusedConv(_)
        | Op::BatchNorm { .. }
        | Op::ChannelAffine { .. }
        | Op::Clip
        | Op::FusedElementwise { .. }
        | Op::Softmax { .. }
        | Op::LayerNorm { .. }
        | Op::Gemm(_)
        | Op::MatMul
        | Op::SqueezeExcite { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice
        | Op::Transpose { .. }
        | Op::Expand
        | Op::Identity
        | Op::Dropout => true,
        // Computed at plan time from shapes and constants, whatever the backend.
        Op::Shape { .. }
        | Op::Size
        | Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Squeeze
        | Op::Unsqueeze => true,
        _ => false,
    }
}

/// Every parameter block a kernel takes, as (struct name in the kernels, bytes):
/// the CUDA backend has NVRTC `static_assert` its C mirrors against these sizes.
pub fn param_blocks() -> [(&'static str, usize); 12] {
    use std::mem::size_of;
    [
        ("GemmParams", size_of::<gemm::GemmParams>()),
        ("Plane", size_of::<window::Plane>()),
        ("ConvParams", size_of::<conv::ConvParams>()),
        ("WindowParams", size_of::<window::WindowParams>()),
        ("RowParams", size_of::<rows::RowParams>()),
        ("UnaryParams", size_of::<elementwise::UnaryParams>()),
        ("BinaryParams", size_of::<elementwise::BinaryParams>()),
        ("ChainParams", size_of::<elementwise::ChainParams>()),
        ("AffineParams", size_of::<elementwise::AffineParams>()),
        ("CopyParams", size_of::<copy::CopyParams>()),
        ("FillParams", size_of::<copy::FillParams>()),
        ("DenseParams", size_of::<squeeze_excite::DenseParams>()),
    ]
}

/// An unsupported-construct error for the op being prepared; the planner fills in
/// the node's name.
pub(crate) fn unsupported(op: &Op, reason: String) -> Error {
    Error::Unsupported(vec![Unsupported {
        node: crate::plan::KERNEL_NODE.into(),
        op: op.name().into(),
        opset: 0,
        reason,
    }])
}

/// The inputs of the op being prepared, with the checks every family needs.
pub(crate) struct Inputs<'a> {
    op: &'a Op,
    inputs: &'a [Option<InputDesc<'a>>],
}

impl<'a> Inputs<'a> {
    pub fn new(op: &'a Op, inputs: &'a [Option<InputDesc<'a>>]) -> Inputs<'a> {
        Inputs { op, inputs }
    }

    /// Input `i`, which the kernel reads on the GPU: it must be f32.
    pub fn tensor(&self, i: usize) -> Result<InputDesc<'a>> {
        let d = self
            .get(i)
            .ok_or_else(|| Error::shape(crate::plan::KERNEL_NODE, format!("missing required input {i}")))?;
        if d.dtype != DType::F32 {
            return Err(self.unsupported(format!(
                "the GPU backends compute f32 tensors; input {i} is {}",
                d.dtype
            )));
        }
        Ok(d)
    }

    /// Optional input `i`, if present.
    pub fn get(&self, i: usize) -> Option<InputDesc<'a>> {
        self.inputs.get(i).copied().flatten()
    }

    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Input `i`'s constant value as f32 data (weights), or an error saying the
    /// backend needs it constant.
    pub fn constant_f32(&self, i: usize) -> Result<Vec<f32>> {
        let d = self.tensor(i)?;
        let t = d.value.ok_or_else(|| {
            self.unsupported(format!(
                "input {i} must be a constant (weights) on the GPU backends"
            ))
        })?;
        Ok(t.typed::<f32>()?.to_vec())
    }

    /// Input `i`'s constant integer values (axes, pads, starts), if it is present.
    pub fn constant_ints(&self, i: usize) -> Result<Option<Vec<i64>>> {
        let Some(d) = self.get(i) else { return Ok(None) };
        let t = d
            .value
            .ok_or_else(|| self.unsupported(format!("input {i} must be a constant on the GPU backends")))?;
        t.to_i64_vec().map(Some).ok_or_else(|| {
            Error::shape(
                crate::plan::KERNEL_NODE,
                format!("input {i} is not an integer tensor"),
            )
        })
    }

    pub fn unsupported(&self, reason: String) -> Error {
        unsupported(self.op, reason)
    }
}
