//! Graph-editing helpers the passes share.
//!
//! A pass edits nodes in place: a fused node takes the position (and output value)
//! of the last node of its pattern, which is always a valid topological position,
//! since every input of the pattern is produced before that node. Absorbed nodes are
//! [`kill`]ed (emptied) and swept away at the end of the pass, so node indices stay
//! stable while a pass walks the graph.

use crate::ir::{Dim, Graph, ValueId};
use crate::tensor::Tensor;

/// For each value, the nodes that read it (each node once, in graph order).
pub fn consumers(g: &Graph) -> Vec<Vec<usize>> {
    let mut uses = vec![Vec::new(); g.values.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        for &v in node.inputs.iter().flatten() {
            if uses[v].last() != Some(&i) && !uses[v].contains(&i) {
                uses[v].push(i);
            }
        }
    }
    uses
}

/// For each value, the node that writes it (`None` for inputs and constants).
pub fn producers(g: &Graph) -> Vec<Option<usize>> {
    let mut p = vec![None; g.values.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        for &v in &node.outputs {
            p[v] = Some(i);
        }
    }
    p
}

/// The one node reading `v`, when `v` is an intermediate nothing else sees: the
/// condition for absorbing `v`'s producer into that node.
pub fn sole_consumer(g: &Graph, uses: &[Vec<usize>], v: ValueId) -> Option<usize> {
    match uses[v].as_slice() {
        [only] if !g.outputs.contains(&v) => Some(*only),
        _ => None,
    }
}

/// Removes node `i` from the graph (it is dropped by [`sweep`]).
pub fn kill(g: &mut Graph, i: usize) {
    g.nodes[i].inputs.clear();
    g.nodes[i].outputs.clear();
}

/// Drops killed nodes.
pub fn sweep(g: &mut Graph) {
    g.nodes.retain(|n| !n.outputs.is_empty());
}

/// Makes every reader of `old` read `new` instead.
pub fn replace_uses(g: &mut Graph, old: ValueId, new: ValueId) {
    for node in &mut g.nodes {
        for input in node.inputs.iter_mut().flatten() {
            if *input == old {
                *input = new;
            }
        }
    }
}

/// The contents of value `v` if it is a constant float32 tensor.
pub fn const_f32(g: &Graph, v: ValueId) -> Option<&[f32]> {
    g.constant(v)?.as_slice::<f32>()
}

/// A constant's single element as f32 (any float or integer dtype), if it has one.
pub fn scalar(g: &Graph, v: ValueId) -> Option<f32> {
    let t: &Tensor = g.constant(v)?;
    if t.len() != 1 {
        return None;
    }
    t.to_f32_vec().first().copied()
}

/// Whether two values certainly have the same shape: equal dims, none unknown.
pub fn same_shape(g: &Graph, a: ValueId, b: ValueId) -> bool {
    match (&g.values[a].fact.shape, &g.values[b].fact.shape) {
        (Some(x), Some(y)) => x == y && x.iter().all(|d| *d != Dim::unknown()),
        _ => false,
    }
}

/// Adds a constant value named after `base`.
pub fn add_constant(g: &mut Graph, base: &str, t: Tensor) -> ValueId {
    let name = format!("{base}:{}", g.values.len());
    g.add_constant(name, t)
}
