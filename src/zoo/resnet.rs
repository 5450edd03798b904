//! ResNet-18/34/50 as torchvision builds them (ResNet-50 is v1.5: the stride sits
//! on the 3x3 conv of each Bottleneck).

use super::builder::{conv, Act, Fm, Net};
use crate::error::Result;

#[derive(Copy, Clone)]
enum Block {
    Basic,
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

pub(super) fn resnet18(net: &mut Net, x: &Fm) -> Result<()> {
    resnet(net, x, Block::Basic, [2, 2, 2, 2])
}

pub(super) fn resnet34(net: &mut Net, x: &Fm) -> Result<()> {
    resnet(net, x, Block::Basic, [3, 4, 6, 3])
}

pub(super) fn resnet50(net: &mut Net, x: &Fm) -> Result<()> {
    resnet(net, x, Block::Bottleneck, [3, 4, 6, 3])
}

fn resnet(net: &mut Net, x: &Fm, block: Block, layers: [usize; 4]) -> Result<()> {
    let x = net.conv_bn("conv1", "bn1", x, conv(64, 7, 2), Act::Relu)?;
    let mut x = net.max_pool_3x3("maxpool", &x)?;
    for (i, (&depth, planes)) in layers.iter().zip([64, 128, 256, 512]).enumerate() {
        for j in 0..depth {
            let stride = if i > 0 && j == 0 { 2 } else { 1 };
            let scope = format!("layer{}.{j}", i + 1);
            x = match block {
                Block::Basic => basic(net, &scope, &x, planes, stride)?,
                Block::Bottleneck => bottleneck(net, &scope, &x, planes, stride)?,
            };
        }
    }
    net.classifier("fc", &x, 1000)
}

/// The shortcut: identity, or a strided 1x1 conv + BN when the shape changes.
/// torchvision runs it after the main branch, so it comes after it in the graph.
fn shortcut(net: &mut Net, scope: &str, x: &Fm, cout: usize, stride: usize) -> Result<Fm> {
    if stride == 1 && x.c == cout {
        return Ok(x.clone());
    }
    let (c, b) = (format!("{scope}.downsample.0"), format!("{scope}.downsample.1"));
    net.conv_bn(&c, &b, x, conv(cout, 1, stride), Act::Linear)
}

fn basic(net: &mut Net, scope: &str, x: &Fm, planes: usize, stride: usize) -> Result<Fm> {
    let s = |m: &str| format!("{scope}.{m}");
    let out = net.conv_bn(&s("conv1"), &s("bn1"), x, conv(planes, 3, stride), Act::Relu)?;
    let out = net.conv_bn(&s("conv2"), &s("bn2"), &out, conv(planes, 3, 1), Act::Linear)?;
    let identity = shortcut(net, scope, x, planes * Block::Basic.expansion(), stride)?;
    let sum = net.add(scope, &out, &identity)?;
    net.relu(scope, &sum)
}

fn bottleneck(net: &mut Net, scope: &str, x: &Fm, planes: usize, stride: usize) -> Result<Fm> {
    let s = |m: &str| format!("{scope}.{m}");
    let out = net.conv_bn(&s("conv1"), &s("bn1"), x, conv(planes, 1, 1), Act::Relu)?;
    let out = net.conv_bn(&s("conv2"), &s("bn2"), &out, conv(planes, 3, stride), Act::Relu)?;
    let cout = planes * Block::Bottleneck.expansion();
    let out = net.conv_bn(&s("conv3"), &s("bn3"), &out, conv(cout, 1, 1), Act::Linear)?;
    let identity = shortcut(net, scope, x, cout, stride)?;
    let sum = net.add(scope, &out, &identity)?;
    net.relu(scope, &sum)
}
