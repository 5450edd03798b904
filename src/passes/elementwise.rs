//! Elementwise chain fusion: runs of f32 elementwise nodes (each the only reader of
//! the previous one's output) become one `FusedElementwise`, which makes one pass
//! over memory instead of one per node. Runs last, so it only picks up what no
//! kernel epilogue absorbed.

use super::rewrite::{consumers, kill, same_shape, sole_consumer, sweep};
use crate::error::Result;
use crate::ir::ops::ChainStep;
use crate::ir::{Dim, Graph, Op, ValueId};
use crate::tensor::DType;

/// Whether `v` holds exactly one element.
fn single(g: &Graph, v: ValueId) -> bool {
    g.values[v]
        .fact
        .shape
        .as_ref()
        .is_some_and(|s| s.iter().all(|d| *d == Dim::Known(1)))
}

/// Node `n` as a chain step applied to `running` (which it must read), adding its
/// other operand to `operands`. `None` if the node cannot join a chain.
fn step(g: &Graph, n: usize, running: ValueId, operands: &mut Vec<ValueId>) -> Option<ChainStep> {
    let node = &g.nodes[n];
    let out = *node.outputs.first()?;
    if g.values[out].fact.dtype != DType::F32 || !same_shape(g, running, out) {
        return None;
    }
    match node.op {
        Op::Unary(u) if ChainStep::allows_unary(u) && node.inputs[0] == Some(running) => {
            Some(ChainStep::Unary(u))
        }
        Op::Binary(op) if ChainStep::allows_binary(op) => {
            let (a, b) = (node.inputs[0]?, node.inputs.get(1).copied().flatten()?);
            let (other, swapped) = match (a == running, b == running) {
                (true, false) => (b, false),
                (false, true) => (a, true),
                _ => return None,
            };
            if g.values[other].fact.dtype != DType::F32 || !(same_shape(g, other, out) || single(g, other)) {
                return None;
            }
            let operand = match operands.iter().position(|&v| v == other) {
                Some(k) => k + 1,
                None => {
                    operands.push(other);
                    operands.len()
                }
            };
            Some(ChainStep::Binary { op, operand, swapped })
        }
        _ => None,
    }
}

pub fn fuse_elementwise_chains(g: &mut Graph) -> Result<usize> {
    let mut fused = 0;
    let uses = consumers(g);
    let mut taken = vec![false; g.nodes.len()];
    for start in 0..g.nodes.len() {
        if taken[start] {
            continue;
        }
        // The chain's running value starts at the first node's main input.
        let Some(&first_out) = g.nodes[start].outputs.first() else {
            continue;
        };
        let main = g.nodes[start]
            .inputs
            .iter()
            .flatten()
            .copied()
            .find(|&v| same_shape(g, v, first_out));
        let Some(x) = main else { continue };
        let mut operands = Vec::new();
        let Some(first) = step(g, start, x, &mut operands) else {
            continue;
        };
        let (mut steps, mut nodes, mut running) = (vec![first], vec![start], first_out);
        while let Some(next) = sole_consumer(g, &uses, running) {
            let mut trial = operands.clone();
            let Some(s) = step(g, next, running, &mut trial) else {
                break;
            };
            operands = trial;
            steps.push(s);
            nodes.push(next);
            running = g.nodes[next].outputs[0];
        }
        if steps.len() < 2 {
            continue;
        }
        let last = *nodes.last().unwrap_or(&start);
        let mut inputs = vec![Some(x)];
        inputs.extend(operands.into_iter().map(Some));
        g.nodes[last].op = Op::FusedElementwise { steps };
        g.nodes[last].inputs = inputs;
        for &n in &nodes[..nodes.len() - 1] {
            kill(g, n);
        }
        for n in nodes {
            taken[n] = true;
        }
        fused += 1;
    }
    sweep(g);
    Ok(fused)
}
