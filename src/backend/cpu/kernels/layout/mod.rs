//! Data-movement kernels: ops that rearrange elements without computing on them.
//! They work on raw bytes (`dtype.size()` per element), so one implementation serves
//! every dtype. Most reduce to the strided copy engine in [`strided`].

pub(crate) mod concat;
pub(crate) mod copy;
pub(crate) mod depth_space;
pub(crate) mod expand;
pub(crate) mod pad;
pub(crate) mod params;
pub(crate) mod slice;
pub(crate) mod strided;
#[cfg(test)]
pub(crate) mod testutil;
pub(crate) mod transpose;

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::ir::Op;

/// Prepares a kernel for Transpose, Concat, Split, Slice, Reshape, Flatten, Squeeze,
/// Unsqueeze, Identity, Dropout, Expand, Tile, Pad, DepthToSpace or SpaceToDepth.
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match op {
        Op::Transpose { perm } => transpose::prepare(perm.as_deref(), inputs, outputs),
        Op::Concat { axis } => concat::prepare_concat(*axis, inputs, outputs),
        Op::Split { axis } => concat::prepare_split(*axis, inputs, outputs),
        Op::Slice => slice::prepare(inputs, outputs),
        Op::Reshape { .. }
        | Op::Flatten { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Identity
        | Op::Dropout => copy::prepare(op.name(), matches!(op, Op::Dropout), inputs, outputs),
        Op::Expand => expand::prepare_expand(inputs, outputs),
        Op::Tile => expand::prepare_tile(inputs, outputs),
        Op::Pad { mode } => pad::prepare(*mode, inputs, outputs),
        Op::DepthToSpace { blocksize, crd } => {
            depth_space::prepare_depth_to_space(*blocksize, *crd, inputs, outputs)
        }
        Op::SpaceToDepth { blocksize } => depth_space::prepare_space_to_depth(*blocksize, inputs, outputs),
        _ => Err(Error::shape(op.name(), "not a data-movement op")),
    }
}
