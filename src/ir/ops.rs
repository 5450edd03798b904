//! The typed op set of kiln's IR.
//!
//! The loader (`ir::import`) is the only place that looks at ONNX op-type strings;
//! past it, an op is one of these variants with its attributes parsed and validated.
//! ONNX moved many attributes to inputs over the opsets (Unsqueeze/Squeeze axes,
//! Split sizes, Reduce axes, Clip bounds): the importer always normalises to the
//! *input* form, turning old-style attributes into constant inputs, so every later
//! stage sees one shape of each op.

use crate::tensor::{DType, Tensor};

/// Elementwise ops with one input.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum UnaryOp {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Abs,
    Neg,
    Erf,
    Reciprocal,
    Floor,
    Ceil,
    Round,
    Sign,
    Sin,
    Cos,
    Not,
    Softplus,
    Softsign,
    HardSwish,
    /// `max(0, min(1, alpha * x + beta))`
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    Selu {
        alpha: f32,
        gamma: f32,
    },
    Celu {
        alpha: f32,
    },
    /// `x * sigmoid(x)`; produced by the optimizer, not by ONNX.
    Silu,
    Gelu {
        tanh_approx: bool,
    },
    /// `clamp(x, min, max)` with bounds known at import; `Clip` with runtime bounds is [`Op::Clip`].
    Clamp {
        min: f32,
        max: f32,
    },
}

impl UnaryOp {
    /// True for ops that are only defined on floating-point inputs.
    pub fn float_only(self) -> bool {
        !matches!(
            self,
            UnaryOp::Abs | UnaryOp::Neg | UnaryOp::Sign | UnaryOp::Not | UnaryOp::Relu
        )
    }
}

/// The activations a fused op can apply as it stores its output (a conv's epilogue,
/// a squeeze-excitation's hidden layer and gate). A subset of [`UnaryOp`]: the
/// functions the optimizer's patterns produce.
#[derive(Copy, Clone, Debug, PartialEq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// `min(max(x, min), max)`: ReLU6 is `Clamp { min: 0, max: 6 }`.
    Clamp {
        min: f32,
        max: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    Sigmoid,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Silu,
}

impl Activation {
    /// The activation equivalent to a unary op, if it is one a fused op can apply.
    pub fn from_unary(op: UnaryOp) -> Option<Activation> {
        Some(match op {
            UnaryOp::Relu => Activation::Relu,
            UnaryOp::Clamp { min, max } => Activation::Clamp { min, max },
            UnaryOp::LeakyRelu { alpha } => Activation::LeakyRelu { alpha },
            UnaryOp::Sigmoid => Activation::Sigmoid,
            UnaryOp::HardSigmoid { alpha, beta } => Activation::HardSigmoid { alpha, beta },
            UnaryOp::HardSwish => Activation::HardSwish,
            UnaryOp::Silu => Activation::Silu,
            _ => return None,
        })
    }

    /// The unary op this activation computes (`None` for the identity).
    pub fn to_unary(self) -> Option<UnaryOp> {
        Some(match self {
            Activation::None => return None,
            Activation::Relu => UnaryOp::Relu,
            Activation::Clamp { min, max } => UnaryOp::Clamp { min, max },
            Activation::LeakyRelu { alpha } => UnaryOp::LeakyRelu { alpha },
            Activation::Sigmoid => UnaryOp::Sigmoid,
            Activation::HardSigmoid { alpha, beta } => UnaryOp::HardSigmoid { alpha, beta },
            Activation::HardSwish => UnaryOp::HardSwish,
            Activation::Silu => UnaryOp::Silu,
        })
    }

    /// Short lower-case name for op descriptions (`relu`, `clip(0,6)`, ...).
    pub fn label(self) -> String {
        match self {
            Activation::None => "none".into(),
            Activation::Relu => "relu".into(),
            Activation::Clamp { min, max } if min == 0.0 && max == 6.0 => "relu6".into(),
            Activation::Clamp { min, max } => format!("clip({min},{max})"),
            Activation::LeakyRelu { alpha } => format!("leaky_relu({alpha})"),
            Activation::Sigmoid => "sigmoid".into(),
            Activation::HardSigmoid { alpha, beta } => format!("hard_sigmoid({alpha},{beta})"),
            Activation::HardSwish => "hard_swish".into(),
            Activation::Silu => "silu".into(),
        }
    }
}

/// Elementwise ops with two inputs and ONNX (numpy) broadcasting.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    /// `Mod` with `fmod = 0` (integer, sign of divisor) or `fmod = 1` (C fmod, sign of dividend).
    Mod {
        fmod: bool,
    },
    /// `x >= 0 ? x : slope * x`
    PRelu,
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
    BitShiftLeft,
    BitShiftRight,
}

impl BinaryOp {
    /// Comparison and logic ops produce `bool`.
    pub fn returns_bool(self) -> bool {
        use BinaryOp::*;
        matches!(
            self,
            Equal | Less | LessOrEqual | Greater | GreaterOrEqual | And | Or | Xor
        )
    }
}

/// `auto_pad` of Conv / pooling ops.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AutoPad {
    /// Explicit `pads`.
    NotSet,
    /// Output = ceil(input / stride); extra padding at the end.
    SameUpper,
    /// Output = ceil(input / stride); extra padding at the beginning.
    SameLower,
    /// No padding.
    Valid,
}

/// Geometry shared by Conv, ConvTranspose and the pooling ops. All vectors have one
/// entry per spatial axis (`pads` has two: all begins, then all ends), filled with
/// ONNX defaults at import, except where `kernel_shape` must come from the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Empty for Conv when the model omits it: inferred from the weight shape.
    pub kernel_shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// `[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`
    pub pads: Vec<usize>,
    pub auto_pad: AutoPad,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub window: Window,
    pub group: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConvTranspose {
    pub window: Window,
    pub group: usize,
    pub output_padding: Vec<usize>,
    /// Explicit output spatial shape; when set, pads are derived from it.
    pub output_shape: Vec<usize>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg {
        count_include_pad: bool,
    },
    /// `LpPool` with exponent `p`.
    Lp {
        p: u32,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub kind: PoolKind,
    pub window: Window,
    pub ceil_mode: bool,
    /// MaxPool's optional second output: the flat indices of the maxima.
    /// `storage_order = 1` means column-major indices.
    pub column_major_indices: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub kind: ReduceKind,
    pub keepdims: bool,
    /// With no axes given: reduce nothing (true) or everything (false, the default).
    pub noop_with_empty_axes: bool,
}

#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CoordTransform {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coord: CoordTransform,
    pub nearest: NearestMode,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    /// Axes the `scales`/`sizes` input refers to (opset 18); empty = all.
    pub axes: Vec<i64>,
    pub keep_aspect_ratio: KeepAspect,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KeepAspect {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// `Conv` with its epilogue: `act(conv(x, w) + b + residual)`, from the optimizer's
/// BatchNorm folding and conv + activation + residual fusion.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedConv {
    pub conv: Conv,
    pub activation: Activation,
    /// Whether input 3 (same shape as the output) is added before the activation.
    pub residual: bool,
}

impl FusedConv {
    /// The input that holds the residual, when `residual` is set.
    pub const RESIDUAL_INPUT: usize = 3;

    /// A convolution with nothing fused into it.
    pub fn plain(conv: Conv) -> FusedConv {
        FusedConv {
            conv,
            activation: Activation::None,
            residual: false,
        }
    }
}

/// One step of a [`Op::FusedElementwise`] chain, applied to the running value `v`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum ChainStep {
    /// `v = op(v)`
    Unary(UnaryOp),
    /// `v = op(v, inputs[operand])`, or `op(inputs[operand], v)` when `swapped`.
    Binary {
        op: BinaryOp,
        operand: usize,
        swapped: bool,
    },
}

impl ChainStep {
    /// Unary ops a chain can run: the float ones (the chain is f32 only).
    pub fn allows_unary(op: UnaryOp) -> bool {
        op != UnaryOp::Not
    }

    /// Binary ops a chain can run: arithmetic that maps f32 pairs to f32.
    pub fn allows_binary(op: BinaryOp) -> bool {
        use BinaryOp::*;
        matches!(op, Add | Sub | Mul | Div | Max | Min | PRelu)
    }
}

/// One IR operation. Inputs are documented as `[name, ...]`; `?` marks optional ones.
/// Inputs that must be known when a plan is built (shapes, axes, pads) are read from
/// constants at plan time; the op only says where they are.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `[x]`
    Unary(UnaryOp),
    /// `[a, b]`
    Binary(BinaryOp),
    /// `[x, min?, max?]`
    Clip,
    /// `[cond, x, y]`
    Where,
    /// `[x]`
    Cast { to: DType },
    /// `[x, w, b?]`
    Conv(Conv),
    /// `[x, w, b?]`
    ConvTranspose(ConvTranspose),
    /// `[x, scale, bias, mean, var]` (inference mode only)
    BatchNorm { epsilon: f32 },
    /// `[x, scale, bias]`
    InstanceNorm { epsilon: f32 },
    /// `[x, scale, bias?]` -> `[y, mean?, inv_std_dev?]`
    LayerNorm { axis: i64, epsilon: f32 },
    /// `[x]` -> `[y, indices?]`
    Pool(Pool),
    /// `[x]`: mean or max over all spatial axes, keeping them as size 1.
    GlobalPool(PoolKind),
    /// `[x, axes?]`
    Reduce(Reduce),
    /// `[x]` -> index of max/min along `axis` (int64).
    ArgExtreme {
        max: bool,
        axis: i64,
        keepdims: bool,
        select_last_index: bool,
    },
    /// `[a, b, c?]`
    Gemm(Gemm),
    /// `[a, b]`
    MatMul,
    /// `[x]`. `legacy` = opset < 13 semantics: the input is coerced to 2-D at `axis`.
    Softmax { axis: i64, legacy: bool, log: bool },
    /// `[x]`
    Flatten { axis: i64 },
    /// `[x, shape]`
    Reshape { allowzero: bool },
    /// `[x]`; `None` reverses the axes.
    Transpose { perm: Option<Vec<usize>> },
    /// `[x0, x1, ...]`
    Concat { axis: i64 },
    /// `[x, split?]` -> `n` outputs (equal parts when `split` is absent).
    Split { axis: i64 },
    /// `[x, starts, ends, axes?, steps?]`
    Slice,
    /// `[x, indices]`
    Gather { axis: i64 },
    /// `[x, indices]`
    GatherElements { axis: i64 },
    /// `[x]` -> int64 1-D
    Shape { start: i64, end: Option<i64> },
    /// `[x]` -> int64 scalar
    Size,
    /// `[x, axes]`
    Unsqueeze,
    /// `[x, axes?]`
    Squeeze,
    /// `[x]`; also Dropout in inference mode (its mask output, if used, is [`Op::ConstantOfShape`]-like).
    Identity,
    /// `[x]` -> `[y, mask?]`: inference-mode dropout.
    Dropout,
    /// `[x, pads, constant_value?, axes?]`
    Pad { mode: PadMode },
    /// `[x, shape]`
    Expand,
    /// `[x, repeats]`
    Tile,
    /// `[shape]`
    ConstantOfShape { value: Tensor },
    /// `[start, limit, delta]`
    Range,
    /// `[x, roi?, scales?, sizes?]`
    Resize(Resize),
    /// `[x]`
    DepthToSpace { blocksize: usize, crd: bool },
    /// `[x]`
    SpaceToDepth { blocksize: usize },
    /// `[x, k]` -> `[values, indices]`
    TopK { axis: i64, largest: bool, sorted: bool },
    /// `[x, axis?]`
    CumSum { exclusive: bool, reverse: bool },
    /// `[input, ...]`: the variadic `Sum` / `Mean` / `Max` / `Min`, kept as one op so
    /// a single pass over memory serves any number of inputs.
    Variadic { op: BinaryOp, mean: bool },

    // Ops below are produced by the optimizer (`passes`), never by the importer.
    /// `[x, w, b?, residual?]`
    FusedConv(FusedConv),
    /// `[x, scale, shift]`: `act(x * scale[c] + shift[c])` over channel axis 1; a
    /// BatchNormalization that has no conv to fold into.
    ChannelAffine { activation: Activation },
    /// `[x, w1, b1?, w2, b2?]`: squeeze-excitation,
    /// `x * gate(W2 · hidden(W1 · mean_hw(x) + b1) + b2)` per image and channel, with
    /// `W1: [Cr, C, 1, 1]`, `W2: [C, Cr, 1, 1]` (the 1x1 convs of the pattern).
    SqueezeExcite { hidden: Activation, gate: Activation },
    /// `[x, operands...]`: f32 elementwise steps applied to `x` in one pass over memory.
    /// Every operand has `x`'s shape or a single element; the output has `x`'s shape.
    FusedElementwise { steps: Vec<ChainStep> },
}

impl Op {
    /// The name shown by `kiln inspect`: ONNX's name for ops kiln keeps as ONNX has them.
    pub fn name(&self) -> &'static str {
        use BinaryOp as B;
        use UnaryOp as U;
        match self {
            Op::Unary(u) => match u {
                U::Relu => "Relu",
                U::Sigmoid => "Sigmoid",
                U::Tanh => "Tanh",
                U::Exp => "Exp",
                U::Log => "Log",
                U::Sqrt => "Sqrt",
                U::Abs => "Abs",
                U::Neg => "Neg",
                U::Erf => "Erf",
                U::Reciprocal => "Reciprocal",
                U::Floor => "Floor",
                U::Ceil => "Ceil",
                U::Round => "Round",
                U::Sign => "Sign",
                U::Sin => "Sin",
                U::Cos => "Cos",
                U::Not => "Not",
                U::Softplus => "Softplus",
                U::Softsign => "Softsign",
                U::HardSwish => "HardSwish",
                U::HardSigmoid { .. } => "HardSigmoid",
                U::LeakyRelu { .. } => "LeakyRelu",
                U::Elu { .. } => "Elu",
                U::Selu { .. } => "Selu",
                U::Celu { .. } => "Celu",
                U::Silu => "Silu",
                U::Gelu { .. } => "Gelu",
                U::Clamp { .. } => "Clip",
            },
            Op::Binary(b) => match b {
                B::Add => "Add",
                B::Sub => "Sub",
                B::Mul => "Mul",
                B::Div => "Div",
                B::Pow => "Pow",
                B::Max => "Max",
                B::Min => "Min",
                B::Mod { .. } => "Mod",
                B::PRelu => "PRelu",
                B::Equal => "Equal",
                B::Less => "Less",
                B::LessOrEqual => "LessOrEqual",
                B::Greater => "Greater",
                B::GreaterOrEqual => "GreaterOrEqual",
                B::And => "And",
                B::Or => "Or",
                B::Xor => "Xor",
                B::BitShiftLeft | B::BitShiftRight => "BitShift",
            },
            Op::Clip => "Clip",
            Op::Where => "Where",
            Op::Cast { .. } => "Cast",
            Op::Conv(_) => "Conv",
            Op::ConvTranspose(_) => "ConvTranspose",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::InstanceNorm { .. } => "InstanceNormalization",
            Op::LayerNorm { .. } => "LayerNormalization",
            Op::Pool(p) => match p.kind {
                PoolKind::Max => "MaxPool",
                PoolKind::Avg { .. } => "AveragePool",
                PoolKind::Lp { .. } => "LpPool",
            },
            Op::GlobalPool(k) => match k {
                PoolKind::Max => "GlobalMaxPool",
                PoolKind::Avg { .. } => "GlobalAveragePool",
                PoolKind::Lp { .. } => "GlobalLpPool",
            },
            Op::Reduce(r) => match r.kind {
                ReduceKind::Sum => "ReduceSum",
                ReduceKind::Mean => "ReduceMean",
                ReduceKind::Max => "ReduceMax",
                ReduceKind::Min => "ReduceMin",
                ReduceKind::Prod => "ReduceProd",
                ReduceKind::L1 => "ReduceL1",
                ReduceKind::L2 => "ReduceL2",
                ReduceKind::LogSum => "ReduceLogSum",
                ReduceKind::LogSumExp => "ReduceLogSumExp",
                ReduceKind::SumSquare => "ReduceSumSquare",
            },
            Op::ArgExtreme { max: true, .. } => "ArgMax",
            Op::ArgExtreme { max: false, .. } => "ArgMin",
            Op::Gemm(_) => "Gemm",
            Op::MatMul => "MatMul",
            Op::Softmax { log: false, .. } => "Softmax",
            Op::Softmax { log: true, .. } => "LogSoftmax",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Slice => "Slice",
            Op::Gather { .. } => "Gather",
            Op::GatherElements { .. } => "GatherElements",
            Op::Shape { .. } => "Shape",
            Op::Size => "Size",
            Op::Unsqueeze => "Unsqueeze",
            Op::Squeeze => "Squeeze",
            Op::Identity => "Identity",
            Op::Dropout => "Dropout",
            Op::Pad { .. } => "Pad",
            Op::Expand => "Expand",
            Op::Tile => "Tile",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Range => "Range",
            Op::Resize(_) => "Resize",
            Op::DepthToSpace { .. } => "DepthToSpace",
            Op::SpaceToDepth { .. } => "SpaceToDepth",
            Op::TopK { .. } => "TopK",
            Op::CumSum { .. } => "CumSum",
            Op::Variadic { mean: true, .. } => "Mean",
            Op::Variadic {
                op: BinaryOp::Add, ..
            } => "Sum",
            Op::Variadic {
                op: BinaryOp::Max, ..
            } => "Max",
            Op::Variadic {
                op: BinaryOp::Min, ..
            } => "Min",
            Op::Variadic { .. } => "Variadic",
            Op::FusedConv(_) => "FusedConv",
            Op::ChannelAffine { .. } => "ChannelAffine",
            Op::SqueezeExcite { .. } => "SqueezeExcite",
            Op::FusedElementwise { .. } => "FusedElementwise",
        }
    }

    /// The name plus what a fused op absorbed, e.g. `FusedConv[bias+residual+relu]`:
    /// the line `kiln inspect --optimized` lists fused ops by.
    pub fn describe(&self) -> String {
        match self {
            Op::FusedConv(f) => {
                let mut parts = Vec::new();
                if f.conv.group > 1 {
                    parts.push("grouped".to_string());
                }
                if f.residual {
                    parts.push("residual".into());
                }
                if f.activation != Activation::None {
                    parts.push(f.activation.label());
                }
                format!("FusedConv[{}]", parts.join("+"))
            }
            Op::ChannelAffine { activation } => format!("ChannelAffine[{}]", activation.label()),
            Op::SqueezeExcite { hidden, gate } => {
                format!("SqueezeExcite[{},{}]", hidden.label(), gate.label())
            }
            Op::FusedElementwise { steps } => {
                let names: Vec<String> = steps
                    .iter()
                    .map(|s| match s {
                        ChainStep::Unary(u) => Op::Unary(*u).name().to_string(),
                        ChainStep::Binary { op, .. } => Op::Binary(*op).name().to_string(),
                    })
                    .collect();
                format!("FusedElementwise[{}]", names.join(","))
            }
            other => other.name().to_string(),
        }
    }

    /// True for the ops only the optimizer creates.
    pub fn is_fused(&self) -> bool {
        matches!(
            self,
            Op::FusedConv(_)
                | Op::ChannelAffine { .. }
                | Op::SqueezeExcite { .. }
                | Op::FusedElementwise { .. }
        )
    }

    /// Ops whose output is a relabelling of input 0's memory (same elements, same
    /// order): the planner gives them no buffer of their own.
    pub fn is_reshape_like(&self) -> bool {
        matches!(
            self,
            Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze | Op::Identity
        )
    }
}
