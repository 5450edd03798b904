//! Which values the CPU backend stores channels-last (`[N, H, W, C]`).
//!
//! Depthwise convolutions are the one place where NCHW costs real time: a channel's
//! plane is a vector per row, and the channel-blocked kernel spends most of its
//! time transposing planes into channel vectors and back. Channels-last, each tap
//! of sixteen channels is one contiguous load. Their neighbours in MobileNet-style
//! blocks are pointwise convolutions, whose swapped GEMM (positions on the tile
//! rows, channels on the lanes) reads and writes channels-last for free where NCHW
//! costs it a transposing pack or store. So a value goes channels-last when it
//! flows between a depthwise convolution and a pointwise one (or another
//! depthwise one), nothing else reads it, and its planes are small enough (see
//! [`MAX_POSITIONS`] and [`MAX_POSITIONS_IN_PLACE`]). Everything else, graph
//! inputs and outputs included, stays as its shape says.

use crate::backend::cpu::kernels::conv::{MAX_TAP_COLUMNS, MAX_TAP_ROWS};
use crate::backend::cpu::kernels::gemm::driver::A_IN_PLACE_COLUMNS;
#[cfg(target_arch = "x86_64")]
use crate::backend::cpu::kernels::gemm::micro::Isa;
use crate::ir::ops::{Conv, FusedConv, Op};
use crate::ir::window::{conv_kernel_shape, Geometry};
use crate::ir::{Fact, Graph};
use crate::plan::Layout;
use crate::tensor::DType;

/// Largest plane (H x W) laid out channels-last. MobileNetV2, 1 thread, per-node
/// minimums over alternating binaries, everything channels-last against none:
/// from 28x28 down every depthwise layer gained 0.01-0.04 ms and every expansion
/// 0.005-0.02 (the projections lost up to 0.009: `pack_a` gathers NHWC rows); at
/// 56x56 and 112x112 the projections into 24 channels lost 0.12-0.2 ms each
/// (swapped, against the usual orientation reading B in place) and the 112x112
/// expansion and depthwise 0.07 each.
const MAX_POSITIONS: usize = 28 * 28;

/// Largest plane laid out channels-last when every pointwise convolution reading it
/// writes a multiple of [`A_IN_PLACE_COLUMNS`] (32) channels: their GEMM then reads
/// the image in place. MobileNetV2, 1 thread, per-node minimums
/// over alternating binaries, 56x56 allowed: its stride-2 depthwise layer from
/// 56x56 0.157 -> 0.079 ms and the projection after it 0.075 -> 0.054, the
/// expansion before it 0.016 slower; the 56x56 projections into 24 channels
/// (packed, 6x32 tiles three quarters used) were 0.25 ms slower, hence the rule.
const MAX_POSITIONS_IN_PLACE: usize = 56 * 56;

/// What a convolution can do with channels-last values.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Role {
    /// 1x1, stride 1, unpadded, ungrouped: input and output each either layout.
    Pointwise,
    /// One channel per group, no multiplier: input and output both channels-last,
    /// or neither.
    Depthwise,
}

/// The layout of every value of `graph` (see the module docs). `facts` hold the
/// concrete shapes and constants of the plan being built.
pub(crate) fn layouts(graph: &Graph, facts: &[Fact]) -> Vec<Layout> {
    if !wide_vectors() {
        return vec![Layout::AsShape; graph.values.len()];
    }
    let roles: Vec<Option<Role>> = graph
        .nodes
        .iter()
        .map(|n| role(&n.op, &n.inputs, &n.outputs, facts))
        .collect();
    let mut candidate = vec![false; graph.values.len()];
    let mut touches_depthwise = vec![false; graph.values.len()];
    // Values a pointwise convolution reads into a channel count that is not a
    // multiple of A_IN_PLACE_COLUMNS (whose GEMM packs its channels-last input).
    let mut packed_reader = vec![false; graph.values.len()];
    for (node, role) in graph.nodes.iter().zip(&roles) {
        if let (Some(role), Some(&out)) = (role, node.outputs.first()) {
            candidate[out] = true;
            touches_depthwise[out] |= *role == Role::Depthwise;
        }
    }
    for &v in &graph.outputs {
        candidate[v] = false;
    }
    // Every reader must be a convolution with a role, reading it as its image or
    // residual.
    for (node, role) in graph.nodes.iter().zip(&roles) {
        for (slot, v) in node.inputs.iter().enumerate() {
            let Some(v) = *v else { continue };
            match role {
                Some(r) if slot == 0 || slot == FusedConv::RESIDUAL_INPUT => {
                    touches_depthwise[v] |= *r == Role::Depthwise && slot == 0;
                    if *r == Role::Pointwise && slot == 0 {
                        let channels = node
                            .outputs
                            .first()
                            .and_then(|&y| facts[y].concrete_shape()?.get(1).copied());
                        packed_reader[v] |= channels.is_none_or(|c| !c.is_multiple_of(A_IN_PLACE_COLUMNS));
                    }
                }
                _ => candidate[v] = false,
            }
        }
    }
    for (v, c) in candidate.iter_mut().enumerate() {
        let limit = if packed_reader[v] {
            MAX_POSITIONS
        } else {
            MAX_POSITIONS_IN_PLACE
        };
        let small = facts[v]
            .concrete_shape()
            .is_some_and(|s| s.len() == 4 && s[2] * s[3] <= limit);
        *c &= touches_depthwise[v] && facts[v].value.is_none() && small;
    }
    // Depthwise convolutions take both sides channels-last or neither, and a residual
    // lies like the output it is added to. Dropping candidates only ever drops more,
    // so this settles.
    let mut changed = true;
    while changed {
        changed = false;
        for (node, role) in graph.nodes.iter().zip(&roles) {
            let (Some(role), Some(&out)) = (role, node.outputs.first()) else {
                continue;
            };
            let input = node.inputs.first().copied().flatten();
            let residual = node.inputs.get(FusedConv::RESIDUAL_INPUT).copied().flatten();
            let mut tied: Vec<usize> = Vec::new();
            if *role == Role::Depthwise {
                tied.extend(input);
                tied.push(out);
            }
            if let Some(r) = residual {
                tied.extend([r, out]);
            }
            if tied.iter().any(|&v| !candidate[v]) && tied.iter().any(|&v| candidate[v]) {
                tied.iter().for_each(|&v| candidate[v] = false);
                changed = true;
            }
        }
    }
    candidate
        .into_iter()
        .map(|c| if c { Layout::ChannelsLast } else { Layout::AsShape })
        .collect()
}

/// Channels-last kernels exist in AVX-512 form only (sixteen channels per tap
/// load); elsewhere the NCHW kernels are the tuned ones.
fn wide_vectors() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        Isa::Avx512F.is_supported()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The role of a node, if it is a 2-D f32 convolution with constant weights that
/// a channels-last kernel computes.
fn role(op: &Op, inputs: &[Option<usize>], outputs: &[usize], facts: &[Fact]) -> Option<Role> {
    let conv: &Conv = match op {
        Op::Conv(c) => c,
        Op::FusedConv(f) => &f.conv,
        _ => return None,
    };
    let fact = |i: usize| inputs.get(i).copied().flatten().map(|v| &facts[v]);
    let (x, w) = (fact(0)?, fact(1)?);
    let y = &facts[*outputs.first()?];
    let weights = w.value.as_ref()?;
    let (x_shape, y_shape) = (x.concrete_shape()?, y.concrete_shape()?);
    let w_shape = weights.shape();
    if x.dtype != DType::F32 || weights.dtype() != DType::F32 || x_shape.len() != 4 || w_shape.len() != 4 {
        return None;
    }
    if fact(2).is_some_and(|b| b.value.is_none()) {
        return None; // a bias computed at run time
    }
    let kernel = conv_kernel_shape(&conv.window, w_shape).ok()?;
    let geom = Geometry::new(&conv.window, &x_shape[2..], &kernel, false, y_shape.get(2..)?).ok()?;
    let (c_in, c_out) = (x_shape[1], w_shape[0]);
    if conv.group == 1 && geom.is_pointwise() {
        return Some(Role::Pointwise);
    }
    let fits = kernel.len() == 2 && kernel[0] <= MAX_TAP_ROWS && kernel[1] <= MAX_TAP_COLUMNS;
    let depthwise = conv.group == c_in && c_out == c_in && w_shape[1] == 1 && fits;
    depthwise.then_some(Role::Depthwise)
}
