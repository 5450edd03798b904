//! `kiln profile`: where the time goes, per op and per node, with the algorithm
//! each kernel chose and the arithmetic rate it reached.

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
    /// Nodes listed, slowest first (0: all, in graph order).
    #[arg(long, default_value_t = 20)]
    top: usize,
    #[command(flatten)]
    engine: EngineArgs,
}

/// One node's totals over the profiled runs.
struct NodeTime {
    node: String,
    op: String,
    algorithm: &'static str,
    shape: Vec<usize>,
    flops: Option<u64>,
    total: Duration,
}

impl NodeTime {
    fn ms(&self, runs: f64) -> f64 {
        self.total.as_secs_f64() / runs * 1e3
    }
}

/// GFLOP/s of `flops` done in `ms`, as a column entry.
fn rate(flops: Option<u64>, ms: f64) -> String {
    match flops {
        Some(f) if ms > 0.0 => format!("{:.1}", f as f64 / ms / 1e6),
        _ => String::new(),
    }
}

pub fn profile(a: ProfileArgs) -> Result<()> {
    let session = open_model(&a.model, a.engine.options()?)?;
    let inputs = random_inputs(&session, a.batch, 0)?;
    session.run(&inputs)?;
    let mut nodes: Vec<NodeTime> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for _ in 0..a.runs.max(1) {
        session.run_profiled(&inputs, &mut |step| {
            let i = *index.entry(step.node.to_string()).or_insert_with(|| {
                nodes.push(NodeTime {
                    node: step.node.to_string(),
                    op: step.op.to_string(),
                    algorithm: step.algorithm,
                    shape: step.output_shape.to_vec(),
                    flops: step.flops,
                    total: Duration::ZERO,
                });
                nodes.len() - 1
            });
            nodes[i].total += step.elapsed;
        })?;
    }
    let runs = a.runs.max(1) as f64;
    let total: f64 = nodes.iter().map(|n| n.ms(runs)).sum();
    let flops = nodes
        .iter()
        .filter_map(|n| n.flops)
        .fold(0u64, u64::saturating_add);
    outln!(
        "{} batch {} on {} thread(s): {total:.2} ms in kernels, {:.2} GFLOP, {} GFLOP/s",
        a.model,
        a.batch,
        session.threads(),
        flops as f64 / 1e9,
        rate(Some(flops), total)
    );

    // Per op and algorithm.
    let mut groups: HashMap<(&str, &str), (usize, f64, Option<u64>)> = HashMap::new();
    for n in &nodes {
        let g = groups.entry((&n.op, n.algorithm)).or_insert((0, 0.0, None));
        g.0 += 1;
        g.1 += n.ms(runs);
        g.2 = match (g.2, n.flops) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    outln!(
        "\n{:18} {:22} {:>5} {:>10} {:>6} {:>8}",
        "op",
        "algorithm",
        "count",
        "ms",
        "%",
        "GFLOP/s"
    );
    for ((op, algorithm), (count, ms, f)) in &groups {
        outln!(
            "{op:18} {algorithm:22} {count:>5} {ms:>10.3} {:>5.1}% {:>8}",
            100.0 * ms / total,
            rate(*f, *ms)
        );
    }

    // Per node.
    let shown: Vec<&NodeTime> = if a.top == 0 {
        nodes.iter().collect()
    } else {
        let mut sorted: Vec<&NodeTime> = nodes.iter().collect();
        sorted.sort_by_key(|n| std::cmp::Reverse(n.total));
        sorted.into_iter().take(a.top).collect()
    };
    outln!(
        "\n{:36} {:18} {:22} {:18} {:>8} {:>6} {:>8}",
        "node",
        "op",
        "algorithm",
        "output",
        "ms",
        "%",
        "GFLOP/s"
    );
    for n in shown {
        let ms = n.ms(runs);
        let shape = n
            .shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        outln!(
            "{:36} {:18} {:22} {shape:18} {ms:>8.3} {:>5.1}% {:>8}",
            n.node,
            n.op,
            n.algorithm,
            100.0 * ms / total,
            rate(n.flops, ms)
        );
    }
    Ok(())
}
