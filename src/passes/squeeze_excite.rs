//! Squeeze-excitation recognition:
//! `x * gate(Conv1x1(hidden(Conv1x1(GlobalAveragePool(x)))))` → `SqueezeExcite`.
//!
//! RegNetY, MobileNetV3 and EfficientNet carry one per block. Unfused it is five
//! nodes with four tiny intermediate tensors, each a kernel launch on a GPU; as one
//! op a backend can compute the pooled means, both matrix-vector products and the
//! scaling in two passes over `x`. Runs after conv fusion, so the activations are
//! already inside the two convs.

use super::rewrite::{consumers, kill, producers, sole_consumer, sweep};
use crate::error::Result;
use crate::ir::ops::{Activation, BinaryOp, FusedConv, PoolKind};
use crate::ir::{Graph, Op, ValueId};

/// The 1x1, ungrouped, unpadded conv producing `v` with constant weights, if `v`'s
/// only reader is `reader`: `(node, activation)`.
fn pointwise_conv(
    g: &Graph,
    prod: &[Option<usize>],
    uses: &[Vec<usize>],
    v: ValueId,
    reader: usize,
) -> Option<(usize, Activation)> {
    let p = prod[v]?;
    let (conv, activation) = match &g.nodes[p].op {
        Op::Conv(c) => (c, Activation::None),
        Op::FusedConv(FusedConv {
            conv,
            activation,
            residual: false,
        }) => (conv, *activation),
        _ => return None,
    };
    let w = g.constant(g.nodes[p].inputs.get(1).copied().flatten()?)?;
    let pointwise = conv.group == 1
        && w.shape().len() == 4
        && w.shape()[2..] == [1, 1]
        && conv.window.strides.iter().all(|&s| s == 1)
        && conv.window.pads.iter().all(|&p| p == 0);
    let bias_const = g.nodes[p]
        .inputs
        .get(2)
        .copied()
        .flatten()
        .is_none_or(|b| g.constant(b).is_some());
    (pointwise && bias_const && sole_consumer(g, uses, v) == Some(reader)).then_some((p, activation))
}

pub fn fuse_squeeze_excite(g: &mut Graph) -> Result<usize> {
    let mut fused = 0;
    for i in 0..g.nodes.len() {
        if g.nodes[i].op != Op::Binary(BinaryOp::Mul) {
            continue;
        }
        let (prod, uses) = (producers(g), consumers(g));
        let (Some(a), Some(b)) = (g.nodes[i].inputs[0], g.nodes[i].inputs.get(1).copied().flatten()) else {
            continue;
        };
        for (x, gate) in [(a, b), (b, a)] {
            let Some((expand, gate_act)) = pointwise_conv(g, &prod, &uses, gate, i) else {
                continue;
            };
            if !matches!(gate_act, Activation::Sigmoid | Activation::HardSigmoid { .. }) {
                continue;
            }
            let Some(hidden_v) = g.nodes[expand].inputs[0] else {
                continue;
            };
            let Some((reduce, hidden_act)) = pointwise_conv(g, &prod, &uses, hidden_v, expand) else {
                continue;
            };
            let Some(pooled) = g.nodes[reduce].inputs[0] else {
                continue;
            };
            let Some(pool) = prod[pooled] else { continue };
            let is_mean = matches!(g.nodes[pool].op, Op::GlobalPool(PoolKind::Avg { .. }));
            let rank4 = g.values[x].fact.rank() == Some(4);
            if !is_mean
                || !rank4
                || g.nodes[pool].inputs[0] != Some(x)
                || sole_consumer(g, &uses, pooled) != Some(reduce)
            {
                continue;
            }
            let input = |n: usize, k: usize| g.nodes[n].inputs.get(k).copied().flatten();
            let inputs = vec![
                Some(x),
                input(reduce, 1),
                input(reduce, 2),
                input(expand, 1),
                input(expand, 2),
            ];
            g.nodes[i].op = Op::SqueezeExcite {
                hidden: hidden_act,
                gate: gate_act,
            };
            g.nodes[i].inputs = inputs;
            for n in [pool, reduce, expand] {
                kill(g, n);
            }
            fused += 1;
            break;
        }
    }
    sweep(g);
    Ok(fused)
}
