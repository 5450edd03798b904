//! `Resize` (opset 11-19 semantics, f32): nearest / linear / cubic over any axes,
//! every coordinate transform, `exclude_outside`, `extrapolation_value`, `axes`
//! and `keep_aspect_ratio_policy`. `roi`, `scales` and `sizes` must be constants.
//!
//! Interpolation is separable: per-axis tap tables are built at preparation
//! ([`taps`]); a run combines the taps of the outer axes once per output row and
//! then walks the last axis.

mod taps;
#[cfg(test)]
mod tests;

use rayon::prelude::*;

use self::taps::{axis_taps, AxisSpec, AxisTaps};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::float_io::{expect_f32, numel, output};
use crate::error::{Error, Result};
use crate::ir::ops::{KeepAspect, Op, Resize};
use crate::tensor::{View, ViewMut};

const NAME: &str = "Resize";

fn err(message: impl Into<String>) -> Error {
    Error::shape(NAME, message)
}

/// Output shape of `Resize` for the given constant `scales` or `sizes` (exactly one
/// non-empty), as shape inference needs it.
pub fn resize_output_shape(
    r: &Resize,
    input: &[usize],
    scales: Option<&[f32]>,
    sizes: Option<&[i64]>,
) -> Result<Vec<usize>> {
    Ok(resolve(r, input, scales, sizes, None)?
        .into_iter()
        .map(|a| a.output)
        .collect())
}

/// Resolves per-axis sizes, scales and ROI exactly as the ONNX reference does.
fn resolve(
    r: &Resize,
    input: &[usize],
    scales: Option<&[f32]>,
    sizes: Option<&[i64]>,
    roi: Option<&[f32]>,
) -> Result<Vec<AxisSpec>> {
    let rank = input.len();
    let axes: Vec<usize> = if r.axes.is_empty() {
        (0..rank).collect()
    } else {
        let mut axes = Vec::with_capacity(r.axes.len());
        for &a in &r.axes {
            let a = if a < 0 { a + rank as i64 } else { a };
            if a < 0 || a >= rank as i64 || axes.contains(&(a as usize)) {
                return Err(err(format!("axes {:?} are invalid for rank {rank}", r.axes)));
            }
            axes.push(a as usize);
        }
        axes
    };
    let mut specs: Vec<AxisSpec> = input
        .iter()
        .map(|&n| AxisSpec {
            input: n,
            output: n,
            scale: 1.0,
            roi: (0.0, 1.0),
        })
        .collect();
    if let Some(roi) = roi.filter(|r| !r.is_empty()) {
        if roi.len() != 2 * axes.len() {
            return Err(err(format!(
                "roi has {} values, expected {}",
                roi.len(),
                2 * axes.len()
            )));
        }
        for (i, &a) in axes.iter().enumerate() {
            specs[a].roi = (roi[i] as f64, roi[axes.len() + i] as f64);
        }
    }
    match (scales.filter(|s| !s.is_empty()), sizes.filter(|s| !s.is_empty())) {
        (Some(scales), None) => {
            if scales.len() != axes.len() {
                return Err(err(format!("{} scales for {} axes", scales.len(), axes.len())));
            }
            for (&a, &s) in axes.iter().zip(scales) {
                if !(s > 0.0 && s.is_finite()) {
                    return Err(err(format!("scale {s} is not positive")));
                }
                let spec = &mut specs[a];
                spec.scale = s as f64;
                let out = (spec.scale * spec.input as f64).floor();
                if out >= (1u64 << 40) as f64 {
                    return Err(err("output too large"));
                }
                spec.output = out as usize;
            }
        }
        (None, Some(sizes)) => {
            if sizes.len() != axes.len() {
                return Err(err(format!("{} sizes for {} axes", sizes.len(), axes.len())));
            }
            for (&a, &s) in axes.iter().zip(sizes) {
                if s <= 0 || specs[a].input == 0 || s >= 1 << 40 {
                    return Err(err(format!(
                        "size {s} for input extent {} is invalid",
                        specs[a].input
                    )));
                }
                specs[a].output = s as usize;
                specs[a].scale = s as f64 / specs[a].input as f64;
            }
            if r.keep_aspect_ratio != KeepAspect::Stretch {
                let ratios = axes.iter().map(|&a| specs[a].scale);
                let scale = match r.keep_aspect_ratio {
                    KeepAspect::NotLarger => ratios.fold(f64::INFINITY, f64::min),
                    _ => ratios.fold(0.0, f64::max),
                };
                for &a in &axes {
                    specs[a].scale = scale;
                    // round half up, as the reference does
                    specs[a].output = (scale * specs[a].input as f64 + 0.5) as usize;
                }
            }
        }
        _ => return Err(err("exactly one of scales and sizes must be given")),
    }
    Ok(specs)
}

/// (input offset, weight) pairs: the outer-axis taps combined for one output row.
type Combos = Vec<(usize, f32)>;

struct ResizeKernel {
    axes: Vec<AxisTaps>,
    input: Vec<usize>,
    output: Vec<usize>,
    extrapolation: f32,
}

/// Prepares `Resize` (f32 data; constant `roi`, `scales`, `sizes`).
pub fn prepare(op: &Op, inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    let Op::Resize(r) = op else {
        return Err(Error::shape(op.name(), "not a Resize op"));
    };
    expect_f32(NAME, inputs, &[0], outputs)?;
    let x = required_desc(inputs, 0)?;
    let constant = |i: usize| -> Result<Option<crate::tensor::Tensor>> {
        match inputs.get(i).copied().flatten() {
            None => Ok(None),
            Some(d) => match d.value {
                Some(t) => Ok(Some(t.clone())),
                None => Err(err(format!(
                    "input {i} (roi / scales / sizes) must be a constant"
                ))),
            },
        }
    };
    let roi = constant(1)?.map(|t| t.to_f32_vec());
    let scales = constant(2)?.map(|t| t.to_f32_vec());
    let sizes = match constant(3)? {
        Some(t) => Some(t.to_i64_vec().ok_or_else(|| err("sizes must be integers"))?),
        None => None,
    };
    let specs = resolve(r, x.shape, scales.as_deref(), sizes.as_deref(), roi.as_deref())?;
    let y = output(NAME, outputs, 0)?;
    let planned: Vec<usize> = specs.iter().map(|a| a.output).collect();
    if y.shape != planned || x.shape.is_empty() {
        return Err(err(format!(
            "computed output {planned:?} differs from the planned {:?}",
            y.shape
        )));
    }
    numel(NAME, x.shape)?;
    numel(NAME, &y.shape)?;
    Ok(Box::new(ResizeKernel {
        axes: specs.iter().map(|a| axis_taps(r, a)).collect(),
        input: x.shape.to_vec(),
        output: y.shape.clone(),
        extrapolation: r.extrapolation_value,
    }))
}

impl Kernel for ResizeKernel {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let x = required(inputs, 0)?.typed::<f32>()?;
        let y = outputs
            .get_mut(0)
            .ok_or_else(|| err("missing output"))?
            .typed::<f32>()?;
        if x.len() != self.input.iter().product::<usize>() || y.len() != self.output.iter().product::<usize>()
        {
            return Err(err("input or output has an unexpected size"));
        }
        let rank = self.input.len();
        let width = self.output[rank - 1];
        if y.is_empty() {
            return Ok(());
        }
        let mut in_strides = vec![1; rank];
        for a in (0..rank - 1).rev() {
            in_strides[a] = in_strides[a + 1] * self.input[a + 1];
        }
        let last = &self.axes[rank - 1];
        y.par_chunks_mut(width).enumerate().for_each_init(
            || (Vec::new(), Vec::new()),
            |(combos, scratch): &mut (Combos, Combos), (row, out)| {
                if !self.outer_combos(row, &in_strides, combos, scratch) {
                    out.fill(self.extrapolation);
                    return;
                }
                out.fill(0.0);
                for &(base, wc) in combos.iter() {
                    for (o, v) in out.iter_mut().enumerate() {
                        let s: f32 = last.of(o).iter().map(|&(i, w)| w * x[base + i]).sum();
                        *v += wc * s;
                    }
                }
                for (v, &outside) in out.iter_mut().zip(&last.outside) {
                    if outside {
                        *v = self.extrapolation;
                    }
                }
            },
        );
        Ok(())
    }

    fn label(&self) -> &'static str {
        "resize"
    }
}

impl ResizeKernel {
    /// The (input offset, weight) combinations of the outer axes' taps for output row
    /// `row` (all axes but the last), in `combos`. False if the row is extrapolated.
    fn outer_combos(
        &self,
        mut row: usize,
        in_strides: &[usize],
        combos: &mut Combos,
        scratch: &mut Combos,
    ) -> bool {
        let rank = self.input.len();
        combos.clear();
        combos.push((0, 1.0));
        for a in (0..rank - 1).rev() {
            let o = row % self.output[a];
            row /= self.output[a];
            let axis = &self.axes[a];
            if axis.outside[o] {
                return false;
            }
            scratch.clear();
            for &(off, w) in combos.iter() {
                scratch.extend(
                    axis.of(o)
                        .iter()
                        .map(|&(i, wt)| (off + i * in_strides[a], w * wt)),
                );
            }
            std::mem::swap(combos, scratch);
        }
        true
    }
}
