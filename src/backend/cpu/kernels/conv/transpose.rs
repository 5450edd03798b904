//! `ConvTranspose`: the gradient of a convolution with respect to its input.
//!
//! Per image and group: `cols = W_g^T [Mg*taps, Cg] x X_g [Cg, positions]`, then
//! col2im scatter-adds every column entry into the output position its input
//! position and kernel tap reach (`out = in * stride + tap * dilation - pad`).
//! Input positions are processed in bounded panels; col2im runs in parallel over
//! output channels, whose planes are disjoint.

use rayon::prelude::*;

use super::columns::{scatter_add_row, tap_offsets, Mapping};
use super::{expect_len, panel_width, run_jobs, Bias};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::float_io::{const_f32, expect_f32, numel, output};
use crate::backend::cpu::kernels::gemm::buffers::{with_scratch, Slot};
use crate::backend::cpu::kernels::gemm::{gemm, Epilogue, LhsSource, MatRef, PackedA, RhsSource};
use crate::error::{Error, Result};
use crate::ir::ops::ConvTranspose;
use crate::ir::window::{conv_kernel_shape, conv_transpose_geometry};
use crate::tensor::{View, ViewMut};

const NAME: &str = "ConvTranspose";

struct ConvTransposeKernel {
    input: Vec<usize>,
    output: Vec<usize>,
    strides: Vec<usize>,
    kernel_len: usize,
    /// Per-tap offsets for col2im (see [`tap_offsets`]).
    taps: Vec<isize>,
    batch: usize,
    c_in: usize,
    c_out: usize,
    group: usize,
    /// `W_g^T` per group, packed, when the weights are constant.
    packed: Option<Vec<PackedA>>,
    bias: Bias,
}

pub(super) fn prepare(
    op: &ConvTranspose,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    expect_f32(NAME, inputs, &[0, 1, 2], outputs)?;
    let (x, w) = (required_desc(inputs, 0)?, required_desc(inputs, 1)?);
    let y = output(NAME, outputs, 0)?;
    if x.shape.len() < 3 || w.shape.len() != x.shape.len() || y.shape.len() != x.shape.len() {
        return Err(Error::shape(
            NAME,
            format!(
                "ranks of X {:?}, W {:?}, Y {:?} do not fit",
                x.shape, w.shape, y.shape
            ),
        ));
    }
    let (batch, c_in, group) = (x.shape[0], x.shape[1], op.group);
    if group == 0 || c_in % group != 0 || w.shape[0] != c_in {
        return Err(Error::shape(
            NAME,
            format!("group {group} does not fit X {:?} and W {:?}", x.shape, w.shape),
        ));
    }
    let c_out = w.shape[1]
        .checked_mul(group)
        .ok_or_else(|| Error::shape(NAME, "channels overflow"))?;
    let kernel = conv_kernel_shape(&op.window, w.shape)?;
    let (pads_begin, out_spatial) = conv_transpose_geometry(op, &x.shape[2..], &kernel)?;
    if y.shape[0] != batch || y.shape[1] != c_out || y.shape[2..] != out_spatial[..] {
        return Err(Error::shape(
            NAME,
            format!(
                "planned output {:?} differs from computed {out_spatial:?}",
                y.shape
            ),
        ));
    }
    numel(NAME, x.shape)?;
    numel(NAME, w.shape)?;
    numel(NAME, &y.shape)?;
    let bias = Bias::prepare(NAME, inputs.get(2).copied().flatten(), c_out)?;
    let kernel_len: usize = kernel.iter().product();
    let (c_g, m_g) = (c_in / group, c_out / group);
    let packed = match const_f32(&w) {
        Some(v) => Some(
            (0..group)
                .map(|g| Ok(PackedA::new(weight_t(v, g, c_g, m_g * kernel_len)?)))
                .collect::<Result<Vec<_>>>()?,
        ),
        None => None,
    };
    Ok(Box::new(ConvTransposeKernel {
        input: x.shape[2..].to_vec(),
        output: out_spatial,
        strides: op.window.strides.clone(),
        kernel_len,
        taps: tap_offsets(&kernel, &op.window.dilations, &pads_begin),
        batch,
        c_in,
        c_out,
        group,
        packed,
        bias,
    }))
}

/// `W_g^T`: group g's `[Cg, Mg*taps]` rows of W, transposed to `[Mg*taps, Cg]`.
fn weight_t(w: &[f32], g: usize, c_g: usize, cols: usize) -> Result<MatRef<'_>> {
    Ok(MatRef::row_major(&w[g * c_g * cols..][..c_g * cols], c_g, cols)?.t())
}

impl Kernel for ConvTransposeKernel {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let in_len: usize = self.input.iter().product();
        let out_len: usize = self.output.iter().product();
        let (c_g, m_g, taps) = (self.c_in / self.group, self.c_out / self.group, self.kernel_len);
        let rows = m_g * taps;
        let x = required(inputs, 0)?.typed::<f32>()?;
        let y = outputs
            .get_mut(0)
            .ok_or_else(|| Error::shape(NAME, "missing output"))?
            .typed::<f32>()?;
        expect_len(NAME, "X", x.len(), self.batch * self.c_in * in_len)?;
        expect_len(NAME, "Y", y.len(), self.batch * self.c_out * out_len)?;
        let w = match self.packed {
            Some(_) => None,
            None => {
                let w = required(inputs, 1)?.typed::<f32>()?;
                expect_len(NAME, "W", w.len(), self.c_in * rows)?;
                Some(w)
            }
        };
        let bias = self.bias.get(NAME, inputs, self.c_out)?;
        let none = Epilogue::default();
        let job = |j: usize, y_job: &mut [f32], parallel: bool| -> Result<()> {
            let (n, g) = (j / self.group, j % self.group);
            for (c, plane) in y_job.chunks_mut(out_len.max(1)).enumerate() {
                plane.fill(bias.map_or(0.0, |b| b[g * m_g + c]));
            }
            let a = match (&self.packed, w) {
                (Some(p), _) => LhsSource::Packed(&p[g]),
                (None, Some(w)) => LhsSource::Mat(weight_t(w, g, c_g, rows)?),
                (None, None) => return Err(Error::shape(NAME, "weights missing")),
            };
            let x_job = &x[(n * self.c_in + g * c_g) * in_len..][..c_g * in_len];
            let panel = panel_width(rows, in_len);
            for p0 in (0..in_len).step_by(panel) {
                let np = panel.min(in_len - p0);
                with_scratch(Slot::Columns, rows * np, |cols| {
                    let b = RhsSource::Mat(MatRef::new(x_job.get(p0..).unwrap_or(&[]), c_g, np, in_len, 1)?);
                    gemm(a, b, cols, np, 1.0, 0.0, &none, parallel)?;
                    self.col2im(cols, np, p0, y_job, out_len, parallel);
                    Ok(())
                })?;
            }
            Ok(())
        };
        let macs = rows.saturating_mul(c_g).saturating_mul(in_len);
        run_jobs(y, m_g * out_len, macs, job)
    }

    fn label(&self) -> &'static str {
        "gemm+col2im"
    }
}

impl ConvTransposeKernel {
    /// Adds panel `cols` (`Mg * taps` rows of `np` input positions from `p0`) into
    /// the output planes of `y_job`.
    fn col2im(&self, cols: &[f32], np: usize, p0: usize, y_job: &mut [f32], out_len: usize, parallel: bool) {
        if out_len == 0 || np == 0 {
            return;
        }
        let (taps, rank) = (self.kernel_len, self.input.len());
        let channel = |c: usize, plane: &mut [f32]| {
            for tap in 0..taps {
                let map = Mapping {
                    source: &self.input,
                    target: &self.output,
                    strides: &self.strides,
                    offsets: &self.taps[tap * rank..][..rank],
                };
                scatter_add_row(&map, &cols[(c * taps + tap) * np..][..np], p0, plane);
            }
        };
        if parallel {
            y_job
                .par_chunks_mut(out_len)
                .enumerate()
                .for_each(|(c, plane)| channel(c, plane));
        } else {
            y_job
                .chunks_mut(out_len)
                .enumerate()
                .for_each(|(c, plane)| channel(c, plane));
        }
    }
}
