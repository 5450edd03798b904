//! BatchNormalization folding.
//!
//! In inference BatchNorm is the per-channel affine `y = x * a + b` with
//! `a = scale / sqrt(var + eps)` and `b = bias - mean * a`. After a convolution that
//! is linear in the weights, so it folds into them: `W'[oc] = W[oc] * a[oc]`,
//! `b'[oc] = b[oc] * a[oc] + b_bn[oc]`, and the BatchNorm disappears. A BatchNorm
//! with no convolution to fold into becomes a `ChannelAffine`.

use super::rewrite::{add_constant, const_f32, consumers, kill, producers, sole_consumer, sweep};
use crate::backend::cpu::kernels::normalization::batch_norm_affine;
use crate::error::Result;
use crate::ir::ops::Activation;
use crate::ir::{Graph, Op, ValueId};
use crate::tensor::{DType, Tensor};

/// The BatchNorm's `(a, b)` per channel (`y = x * a + b`), when all its parameters
/// are constants: the kernel's own fold, in f64, so folding adds no rounding beyond
/// the final f32 store.
fn affine(g: &Graph, inputs: &[Option<ValueId>], epsilon: f32) -> Option<Vec<(f64, f64)>> {
    let param = |k: usize| {
        let v = const_f32(g, inputs.get(k).copied().flatten()?)?;
        Some(v.iter().map(|&x| x as f64).collect::<Vec<f64>>())
    };
    let (scale, bias, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
    let c = scale.len();
    if [bias.len(), mean.len(), var.len()].iter().any(|&n| n != c) {
        return None;
    }
    Some(batch_norm_affine(&scale, &bias, &mean, &var, epsilon as f64))
}

fn f32_tensor(shape: Vec<usize>, v: impl Iterator<Item = f64>) -> Result<Tensor> {
    Tensor::from_vec(shape, v.map(|x| x as f32).collect::<Vec<f32>>())
}

/// The conv producing `x`, if BatchNorm node `bn` can fold into it: nothing else
/// reads the conv's output and its weights (and bias) are constants.
fn foldable_conv(g: &Graph, x: ValueId, bn: usize, channels: usize) -> Option<usize> {
    let p = producers(g)[x]?;
    let plain = match &g.nodes[p].op {
        Op::Conv(_) => true,
        Op::FusedConv(f) => f.activation == Activation::None && !f.residual,
        _ => false,
    };
    let w = g.nodes[p].inputs.get(1).copied().flatten()?;
    let bias_ok = match g.nodes[p].inputs.get(2).copied().flatten() {
        Some(b) => const_f32(g, b).is_some_and(|b| b.len() == channels),
        None => true,
    };
    let weights_ok = g
        .constant(w)
        .is_some_and(|t| t.dtype() == DType::F32 && t.shape().first() == Some(&channels));
    (plain && weights_ok && bias_ok && sole_consumer(g, &consumers(g), x) == Some(bn)).then_some(p)
}

pub fn fold_batch_norm(g: &mut Graph) -> Result<usize> {
    let mut folded = 0;
    for i in 0..g.nodes.len() {
        let Op::BatchNorm { epsilon } = g.nodes[i].op else {
            continue;
        };
        let inputs = g.nodes[i].inputs.clone();
        let Some(x) = inputs[0] else { continue };
        let Some(ab) = affine(g, &inputs, epsilon) else {
            continue;
        };
        if g.values[x].fact.dtype != DType::F32 {
            continue;
        }
        let c = ab.len();
        let name = g.nodes[i].name.clone();
        if let Some(p) = foldable_conv(g, x, i, c) {
            let (w, old_bias) = (
                g.nodes[p].inputs[1].unwrap_or(x),
                g.nodes[p].inputs.get(2).copied().flatten(),
            );
            let wt = g
                .constant(w)
                .map(|t| (t.shape().to_vec(), t.as_slice::<f32>().map(<[f32]>::to_vec)));
            let (Some((w_shape, Some(w_vals))), bias_vals) =
                (wt, old_bias.and_then(|v| const_f32(g, v)).map(<[f32]>::to_vec))
            else {
                continue;
            };
            let per_channel = w_vals.len() / c;
            let new_w = f32_tensor(
                w_shape,
                w_vals
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| v as f64 * ab[k / per_channel].0),
            )?;
            let new_b = f32_tensor(
                vec![c],
                (0..c).map(|oc| bias_vals.as_ref().map_or(0.0, |bv| bv[oc] as f64) * ab[oc].0 + ab[oc].1),
            )?;
            let w_id = add_constant(g, &format!("{name}:folded_weight"), new_w);
            let b_id = add_constant(g, &format!("{name}:folded_bias"), new_b);
            let out = g.nodes[i].outputs[0];
            let conv = &mut g.nodes[p];
            conv.inputs.resize(3, None);
            conv.inputs[1] = Some(w_id);
            conv.inputs[2] = Some(b_id);
            conv.outputs[0] = out;
            kill(g, i);
        } else {
            let rank_ok = g.values[x].fact.rank().is_some_and(|r| r >= 2);
            if !rank_ok {
                continue;
            }
            let scale = add_constant(
                g,
                &format!("{name}:scale"),
                f32_tensor(vec![c], ab.iter().map(|p| p.0))?,
            );
            let shift = add_constant(
                g,
                &format!("{name}:shift"),
                f32_tensor(vec![c], ab.iter().map(|p| p.1))?,
            );
            let node = &mut g.nodes[i];
            node.op = Op::ChannelAffine {
                activation: Activation::None,
            };
            node.inputs = vec![Some(x), Some(scale), Some(shift)];
            node.outputs.truncate(1);
        }
        folded += 1;
    }
    sweep(g);
    Ok(folded)
}
