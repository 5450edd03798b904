//! `kiln inspect`: what is in a model.

use clap::Args;
use kiln::ir::graph::shape_string;
use kiln::{Result, SessionOptions};

use super::open_model;

#[derive(Args)]
pub struct InspectArgs {
    /// ONNX model file or zoo model name.
    model: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Also run the optimizer: op counts before and after, the fused ops, and what
    /// each pass rewrote.
    #[arg(long)]
    optimized: bool,
}

/// Counts as a JSON object.
fn counts_json<K: ToString>(counts: &[(K, usize)]) -> serde_json::Value {
    serde_json::Value::Object(
        counts
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect(),
    )
}

/// The optimized graph's fused nodes, counted by description (`FusedConv[relu]`).
fn fused_ops(g: &kiln::ir::Graph) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for node in g.nodes.iter().filter(|n| n.op.is_fused()) {
        *counts.entry(node.op.describe()).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    let options = SessionOptions {
        optimize: false,
        threads: Some(1),
        ..SessionOptions::default()
    };
    let session = open_model(&a.model, options)?;
    let g = session.graph();
    let describe = |ids: &[usize]| -> Vec<(String, String, String)> {
        ids.iter()
            .map(|&i| {
                (
                    g.values[i].name.clone(),
                    g.values[i].fact.dtype.to_string(),
                    shape_string(&g.values[i].fact.shape),
                )
            })
            .collect()
    };
    let (inputs, outputs) = (describe(&g.inputs), describe(&g.outputs));
    let counts = g.op_counts();
    let optimized = match a.optimized {
        true => {
            let mut opt = g.clone();
            let report = kiln::passes::optimize(&mut opt)?;
            Some((opt, report))
        }
        false => None,
    };
    if a.json {
        let io = |v: &[(String, String, String)]| {
            v.iter()
                .map(|(n, d, s)| serde_json::json!({"name": n, "dtype": d, "shape": s}))
                .collect::<Vec<_>>()
        };
        let mut v = serde_json::json!({
            "model": a.model, "opset": g.opset, "inputs": io(&inputs), "outputs": io(&outputs),
            "nodes": g.nodes.len(), "ops": counts_json(&counts), "parameters": g.parameter_count(),
        });
        if let (Some((opt, report)), Some(obj)) = (&optimized, v.as_object_mut()) {
            obj.insert("before".into(), counts_json(&counts));
            obj.insert("after".into(), counts_json(&opt.op_counts()));
            obj.insert("nodes_after".into(), serde_json::json!(opt.nodes.len()));
            obj.insert("fused".into(), counts_json(&fused_ops(opt)));
            obj.insert("passes".into(), counts_json(&report.rewrites));
        }
        outln!("{v}");
        return Ok(());
    }
    outln!(
        "{} (opset {}, {} nodes, {} parameters)",
        a.model,
        g.opset,
        g.nodes.len(),
        g.parameter_count()
    );
    for (kind, list) in [("input", &inputs), ("output", &outputs)] {
        for (n, d, s) in list {
            outln!("  {kind:6} {n}: {d} {s}");
        }
    }
    let Some((opt, report)) = optimized else {
        outln!("  ops:");
        for (op, n) in counts {
            outln!("    {op:24} {n}");
        }
        return Ok(());
    };
    outln!(
        "  ops ({} nodes before, {} after the optimizer):",
        g.nodes.len(),
        opt.nodes.len()
    );
    outln!("    {:24} {:>7} {:>7}", "op", "before", "after");
    let after = opt.op_counts();
    let mut names: Vec<&str> = counts.iter().chain(&after).map(|(k, _)| *k).collect();
    names.sort_unstable();
    names.dedup();
    let find = |list: &[(&str, usize)], k: &str| list.iter().find(|(n, _)| *n == k).map_or(0, |(_, c)| *c);
    for name in names {
        outln!(
            "    {name:24} {:>7} {:>7}",
            find(&counts, name),
            find(&after, name)
        );
    }
    outln!("  fused ops:");
    for (desc, n) in fused_ops(&opt) {
        outln!("    {desc:40} {n}");
    }
    outln!("  passes (rewrites):");
    for (pass, n) in &report.rewrites {
        outln!("    {pass:24} {n}");
    }
    Ok(())
}
