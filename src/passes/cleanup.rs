//! Passes that only remove: no-op nodes and nodes whose results nobody reads.

use super::rewrite::{consumers, kill, producers, replace_uses, sweep};
use crate::error::Result;
use crate::ir::{Graph, Op};

/// Removes `Identity`, inference-mode `Dropout` (when its mask is unused) and `Cast`
/// to the dtype the value already has: their readers read the source instead.
pub fn eliminate_identities(g: &mut Graph) -> Result<usize> {
    let mut removed = 0;
    for i in 0..g.nodes.len() {
        let node = &g.nodes[i];
        let is_noop = match &node.op {
            Op::Identity => true,
            Op::Dropout => node.outputs.len() == 1 || consumers(g)[node.outputs[1]].is_empty(),
            Op::Cast { to } => node.inputs[0].is_some_and(|x| g.values[x].fact.dtype == *to),
            _ => false,
        };
        let (Some(Some(src)), Some(&dst)) = (node.inputs.first().copied(), node.outputs.first()) else {
            continue;
        };
        if !is_noop || (node.outputs.len() > 1 && g.outputs.contains(&node.outputs[1])) {
            continue;
        }
        if g.outputs.contains(&dst) {
            // The graph output keeps its name: the source value takes it over, which
            // is only possible when the source is an intermediate nothing else names.
            let renamable = producers(g)[src].is_some() && !g.outputs.contains(&src);
            if !renamable {
                continue;
            }
            g.values[src].name = std::mem::take(&mut g.values[dst].name);
            for o in g.outputs.iter_mut().filter(|o| **o == dst) {
                *o = src;
            }
        }
        replace_uses(g, dst, src);
        kill(g, i);
        removed += 1;
    }
    sweep(g);
    Ok(removed)
}

/// Removes nodes none of whose outputs reach a graph output, then drops values no
/// node or graph input/output refers to (dead weights included, so their memory is
/// released with the graph).
pub fn eliminate_dead_code(g: &mut Graph) -> Result<usize> {
    let mut live = vec![false; g.values.len()];
    for &o in &g.outputs {
        live[o] = true;
    }
    let mut removed = 0;
    for i in (0..g.nodes.len()).rev() {
        if g.nodes[i].outputs.iter().any(|&o| live[o]) {
            for &v in g.nodes[i].inputs.iter().flatten() {
                live[v] = true;
            }
        } else {
            kill(g, i);
            removed += 1;
        }
    }
    sweep(g);
    compact_values(g);
    Ok(removed)
}

/// Renumbers values so that only referenced ones remain.
fn compact_values(g: &mut Graph) {
    let mut used = vec![false; g.values.len()];
    for &v in g.inputs.iter().chain(&g.outputs) {
        used[v] = true;
    }
    for node in &g.nodes {
        for &v in node.inputs.iter().flatten().chain(&node.outputs) {
            used[v] = true;
        }
    }
    let mut new_id = vec![usize::MAX; g.values.len()];
    let mut values = Vec::with_capacity(g.values.len());
    for (id, value) in std::mem::take(&mut g.values).into_iter().enumerate() {
        if used[id] {
            new_id[id] = values.len();
            values.push(value);
        }
    }
    g.values = values;
    for v in g.inputs.iter_mut().chain(g.outputs.iter_mut()) {
        *v = new_id[*v];
    }
    for node in &mut g.nodes {
        for v in node.inputs.iter_mut().flatten().chain(node.outputs.iter_mut()) {
            *v = new_id[*v];
        }
    }
}
