//! Constant folding: every node whose inputs are all constants is computed once, at
//! optimization time, with the CPU kernels, and replaced by its result.

use super::rewrite::{kill, sweep};
use crate::backend::cpu::{self, kernel::OutputDesc};
use crate::error::Result;
use crate::ir::{shape, Fact, Graph};
use crate::tensor::Tensor;

/// Outputs up to this many elements are always folded. Larger ones only when they
/// are no bigger than the inputs: folding must not turn a `ConstantOfShape` or an
/// `Expand` into megabytes of model (the planner still folds those, per input shape).
const ALWAYS_FOLD_ELEMENTS: usize = 1 << 16;

pub fn fold_constants(g: &mut Graph) -> Result<usize> {
    let mut folded = 0;
    for i in 0..g.nodes.len() {
        let node = &g.nodes[i];
        if node.inputs.iter().flatten().next().is_none()
            || !node
                .inputs
                .iter()
                .flatten()
                .all(|&v| g.values[v].fact.value.is_some())
        {
            continue;
        }
        let in_facts: Vec<Option<&Fact>> = node.inputs.iter().map(|v| v.map(|v| &g.values[v].fact)).collect();
        // A node that cannot be inferred or computed is left for the planner, which
        // reports the problem with its full context.
        let Ok(out_facts) = shape::infer(&node.op, &in_facts, node.outputs.len()) else {
            continue;
        };
        let Some(outputs) = out_facts
            .iter()
            .map(|f| {
                f.concrete_shape().map(|shape| OutputDesc {
                    dtype: f.dtype,
                    shape,
                    layout: Default::default(),
                })
            })
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let input_elements: usize = node
            .inputs
            .iter()
            .flatten()
            .map(|&v| g.values[v].fact.value.as_ref().map_or(0, Tensor::len))
            .sum();
        let output_elements = outputs
            .iter()
            .map(|o| crate::tensor::checked_numel(&o.shape).unwrap_or(usize::MAX))
            .fold(0usize, usize::saturating_add);
        if output_elements > ALWAYS_FOLD_ELEMENTS.max(input_elements) {
            continue;
        }
        let inputs: Vec<Option<&Tensor>> = node
            .inputs
            .iter()
            .map(|v| v.and_then(|v| g.values[v].fact.value.as_ref()))
            .collect();
        let Ok(values) = cpu::evaluate(&node.op, &inputs, &outputs) else {
            continue;
        };
        for (o, value) in node.outputs.clone().into_iter().zip(values) {
            g.values[o].fact = Fact::constant(value);
        }
        kill(g, i);
        folded += 1;
    }
    sweep(g);
    Ok(folded)
}
