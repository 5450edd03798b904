//! The GPU kernel library's entry points: what each binds and how its threads are
//! grouped. Both GPU backends implement every entry with the same parameter block
//! (a `#[repr(C)]` struct in `prepare/`), the WGSL version in `shaders/`, the CUDA C
//! version in `kernels/`.

/// One kernel entry point. Every entry takes its parameter block first, then
/// `bindings().0` read-only buffers, then `bindings().1` written ones.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
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

impl Entry {
    /// The function's name in both kernel languages.
    pub fn name(self) -> &'static str {
        use Entry::*;
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

    /// (read-only, written) buffers.
    pub fn bindings(self) -> (usize, usize) {
        use Entry::*;
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

    /// Threads per workgroup (CUDA block), x by y. The grids `prepare/` computes
    /// assume these; the WGSL `@workgroup_size` and the CUDA launch both use them.
    pub fn group_size(self) -> (u32, u32) {
        use Entry::*;
        match self {
            Gemm | Conv => (16, 16),
            GlobalPool | Softmax | LayerNorm | Dense => (64, 1),
            Depthwise | Pool | Unary | Binary | Chain | ChannelAffine | ScalePlanes | Copy | Fill => (256, 1),
        }
    }

    /// Every entry point, for tests that compile them all.
    pub const ALL: [Entry; 15] = [
        Entry::Gemm,
        Entry::Conv,
        Entry::Depthwise,
        Entry::Pool,
        Entry::GlobalPool,
        Entry::Softmax,
        Entry::LayerNorm,
        Entry::Unary,
        Entry::Binary,
        Entry::Chain,
        Entry::ChannelAffine,
        Entry::ScalePlanes,
        Entry::Dense,
        Entry::Copy,
        Entry::Fill,
    ];
}
