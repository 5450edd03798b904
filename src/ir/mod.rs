//! kiln's intermediate representation: a typed graph with shape facts.

pub mod graph;
pub mod ops;
pub mod shape;
pub mod window;

pub use graph::{Dim, Fact, Graph, Node, Value, ValueId};
pub use ops::Op;

use crate::error::{Error, Result};

/// Load-time shape inference: fills every value's fact from the graph inputs'
/// declared (possibly symbolic) shapes. Contradictions (a Conv whose channels do
/// not match its weights, an impossible Reshape) are errors naming the node; dims
/// that depend on unknown sizes stay symbolic until a plan is built.
pub fn infer_shapes(graph: &mut Graph) -> Result<()> {
    for i in 0..graph.nodes.len() {
        let node = &graph.nodes[i];
        let in_facts: Vec<Option<&Fact>> = node
            .inputs
            .iter()
            .map(|v| v.map(|v| &graph.values[v].fact))
            .collect();
        let out =
            shape::infer(&node.op, &in_facts, node.outputs.len()).map_err(|m| Error::shape(&node.name, m))?;
        let outputs = node.outputs.clone();
        for (id, fact) in outputs.into_iter().zip(out) {
            graph.values[id].fact = fact;
        }
    }
    Ok(())
}
