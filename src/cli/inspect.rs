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
    if a.json {
        let io = |v: &[(String, String, String)]| {
            v.iter()
                .map(|(n, d, s)| serde_json::json!({"name": n, "dtype": d, "shape": s}))
                .collect::<Vec<_>>()
        };
        let ops: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        let v = serde_json::json!({
            "model": a.model, "opset": g.opset, "inputs": io(&inputs), "outputs": io(&outputs),
            "nodes": g.nodes.len(), "ops": ops, "parameters": g.parameter_count(),
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "{} (opset {}, {} nodes, {} parameters)",
        a.model,
        g.opset,
        g.nodes.len(),
        g.parameter_count()
    );
    for (kind, list) in [("input", &inputs), ("output", &outputs)] {
        for (n, d, s) in list {
            println!("  {kind:6} {n}: {d} {s}");
        }
    }
    println!("  ops:");
    for (op, n) in counts {
        println!("    {op:24} {n}");
    }
    Ok(())
}
