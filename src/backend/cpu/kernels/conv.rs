//! Convolution kernels: `Conv` (pointwise GEMM, im2col + GEMM, Winograd, direct
//! depthwise) and `ConvTranspose` (GEMM + col2im), for any number of spatial axes.

pub mod columns;
pub mod depthwise;
mod depthwise_blocked;
mod depthwise_nhwc;
#[cfg(target_arch = "x86_64")]
mod depthwise_rows;
#[cfg(target_arch = "x86_64")]
mod depthwise_rows_avx512;
mod direct;
mod forward;
mod indirect;
mod lanes;
mod swapped;
#[cfg(test)]
mod tests;
mod transpose;
mod winograd;

pub(crate) use depthwise_nhwc::{MAX_TAP_COLUMNS, MAX_TAP_ROWS};

use rayon::prelude::*;

use super::gemm::micro::NR;
use super::gemm::PARALLEL_MIN_MACS;
use crate::backend::cpu::kernel::{required, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::float_io::const_f32;
use crate::backend::cpu::CpuOptions;
use crate::error::{Error, Result};
use crate::ir::ops::{Activation, FusedConv, Op};
use crate::tensor::View;
use forward::WinogradPolicy;

/// Budget, in floats, for one ConvTranspose column panel (1 MiB: about one core's
/// L2). Input positions are processed in panels this size so the temporary stays
/// bounded whatever the image size. (Conv needs none: its im2col is generated
/// inside the GEMM's packing, one cache block at a time.)
pub const COLUMNS_PANEL_FLOATS: usize = 1 << 18;

/// Prepares `Conv`, the optimizer's `FusedConv` and `ConvTranspose` (f32 only).
pub fn prepare(
    op: &Op,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
    options: &CpuOptions,
) -> Result<Box<dyn Kernel>> {
    match op {
        Op::Conv(c) => {
            let plain = FusedConv {
                conv: c.clone(),
                activation: Activation::None,
                residual: false,
            };
            forward::prepare(&plain, inputs, outputs, policy(options))
        }
        Op::FusedConv(f) => forward::prepare(f, inputs, outputs, policy(options)),
        Op::ConvTranspose(c) => transpose::prepare(c, inputs, outputs),
        other => Err(Error::shape(other.name(), "not a convolution op")),
    }
}

fn policy(options: &CpuOptions) -> WinogradPolicy {
    match options.winograd {
        true => WinogradPolicy::WhenFaster,
        false => WinogradPolicy::Never,
    }
}

/// Positions per panel for a column matrix of `rows` rows over `len` positions: as
/// many as fit the budget, a multiple of the GEMM tile width, at least two tiles.
fn panel_width(rows: usize, len: usize) -> usize {
    let fit = (COLUMNS_PANEL_FLOATS / rows.max(1)) / NR * NR;
    fit.max(2 * NR).min(len).max(1)
}

/// The optional per-output-channel bias.
#[derive(Debug)]
enum Bias {
    None,
    Const(Vec<f32>),
    /// Read from input 2 at run time.
    Input,
}

impl Bias {
    fn prepare(op: &str, desc: Option<InputDesc<'_>>, channels: usize) -> Result<Bias> {
        let Some(d) = desc else { return Ok(Bias::None) };
        if d.shape != [channels] {
            return Err(Error::shape(
                op,
                format!("bias shape {:?} is not [{channels}]", d.shape),
            ));
        }
        Ok(const_f32(&d).map_or(Bias::Input, |v| Bias::Const(v.to_vec())))
    }

    /// The bias values for this run, checked to cover `channels`.
    fn get<'a>(
        &'a self,
        op: &str,
        inputs: &[Option<View<'a>>],
        channels: usize,
    ) -> Result<Option<&'a [f32]>> {
        let b = match self {
            Bias::None => return Ok(None),
            Bias::Const(v) => v.as_slice(),
            Bias::Input => required(inputs, 2)?.typed::<f32>()?,
        };
        if b.len() != channels {
            return Err(Error::shape(op, "bias has the wrong length"));
        }
        Ok(Some(b))
    }
}

/// What the direct kernels (depthwise, Winograd) apply to each finished output row
/// of one plane.
pub(crate) struct PlaneEpilogue<'a> {
    pub bias: f32,
    /// The plane's residual, added before the activation.
    pub residual: Option<&'a [f32]>,
    pub activation: Activation,
}

impl PlaneEpilogue<'_> {
    /// Adds the residual to the finished output row that starts at element `start`
    /// of the plane, then applies the activation. (The bias is the caller's: the
    /// kernels fold it in where it is cheapest.) Always inlined, so that inside an
    /// AVX2-compiled kernel body these loops are AVX2 too.
    #[inline(always)]
    pub fn finish_row(&self, row: &mut [f32], start: usize) {
        if let Some(r) = self.residual {
            let r = &r[start..][..row.len()];
            row.iter_mut().zip(r).for_each(|(d, &v)| *d += v);
        }
        self.activation.apply_slice(row);
    }
}

/// Runs `job(index, output_chunk, parallel_inside)` for every `job_len`-sized chunk
/// of `y` (one chunk per image x group). Many or small jobs run side by side with
/// sequential insides; few large ones run in turn, each parallel inside.
fn run_jobs(
    y: &mut [f32],
    job_len: usize,
    macs_per_job: usize,
    job: impl Fn(usize, &mut [f32], bool) -> Result<()> + Sync,
) -> Result<()> {
    if job_len == 0 {
        return Ok(());
    }
    let jobs = y.len() / job_len;
    let side_by_side = jobs > 1 && (jobs >= rayon::current_num_threads() || macs_per_job < PARALLEL_MIN_MACS);
    if side_by_side {
        y.par_chunks_mut(job_len)
            .enumerate()
            .try_for_each(|(j, chunk)| job(j, chunk, false))
    } else {
        y.chunks_mut(job_len)
            .enumerate()
            .try_for_each(|(j, chunk)| job(j, chunk, true))
    }
}

/// Checks an activation-sized input or output has exactly the planned length.
fn expect_len(op: &str, what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::shape(
            op,
            format!("{what} has {got} elements, expected {want}"),
        ));
    }
    Ok(())
}
