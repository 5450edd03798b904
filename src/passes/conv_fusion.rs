//! Conv epilogue fusion: `act(Conv(x) + b + skip)` as one `FusedConv`.
//!
//! The conv's GEMM applies bias, residual and activation to each output tile while
//! it is still in cache, so every absorbed `Add` or activation saves a full pass over
//! the activation tensor. ResNet's `Conv → Add(skip) → Relu` and MobileNet's
//! `Conv → Clip(0, 6)` each become one node.

use super::rewrite::{consumers, kill, producers, same_shape, sole_consumer, sweep};
use crate::error::Result;
use crate::ir::ops::{Activation, BinaryOp, FusedConv};
use crate::ir::{Graph, Op, ValueId};
use crate::tensor::DType;

/// A conv node's op as a `FusedConv` (with nothing fused yet for a plain `Conv`).
fn as_fused(op: &Op) -> Option<FusedConv> {
    match op {
        Op::Conv(c) => Some(FusedConv {
            conv: c.clone(),
            activation: Activation::None,
            residual: false,
        }),
        Op::FusedConv(f) => Some(f.clone()),
        _ => None,
    }
}

/// The conv producing `v`, if `reader` is its only reader and it has no activation
/// yet (an activation must come last).
fn open_conv(
    g: &Graph,
    prod: &[Option<usize>],
    uses: &[Vec<usize>],
    v: ValueId,
    reader: usize,
) -> Option<(usize, FusedConv)> {
    let p = prod[v]?;
    let f = as_fused(&g.nodes[p].op)?;
    let ok = f.activation == Activation::None
        && g.values[v].fact.dtype == DType::F32
        && sole_consumer(g, uses, v) == Some(reader);
    ok.then_some((p, f))
}

pub fn fuse_conv_epilogue(g: &mut Graph) -> Result<usize> {
    let mut fused = 0;
    for i in 0..g.nodes.len() {
        let prod = producers(g);
        let uses = consumers(g);
        let node = &g.nodes[i];
        let Some(&out) = node.outputs.first() else {
            continue;
        };
        match node.op {
            Op::Unary(u) => {
                let (Some(act), Some(Some(x))) = (Activation::from_unary(u), node.inputs.first().copied())
                else {
                    continue;
                };
                let Some((p, mut f)) = open_conv(g, &prod, &uses, x, i) else {
                    continue;
                };
                f.activation = act;
                g.nodes[p].op = Op::FusedConv(f);
                g.nodes[p].outputs[0] = out;
                kill(g, i);
                fused += 1;
            }
            Op::Binary(BinaryOp::Add) => {
                let (Some(a), Some(b)) = (node.inputs[0], node.inputs.get(1).copied().flatten()) else {
                    continue;
                };
                // Of two candidate convs, absorb into the later one: the skip tensor
                // then already exists where that conv runs.
                let mut candidates: Vec<(usize, FusedConv, ValueId)> = [(a, b), (b, a)]
                    .into_iter()
                    .filter_map(|(conv_out, skip)| {
                        let (p, f) = open_conv(g, &prod, &uses, conv_out, i)?;
                        (!f.residual && same_shape(g, conv_out, skip) && same_shape(g, conv_out, out))
                            .then_some((p, f, skip))
                    })
                    .collect();
                candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
                let Some((p, mut f, skip)) = candidates.into_iter().next() else {
                    continue;
                };
                f.residual = true;
                let mut inputs = g.nodes[p].inputs.clone();
                inputs.resize(3, None);
                inputs.push(Some(skip));
                let skip_ready = prod[skip].is_none_or(|s| s < p);
                // The fused node runs at the conv's position when the skip is ready
                // there, otherwise at the Add's (after both).
                let at = if skip_ready { p } else { i };
                g.nodes[at].op = Op::FusedConv(f);
                g.nodes[at].inputs = inputs;
                g.nodes[at].outputs = vec![out];
                if at == p {
                    kill(g, i);
                } else {
                    g.nodes[at].name = std::mem::take(&mut g.nodes[p].name);
                    kill(g, p);
                }
                fused += 1;
            }
            _ => {}
        }
    }
    sweep(g);
    Ok(fused)
}
