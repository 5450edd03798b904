//! The register tile and the portable micro-kernel.
//!
//! A micro-kernel computes one `MR x NR` tile of `A_panel * B_panel` over `k` steps
//! from packed panels (A: `MR` values per step, B: `NR` values per step). The tile
//! size is the AVX2 one: 6 rows x 2 vectors of 8 = 12 accumulators, plus 2 B
//! vectors and 1 broadcast A value, fits the 16 ymm registers. AVX-512 keeps the
//! packing, so one packing serves every kernel, and computes 6x32 tiles from two
//! adjacent B panels where it can (`avx512`): on CPUs with two 512-bit FMA units
//! (Zen 5) six zmm accumulators kept them only three quarters busy at best.

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
    /// AVX-512F products (one 16-float zmm register per tile row and B panel, 6x32
    /// tiles where two B panels are full), stored from zmm registers. Zen 4 runs a
    /// zmm FMA as two halves, so its peak is the AVX2 one, but each step issues half
    /// the instructions (L1-resident tile, 1 thread: 96 -> 114 GFLOP/s); Zen 5 has
    /// two 512-bit FMA units and twice the AVX2 peak (245 against 122 GFLOP/s).
    #[cfg(target_arch = "x86_64")]
    Avx512F,
}

impl Isa {
    /// The best micro-kernel this CPU supports (detection is cached by std).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        for isa in [Isa::Avx512F, Isa::Avx2Fma] {
            if isa.is_supported() {
                return isa;
            }
        }
        Isa::Generic
    }

    /// Every micro-kernel this CPU can run, best last (tests compare each with
    /// `Generic`).
    pub fn supported() -> Vec<Isa> {
        let all = [
            Isa::Generic,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512F,
        ];
        all.into_iter().filter(|isa| isa.is_supported()).collect()
    }

    /// Whether this CPU can run `self` (checked again where a kernel is entered, so
    /// an `Isa` from anywhere is sound to use).
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512F => Isa::Avx2Fma.is_supported() && is_x86_feature_detected!("avx512f"),
        }
    }
}

/// Portable micro-kernel; also the oracle the SIMD kernels are tested against.
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
