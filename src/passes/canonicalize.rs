//! Canonicalisation: one spelling for each computation, so the fusion passes (and
//! every backend) only need to recognise that spelling.
//!
//! - `Clip` with constant bounds → `Clamp` (ReLU6 is `Clamp(0, 6)`);
//! - `ReduceMean` / `ReduceMax` over all spatial axes → `GlobalAveragePool` /
//!   `GlobalMaxPool` (+ `Flatten` when `keepdims = 0`);
//! - `Reshape` to `[N, -1]` and `Squeeze` of trailing unit axes → `Flatten(axis=1)`;
//! - `MatMul(a, W) + bias` → `Gemm`;
//! - `x * Sigmoid(x)` → `Silu`; `x * HardSigmoid(x)` and `x * Clip(x + 3, 0, 6) / 6`
//!   → `HardSwish`.

use super::rewrite::{consumers, kill, producers, same_shape, scalar, sole_consumer, sweep};
use crate::error::Result;
use crate::ir::ops::{BinaryOp, Gemm, PoolKind, ReduceKind, UnaryOp};
use crate::ir::{Dim, Fact, Graph, Node, Op, ValueId};

pub fn canonicalize(g: &mut Graph) -> Result<usize> {
    let mut rewrites = 0;
    let mut i = 0;
    while i < g.nodes.len() {
        if g.nodes[i].outputs.is_empty() {
            i += 1;
            continue;
        }
        let done = clip_to_clamp(g, i)
            || global_pool(g, &mut i)
            || flatten_head(g, i)
            || matmul_add_to_gemm(g, i)
            || swish_family(g, i);
        rewrites += done as usize;
        i += 1;
    }
    sweep(g);
    Ok(rewrites)
}

fn input(g: &Graph, i: usize, k: usize) -> Option<ValueId> {
    g.nodes[i].inputs.get(k).copied().flatten()
}

fn is_float(g: &Graph, v: ValueId) -> bool {
    g.values[v].fact.dtype.is_float()
}

/// `Clip(x, min?, max?)` with constant bounds → `Clamp`.
fn clip_to_clamp(g: &mut Graph, i: usize) -> bool {
    if g.nodes[i].op != Op::Clip {
        return false;
    }
    let bound = |k: usize, default: f32| match input(g, i, k) {
        None => Some(default),
        Some(v) => scalar(g, v),
    };
    let (Some(min), Some(max)) = (bound(1, f32::NEG_INFINITY), bound(2, f32::INFINITY)) else {
        return false;
    };
    g.nodes[i].op = Op::Unary(UnaryOp::Clamp { min, max });
    g.nodes[i].inputs.truncate(1);
    true
}

/// `ReduceMean/Max(x, axes = all spatial)` → `GlobalAveragePool/GlobalMaxPool`.
fn global_pool(g: &mut Graph, i: &mut usize) -> bool {
    let Op::Reduce(r) = &g.nodes[*i].op else {
        return false;
    };
    let kind = match r.kind {
        ReduceKind::Mean => PoolKind::Avg {
            count_include_pad: false,
        },
        ReduceKind::Max => PoolKind::Max,
        _ => return false,
    };
    let keepdims = r.keepdims;
    let (Some(x), Some(axes)) = (input(g, *i, 0), input(g, *i, 1)) else {
        return false;
    };
    let (Some(rank), Some(axes)) = (
        g.values[x].fact.rank(),
        g.constant(axes).and_then(|t| t.to_i64_vec()),
    ) else {
        return false;
    };
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| if a < 0 { a + rank as i64 } else { a } as usize)
        .collect();
    axes.sort_unstable();
    if rank < 3 || !is_float(g, x) || axes != (2..rank).collect::<Vec<_>>() {
        return false;
    }
    let out = g.nodes[*i].outputs[0];
    g.nodes[*i].op = Op::GlobalPool(kind);
    g.nodes[*i].inputs.truncate(1);
    if !keepdims {
        // The pool keeps the spatial axes as 1s; a Flatten drops them again.
        let dtype = g.values[x].fact.dtype;
        let pooled = g.add_value(
            format!("{}:pooled", g.values[out].name),
            Fact::unknown_shape(dtype),
        );
        g.nodes[*i].outputs[0] = pooled;
        let name = format!("{}:flatten", g.nodes[*i].name);
        g.nodes.insert(
            *i + 1,
            Node {
                name,
                op: Op::Flatten { axis: 1 },
                inputs: vec![Some(pooled)],
                outputs: vec![out],
            },
        );
        *i += 1;
    }
    true
}

/// `Reshape(x, [N, -1])` and `Squeeze(x, trailing unit axes)` → `Flatten(axis = 1)`.
fn flatten_head(g: &mut Graph, i: usize) -> bool {
    let Some(x) = input(g, i, 0) else { return false };
    let Some(dims) = g.values[x].fact.shape.clone() else {
        return false;
    };
    if dims.len() < 2 {
        return false;
    }
    let rest: Option<usize> = dims[1..].iter().map(Dim::known).product();
    let equivalent = match &g.nodes[i].op {
        Op::Reshape { allowzero } => {
            let Some(target) = input(g, i, 1)
                .and_then(|s| g.constant(s))
                .and_then(|t| t.to_i64_vec())
            else {
                return false;
            };
            // `allowzero` only changes what a 0 in the target means.
            if *allowzero && target.contains(&0) {
                return false;
            }
            let rest = rest.map(|r| r as i64);
            match target[..] {
                [first, second] => {
                    let first_ok = first == 0 || dims[0].known().is_some_and(|d| d as i64 == first);
                    let second_ok = second == -1 || Some(second) == rest;
                    (first_ok && second_ok) || (first == -1 && Some(second) == rest && rest != Some(0))
                }
                _ => false,
            }
        }
        Op::Squeeze => {
            let Some(axes) = input(g, i, 1)
                .and_then(|a| g.constant(a))
                .and_then(|t| t.to_i64_vec())
            else {
                return false;
            };
            let rank = dims.len();
            let mut axes: Vec<usize> = axes
                .iter()
                .map(|&a| if a < 0 { a + rank as i64 } else { a } as usize)
                .collect();
            axes.sort_unstable();
            axes == (2..rank).collect::<Vec<_>>() && dims[2..].iter().all(|d| *d == Dim::Known(1))
        }
        _ => false,
    };
    if !equivalent {
        return false;
    }
    g.nodes[i].op = Op::Flatten { axis: 1 };
    g.nodes[i].inputs.truncate(1);
    true
}

/// `Add(MatMul(a, W), bias)` with 2-D `a`, constant 2-D `W` and a bias over the
/// output columns → `Gemm(a, W, bias)`.
fn matmul_add_to_gemm(g: &mut Graph, i: usize) -> bool {
    if g.nodes[i].op != Op::Binary(BinaryOp::Add) {
        return false;
    }
    let prod = producers(g);
    let uses = consumers(g);
    for (k, other) in [(0, 1), (1, 0)] {
        let (Some(mm_out), Some(bias)) = (input(g, i, k), input(g, i, other)) else {
            continue;
        };
        let Some(m) = prod[mm_out] else { continue };
        if g.nodes[m].op != Op::MatMul || sole_consumer(g, &uses, mm_out) != Some(i) {
            continue;
        }
        let (Some(a), Some(w)) = (input(g, m, 0), input(g, m, 1)) else {
            continue;
        };
        let (Some(wt), Some(bt)) = (g.constant(w), g.constant(bias)) else {
            continue;
        };
        let n = match wt.shape() {
            [_, n] => *n,
            _ => continue,
        };
        let bias_fits = matches!(bt.shape(), [b] if *b == n) || matches!(bt.shape(), [1, b] if *b == n);
        if g.values[a].fact.rank() != Some(2) || !bias_fits || !is_float(g, a) {
            continue;
        }
        g.nodes[i].op = Op::Gemm(Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        });
        g.nodes[i].inputs = vec![Some(a), Some(w), Some(bias)];
        kill(g, m);
        return true;
    }
    false
}

/// The unary op producing `v`, with its node, if `v`'s producer is one.
fn unary_producer(g: &Graph, prod: &[Option<usize>], v: ValueId) -> Option<(usize, UnaryOp)> {
    let p = prod[v]?;
    match g.nodes[p].op {
        Op::Unary(u) => Some((p, u)),
        _ => None,
    }
}

/// `x * Sigmoid(x)` → `Silu`, `x * HardSigmoid(x)` (1/6, 1/2) → `HardSwish`, and
/// the older exporters' `x * Clip(x + 3, 0, 6) / 6` → `HardSwish`.
fn swish_family(g: &mut Graph, i: usize) -> bool {
    let op = g.nodes[i].op.clone();
    if op != Op::Binary(BinaryOp::Mul) && op != Op::Binary(BinaryOp::Div) {
        return false;
    }
    let prod = producers(g);
    let uses = consumers(g);
    let (Some(a), Some(b)) = (input(g, i, 0), input(g, i, 1)) else {
        return false;
    };
    if !is_float(g, a) {
        return false;
    }
    if op == Op::Binary(BinaryOp::Mul) {
        for (x, gate) in [(a, b), (b, a)] {
            let Some((p, u)) = unary_producer(g, &prod, gate) else {
                continue;
            };
            let new = match u {
                UnaryOp::Sigmoid => UnaryOp::Silu,
                UnaryOp::HardSigmoid { alpha, beta }
                    if (alpha - 1.0 / 6.0).abs() < 1e-6 && (beta - 0.5).abs() < 1e-6 =>
                {
                    UnaryOp::HardSwish
                }
                _ => continue,
            };
            if input(g, p, 0) != Some(x) {
                continue;
            }
            g.nodes[i].op = Op::Unary(new);
            g.nodes[i].inputs = vec![Some(x)];
            if sole_consumer(g, &uses, gate) == Some(i) {
                kill(g, p);
            }
            return true;
        }
    }
    // Div(Mul(x, Clamp(0, 6)(Add(x, 3))), 6)
    if op == Op::Binary(BinaryOp::Div) && scalar(g, b) == Some(6.0) {
        let Some(mul) = prod[a].filter(|&m| g.nodes[m].op == Op::Binary(BinaryOp::Mul)) else {
            return false;
        };
        for k in [0, 1] {
            let (Some(x), Some(clamped)) = (input(g, mul, k), input(g, mul, 1 - k)) else {
                continue;
            };
            let Some((clip, UnaryOp::Clamp { min: 0.0, max: 6.0 })) = unary_producer(g, &prod, clamped)
            else {
                continue;
            };
            let Some(added) = input(g, clip, 0) else { continue };
            let Some(add) = prod[added] else { continue };
            if g.nodes[add].op != Op::Binary(BinaryOp::Add) {
                continue;
            }
            let (Some(p), Some(q)) = (input(g, add, 0), input(g, add, 1)) else {
                continue;
            };
            let plus_three = (p == x && scalar(g, q) == Some(3.0)) || (q == x && scalar(g, p) == Some(3.0));
            if !plus_three || !same_shape(g, x, g.nodes[i].outputs[0]) {
                continue;
            }
            g.nodes[i].op = Op::Unary(UnaryOp::HardSwish);
            g.nodes[i].inputs = vec![Some(x)];
            // Each absorbed node goes only if the pattern was its output's sole reader.
            for (node, out, reader) in [(mul, a, i), (clip, clamped, mul), (add, added, clip)] {
                if sole_consumer(g, &uses, out) == Some(reader) {
                    kill(g, node);
                } else {
                    break;
                }
            }
            return true;
        }
    }
    false
}
