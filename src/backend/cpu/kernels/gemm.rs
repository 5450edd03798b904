//! Single-precision matrix multiplication: the blocked, packed GEMM core every
//! compute-heavy kernel (Gemm, MatMul, Conv, ConvTranspose) is built on, and the
//! `Gemm` / `MatMul` op kernels.
//!
//! Layout of the core: [`mat`] (operand views), [`pack`] (panels and prepacked
//! weights), [`micro`] / `avx2` / `avx512` (register-tiled micro-kernels), [`epilogue`]
//! (bias / residual / activation applied at store time), [`driver`] (cache
//! blocking and the rayon split).

pub mod buffers;
pub mod driver;
pub mod epilogue;
pub mod mat;
pub mod micro;
pub mod pack;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod op_gemm;
mod op_matmul;
#[cfg(test)]
mod tests;

pub use driver::{gemm, LhsSource, RhsSource};
pub use epilogue::{Activation, Epilogue};
pub use mat::MatRef;
pub use pack::{PackedA, PackedB, RowSource};

use crate::backend::cpu::kernel::{InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::ir::ops::Op;

/// Rows of A per cache block: an `MC x KC` packed block (~144 KiB) stays in L2.
/// A multiple of the micro-tile height.
pub const MC: usize = 144;
/// Depth of one k-slice: a `KC x NR` B micro-panel (16 KiB) stays in L1.
pub const KC: usize = 256;
/// Columns of B per cache block: a `KC x NC` packed block (512 KiB) stays in L2
/// next to the A block. (Leaving it to L3, as classic Goto blocking does, measured
/// markedly slower on the EPYC VMs this was tuned on.) A multiple of the tile width.
pub const NC: usize = 512;
/// Products at most this deep visit a block's tiles along row panels rather than
/// down columns, for the sake of C's store streams (see `driver::macro_loop`).
pub const SHALLOW_KC: usize = 32;
/// Below this many multiply-adds a GEMM runs on the calling thread: splitting
/// costs a few microseconds of rayon overhead and repeated packing.
pub const PARALLEL_MIN_MACS: usize = 1 << 18;

const _: () = assert!(MC.is_multiple_of(micro::MR) && NC.is_multiple_of(micro::NR));

/// Prepares `Gemm` and `MatMul` (f32 only).
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    match op {
        Op::Gemm(g) => op_gemm::prepare(g, inputs, outputs),
        Op::MatMul => op_matmul::prepare(inputs, outputs),
        other => Err(Error::shape(other.name(), "not a GEMM op")),
    }
}
