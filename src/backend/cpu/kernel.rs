//! The contract between the CPU executor and its kernels.
//!
//! A kernel is *prepared* once per execution plan, when every input's dtype and
//! concrete shape are known and constant inputs (weights, axes, pads) are available:
//! that is where weights get packed and algorithms get chosen. It then *runs* many
//! times on views of arena buffers. Kernels never allocate activation-sized memory
//! while running and never see graph structure.

use crate::error::Result;
use crate::tensor::{View, ViewMut};

pub use crate::plan::{InputDesc, OutputDesc};

/// A prepared kernel.
pub trait Kernel: Send + Sync {
    /// Computes every output. `inputs[i]` is `None` for an omitted optional input;
    /// `outputs` are pre-shaped views to be fully overwritten (their previous
    /// contents are garbage).
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()>;

    /// An input this kernel can instead find already in its first output's buffer
    /// (a residual the output is accumulated onto). When that input's value dies at
    /// this step, the memory planner stores the output over it, which saves the
    /// kernel a pass over memory, and the step runs with [`Kernel::run_in_place`].
    fn in_place_input(&self) -> Option<usize> {
        None
    }

    /// [`Kernel::run`] with input [`Kernel::in_place_input`] absent from `inputs`:
    /// its value is in `outputs[0]`, which the kernel overwrites with the result.
    fn run_in_place(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let _ = (inputs, outputs);
        Err(crate::error::Error::shape(
            "kernel",
            "this kernel cannot run in place",
        ))
    }

    /// A short label for profiles (algorithm chosen, e.g. `"im2col+gemm"`).
    fn label(&self) -> &'static str {
        ""
    }

    /// Floating-point operations of one run (a multiply-add counts two), for the
    /// GFLOP/s column of profiles; `None` for ops that are not arithmetic-bound.
    /// Counted as the direct algorithm would, whatever algorithm runs (Winograd's
    /// rate is thus an *effective* one, as is customary).
    fn flops(&self) -> Option<u64> {
        None
    }
}

/// `2 * product(dims)`: the FLOPs of that many multiply-adds, for [`Kernel::flops`];
/// `None` if it overflows (a model may declare absurd sizes).
pub fn multiply_add_flops(dims: &[usize]) -> Option<u64> {
    dims.iter()
        .try_fold(2u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
}

/// Fetches required input `i`, or a shape error naming it.
pub fn required<'a>(inputs: &[Option<View<'a>>], i: usize) -> Result<View<'a>> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| crate::error::Error::shape("kernel", format!("missing required input {i}")))
}

/// Fetches required input `i` description at preparation time.
pub fn required_desc<'a>(inputs: &[Option<InputDesc<'a>>], i: usize) -> Result<InputDesc<'a>> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| crate::error::Error::shape("kernel", format!("missing required input {i}")))
}
