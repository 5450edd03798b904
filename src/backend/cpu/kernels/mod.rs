//! CPU kernels, one file per op family, and the one place that maps an IR op to
//! the family that runs it.

pub mod broadcast;
#[cfg(test)]
mod compute_tests;
pub mod conv;
pub mod elementwise;
pub(crate) mod float_io;
pub mod fused;
pub mod gather;
pub mod gemm;
pub mod generate;
pub mod layout;
pub mod normalization;
pub mod numeric;
pub mod pool;
pub mod reduce;
pub mod resize;

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::CpuOptions;
use crate::error::Result;
use crate::ir::Op;

/// Prepares the kernel for `op` with concrete input/output descriptions.
pub fn prepare(
    op: &Op,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
    options: &CpuOptions,
) -> Result<Box<dyn Kernel>> {
    match op {
        Op::Unary(_) | Op::Binary(_) | Op::Variadic { .. } | Op::Clip | Op::Where | Op::Cast { .. } => {
            elementwise::prepare(op, inputs, outputs)
        }
        Op::BatchNorm { .. } | Op::InstanceNorm { .. } | Op::LayerNorm { .. } => {
            normalization::prepare(op, inputs, outputs)
        }
        Op::Reduce(_) | Op::ArgExtreme { .. } | Op::Softmax { .. } | Op::CumSum { .. } => {
            reduce::prepare(op, inputs, outputs)
        }
        Op::Gemm(_) | Op::MatMul => gemm::prepare(op, inputs, outputs),
        Op::Conv(_) | Op::FusedConv(_) | Op::ConvTranspose(_) => conv::prepare(op, inputs, outputs, options),
        Op::ChannelAffine { .. } | Op::SqueezeExcite { .. } | Op::FusedElementwise { .. } => {
            fused::prepare(op, inputs, outputs)
        }
        Op::Pool(_) | Op::GlobalPool(_) => pool::prepare(op, inputs, outputs),
        Op::Resize(_) => resize::prepare(op, inputs, outputs),
        Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice
        | Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Identity
        | Op::Dropout
        | Op::Expand
        | Op::Tile
        | Op::Pad { .. }
        | Op::DepthToSpace { .. }
        | Op::SpaceToDepth { .. } => layout::prepare(op, inputs, outputs),
        Op::Gather { .. } | Op::GatherElements { .. } => gather::prepare(op, inputs, outputs),
        Op::Shape { .. } | Op::Size | Op::ConstantOfShape { .. } | Op::Range | Op::TopK { .. } => {
            generate::prepare(op, inputs, outputs)
        }
    }
}
