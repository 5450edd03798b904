//! MobileNetV2 (width 1.0) as torchvision builds it: ReLU6 everywhere, linear
//! bottlenecks, and the classifier's dropout omitted (it is the identity in eval).

use super::builder::{conv, Act, Fm, Net};
use super::make_divisible;
use crate::error::Result;

/// `(expand ratio t, channels c, repeats n, first stride s)` per stage.
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

const LAST_CHANNEL: usize = 1280;

pub(super) fn mobilenet_v2(net: &mut Net, x: &Fm) -> Result<()> {
    let mut x = net.conv_bn("features.0.0", "features.0.1", x, conv(32, 3, 2), Act::Relu6)?;
    let mut index = 1;
    for (t, c, n, s) in SETTINGS {
        let cout = make_divisible(c as f64, 8);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            x = inverted_residual(net, &format!("features.{index}.conv"), &x, cout, stride, t)?;
            index += 1;
        }
    }
    let (c, b) = (format!("features.{index}.0"), format!("features.{index}.1"));
    let x = net.conv_bn(&c, &b, &x, conv(LAST_CHANNEL, 1, 1), Act::Relu6)?;
    net.classifier("classifier.1", &x, 1000)
}

/// Expand (1x1, skipped when `t == 1`) → depthwise 3x3 → linear 1x1 projection,
/// plus the input when stride is 1 and the width is unchanged. `scope` is the
/// block's `conv` Sequential, whose children are numbered in order.
fn inverted_residual(net: &mut Net, scope: &str, x: &Fm, cout: usize, stride: usize, t: usize) -> Result<Fm> {
    let hidden = x.c * t;
    let mut child = 0;
    let mut next = || {
        child += 1;
        child - 1
    };
    let mut y = x.clone();
    if t != 1 {
        let i = next();
        y = net.conv_bn(
            &format!("{scope}.{i}.0"),
            &format!("{scope}.{i}.1"),
            &y,
            conv(hidden, 1, 1),
            Act::Relu6,
        )?;
    }
    let i = next();
    let dw = conv(hidden, 3, stride).groups(hidden);
    y = net.conv_bn(
        &format!("{scope}.{i}.0"),
        &format!("{scope}.{i}.1"),
        &y,
        dw,
        Act::Relu6,
    )?;
    let (c, b) = (next(), next());
    y = net.conv_bn(
        &format!("{scope}.{c}"),
        &format!("{scope}.{b}"),
        &y,
        conv(cout, 1, 1),
        Act::Linear,
    )?;
    if stride == 1 && x.c == cout {
        // torchvision writes `x + self.conv(x)`.
        let block = scope.strip_suffix(".conv").unwrap_or(scope);
        y = net.add(block, x, &y)?;
    }
    Ok(y)
}
