//! The WGSL kernels: which files hold each entry point, and the source text
//! compiled for a precision.

use super::Precision;
use crate::backend::gpu::Entry;

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const TILE: &str = include_str!("../../../shaders/tile.wgsl");

/// The shader files of `entry`, in order (after the precision header and
/// common.wgsl).
fn files(entry: Entry) -> &'static [&'static str] {
    use Entry::*;
    match entry {
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

/// The module source of `entry` for `precision`: a header defining the storage
/// type `T`, the shared helpers, then the entry point's files.
pub fn source(entry: Entry, precision: Precision) -> String {
    let header = if precision.stores_f16() {
        "enable f16;\nalias T = f16;\n"
    } else {
        "alias T = f32;\n"
    };
    let mut s = String::from(header);
    s.push_str(COMMON);
    for f in files(entry) {
        s.push_str(f);
    }
    s
}
