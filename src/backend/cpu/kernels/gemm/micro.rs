//! The register tile and the portable micro-kernel.
//!
//! A micro-kernel computes one `MR x NR` tile of `A_panel * B_panel` over `k` steps
//! from packed panels (A: `MR` values per step, B: `NR` values per step). The tile
//! size is the AVX2 one: 6 rows x 2 vectors of 8 = 12 accumulators, plus 2 B
//! vectors and 1 broadcast A value, fits the 16 ymm registers.

/// Rows of the register tile.
pub const MR: usize = 6;
/// Columns of the register tile.
pub const NR: usize = 16;

/// One finished tile, row-major, `NR` floats per row.
pub type Tile = [f32; MR * NR];

/// Which micro-kernel to use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust (auto-vectorised for the build's baseline target).
    Generic,
    /// Hand-written AVX2 + FMA.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// The best micro-kernel this CPU supports (detection is cached by std).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Isa::Avx2Fma;
        }
        Isa::Generic
    }
}

/// Portable micro-kernel; also the oracle the SIMD kernel is tested against.
/// Written as fixed-size array loops so LLVM keeps the tile in vector registers.
#[inline(always)]
pub(crate) fn micro_generic(k: usize, a: &[f32], b: &[f32], out: &mut Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(k) {
        for (row, &av) in acc.iter_mut().zip(ap) {
            for (c, &bv) in row.iter_mut().zip(bp) {
                *c += av * bv;
            }
        }
    }
    for (dst, row) in out.chunks_exact_mut(NR).zip(&acc) {
        dst.copy_from_slice(row);
    }
}
