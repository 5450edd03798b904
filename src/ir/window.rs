//! Sliding-window geometry of Conv, ConvTranspose and the pooling ops: resolving
//! `auto_pad` into explicit pads and computing output sizes. It lives in the IR
//! because shape inference and every backend's kernels must agree on it exactly.
//!
//! Shape inference calls these same functions, so the output shape it announces is
//! by construction the one the kernels compute. All arithmetic is checked: shapes
//! and attributes come from untrusted models.

use crate::error::{Error, Result};
use crate::ir::ops::{AutoPad, ConvTranspose, Window};

fn err(message: impl Into<String>) -> Error {
    Error::shape("window", message)
}

/// `(k - 1) * d + 1`: the extent one window covers in the (padded) input.
fn effective_extent(kernel: usize, dilation: usize) -> Result<usize> {
    kernel
        .checked_sub(1)
        .and_then(|k| k.checked_mul(dilation))
        .and_then(|k| k.checked_add(1))
        .ok_or_else(|| {
            err(format!(
                "kernel size {kernel} with dilation {dilation} is invalid"
            ))
        })
}

/// Checks the per-axis attribute vectors have one entry per spatial axis and no zeros
/// where a zero would divide or make an empty window.
fn validate(window: &Window, rank: usize, kernel_spatial: &[usize]) -> Result<()> {
    if kernel_spatial.len() != rank {
        return Err(err(format!(
            "kernel has {} spatial dims, input has {rank}",
            kernel_spatial.len()
        )));
    }
    if window.strides.len() != rank || window.dilations.len() != rank {
        return Err(err(format!(
            "strides {:?} / dilations {:?} do not have {rank} entries",
            window.strides, window.dilations
        )));
    }
    if !window.pads.is_empty() && window.pads.len() != 2 * rank {
        return Err(err(format!(
            "pads {:?} do not have {} entries",
            window.pads,
            2 * rank
        )));
    }
    if window.strides.contains(&0) || window.dilations.contains(&0) || kernel_spatial.contains(&0) {
        return Err(err("strides, dilations and kernel sizes must be positive"));
    }
    Ok(())
}

/// The kernel's spatial shape for a convolution: the weight's trailing dims, which
/// the `kernel_shape` attribute (when the model gives it) must agree with.
pub fn conv_kernel_shape(window: &Window, weight_shape: &[usize]) -> Result<Vec<usize>> {
    if weight_shape.len() < 3 {
        return Err(err(format!("weight shape {weight_shape:?} has no spatial dims")));
    }
    let spatial = &weight_shape[2..];
    if !window.kernel_shape.is_empty() && window.kernel_shape != spatial {
        return Err(err(format!(
            "kernel_shape {:?} does not match weight shape {weight_shape:?}",
            window.kernel_shape
        )));
    }
    Ok(spatial.to_vec())
}

/// Explicit pads `[begins..., ends...]` for a window over `input_spatial`, with
/// `auto_pad` resolved. SAME_* pads so the output is `ceil(input / stride)`, the odd
/// element going to the end (UPPER) or the beginning (LOWER).
pub fn resolve_pads(
    window: &Window,
    input_spatial: &[usize],
    kernel_spatial: &[usize],
) -> Result<Vec<usize>> {
    let rank = input_spatial.len();
    validate(window, rank, kernel_spatial)?;
    match window.auto_pad {
        AutoPad::NotSet if !window.pads.is_empty() => Ok(window.pads.clone()),
        AutoPad::NotSet | AutoPad::Valid => Ok(vec![0; 2 * rank]),
        AutoPad::SameUpper | AutoPad::SameLower => {
            let mut pads = vec![0; 2 * rank];
            for i in 0..rank {
                let (input, stride) = (input_spatial[i], window.strides[i]);
                let extent = effective_extent(kernel_spatial[i], window.dilations[i])?;
                let out = input.div_ceil(stride);
                // Windows reach `(out - 1) * stride + extent`; whatever of that lies past
                // the input is padding. It can be "negative" (stride > extent): no pad.
                let needed = out
                    .saturating_sub(1)
                    .checked_mul(stride)
                    .and_then(|v| v.checked_add(extent));
                let total = needed
                    .ok_or_else(|| err("window extent overflows"))?
                    .saturating_sub(input);
                let small = total / 2;
                let (begin, end) = match window.auto_pad {
                    AutoPad::SameUpper => (small, total - small),
                    _ => (total - small, small),
                };
                pads[i] = begin;
                pads[rank + i] = end;
            }
            Ok(pads)
        }
    }
}

/// Output spatial size of a convolution or pooling window. With `ceil_mode` the
/// division rounds up, but the last window must still start inside the input or its
/// left padding (the ONNX / PyTorch rule). `ceil_mode` is ignored for SAME_*, whose
/// size is fixed at `ceil(input / stride)`.
pub fn output_spatial(
    window: &Window,
    input_spatial: &[usize],
    kernel_spatial: &[usize],
    ceil_mode: bool,
) -> Result<Vec<usize>> {
    let pads = resolve_pads(window, input_spatial, kernel_spatial)?;
    let rank = input_spatial.len();
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let (input, stride) = (input_spatial[i], window.strides[i]);
        if matches!(window.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
            out.push(input.div_ceil(stride));
            continue;
        }
        let extent = effective_extent(kernel_spatial[i], window.dilations[i])?;
        let padded = input
            .checked_add(pads[i])
            .and_then(|v| v.checked_add(pads[rank + i]))
            .ok_or_else(|| err("padded size overflows"))?;
        let span = padded.checked_sub(extent).ok_or_else(|| {
            err(format!(
                "window extent {extent} is larger than the padded input {padded} on spatial axis {i}"
            ))
        })?;
        let mut size = if ceil_mode {
            span.div_ceil(stride) + 1
        } else {
            span / stride + 1
        };
        if ceil_mode && (size - 1) * stride >= input + pads[i] {
            size -= 1;
        }
        out.push(size);
    }
    Ok(out)
}

/// Everything a window kernel needs, per spatial axis, with pads resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub input: Vec<usize>,
    pub output: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads_begin: Vec<usize>,
    pub pads_end: Vec<usize>,
}

impl Geometry {
    /// Resolves the window over `input_spatial` and checks the result against the
    /// output spatial shape that shape inference announced.
    pub fn new(
        window: &Window,
        input_spatial: &[usize],
        kernel_spatial: &[usize],
        ceil_mode: bool,
        announced_output: &[usize],
    ) -> Result<Geometry> {
        let pads = resolve_pads(window, input_spatial, kernel_spatial)?;
        let output = output_spatial(window, input_spatial, kernel_spatial, ceil_mode)?;
        if output != announced_output {
            return Err(err(format!(
                "computed output spatial shape {output:?} differs from the planned {announced_output:?}"
            )));
        }
        let rank = input_spatial.len();
        // Kernels index with isize arithmetic (taps times dilation minus padding);
        // absurd attribute values from a hostile model must not wrap around.
        let limit = (isize::MAX / 4) as usize;
        for i in 0..rank {
            let extent = effective_extent(kernel_spatial[i], window.dilations[i])?;
            let padded = input_spatial[i]
                .saturating_add(pads[i])
                .saturating_add(pads[rank + i]);
            if padded.saturating_add(extent) > limit || window.strides[i] > limit {
                return Err(err("window sizes are too large"));
            }
        }
        Ok(Geometry {
            input: input_spatial.to_vec(),
            output,
            kernel: kernel_spatial.to_vec(),
            strides: window.strides.clone(),
            dilations: window.dilations.clone(),
            pads_begin: pads[..rank].to_vec(),
            pads_end: pads[rank..].to_vec(),
        })
    }

    pub fn rank(&self) -> usize {
        self.input.len()
    }

    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    pub fn output_len(&self) -> usize {
        self.output.iter().product()
    }

    pub fn kernel_len(&self) -> usize {
        self.kernel.iter().product()
    }

    /// True when the window maps output position `p` straight to input position `p`.
    pub fn is_pointwise(&self) -> bool {
        self.kernel.iter().all(|&k| k == 1)
            && self.strides.iter().all(|&s| s == 1)
            && self.pads_begin.iter().chain(&self.pads_end).all(|&p| p == 0)
    }
}

/// Begin pads (possibly negative: the output is then shifted the other way) and the
/// output spatial shape of a ConvTranspose, following the ONNX reference: with
/// SAME_* the output is `output_shape` (default `input * stride`) and the pads are
/// derived from it; otherwise explicit pads apply and `output_shape`, when given,
/// only fixes the output size (extra positions get just the bias).
pub fn conv_transpose_geometry(
    op: &ConvTranspose,
    input_spatial: &[usize],
    kernel_spatial: &[usize],
) -> Result<(Vec<isize>, Vec<usize>)> {
    let window = &op.window;
    let rank = input_spatial.len();
    validate(window, rank, kernel_spatial)?;
    let output_padding = match op.output_padding.len() {
        0 => vec![0; rank],
        n if n == rank => op.output_padding.clone(),
        _ => {
            return Err(err(format!(
                "output_padding {:?} has the wrong length",
                op.output_padding
            )))
        }
    };
    // Some exporters write the full output shape (N, C, spatial...): keep the tail.
    let output_shape: &[usize] = match op.output_shape.len() {
        0 => &[],
        n if n >= rank => &op.output_shape[n - rank..],
        _ => {
            return Err(err(format!(
                "output_shape {:?} has too few entries",
                op.output_shape
            )))
        }
    };
    let big = |v: usize| i128::try_from(v).map_err(|_| err("size overflows"));
    let mut begins = Vec::with_capacity(rank);
    let mut output = Vec::with_capacity(rank);
    for i in 0..rank {
        let extent = big(effective_extent(kernel_spatial[i], window.dilations[i])?)?;
        let (input, stride) = (big(input_spatial[i])?, big(window.strides[i])?);
        let natural = stride * (input - 1) + big(output_padding[i])? + extent;
        let (begin, out) = match window.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => {
                let out = match output_shape.get(i) {
                    Some(&o) => big(o)?,
                    None => input * stride,
                };
                let total = natural - out;
                let half = total.div_euclid(2);
                let begin = if window.auto_pad == AutoPad::SameUpper {
                    half
                } else {
                    total - half
                };
                (begin, out)
            }
            AutoPad::NotSet | AutoPad::Valid => {
                let (pb, pe) = match (window.auto_pad, window.pads.is_empty()) {
                    (AutoPad::NotSet, false) => (big(window.pads[i])?, big(window.pads[rank + i])?),
                    _ => (0, 0),
                };
                let out = match output_shape.get(i) {
                    Some(&o) => big(o)?,
                    None => natural - pb - pe,
                };
                (pb, out)
            }
        };
        let out =
            usize::try_from(out).map_err(|_| err(format!("negative output size on spatial axis {i}")))?;
        let begin = isize::try_from(begin).map_err(|_| err("padding overflows"))?;
        begins.push(begin);
        output.push(out);
    }
    Ok((begins, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(strides: &[usize], pads: &[usize], auto_pad: AutoPad) -> Window {
        Window {
            kernel_shape: vec![],
            strides: strides.to_vec(),
            dilations: vec![1; strides.len()],
            pads: pads.to_vec(),
            auto_pad,
        }
    }

    #[test]
    fn same_upper_and_lower_put_the_odd_pad_on_opposite_sides() {
        let w = win(&[2, 1], &[], AutoPad::SameUpper);
        assert_eq!(resolve_pads(&w, &[6, 5], &[3, 2]).unwrap(), vec![0, 0, 1, 1]);
        assert_eq!(output_spatial(&w, &[6, 5], &[3, 2], false).unwrap(), vec![3, 5]);
        let w = win(&[2, 1], &[], AutoPad::SameLower);
        assert_eq!(resolve_pads(&w, &[6, 5], &[3, 2]).unwrap(), vec![1, 1, 0, 0]);
        // A stride larger than the kernel needs no padding at all.
        let w = win(&[4], &[], AutoPad::SameUpper);
        assert_eq!(resolve_pads(&w, &[6], &[1]).unwrap(), vec![0, 0]);
    }

    #[test]
    fn ceil_mode_drops_a_window_starting_in_the_end_padding() {
        let w = win(&[2], &[0, 0], AutoPad::NotSet);
        assert_eq!(output_spatial(&w, &[5], &[2], false).unwrap(), vec![2]);
        assert_eq!(output_spatial(&w, &[5], &[2], true).unwrap(), vec![3]);
        // (3 + 1 + 1 - 2) / 2 = 1.5 -> 3 windows, but the third would start at padded
        // position 4 >= 3 + 1: it lies entirely in the end padding.
        let w = win(&[2], &[1, 1], AutoPad::NotSet);
        assert_eq!(output_spatial(&w, &[3], &[2], true).unwrap(), vec![2]);
    }

    #[test]
    fn bad_windows_are_errors_not_panics() {
        let w = win(&[1], &[0, 0], AutoPad::NotSet);
        assert!(output_spatial(&w, &[2], &[3], false).is_err());
        assert!(output_spatial(&win(&[0], &[0, 0], AutoPad::NotSet), &[4], &[1], false).is_err());
        assert!(resolve_pads(&win(&[1, 1], &[0, 0], AutoPad::NotSet), &[4, 4], &[1, 1]).is_err());
        let mut huge = win(&[1], &[0, 0], AutoPad::NotSet);
        huge.dilations = vec![usize::MAX];
        assert!(output_spatial(&huge, &[4], &[3], false).is_err());
    }

    #[test]
    fn conv_transpose_follows_the_reference_padding_rules() {
        let mut op = ConvTranspose {
            window: win(&[3, 2], &[1, 2, 1, 2], AutoPad::NotSet),
            group: 1,
            output_padding: vec![],
            output_shape: vec![],
        };
        assert_eq!(
            conv_transpose_geometry(&op, &[3, 3], &[3, 3]).unwrap(),
            (vec![1, 2], vec![7, 3])
        );
        op.window = win(&[2, 2], &[], AutoPad::SameUpper);
        assert_eq!(
            conv_transpose_geometry(&op, &[3, 3], &[3, 3]).unwrap(),
            (vec![0, 0], vec![6, 6])
        );
        op.window.auto_pad = AutoPad::SameLower;
        assert_eq!(
            conv_transpose_geometry(&op, &[3, 3], &[3, 3]).unwrap(),
            (vec![1, 1], vec![6, 6])
        );
        op.window = win(&[3, 2], &[], AutoPad::NotSet);
        op.output_shape = vec![1, 2, 10, 8];
        assert_eq!(
            conv_transpose_geometry(&op, &[3, 3], &[3, 3]).unwrap(),
            (vec![0, 0], vec![10, 8])
        );
    }
}
