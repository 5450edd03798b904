//! The graph optimizer: small named passes over the IR, listed in one place.
//!
//! Two stages, after tract's declutter / codegen split:
//! - [`SIMPLIFY`] removes and folds (identities, shape chains, constants, one
//!   canonical spelling per computation, dead code). Each rewrite can enable another,
//!   so the stage runs to a fixed point.
//! - [`FUSE`] then merges what the backends run as one kernel (BatchNorm into conv
//!   weights, activations and residual adds into the conv epilogue,
//!   squeeze-excitation blocks, elementwise chains). It runs once, in order: each
//!   pass expects the ones before it to have run.
//!
//! Every pass keeps the graph valid (topological order, one producer per value)
//! and leaves its numerics unchanged up to f32 rounding; shapes are re-inferred
//! after each pass that changed something.

mod batch_norm;
mod canonicalize;
mod cleanup;
mod conv_fusion;
mod elementwise;
mod fold;
mod rewrite;
mod shape_chains;
mod squeeze_excite;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::ir::{infer_shapes, Graph};

/// A named rewrite of the graph, returning how many rewrites it made.
pub struct Pass {
    pub name: &'static str,
    pub run: fn(&mut Graph) -> Result<usize>,
}

/// Removal and folding, run to a fixed point.
pub const SIMPLIFY: &[Pass] = &[
    Pass {
        name: "eliminate_identities",
        run: cleanup::eliminate_identities,
    },
    Pass {
        name: "fold_shape_chains",
        run: shape_chains::fold_shape_chains,
    },
    Pass {
        name: "fold_constants",
        run: fold::fold_constants,
    },
    Pass {
        name: "canonicalize",
        run: canonicalize::canonicalize,
    },
    Pass {
        name: "eliminate_dead_code",
        run: cleanup::eliminate_dead_code,
    },
];

/// Fusion, run once in this order.
pub const FUSE: &[Pass] = &[
    Pass {
        name: "fold_batch_norm",
        run: batch_norm::fold_batch_norm,
    },
    Pass {
        name: "fuse_conv_epilogue",
        run: conv_fusion::fuse_conv_epilogue,
    },
    Pass {
        name: "fuse_squeeze_excite",
        run: squeeze_excite::fuse_squeeze_excite,
    },
    Pass {
        name: "fuse_elementwise_chains",
        run: elementwise::fuse_elementwise_chains,
    },
    Pass {
        name: "eliminate_dead_code",
        run: cleanup::eliminate_dead_code,
    },
];

/// Rounds of [`SIMPLIFY`] before giving up on reaching a fixed point (real models
/// settle in two or three).
const MAX_ROUNDS: usize = 16;

/// What the optimizer did: rewrites per pass, summed over rounds, in pipeline order.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub rewrites: Vec<(&'static str, usize)>,
}

impl Report {
    fn add(&mut self, name: &'static str, n: usize) {
        match self.rewrites.iter_mut().find(|(p, _)| *p == name) {
            Some((_, total)) => *total += n,
            None => self.rewrites.push((name, n)),
        }
    }
}

/// Runs one pass, then re-infers shapes if it changed the graph.
pub fn run_pass(graph: &mut Graph, pass: &Pass) -> Result<usize> {
    let n = (pass.run)(graph)?;
    if n > 0 {
        infer_shapes(graph).map_err(|e| Error::invalid(format!("after pass {}: {e}", pass.name)))?;
    }
    Ok(n)
}

/// Runs the whole pipeline.
pub fn optimize(graph: &mut Graph) -> Result<Report> {
    let mut report = Report::default();
    for _ in 0..MAX_ROUNDS {
        let mut changed = 0;
        for pass in SIMPLIFY {
            let n = run_pass(graph, pass)?;
            report.add(pass.name, n);
            // Dead-code removal alone does not enable anything new.
            if pass.name != "eliminate_dead_code" {
                changed += n;
            }
        }
        if changed == 0 {
            break;
        }
    }
    for pass in FUSE {
        let n = run_pass(graph, pass)?;
        report.add(pass.name, n);
    }
    Ok(report)
}
