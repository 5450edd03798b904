//! RegNetX / RegNetY as torchvision builds them: a 3x3 stride-2 stem of width 32,
//! four stages of `ResBottleneckBlock`s (bottleneck multiplier 1), and the head.
//!
//! Stage widths come from the quantized linear rule of `BlockParams.from_init_params`.
//! torchvision evaluates it on float32 tensors, and the rounding of a width that
//! lands near a quantization step depends on that, so it is reproduced here in
//! `f32`, operation by operation, with round-half-to-even like `torch.round`.

use super::builder::{conv, Act, Fm, Net};
use super::make_divisible;
use crate::error::Result;

/// The arguments torchvision passes to `BlockParams.from_init_params`.
#[derive(Copy, Clone, Debug)]
pub(super) struct RegNetParams {
    pub depth: usize,
    pub w_0: usize,
    pub w_a: f64,
    pub w_m: f64,
    pub group_width: usize,
    /// `Some` for RegNetY (squeeze-and-excitation in every block).
    pub se_ratio: Option<f64>,
}

const fn x(depth: usize, w_0: usize, w_a: f64, w_m: f64, group_width: usize) -> RegNetParams {
    RegNetParams {
        depth,
        w_0,
        w_a,
        w_m,
        group_width,
        se_ratio: None,
    }
}

const fn y(depth: usize, w_0: usize, w_a: f64, w_m: f64, group_width: usize) -> RegNetParams {
    RegNetParams {
        depth,
        w_0,
        w_a,
        w_m,
        group_width,
        se_ratio: Some(0.25),
    }
}

pub(super) const X_400MF: RegNetParams = x(22, 24, 24.48, 2.54, 16);
pub(super) const X_800MF: RegNetParams = x(16, 56, 35.73, 2.28, 16);
pub(super) const X_1_6GF: RegNetParams = x(18, 80, 34.01, 2.25, 24);
pub(super) const X_3_2GF: RegNetParams = x(25, 88, 26.31, 2.25, 48);
pub(super) const X_8GF: RegNetParams = x(23, 80, 49.56, 2.88, 120);
pub(super) const X_16GF: RegNetParams = x(22, 216, 55.59, 2.1, 128);
pub(super) const X_32GF: RegNetParams = x(23, 320, 69.86, 2.0, 168);
pub(super) const Y_400MF: RegNetParams = y(16, 48, 27.89, 2.09, 8);
pub(super) const Y_800MF: RegNetParams = y(14, 56, 38.84, 2.4, 16);
pub(super) const Y_1_6GF: RegNetParams = y(27, 48, 20.71, 2.65, 24);
pub(super) const Y_3_2GF: RegNetParams = y(21, 80, 42.63, 2.66, 24);
pub(super) const Y_8GF: RegNetParams = y(17, 192, 76.82, 2.19, 56);
pub(super) const Y_16GF: RegNetParams = y(18, 200, 106.23, 2.48, 112);
pub(super) const Y_32GF: RegNetParams = y(20, 232, 115.89, 2.53, 232);

const STEM_WIDTH: usize = 32;

/// One stage: `depth` blocks of output width `width`, the first with stride 2.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct Stage {
    pub depth: usize,
    pub width: usize,
    pub group_width: usize,
}

/// `BlockParams.from_init_params` followed by `_adjust_widths_groups_compatibilty`.
pub(super) fn stages(p: &RegNetParams) -> Vec<Stage> {
    const QUANT: f32 = 8.0;
    // Python floats become float32 when they meet a float32 tensor.
    let (w_0, w_a, w_m) = (p.w_0 as f32, p.w_a as f32, p.w_m as f32);
    // `math.log(w_m)` is a Python (double) value, rounded to float32 by the division.
    let log_w_m = p.w_m.ln() as f32;
    let block_widths = (0..p.depth).map(|i| {
        let cont = i as f32 * w_a + w_0;
        let capacity = ((cont / w_0).ln() / log_w_m).round_ties_even();
        ((w_0 * w_m.powf(capacity) / QUANT).round_ties_even() * QUANT) as usize
    });
    // Consecutive equal widths form a stage.
    let mut stages: Vec<Stage> = Vec::new();
    for w in block_widths {
        match stages.last_mut() {
            Some(s) if s.width == w => s.depth += 1,
            _ => stages.push(Stage {
                depth: 1,
                width: w,
                group_width: p.group_width,
            }),
        }
    }
    // With bottleneck multiplier 1 the bottleneck width is the stage width; groups
    // must divide it.
    for s in &mut stages {
        s.group_width = s.group_width.min(s.width);
        s.width = make_divisible(s.width as f64, s.group_width);
    }
    stages
}

pub(super) fn regnet(net: &mut Net, x: &Fm, p: &RegNetParams) -> Result<()> {
    let mut x = net.conv_bn("stem.0", "stem.1", x, conv(STEM_WIDTH, 3, 2), Act::Relu)?;
    for (i, stage) in stages(p).iter().enumerate() {
        for j in 0..stage.depth {
            let scope = format!("trunk_output.block{n}.block{n}-{j}", n = i + 1);
            let stride = if j == 0 { 2 } else { 1 };
            x = res_bottleneck(net, &scope, &x, stage, stride, p.se_ratio)?;
        }
    }
    net.classifier("fc", &x, 1000)
}

/// `ResBottleneckBlock`: 1x1 → grouped 3x3 (stride) [→ SE] → 1x1, plus the input
/// or its projection, then ReLU. The projection is computed first (`proj(x) + f(x)`).
fn res_bottleneck(
    net: &mut Net,
    scope: &str,
    x: &Fm,
    stage: &Stage,
    stride: usize,
    se_ratio: Option<f64>,
) -> Result<Fm> {
    let s = |m: &str| format!("{scope}.{m}");
    let w_out = stage.width;
    let shortcut = if x.c != w_out || stride != 1 {
        net.conv_bn(&s("proj.0"), &s("proj.1"), x, conv(w_out, 1, stride), Act::Linear)?
    } else {
        x.clone()
    };
    let groups = w_out / stage.group_width;
    let f = net.conv_bn(&s("f.a.0"), &s("f.a.1"), x, conv(w_out, 1, 1), Act::Relu)?;
    let mut f = net.conv_bn(
        &s("f.b.0"),
        &s("f.b.1"),
        &f,
        conv(w_out, 3, stride).groups(groups),
        Act::Relu,
    )?;
    if let Some(ratio) = se_ratio {
        // The SE width is relative to the block's input width, as in torchvision.
        let squeeze = (ratio * x.c as f64).round_ties_even() as usize;
        f = net.squeeze_excite(&s("f.se"), &f, squeeze)?;
    }
    let f = net.conv_bn(&s("f.c.0"), &s("f.c.1"), &f, conv(w_out, 1, 1), Act::Linear)?;
    let sum = net.add(scope, &shortcut, &f)?;
    net.relu(scope, &sum)
}
