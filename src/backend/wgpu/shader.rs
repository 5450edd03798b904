//! The WGSL kernels: which file holds each entry point, what it binds, and the
//! source text compiled for a precision.

use super::Precision;

/// One compute entry point. Every entry binds its uniform parameters at binding 0,
/// then `reads()` read-only storage buffers, then `writes()` read-write ones.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Gemm,
    Conv,
    Depthwise,
    Pool,
    GlobalPool,
    Softmax,
    LayerNorm,
    Unary,
    Binary,
    Chain,
    ChannelAffine,
    ScalePlanes,
    Dense,
    Copy,
    Fill,
}

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const TILE: &str = include_str!("../../../shaders/tile.wgsl");

impl Shader {
    /// The shader files, in order (after the precision header and common.wgsl).
    fn files(self) -> &'static [&'static str] {
        use Shader::*;
        match self {
            Gemm => &[TILE, include_str!("../../../shaders/gemm.wgsl")],
            Conv => &[TILE, include_str!("../../../shaders/conv.wgsl")],
            Depthwise | Pool => &[include_str!("../../../shaders/window.wgsl")],
            GlobalPool | Softmax | LayerNorm => &[include_str!("../../../shaders/rows.wgsl")],
            Unary | Binary | Chain | ChannelAffine | ScalePlanes => {
                &[include_str!("../../../shaders/elementwise.wgsl")]
            }
            Dense => &[include_str!("../../../shaders/squeeze_excite.wgsl")],
            Copy | Fill => &[include_str!("../../../shaders/copy.wgsl")],
        }
    }

    pub fn entry_point(self) -> &'static str {
        use Shader::*;
        match self {
            Gemm => "gemm",
            Conv => "conv",
            Depthwise => "depthwise",
            Pool => "pool",
            GlobalPool => "global_pool",
            Softmax => "softmax",
            LayerNorm => "layer_norm",
            Unary => "unary_op",
            Binary => "binary_op",
            Chain => "chain",
            ChannelAffine => "channel_affine",
            ScalePlanes => "scale_planes",
            Dense => "dense",
            Copy => "strided_copy",
            Fill => "fill",
        }
    }

    /// (read-only, read-write) storage bindings.
    pub fn bindings(self) -> (usize, usize) {
        use Shader::*;
        match self {
            Gemm => (3, 1),
            Conv | Depthwise => (4, 1),
            Pool | GlobalPool | Softmax | Unary | Copy => (1, 1),
            LayerNorm => (3, 3),
            Binary | ScalePlanes => (2, 1),
            Chain => (7, 1),
            ChannelAffine | Dense => (3, 1),
            Fill => (0, 1),
        }
    }

    /// The module source for `precision`: a header defining the storage type `T`,
    /// the shared helpers, then the entry point's files.
    pub fn source(self, precision: Precision) -> String {
        let header = match precision {
            Precision::F32 => "alias T = f32;\n",
            Precision::F16 => "enable f16;\nalias T = f16;\n",
        };
        let mut s = String::from(header);
        s.push_str(COMMON);
        for f in self.files() {
            s.push_str(f);
        }
        s
    }

    /// Every entry point, for tests that compile them all.
    pub const ALL: [Shader; 15] = [
        Shader::Gemm,
        Shader::Conv,
        Shader::Depthwise,
        Shader::Pool,
        Shader::GlobalPool,
        Shader::Softmax,
        Shader::LayerNorm,
        Shader::Unary,
        Shader::Binary,
        Shader::Chain,
        Shader::ChannelAffine,
        Shader::ScalePlanes,
        Shader::Dense,
        Shader::Copy,
        Shader::Fill,
    ];
}
