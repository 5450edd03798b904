//! `kiln profile`: where the time goes, per op.

use std::collections::HashMap;
use std::time::Duration;

use clap::Args;
use kiln::Result;

use super::{open_model, random_inputs, EngineArgs};

#[derive(Args)]
pub struct ProfileArgs {
    /// ONNX model file or zoo model name.
    model: String,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Profiled runs (times are averaged).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn profile(a: ProfileArgs) -> Result<()> {
    let session = open_model(&a.model, a.engine.options()?)?;
    let inputs = random_inputs(&session, a.batch, 0)?;
    session.run(&inputs)?;
    let mut per_node: Vec<(String, String, Duration)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for _ in 0..a.runs.max(1) {
        session.run_profiled(&inputs, &mut |node, op, d| {
            let i = *index.entry(node.to_string()).or_insert_with(|| {
                per_node.push((node.to_string(), op.to_string(), Duration::ZERO));
                per_node.len() - 1
            });
            per_node[i].2 += d;
        })?;
    }
    let runs = a.runs.max(1) as f64;
    let total: f64 = per_node.iter().map(|n| n.2.as_secs_f64()).sum::<f64>() / runs * 1e3;
    let mut by_op: HashMap<&str, (usize, f64)> = HashMap::new();
    for (_, op, d) in &per_node {
        let e = by_op.entry(op).or_default();
        e.0 += 1;
        e.1 += d.as_secs_f64() / runs * 1e3;
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    println!(
        "{} batch {} on {} thread(s): {total:.2} ms in kernels",
        a.model,
        a.batch,
        session.threads()
    );
    println!("{:24} {:>6} {:>10} {:>7}", "op", "count", "ms", "%");
    for (op, (count, ms)) in &ops {
        println!("{op:24} {count:>6} {ms:>10.3} {:>6.1}%", 100.0 * ms / total);
    }
    per_node.sort_by_key(|n| std::cmp::Reverse(n.2));
    println!("\nslowest nodes:");
    for (node, op, d) in per_node.iter().take(15) {
        let ms = d.as_secs_f64() / runs * 1e3;
        println!("  {node:40} {op:20} {ms:>8.3} ms {:>6.1}%", 100.0 * ms / total);
    }
    Ok(())
}
