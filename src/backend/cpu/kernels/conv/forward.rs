//! `Conv`: `Y[n, oc] = b[oc] + sum W[oc, ic, taps] * X[n, g * Cg + ic, shifted]`.
//!
//! Per image and group the convolution is the GEMM `W_g [Mg, Cg*taps] x
//! cols [Cg*taps, positions]`. Pointwise windows (1x1, stride 1, no padding) use
//! the input itself as `cols`; others generate it by im2col straight into the GEMM's
//! packed B panels (a cache block at a time, so no column matrix is ever stored).
//! One input channel per group (depthwise) skips the GEMM for a direct kernel, and
//! large enough stride-1 3x3 convolutions use Winograd F(4x4, 3x3): see
//! [`choose_algo`]. Constant weights are packed (or transformed) once, here.

use rayon::prelude::*;

use super::columns::{gather_row, tap_offsets, GatherPlan, Mapping};
use super::depthwise::{self, Plane};
use super::depthwise_blocked::ChannelBlocked;
use super::depthwise_nhwc::{self, ChannelsLastDepthwise};
use super::direct::{self, Direct};
use super::indirect::{self, Indirect};
use super::swapped::{self, im2col_prefers_swapped, prefers_swapped, RowEpilogue};
use super::winograd::{ImageEpilogue, Winograd};
use super::{expect_len, run_jobs, Bias, PlaneEpilogue};
use crate::backend::cpu::kernel::{
    multiply_add_flops, required, required_desc, InputDesc, Kernel, OutputDesc,
};
use crate::backend::cpu::kernels::float_io::{const_f32, expect_f32, numel, output};
use crate::backend::cpu::kernels::gemm::buffers::{with_scratch, Slot};
use crate::backend::cpu::kernels::gemm::micro::Isa;
use crate::backend::cpu::kernels::gemm::{
    gemm, Epilogue, LhsSource, MatRef, PackedA, PackedB, RhsSource, RowSource,
};
use crate::error::{Error, Result};
use crate::ir::ops::{Activation, FusedConv};
use crate::ir::window::{conv_kernel_shape, Geometry};
use crate::plan::Layout;
use crate::tensor::{View, ViewMut};

const NAME: &str = "Conv";

/// Multiply-adds below which depthwise planes are not worth a parallel task each.
const DEPTHWISE_TASK_MACS: usize = 32 * 1024;

/// Output positions per plane up to which depthwise convolutions run channel-blocked
/// (eight planes at once, see [`super::depthwise_blocked`]): there a plane's fixed
/// per-row cost dominates the plane kernel. `depthwise_speed` (ignored test, 1
/// thread, against the AVX2 row kernel) measured channel-blocked / plane time 0.43
/// at 7x7, 0.47 at 14x14 stride 2, 0.67 at 14x14 and 0.80 at 28x28, but 1.06 at
/// 56x56 and 1.4 at 112x112, where the blocked kernel's two transposes cost extra.
/// In-model (MobileNetV2, 1 thread) its 28x28 layers were 13-18 % faster blocked.
const CHANNEL_BLOCKED_MAX_POSITIONS: usize = 28 * 28;

/// Input index of the fused residual.
const RESIDUAL_INPUT: usize = FusedConv::RESIDUAL_INPUT;

/// Where a fused residual is found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Residual {
    /// Input [`RESIDUAL_INPUT`].
    Input,
    /// Already in the output buffer (the step runs in place).
    InOutput,
}

enum Algo {
    /// The input already is the column matrix.
    Pointwise,
    Im2col,
    Depthwise(Box<Plane>),
    /// Needs constant weights: [`Weights::Winograd`].
    Winograd,
    /// Needs constant weights: [`Weights::Indirect`].
    Indirect,
    /// Needs constant weights: [`Weights::Direct`].
    Direct,
    /// Channels-last input and output: [`Weights::ChannelsLast`].
    ChannelsLastDepthwise,
}

/// When a convolution that Winograd can compute should use it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum WinogradPolicy {
    Never,
    /// Where [`choose_algo`]'s thresholds say it is faster than im2col.
    WhenFaster,
    /// Wherever it applies, however small (tests of the kernel on small shapes).
    #[cfg(test)]
    Always,
}

// Thresholds from `winograd_vs_im2col` (ignored test; 1 thread, this repo's EPYC VMs).
// The transforms cost a fixed amount per channel and tile; the GEMM saves in
// proportion to the *other* side's channel count. Alone, Winograd won at 64->64
// @56x56 (1.6x), 128 @28 (1.6x) and 32 @56 (1.2x), broke even at 256 @14 and 224
// @14 (+-10 %), and lost at 512 @7, 16 @112, 16 @28 and 32 @14. Inside whole
// models 14x14 layers still pay: resnet18 with them on Winograd measured 1.21-1.39x
// faster than with none, against 1.09-1.23x without them (benches/RESULTS.md).
/// Winograd needs at least this many input and output channels ...
const WINOGRAD_MIN_CHANNELS: usize = 32;
/// ... at least this many 4x4 output tiles (a 14x14 plane has 16; a 7x7 one 4,
/// mostly padding) ...
const WINOGRAD_MIN_TILES: usize = 16;
/// ... and at least this much of (fewer channels x tiles).
const WINOGRAD_MIN_CHANNEL_TILES: usize = 2048;

/// Picks the algorithm for one convolution. `const_weights`: Winograd transforms
/// the weights once, at prepare, so it needs them constant.
fn choose_algo(
    geom: &Geometry,
    c_in: usize,
    c_out: usize,
    group: usize,
    const_weights: bool,
    winograd: WinogradPolicy,
) -> Algo {
    let c_g = c_in / group;
    if c_g == 1 {
        if let Some(plane) = Plane::new(geom) {
            return Algo::Depthwise(Box::new(plane));
        }
    }
    if geom.is_pointwise() {
        return Algo::Pointwise;
    }
    let tiles: usize = geom.output.iter().map(|&o| o.div_ceil(4)).product();
    let channels = c_in.min(c_out);
    let faster = channels >= WINOGRAD_MIN_CHANNELS
        && tiles >= WINOGRAD_MIN_TILES
        && channels.saturating_mul(tiles) >= WINOGRAD_MIN_CHANNEL_TILES;
    let wanted = match winograd {
        WinogradPolicy::Never => false,
        WinogradPolicy::WhenFaster => faster,
        #[cfg(test)]
        WinogradPolicy::Always => true,
    };
    if wanted && const_weights && group == 1 && Winograd::fits(geom) {
        return Algo::Winograd;
    }
    let k_g = c_g * geom.kernel_len();
    let undilated = geom.dilations.iter().all(|&d| d == 1);
    let direct = const_weights && geom.rank() <= 2 && undilated && geom.output_len() > 0;
    let isa = Isa::detect();
    let wide_direct = direct::wide_steps(isa);
    if direct && group == 1 && prefers_stem(c_in, k_g, wide_direct) {
        return Algo::Direct;
    }
    if direct && group > 1 && prefers_grouped_direct(c_out / group, geom, wide_direct) {
        return Algo::Direct;
    }
    let wide = indirect::wide_tiles(isa);
    if const_weights && geom.rank() <= 2 && prefers_indirect(c_out / group, k_g, geom, wide) {
        return Algo::Indirect;
    }
    Algo::Im2col
}

/// Output channels per group up to which the indirect kernel beats im2col + GEMM:
/// each im2col element feeds only this many multiply-adds, so building the columns
/// costs as much as the arithmetic on them. Above it, the GEMM's packed operands
/// win (measured on resnet18's 7x7 layers at 512 channels: 55 GFLOP/s indirect
/// against 60 for im2col, where its 3-channel stem ran 64 against 53).
const INDIRECT_MAX_GROUP_CHANNELS: usize = 64;

/// Reduction length below which the indirect kernel's transposing tile stores
/// (16 x 6 scalar moves per tile, whatever the reduction) cost more than im2col
/// saves: RegNet's 32-channel 1x1 stride-2 projections ran at 15 GFLOP/s indirect.
const INDIRECT_MIN_REDUCTION: usize = 64;

/// Output positions from which a convolution with a window (not 1x1) runs indirect
/// whatever its channel count, where the indirect kernel has 6x32 tiles (AVX-512:
/// the whole reduction in registers, one transposed store per tile). kiln profile,
/// 1 thread, Zen 5, against im2col + GEMM: ResNet-50's 3x3/2 layers at 28x28 and
/// 14x14 (128 and 256 channels) 1.62 -> 1.23 and 1.56 -> 1.21 ms; at 7x7 (49
/// positions) 1.61-1.73 -> 1.65-1.85 ms, and its 1x1/2 projections 1.25 -> 1.55.
const INDIRECT_WIDE_MIN_POSITIONS: usize = 196;

/// Whether a non-pointwise convolution with `m_g` output channels per group,
/// reduced over `k_g` (input channels x taps), runs indirect (see
/// [`super::indirect`]) rather than im2col + GEMM. `wide`: the CPU has the
/// indirect kernel's 6x32 tiles.
fn prefers_indirect(m_g: usize, k_g: usize, geom: &Geometry, wide: bool) -> bool {
    let any_channels = wide && geom.kernel_len() > 1 && geom.output_len() >= INDIRECT_WIDE_MIN_POSITIONS;
    (m_g <= INDIRECT_MAX_GROUP_CHANNELS || any_channels) && k_g >= INDIRECT_MIN_REDUCTION
}

/// Input channels up to which an ungrouped convolution with a short reduction runs
/// on the direct kernel (see [`super::direct`]): images, depth maps, audio.
const STEM_MAX_INPUT_CHANNELS: usize = 4;

/// Reduction length up to which the direct kernel beats im2col + GEMM (kiln
/// profile, 1 thread: MobileNetV2's 3x3/2 stem, 27 deep, 0.70 -> 0.41 ms, RegNet's
/// 0.72 -> 0.52). Without AVX-512, ResNet's 7x7/2 stem (147 deep) stays indirect:
/// direct measured 2.45-2.75 ms against 2.61-2.63 at 1 thread, 1.97 against 1.61
/// at 2 (Zen 4).
const STEM_MAX_REDUCTION: usize = 64;

/// The same where the stem kernel has its AVX-512 steps (8 channels x 32 outputs):
/// up to 7x7 windows over 3 channels. ResNet-50's 7x7/2 stem, kiln profile, Zen 5,
/// pinned, 3 alternating rounds: 1.47 ms indirect (6x32 tiles) against 1.33 direct
/// at 1 thread; even at 2 (0.81-0.83 against 0.76-0.85, unpinned).
const STEM_WIDE_MAX_REDUCTION: usize = 3 * 7 * 7;

/// Whether a convolution of `c_in` input channels reduced over `k_g` (input
/// channels x taps) runs on the direct kernel. `wide`: the kernel has its
/// AVX-512 steps here.
fn prefers_stem(c_in: usize, k_g: usize, wide: bool) -> bool {
    let max_reduction = if wide {
        STEM_WIDE_MAX_REDUCTION
    } else {
        STEM_MAX_REDUCTION
    };
    c_in <= STEM_MAX_INPUT_CHANNELS && k_g <= max_reduction
}

/// Output channels per group up to which a grouped convolution runs on the direct
/// kernel (where its rows fill its vectors, below) rather than the indirect one,
/// whose 12x16 and 6x32 tiles leave lanes empty on narrow groups and store
/// through a transpose. kiln profile, 1 thread, Zen 5, 3x3 windows, indirect ->
/// direct (ORT): RegNet's 16-channel groups at 56x56/2 0.23 -> 0.19 ms (0.16), at
/// 14x14 0.070 -> 0.055 (0.053); 8-channel groups at 28x28 0.102 -> 0.042 (0.126),
/// at 56x56 0.296 -> 0.113 (0.334); 24-channel ones at 28x28 0.222 -> 0.156
/// (0.266), 48 at 14x14 0.178 -> 0.155 (0.127). At 112 channels per group the two
/// tie at stride 1 (0.81 / 0.80 ms) and direct loses at stride 2 (0.42 -> 0.44).
const DIRECT_GROUPED_MAX_CHANNELS: usize = 64;

/// Whether a grouped convolution with `m_g` output channels per group runs on
/// the direct kernel: only with its AVX-512 steps (`wide`), and only where output
/// rows fill at least three quarters of its vectors (a row is cut into whole
/// vectors: a 14-wide row fills 14 of 16 lanes, a 7-wide one 7, and at 7x7 the
/// indirect kernel is as fast: 0.054 ms each on RegNet's 400-channel layers).
fn prefers_grouped_direct(m_g: usize, geom: &Geometry, wide: bool) -> bool {
    let width = geom.output.last().copied().unwrap_or(0);
    let lanes = width.next_multiple_of(direct::SEGMENT);
    wide && m_g <= DIRECT_GROUPED_MAX_CHANNELS && 4 * width >= 3 * lanes
}

enum Weights {
    /// One packed `[Mg, Kg]` matrix per group.
    Packed(Vec<PackedA>),
    /// One transposed `[Kg, Mg]` matrix per group, packed for the swapped GEMM
    /// (see [`swapped`]).
    Swapped(Vec<PackedB>),
    /// Transformed and packed for [`Algo::Winograd`].
    Winograd(Box<Winograd>),
    /// Packed for [`Algo::Indirect`].
    Indirect(Box<Indirect>),
    /// Interleaved for [`Algo::Direct`].
    Direct(Box<Direct>),
    /// A copy of constant weights, for the depthwise kernel.
    Copied(Vec<f32>),
    /// Interleaved for the channel-blocked depthwise kernel (no channel multiplier).
    ChannelBlocked(Box<ChannelBlocked>),
    /// Interleaved tap-major for the channels-last depthwise kernel.
    ChannelsLast(Box<ChannelsLastDepthwise>),
    /// Read input 1 at run time (weights computed by the graph).
    Input,
}

struct ConvKernel {
    geom: Geometry,
    /// Per-tap offsets for im2col (see [`tap_offsets`]).
    taps: Vec<isize>,
    /// im2col's segments, precomputed (im2col only, when small enough).
    gather: Option<GatherPlan>,
    batch: usize,
    c_in: usize,
    c_out: usize,
    group: usize,
    algo: Algo,
    weights: Weights,
    bias: Bias,
    /// Applied as each output tile is stored (the optimizer's fused activation).
    activation: Activation,
    /// Whether input 3, shaped like the output, is added before the activation.
    residual: bool,
    /// How the input and the output (and the residual, like it) lie in memory.
    x_layout: Layout,
    y_layout: Layout,
}

/// `winograd` comes from the session's options.
pub(super) fn prepare(
    fused: &FusedConv,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
    winograd: WinogradPolicy,
) -> Result<Box<dyn Kernel>> {
    let conv = &fused.conv;
    expect_f32(NAME, inputs, &[0, 1, 2, 3], outputs)?;
    let (x, w) = (required_desc(inputs, 0)?, required_desc(inputs, 1)?);
    let y = output(NAME, outputs, 0)?;
    if x.shape.len() < 3 || w.shape.len() != x.shape.len() || y.shape.len() != x.shape.len() {
        return Err(Error::shape(
            NAME,
            format!(
                "ranks of X {:?}, W {:?}, Y {:?} do not fit",
                x.shape, w.shape, y.shape
            ),
        ));
    }
    let (batch, c_in, c_out, group) = (x.shape[0], x.shape[1], w.shape[0], conv.group);
    if group == 0 || c_in % group != 0 || c_out % group != 0 || w.shape[1] != c_in / group {
        return Err(Error::shape(
            NAME,
            format!("group {group} does not fit X {:?} and W {:?}", x.shape, w.shape),
        ));
    }
    if y.shape[0] != batch || y.shape[1] != c_out {
        return Err(Error::shape(
            NAME,
            format!(
                "output {:?} does not match X {:?}, W {:?}",
                y.shape, x.shape, w.shape
            ),
        ));
    }
    if fused.residual {
        let r = required_desc(inputs, RESIDUAL_INPUT)?;
        if r.shape != y.shape.as_slice() {
            return Err(Error::shape(
                NAME,
                format!(
                    "residual {:?} is not shaped like the output {:?}",
                    r.shape, y.shape
                ),
            ));
        }
        if r.layout != y.layout {
            return Err(Error::shape(NAME, "the residual is laid out unlike the output"));
        }
    }
    let kernel = conv_kernel_shape(&conv.window, w.shape)?;
    let geom = Geometry::new(&conv.window, &x.shape[2..], &kernel, false, &y.shape[2..])?;
    numel(NAME, x.shape)?;
    numel(NAME, w.shape)?;
    numel(NAME, &y.shape)?;
    let bias = Bias::prepare(NAME, inputs.get(2).copied().flatten(), c_out)?;
    let const_weights = const_f32(&w);
    let (x_layout, y_layout) = (x.layout, y.layout);
    let (algo, weights) = if x_layout == Layout::AsShape && y_layout == Layout::AsShape {
        let algo = choose_algo(&geom, c_in, c_out, group, const_weights.is_some(), winograd);
        let weights = prepare_weights(&geom, &algo, const_weights, c_in, c_out, group)?;
        (algo, weights)
    } else {
        prepare_channels_last(&geom, const_weights, (c_in, c_out, group), (x_layout, y_layout))?
    };
    let pads: Vec<isize> = geom.pads_begin.iter().map(|&p| p as isize).collect();
    let taps = tap_offsets(&geom.kernel, &geom.dilations, &pads);
    let gather = match algo {
        Algo::Im2col => {
            let maps = taps
                .chunks_exact(geom.rank())
                .map(|offsets| im2col_mapping(&geom, offsets));
            GatherPlan::new(maps, geom.output_len())
        }
        _ => None,
    };
    Ok(Box::new(ConvKernel {
        geom,
        taps,
        gather,
        batch,
        c_in,
        c_out,
        group,
        algo,
        weights,
        bias,
        activation: fused.activation,
        residual: fused.residual,
        x_layout,
        y_layout,
    }))
}

/// Packs (or copies) constant weights for `algo`.
fn prepare_weights(
    geom: &Geometry,
    algo: &Algo,
    const_weights: Option<&[f32]>,
    c_in: usize,
    c_out: usize,
    group: usize,
) -> Result<Weights> {
    let (c_g, m_g) = (c_in / group, c_out / group);
    let k_g = c_g * geom.kernel_len();
    Ok(match (const_weights, algo) {
        (None, _) => Weights::Input,
        (Some(v), Algo::Depthwise(plane)) => match (c_out == c_in
            && geom.output_len() <= CHANNEL_BLOCKED_MAX_POSITIONS)
            .then(|| ChannelBlocked::new(plane, c_out, v))
            .flatten()
        {
            Some(blocked) => Weights::ChannelBlocked(Box::new(blocked)),
            None => Weights::Copied(v.to_vec()),
        },
        (Some(v), Algo::Winograd) => Weights::Winograd(Box::new(Winograd::new(geom, c_in, c_out, v)?)),
        (Some(v), Algo::Indirect) => match Indirect::new(geom, c_in, c_out, group, v)? {
            Some(ind) => Weights::Indirect(Box::new(ind)),
            None => {
                return Err(Error::shape(
                    NAME,
                    "indirect convolution needs a 1-D or 2-D window",
                ))
            }
        },
        (Some(v), Algo::Direct) => match Plane::new(geom).and_then(|p| Direct::new(p, c_g, m_g, group, v)) {
            Some(direct) => Weights::Direct(Box::new(direct)),
            None => {
                return Err(Error::shape(
                    NAME,
                    "direct convolution needs an undilated 1-D or 2-D window",
                ))
            }
        },
        (Some(v), Algo::Pointwise) if prefers_swapped(m_g, geom.output_len(), k_g) => {
            Weights::Swapped(swapped::pack_weights(v, group, m_g, k_g)?)
        }
        (Some(v), Algo::Im2col) if im2col_prefers_swapped(m_g, geom.output_len(), k_g) => {
            Weights::Swapped(swapped::pack_weights(v, group, m_g, k_g)?)
        }
        (Some(v), _) => {
            let packed = (0..group)
                .map(|g| {
                    Ok(PackedA::new(MatRef::row_major(
                        &v[g * m_g * k_g..][..m_g * k_g],
                        m_g,
                        k_g,
                    )?))
                })
                .collect::<Result<Vec<_>>>()?;
            Weights::Packed(packed)
        }
    })
}

/// The algorithm and weights of a convolution reading or writing channels-last
/// values (see `backend/cpu/channels_last.rs`, which lays values out so only
/// these two kinds meet them): a depthwise convolution (channels-last on both
/// sides), or a pointwise one (either side), computed swapped: positions on the
/// tile rows, channels on the lanes, which is the channels-last order.
fn prepare_channels_last(
    geom: &Geometry,
    const_weights: Option<&[f32]>,
    (c_in, c_out, group): (usize, usize, usize),
    (x_layout, y_layout): (Layout, Layout),
) -> Result<(Algo, Weights)> {
    let unsupported = || Error::shape(NAME, "no channels-last kernel for this convolution");
    let w = const_weights.ok_or_else(unsupported)?;
    if group == c_in && c_out == c_in && x_layout == y_layout {
        let dw = ChannelsLastDepthwise::new(geom, c_out, w).ok_or_else(unsupported)?;
        return Ok((Algo::ChannelsLastDepthwise, Weights::ChannelsLast(Box::new(dw))));
    }
    if group == 1 && geom.is_pointwise() {
        let weights = swapped::pack_weights(w, 1, c_out, c_in)?;
        return Ok((Algo::Pointwise, Weights::Swapped(weights)));
    }
    Err(unsupported())
}

impl Kernel for ConvKernel {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        self.run_with(inputs, outputs, Residual::Input)
    }

    fn in_place_input(&self) -> Option<usize> {
        // The usual GEMM orientation accumulates onto its output (beta = 1); the
        // other algorithms add the residual in passes of their own.
        let usual_gemm = matches!(self.algo, Algo::Pointwise | Algo::Im2col)
            && matches!(self.weights, Weights::Packed(_) | Weights::Input);
        (self.residual && usual_gemm).then_some(RESIDUAL_INPUT)
    }

    fn run_in_place(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        match self.in_place_input() {
            Some(_) => self.run_with(inputs, outputs, Residual::InOutput),
            None => Err(Error::shape(NAME, "this convolution cannot run in place")),
        }
    }

    fn label(&self) -> &'static str {
        let swapped = matches!(self.weights, Weights::Swapped(_));
        let blocked = matches!(self.weights, Weights::ChannelBlocked(_));
        let channels_last = (self.x_layout, self.y_layout);
        match self.algo {
            Algo::Depthwise(_) if blocked => "channel-blocked depthwise",
            Algo::Pointwise if channels_last == (Layout::ChannelsLast, Layout::ChannelsLast) => {
                "pointwise gemm (swapped, nhwc in and out)"
            }
            Algo::Pointwise if channels_last.0 == Layout::ChannelsLast => "pointwise gemm (swapped, nhwc in)",
            Algo::Pointwise if channels_last.1 == Layout::ChannelsLast => {
                "pointwise gemm (swapped, nhwc out)"
            }
            Algo::Pointwise if swapped => "pointwise gemm (swapped)",
            Algo::Pointwise => "pointwise gemm",
            Algo::Im2col if swapped => "im2col+gemm (swapped)",
            Algo::Im2col => "im2col+gemm",
            Algo::Depthwise(_) => "direct depthwise",
            Algo::ChannelsLastDepthwise => "channels-last depthwise",
            Algo::Winograd => "winograd f(4x4,3x3)",
            Algo::Indirect => "indirect gemm",
            Algo::Direct => "direct",
        }
    }

    fn flops(&self) -> Option<u64> {
        multiply_add_flops(&[
            self.batch,
            self.c_out,
            self.geom.output_len(),
            self.c_in / self.group,
            self.geom.kernel_len(),
        ])
    }
}

impl ConvKernel {
    /// Runs the convolution, the residual (if fused) read from input 3 or found
    /// already in `y`.
    fn run_with(
        &self,
        inputs: &[Option<View<'_>>],
        outputs: &mut [ViewMut<'_>],
        residual_at: Residual,
    ) -> Result<()> {
        let (in_len, out_len) = (self.geom.input_len(), self.geom.output_len());
        let x = required(inputs, 0)?.typed::<f32>()?;
        let y = outputs
            .get_mut(0)
            .ok_or_else(|| Error::shape(NAME, "missing output"))?
            .typed::<f32>()?;
        expect_len(NAME, "X", x.len(), self.batch * self.c_in * in_len)?;
        expect_len(NAME, "Y", y.len(), self.batch * self.c_out * out_len)?;
        let w = match &self.weights {
            Weights::Input => {
                let w = required(inputs, 1)?.typed::<f32>()?;
                expect_len(
                    NAME,
                    "W",
                    w.len(),
                    self.c_out * (self.c_in / self.group) * self.geom.kernel_len(),
                )?;
                Some(w)
            }
            Weights::Copied(v) => Some(v.as_slice()),
            Weights::Packed(_)
            | Weights::Swapped(_)
            | Weights::Winograd(_)
            | Weights::Indirect(_)
            | Weights::Direct(_)
            | Weights::ChannelBlocked(_)
            | Weights::ChannelsLast(_) => None,
        };
        let bias = self.bias.get(NAME, inputs, self.c_out)?;
        let residual = match (self.residual, residual_at) {
            (true, Residual::Input) => {
                let r = required(inputs, RESIDUAL_INPUT)?.typed::<f32>()?;
                expect_len(NAME, "residual", r.len(), y.len())?;
                Some(r)
            }
            _ => None,
        };
        let accumulate = self.residual && residual_at == Residual::InOutput;
        match (&self.algo, &self.weights) {
            (Algo::ChannelsLastDepthwise, Weights::ChannelsLast(dw)) => {
                self.channels_last_depthwise(dw, x, bias, residual, y);
                Ok(())
            }
            (Algo::ChannelsLastDepthwise, _) => Err(Error::shape(NAME, "channels-last weights missing")),
            (Algo::Depthwise(_), Weights::ChannelBlocked(blocked)) => {
                self.channel_blocked(blocked, x, bias, residual, y);
                Ok(())
            }
            (Algo::Depthwise(plane), _) => {
                let w = w.ok_or_else(|| Error::shape(NAME, "depthwise weights missing"))?;
                self.depthwise(plane, x, w, bias, residual, y);
                Ok(())
            }
            (Algo::Winograd, Weights::Winograd(wino)) => self.winograd(wino, x, bias, residual, y),
            (Algo::Winograd, _) => Err(Error::shape(NAME, "Winograd weights missing")),
            (Algo::Indirect, Weights::Indirect(_)) => self.gemm_path(x, w, bias, residual, accumulate, y),
            (Algo::Indirect, _) => Err(Error::shape(NAME, "indirect weights missing")),
            (Algo::Direct, Weights::Direct(_)) => self.gemm_path(x, w, bias, residual, accumulate, y),
            (Algo::Direct, _) => Err(Error::shape(NAME, "direct convolution weights missing")),
            _ => self.gemm_path(x, w, bias, residual, accumulate, y),
        }
    }

    /// One output plane (image x channel) at a time, planes in parallel.
    fn depthwise(
        &self,
        plane: &Plane,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let (in_len, out_len, taps) = (
            self.geom.input_len(),
            self.geom.output_len(),
            self.geom.kernel_len(),
        );
        if out_len == 0 {
            return;
        }
        let mult = self.c_out / self.c_in;
        // Late layers have hundreds of 7x7 planes: a task per plane would cost more
        // in scheduling than the plane's few hundred multiply-adds.
        let planes_per_task = (DEPTHWISE_TASK_MACS / (out_len * taps).max(1)).max(1);
        y.par_chunks_mut(out_len)
            .with_min_len(planes_per_task)
            .enumerate()
            .for_each(|(idx, out)| {
                let (n, oc) = (idx / self.c_out, idx % self.c_out);
                let ic = oc / mult;
                let x_plane = &x[(n * self.c_in + ic) * in_len..][..in_len];
                let b = bias.map_or(0.0, |b| b[oc]);
                let w = &w[oc * taps..][..taps];
                let epilogue = PlaneEpilogue {
                    bias: b,
                    residual: residual.map(|r| &r[idx * out_len..][..out_len]),
                    activation: self.activation,
                };
                with_scratch(Slot::Row, depthwise::scratch_len(plane), |phases| {
                    depthwise::plane(plane, x_plane, w, &epilogue, phases, out)
                });
            });
    }

    /// One block of channels (8, or 16 with AVX-512) of one image per task.
    fn channel_blocked(
        &self,
        blocked: &ChannelBlocked,
        x: &[f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let (in_len, out_len, taps) = (
            self.geom.input_len(),
            self.geom.output_len(),
            self.geom.kernel_len(),
        );
        if out_len == 0 {
            return;
        }
        let lanes = blocked.width();
        let per_task = (DEPTHWISE_TASK_MACS / (lanes * out_len * taps).max(1)).max(1);
        let c = self.c_out;
        y.par_chunks_mut(c * out_len)
            .enumerate()
            .flat_map(|(n, image)| {
                image
                    .par_chunks_mut(lanes * out_len)
                    .with_min_len(per_task)
                    .enumerate()
                    .map(move |(b, out)| (n, b, out))
            })
            .for_each(|(n, b, out)| {
                let c0 = n * c + b * lanes;
                let block = blocked.lanes(b);
                let x_block = &x[c0 * in_len..][..block * in_len];
                let bias = bias.map(|v| &v[b * lanes..][..block]);
                let residual = residual.map(|r| &r[c0 * out_len..][..block * out_len]);
                with_scratch(Slot::Row, blocked.scratch_len(), |scratch| {
                    blocked.block(b, x_block, bias, residual, self.activation, scratch, out)
                });
            });
    }

    /// One image at a time, output rows in parallel.
    fn channels_last_depthwise(
        &self,
        dw: &ChannelsLastDepthwise,
        x: &[f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let (in_len, out_len) = (
            self.c_in * self.geom.input_len(),
            self.c_out * self.geom.output_len(),
        );
        if out_len == 0 {
            return;
        }
        for (n, y_n) in y.chunks_exact_mut(out_len).enumerate() {
            let terms = depthwise_nhwc::Terms {
                bias,
                residual: residual.map(|r| &r[n * out_len..][..out_len]),
                activation: self.activation,
            };
            dw.run(&x[n * in_len..][..in_len], y_n, &terms, true);
        }
    }

    /// A pointwise convolution reading or writing channels-last, for one image:
    /// the swapped GEMM, whose left operand (positions x input channels) a
    /// channels-last input is as it lies, and whose product (positions x output
    /// channels) a channels-last output is.
    #[allow(clippy::too_many_arguments)]
    fn channels_last_pointwise(
        &self,
        w_t: &PackedB,
        x: &[f32],
        y: &mut [f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        parallel: bool,
    ) -> Result<()> {
        let (positions, k, m) = (self.geom.output_len(), self.c_in, self.c_out);
        let a = match self.x_layout {
            Layout::AsShape => MatRef::row_major(x, k, positions)?.t(),
            Layout::ChannelsLast => MatRef::row_major(x, positions, k)?,
        };
        match self.y_layout {
            Layout::AsShape => {
                let epilogue = RowEpilogue {
                    bias,
                    residual,
                    activation: self.activation,
                };
                swapped::conv_gemm_from(w_t, a, y, &epilogue, parallel)
            }
            Layout::ChannelsLast => {
                let epilogue = Epilogue {
                    col_bias: bias,
                    residual: residual.map(|r| MatRef::row_major(r, positions, m)).transpose()?,
                    activation: self.activation,
                    ..Epilogue::default()
                };
                gemm(
                    LhsSource::Mat(a),
                    RhsSource::Packed(w_t),
                    y,
                    m,
                    1.0,
                    0.0,
                    &epilogue,
                    parallel,
                )
            }
        }
    }

    /// One image at a time; each is parallel inside (over channels and the 36 GEMMs).
    fn winograd(
        &self,
        wino: &Winograd,
        x: &[f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        y: &mut [f32],
    ) -> Result<()> {
        let (in_len, out_len) = (
            self.c_in * self.geom.input_len(),
            self.c_out * self.geom.output_len(),
        );
        for (n, y_n) in y.chunks_mut(out_len).enumerate() {
            let epilogue = ImageEpilogue {
                bias,
                residual: residual.map(|r| &r[n * out_len..][..out_len]),
                activation: self.activation,
            };
            wino.run(&x[n * in_len..][..in_len], y_n, &epilogue)?;
        }
        Ok(())
    }

    /// GEMM per (image, group): with the input or im2col panels as the right
    /// operand, swapped, or indirect.
    fn gemm_path(
        &self,
        x: &[f32],
        w: Option<&[f32]>,
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        accumulate: bool,
        y: &mut [f32],
    ) -> Result<()> {
        let (in_len, out_len) = (self.geom.input_len(), self.geom.output_len());
        let (c_g, m_g) = (self.c_in / self.group, self.c_out / self.group);
        // `y` already holds the residual when accumulating onto it (only ever on the
        // usual GEMM: see `in_place_input`).
        let beta = if accumulate { 1.0 } else { 0.0 };
        let k_g = c_g * self.geom.kernel_len();
        let job = |j: usize, y_job: &mut [f32], parallel: bool| -> Result<()> {
            let (n, g) = (j / self.group, j % self.group);
            let x_job = &x[(n * self.c_in + g * c_g) * in_len..][..c_g * in_len];
            let row_epilogue = || RowEpilogue {
                bias: bias.map(|b| &b[g * m_g..][..m_g]),
                residual: residual.map(|r| &r[j * m_g * out_len..][..m_g * out_len]),
                activation: self.activation,
            };
            match &self.weights {
                Weights::Swapped(w_t)
                    if (self.x_layout, self.y_layout) != (Layout::AsShape, Layout::AsShape) =>
                {
                    let bias = bias.map(|b| &b[g * m_g..][..m_g]);
                    let residual = residual.map(|r| &r[j * m_g * out_len..][..m_g * out_len]);
                    return self.channels_last_pointwise(&w_t[g], x_job, y_job, bias, residual, parallel);
                }
                Weights::Swapped(w_t) if matches!(self.algo, Algo::Im2col) => {
                    let cols = Im2col {
                        conv: self,
                        x: x_job,
                        rows: k_g,
                    };
                    return with_scratch(Slot::Columns, k_g * out_len, |buf| {
                        cols.fill(buf, parallel);
                        swapped::conv_gemm(&w_t[g], buf, y_job, &row_epilogue(), parallel)
                    });
                }
                Weights::Swapped(w_t) => {
                    return swapped::conv_gemm(&w_t[g], x_job, y_job, &row_epilogue(), parallel)
                }
                Weights::Indirect(ind) => {
                    ind.run(g, x_job, y_job, &row_epilogue(), parallel);
                    return Ok(());
                }
                Weights::Direct(direct) => {
                    direct.run(g, x_job, y_job, &row_epilogue(), parallel);
                    return Ok(());
                }
                _ => {}
            }
            let a = match (&self.weights, w) {
                (Weights::Packed(p), _) => LhsSource::Packed(&p[g]),
                (_, Some(w)) => {
                    LhsSource::Mat(MatRef::row_major(&w[g * m_g * k_g..][..m_g * k_g], m_g, k_g)?)
                }
                (_, None) => return Err(Error::shape(NAME, "weights missing")),
            };
            let residual = match residual {
                Some(r) => Some(MatRef::row_major(
                    &r[j * m_g * out_len..][..m_g * out_len],
                    m_g,
                    out_len,
                )?),
                None => None,
            };
            let epilogue = Epilogue {
                row_bias: bias.map(|b| &b[g * m_g..][..m_g]),
                residual,
                activation: self.activation,
                ..Epilogue::default()
            };
            if let Algo::Pointwise = self.algo {
                let b = RhsSource::Mat(MatRef::row_major(x_job, c_g, in_len)?);
                return gemm(a, b, y_job, out_len, 1.0, beta, &epilogue, parallel);
            }
            let cols = Im2col {
                conv: self,
                x: x_job,
                rows: k_g,
            };
            gemm(
                a,
                RhsSource::Rows(&cols),
                y_job,
                out_len,
                1.0,
                beta,
                &epilogue,
                parallel,
            )
        };
        let macs = m_g.saturating_mul(k_g).saturating_mul(out_len);
        run_jobs(y, m_g * out_len, macs, job)
    }
}

/// The im2col matrix of one image and group (`Cg * taps` rows, one column per output
/// position), generated row by row as the GEMM packs it: no column matrix exists.
struct Im2col<'k> {
    conv: &'k ConvKernel,
    /// The group's input channels.
    x: &'k [f32],
    rows: usize,
}

impl Im2col<'_> {
    /// The whole matrix, row-major, into `dst` (for the swapped GEMM, which packs
    /// its left operand from it).
    fn fill(&self, dst: &mut [f32], parallel: bool) {
        let width = self.conv.geom.output_len();
        if width == 0 {
            return;
        }
        let matrix = &mut dst[..self.rows * width];
        if parallel {
            let rows = matrix.par_chunks_exact_mut(width);
            rows.enumerate().for_each(|(r, row)| self.fill_row(r, 0, row));
        } else {
            let rows = matrix.chunks_exact_mut(width);
            rows.enumerate().for_each(|(r, row)| self.fill_row(r, 0, row));
        }
    }
}

impl RowSource for Im2col<'_> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.conv.geom.output_len())
    }

    fn fill_row(&self, r: usize, j0: usize, dst: &mut [f32]) {
        let g = &self.conv.geom;
        let (in_len, taps, rank) = (g.input_len(), g.kernel_len(), g.rank());
        let (c, tap) = (r / taps, r % taps);
        let x = &self.x[c * in_len..][..in_len];
        if let Some(plan) = &self.conv.gather {
            return plan.gather_row(tap, x, j0, dst);
        }
        let map = im2col_mapping(g, &self.conv.taps[tap * rank..][..rank]);
        gather_row(&map, x, j0, dst);
    }
}

/// im2col's mapping for one tap: output positions to the input positions they read.
fn im2col_mapping<'g>(geom: &'g Geometry, offsets: &'g [isize]) -> Mapping<'g> {
    Mapping {
        source: &geom.output,
        target: &geom.input,
        strides: &geom.strides,
        offsets,
    }
}
