//! Sliding-window arithmetic shared by Conv, ConvTranspose and pooling: resolving
//! `auto_pad` into explicit pads and computing output sizes. Shape inference and the
//! kernels both call these, so they can never disagree.

use crate::ir::ops::{AutoPad, Window};

/// Explicit `[begins..., ends...]` pads for `input` spatial sizes.
pub fn resolve_pads(w: &Window, input: &[usize]) -> Result<Vec<usize>, String> {
    let n = w.kernel_shape.len();
    if input.len() != n {
        return Err(format!("window has {n} spatial axes, input has {}", input.len()));
    }
    match w.auto_pad {
        AutoPad::NotSet => Ok(w.pads.clone()),
        AutoPad::Valid => Ok(vec![0; 2 * n]),
        AutoPad::SameUpper | AutoPad::SameLower => {
            let mut pads = vec![0; 2 * n];
            for i in 0..n {
                let out = input[i].div_ceil(w.strides[i]);
                let extent = (w.kernel_shape[i] - 1) * w.dilations[i] + 1;
                let needed = ((out.saturating_sub(1)) * w.strides[i] + extent).saturating_sub(input[i]);
                let small = needed / 2;
                let (begin, end) = if w.auto_pad == AutoPad::SameUpper {
                    (small, needed - small)
                } else {
                    (needed - small, small)
                };
                pads[i] = begin;
                pads[i + n] = end;
            }
            Ok(pads)
        }
    }
}

/// Output spatial sizes of a convolution or pooling window (ONNX rules, incl. `ceil_mode`,
/// where the last window must start inside the input or its left padding).
pub fn output_sizes(
    w: &Window,
    input: &[usize],
    pads: &[usize],
    ceil_mode: bool,
) -> Result<Vec<usize>, String> {
    let n = w.kernel_shape.len();
    (0..n)
        .map(|i| {
            let padded = input[i] + pads[i] + pads[i + n];
            let extent = (w.kernel_shape[i] - 1) * w.dilations[i] + 1;
            if padded < extent {
                return Err(format!(
                    "axis {i}: window extent {extent} is larger than the padded input {padded}"
                ));
            }
            let span = padded - extent;
            let s = w.strides[i];
            let mut out = if ceil_mode {
                span.div_ceil(s) + 1
            } else {
                span / s + 1
            };
            if ceil_mode && (out - 1) * s >= input[i] + pads[i] {
                out -= 1;
            }
            Ok(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(k: usize, s: usize, auto_pad: AutoPad) -> Window {
        Window {
            kernel_shape: vec![k],
            strides: vec![s],
            dilations: vec![1],
            pads: vec![0, 0],
            auto_pad,
        }
    }

    #[test]
    fn same_upper_puts_the_odd_pad_at_the_end() {
        let w = window(2, 1, AutoPad::SameUpper);
        assert_eq!(resolve_pads(&w, &[5]).unwrap(), vec![0, 1]);
        let w = window(2, 1, AutoPad::SameLower);
        assert_eq!(resolve_pads(&w, &[5]).unwrap(), vec![1, 0]);
    }

    #[test]
    fn ceil_mode_adds_a_partial_window_but_not_one_starting_in_padding() {
        let w = window(3, 2, AutoPad::NotSet);
        assert_eq!(output_sizes(&w, &[6], &[0, 0], false).unwrap(), vec![2]);
        assert_eq!(output_sizes(&w, &[6], &[0, 0], true).unwrap(), vec![3]);
        // 112 -> 56 for ResNet's 3x3/2 max pool with pad 1.
        assert_eq!(output_sizes(&w, &[112], &[1, 1], false).unwrap(), vec![56]);
    }
}
