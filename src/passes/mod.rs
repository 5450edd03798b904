//! Graph optimisation passes over the IR. Each pass is a small named function;
//! [`PIPELINE`] lists them in order, so tests can run the pipeline pass by pass.
//! The pipeline is empty in this foundation; the optimizer fills it.

use crate::error::Result;
use crate::ir::Graph;

/// A named rewrite of the graph.
pub struct Pass {
    pub name: &'static str,
    pub run: fn(&mut Graph) -> Result<()>,
}

/// Every pass, in the order it runs.
pub const PIPELINE: &[Pass] = &[];

/// Runs the whole pipeline.
pub fn optimize(graph: &mut Graph) -> Result<()> {
    for pass in PIPELINE {
        (pass.run)(graph)?;
    }
    Ok(())
}
