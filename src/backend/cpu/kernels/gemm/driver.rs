//! The blocked GEMM loops (Goto / BLIS order) and their parallel split.
//!
//! ```text
//! for jc in N by NC:            B block (KC x NC) lives in L2
//!   for pc in K by KC:          pack B block
//!     for ic in M by MC:        pack A block (MC x KC), lives in L2
//!       for jr in NC by NR:     B micro-panel (KC x NR) lives in L1
//!         for ir in MC by MR:   micro-kernel -> MR x NR tile -> store (+ epilogue)
//! ```
//!
//! Products at most `SHALLOW_KC` deep swap the two innermost loops (see
//! [`macro_loop`]); with AVX-512 each row panel's full 6x32 tiles then go in one
//! call, a sweep.

use rayon::prelude::*;

use super::buffers::{with_scratch, Slot};
use super::epilogue::{finish_block, store_tile, Epilogue, Store};
use super::mat::{Dense, MatRef, OutRows};
use super::micro::{micro_generic, Isa, Tile, MR, NR};
use super::pack::{
    pack_a, pack_b, pack_b_rows, packed_a_len, packed_b_len, row_scratch_len, PackedA, PackedB, RowSource,
};
use super::{KC, MC, NC, PARALLEL_MIN_MACS, SHALLOW_KC};
use crate::error::{Error, Result};

/// The left operand: a strided view packed on the fly, or packed ahead of time.
#[derive(Copy, Clone, Debug)]
pub enum LhsSource<'a> {
    Mat(MatRef<'a>),
    Packed(&'a PackedA),
}

/// The right operand: a strided view packed on the fly, packed ahead of time, or
/// generated row by row while packing (im2col).
#[derive(Copy, Clone)]
pub enum RhsSource<'a> {
    Mat(MatRef<'a>),
    Packed(&'a PackedB),
    Rows(&'a dyn RowSource),
}

impl LhsSource<'_> {
    fn dims(&self) -> (usize, usize) {
        match self {
            LhsSource::Mat(m) => (m.rows(), m.cols()),
            LhsSource::Packed(p) => (p.rows(), p.cols()),
        }
    }
}

impl RhsSource<'_> {
    fn dims(&self) -> (usize, usize) {
        match self {
            RhsSource::Mat(m) => (m.rows(), m.cols()),
            RhsSource::Packed(p) => (p.rows(), p.cols()),
            RhsSource::Rows(r) => r.dims(),
        }
    }
}

/// A row range of the left operand (`row0` is MR-aligned for packed sources).
#[derive(Copy, Clone)]
struct Lhs<'a> {
    src: LhsSource<'a>,
    row0: usize,
}

/// A column range of the right operand (`col0` is NR-aligned for packed sources).
#[derive(Copy, Clone)]
struct Rhs<'a> {
    src: RhsSource<'a>,
    col0: usize,
}

/// Scalars and epilogue of one GEMM call.
#[derive(Copy, Clone)]
pub(crate) struct Scale<'e, 'a> {
    pub alpha: f32,
    pub beta: f32,
    pub epilogue: &'e Epilogue<'a>,
}

/// `C = act(alpha * A * B + beta * C + epilogue terms)` with `C` a dense row-major
/// `m x n` block with leading dimension `ldc`. Uses rayon when `parallel` is set
/// and the problem is large enough.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    a: LhsSource<'_>,
    b: RhsSource<'_>,
    c: &mut [f32],
    ldc: usize,
    alpha: f32,
    beta: f32,
    epilogue: &Epilogue<'_>,
    parallel: bool,
) -> Result<()> {
    gemm_with(Isa::detect(), a, b, c, ldc, alpha, beta, epilogue, parallel)
}

/// [`gemm`] with an explicit micro-kernel choice (tests compare them).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_with(
    isa: Isa,
    a: LhsSource<'_>,
    b: RhsSource<'_>,
    c: &mut [f32],
    ldc: usize,
    alpha: f32,
    beta: f32,
    epilogue: &Epilogue<'_>,
    parallel: bool,
) -> Result<()> {
    let (m, n, k) = check_dims(a, b, epilogue)?;
    let mut dense = Dense::new(c, m, n, ldc)?;
    let scale = Scale {
        alpha,
        beta,
        epilogue,
    };
    match parallel
        .then(|| split_plan(isa, m, n, k, &a, &b, &scale))
        .flatten()
    {
        Some((row_cuts, col_cuts)) => {
            let tasks = split_rows(dense.rows_mut(), &row_cuts, &col_cuts);
            run_tasks(isa, a, b, tasks, &row_cuts, &col_cuts, scale);
        }
        None => sequential(
            isa,
            Lhs { src: a, row0: 0 },
            Rhs { src: b, col0: 0 },
            &mut dense,
            m,
            n,
            k,
            scale,
        ),
    }
    Ok(())
}

fn check_dims(a: LhsSource<'_>, b: RhsSource<'_>, epilogue: &Epilogue<'_>) -> Result<(usize, usize, usize)> {
    let ((m, k), (kb, n)) = (a.dims(), b.dims());
    if k != kb {
        return Err(Error::shape(
            "gemm",
            format!("inner dimensions differ: {m}x{k} times {kb}x{n}"),
        ));
    }
    epilogue.validate(m, n)?;
    Ok((m, n, k))
}

/// Cuts rows into `row_cuts` blocks and columns into `col_cuts` blocks; task
/// `rb * n_col_blocks + cb` gets the row segments of block `(rb, cb)`.
fn split_rows<'s>(
    rows: impl Iterator<Item = &'s mut [f32]>,
    row_cuts: &[usize],
    col_cuts: &[usize],
) -> Vec<Vec<&'s mut [f32]>> {
    let n_col_blocks = col_cuts.len() - 1;
    let m = row_cuts[row_cuts.len() - 1];
    let n = col_cuts[n_col_blocks];
    let mut tasks: Vec<Vec<&mut [f32]>> = (0..(row_cuts.len() - 1) * n_col_blocks)
        .map(|_| Vec::new())
        .collect();
    let mut rb = 0;
    for (i, row) in rows.take(m).enumerate() {
        while i >= row_cuts[rb + 1] {
            rb += 1;
        }
        let mut rest = &mut row[..n];
        for cb in 0..n_col_blocks {
            let (head, tail) = rest.split_at_mut(col_cuts[cb + 1] - col_cuts[cb]);
            tasks[rb * n_col_blocks + cb].push(head);
            rest = tail;
        }
    }
    tasks
}

/// Runs each output block as an independent sequential GEMM on the rayon pool.
fn run_tasks(
    isa: Isa,
    a: LhsSource<'_>,
    b: RhsSource<'_>,
    tasks: Vec<Vec<&mut [f32]>>,
    row_cuts: &[usize],
    col_cuts: &[usize],
    scale: Scale<'_, '_>,
) {
    let k = a.dims().1;
    let n_col_blocks = col_cuts.len() - 1;
    tasks.into_par_iter().enumerate().for_each(|(t, mut rows)| {
        let (rb, cb) = (t / n_col_blocks, t % n_col_blocks);
        let (r0, c0) = (row_cuts[rb], col_cuts[cb]);
        let (m, n) = (row_cuts[rb + 1] - r0, col_cuts[cb + 1] - c0);
        let lhs = match a {
            LhsSource::Mat(mat) => Lhs {
                src: LhsSource::Mat(mat.sub(r0, 0, m, k)),
                row0: 0,
            },
            LhsSource::Packed(_) => Lhs { src: a, row0: r0 },
        };
        let rhs = match b {
            RhsSource::Mat(mat) => Rhs {
                src: RhsSource::Mat(mat.sub(0, c0, k, n)),
                col0: 0,
            },
            RhsSource::Packed(_) | RhsSource::Rows(_) => Rhs { src: b, col0: c0 },
        };
        let epilogue = scale.epilogue.shifted(r0, c0, m, n);
        let scale = Scale {
            epilogue: &epilogue,
            ..scale
        };
        sequential(isa, lhs, rhs, &mut rows, m, n, k, scale);
    });
}

/// How to cut an `m x n` output into blocks for parallel work, or `None` when the
/// problem is too small to be worth it. Chooses the grid minimising the slowest
/// thread's time: its tile-rounded multiply-adds plus the packing it repeats (a
/// row-major A read in place costs none: see [`reads_a_in_place`]).
fn split_plan(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    a: &LhsSource<'_>,
    b: &RhsSource<'_>,
    scale: &Scale<'_, '_>,
) -> Option<(Vec<usize>, Vec<usize>)> {
    let threads = rayon::current_num_threads();
    if threads < 2 || m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_MACS {
        return None;
    }
    // Copying one element while packing costs about as much as this many multiply-adds.
    const PACK_COST: usize = 8;
    // A is packed per call but where a row-major A is read in place; then column
    // blocks are whole 32-column pairs, so every block keeps reading it so.
    let a_in_place = match a {
        LhsSource::Mat(mat) => mat.contiguous_rows().is_some() && reads_a_in_place(isa, n, scale),
        LhsSource::Packed(_) => false,
    };
    let pack_a = matches!(a, LhsSource::Mat(_)) && !a_in_place;
    let col_step = if a_in_place { A_IN_PLACE_COLUMNS } else { NR };
    let pack_b = !matches!(b, RhsSource::Packed(_));
    let (max_mt, max_nt) = (m.div_ceil(MR).min(threads), n.div_ceil(col_step).min(threads));
    let mut best: Option<(usize, usize, usize)> = None;
    for mt in 1..=max_mt {
        for nt in 1..=max_nt {
            let rows = m.div_ceil(mt).div_ceil(MR) * MR;
            let cols = n.div_ceil(nt).div_ceil(col_step) * col_step;
            let (tasks, rounds) = (mt * nt, (mt * nt).div_ceil(threads));
            let packing = (if pack_a { rows } else { 0 } + if pack_b { cols } else { 0 }) * k * PACK_COST;
            let cost = rounds * (rows * cols * k + packing);
            let better = match best {
                Some((c, _, _)) => cost < c,
                None => true,
            };
            if tasks >= 2 && better {
                best = Some((cost, rows, cols));
            }
        }
    }
    let (_, rows, cols) = best?;
    let cuts = |len: usize, step: usize| {
        let mut v: Vec<usize> = (0..len).step_by(step).collect();
        v.push(len);
        v
    };
    Some((cuts(m, rows), cuts(n, cols)))
}

/// One thread's blocked GEMM over an `m x n` output.
#[allow(clippy::too_many_arguments)]
fn sequential<C: OutRows + ?Sized>(
    isa: Isa,
    a: Lhs<'_>,
    b: Rhs<'_>,
    c: &mut C,
    m: usize,
    n: usize,
    k: usize,
    scale: Scale<'_, '_>,
) {
    if m == 0 || n == 0 {
        return;
    }
    let epilogue = (!scale.epilogue.is_identity()).then_some(scale.epilogue);
    if k == 0 {
        // No product: C = beta * C, then the epilogue.
        let how = Store {
            alpha: scale.alpha,
            beta: scale.beta,
            epilogue,
        };
        let zero: Tile = [0.0; MR * NR];
        for i in (0..m).step_by(MR) {
            for j in (0..n).step_by(NR) {
                store_tile(&zero, c, i, j, MR.min(m - i), NR.min(n - j), &how);
            }
        }
        if let Some(e) = epilogue {
            finish_block(c, 0, m, 0, n, e);
        }
        return;
    }
    let in_place = match b.src {
        RhsSource::Mat(mat) if reads_b_in_place(isa, m, &scale) => mat.contiguous_rows(),
        _ => None,
    };
    let a_in_place = match a.src {
        LhsSource::Mat(mat) if reads_a_in_place(isa, n, &scale) => mat.contiguous_rows(),
        _ => None,
    };
    let b_scratch = packed_b_len(KC.min(k), NC.min(n));
    let a_scratch = if a_in_place.is_some() {
        0
    } else {
        packed_a_len(MC.min(m), KC.min(k))
    };
    let row_scratch = if let RhsSource::Rows(_) = b.src {
        row_scratch_len(NC.min(n))
    } else {
        0
    };
    with_scratch(Slot::PackB, b_scratch, |b_buf| {
        with_scratch(Slot::PackA, a_scratch, |a_buf| {
            with_scratch(Slot::Row, row_scratch, |row_buf| {
                for jc in (0..n).step_by(NC) {
                    let nc = NC.min(n - jc);
                    // Read in place: the block's whole pairs of panels (6x32 tiles);
                    // the rest of its columns are packed.
                    let nc_in_place = match in_place {
                        Some(_) => nc / (2 * NR) * (2 * NR),
                        None => 0,
                    };
                    let nc_packed = nc - nc_in_place;
                    for pc in (0..k).step_by(KC) {
                        let kc = KC.min(k - pc);
                        let b_block: &[f32] = match b.src {
                            _ if nc_packed == 0 => &[],
                            RhsSource::Mat(mat) => {
                                pack_b(mat.sub(pc, jc + nc_in_place, kc, nc_packed), b_buf);
                                b_buf
                            }
                            RhsSource::Packed(p) => p.block(b.col0 + jc, nc, pc, kc),
                            RhsSource::Rows(src) => {
                                pack_b_rows(src, pc, kc, b.col0 + jc, nc, row_buf, b_buf);
                                b_buf
                            }
                        };
                        let b_rows_in_place = in_place.map(|(data, ld)| (&data[pc * ld + jc..], ld));
                        let b_next = match b.src {
                            RhsSource::Packed(p) => Some(match next_block(pc, k, KC, jc, n, NC) {
                                Some((pc, jc)) => p.block(b.col0 + jc, NC.min(n - jc), pc, KC.min(k - pc)),
                                None => &[],
                            }),
                            _ => None,
                        };
                        let how = Store {
                            alpha: scale.alpha,
                            beta: if pc == 0 { scale.beta } else { 1.0 },
                            epilogue: if pc + kc == k { epilogue } else { None },
                        };
                        for ic in (0..m).step_by(MC) {
                            let mc = MC.min(m - ic);
                            let (a_block, a_rows): (&[f32], _) = match (a.src, a_in_place) {
                                (LhsSource::Mat(_), Some((data, ld))) => {
                                    (&data[ic * ld + pc..], ARows::InPlace { ld })
                                }
                                (LhsSource::Mat(mat), None) => {
                                    pack_a(mat.sub(ic, pc, mc, kc), a_buf);
                                    (a_buf, ARows::Packed)
                                }
                                (LhsSource::Packed(p), _) => {
                                    (p.block(a.row0 + ic, mc, pc, kc), ARows::Packed)
                                }
                            };
                            // A's blocks are read ic within pc within jc.
                            let a_next = match a.src {
                                LhsSource::Packed(p) => match next_block(ic, m, MC, pc, k, KC) {
                                    Some((ic, pc)) => {
                                        p.block(a.row0 + ic, MC.min(m - ic), pc, KC.min(k - pc))
                                    }
                                    None if jc + NC < n => p.block(a.row0, MC.min(m), 0, KC.min(k)),
                                    None => &[],
                                },
                                LhsSource::Mat(_) => &[],
                            };
                            if let Some((data, ld)) = b_rows_in_place.filter(|_| nc_in_place > 0) {
                                let block = Block {
                                    a: a_block,
                                    a_rows,
                                    b: data,
                                    b_rows: BRows::InPlace { ld },
                                    a_next,
                                    b_next: None,
                                    mc,
                                    nc: nc_in_place,
                                    kc,
                                    i0: ic,
                                    j0: jc,
                                };
                                macro_kernel(isa, &block, c, &how);
                            }
                            if nc_packed > 0 {
                                let block = Block {
                                    a: a_block,
                                    a_rows,
                                    b: b_block,
                                    b_rows: BRows::Packed,
                                    a_next,
                                    b_next,
                                    mc,
                                    nc: nc_packed,
                                    kc,
                                    i0: ic,
                                    j0: jc + nc_in_place,
                                };
                                macro_kernel(isa, &block, c, &how);
                            }
                        }
                    }
                }
            })
        })
    });
}

/// The block after `(inner, outer)` in a loop of `inner` (by `inner_step` up to
/// `inner_len`) within `outer` (likewise), or `None` after the last.
fn next_block(
    inner: usize,
    inner_len: usize,
    inner_step: usize,
    outer: usize,
    outer_len: usize,
    outer_step: usize,
) -> Option<(usize, usize)> {
    if inner + inner_step < inner_len {
        Some((inner + inner_step, outer))
    } else if outer + outer_step < outer_len {
        Some((0, outer + outer_step))
    } else {
        None
    }
}

/// Whether [`sequential`] reads B where it lies instead of packing it: with
/// AVX-512 (its 6x32 tiles read a B row's 32 columns as two contiguous zmm loads,
/// so a packed panel is only a copy), when tiles store straight from registers,
/// and for at most [`IN_PLACE_MAX_ROWS`] rows of A.
fn reads_b_in_place(isa: Isa, m: usize, scale: &Scale<'_, '_>) -> bool {
    wide_tiles(isa) && stores_directly(scale) && m <= IN_PLACE_MAX_ROWS
}

/// Whether `isa` computes 6x32 tiles (AVX-512).
fn wide_tiles(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        matches!(isa, Isa::Avx512F) && isa.is_supported()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        false
    }
}

/// Whether full tiles go straight from registers to C (nothing to scale).
fn stores_directly(scale: &Scale<'_, '_>) -> bool {
    scale.alpha == 1.0 && (scale.beta == 0.0 || scale.beta == 1.0)
}

/// Whether [`sequential`] reads a row-major A where it lies instead of packing it:
/// with AVX-512, when tiles store straight from registers, and when every tile is
/// a 6x32 one (`n` a multiple of 32; the narrower tiles take packed A panels).
/// A channels-last image is such an A, the left operand of its pointwise
/// convolutions: packing gathered six of its rows per step, copying the whole
/// image once per call for as few as one or two column pairs of reuse.
fn reads_a_in_place(isa: Isa, n: usize, scale: &Scale<'_, '_>) -> bool {
    const { assert!(NC.is_multiple_of(A_IN_PLACE_COLUMNS)) };
    wide_tiles(isa) && stores_directly(scale) && n.is_multiple_of(A_IN_PLACE_COLUMNS)
}

/// A product whose column count is a multiple of this reads a row-major A in place
/// (with AVX-512; see [`reads_a_in_place`]): the width of a 6x32 tile.
pub const A_IN_PLACE_COLUMNS: usize = 2 * NR;

/// How a block's A is laid out.
#[derive(Copy, Clone, Debug)]
enum ARows {
    /// KC x MR panels, packed one after another.
    Packed,
    /// Read where it lies: rows `ld` floats apart, steps contiguous. Such blocks
    /// are computed in 6x32 tiles only (see [`reads_a_in_place`]).
    InPlace { ld: usize },
}

/// Rows of A up to which B is read in place. Packing copies every B element once
/// per call, and earns it back as B's panels are reread, once per six rows of A,
/// from contiguous memory (a panel read in place is `kc` rows a whole matrix row
/// apart, which L1 keeps less well). Pointwise convs, 1 thread, Zen 5
/// (`conv_throughput`), packed -> in place: into 16, 24 and 32 channels 20-23 %
/// faster at 112x112 and 56x56 (`pack_b` was 27 % of the 32 -> 16 conv's time),
/// into 64 8-10 %; into 96 from 576 5 % faster but from 16 3 % slower, into 128
/// from 512 10 % slower, 144 to 1024 channels within +-3 %.
const IN_PLACE_MAX_ROWS: usize = 64;

/// How a block's B is laid out.
#[derive(Copy, Clone, Debug)]
enum BRows {
    /// KC x NR panels, packed one after another.
    Packed,
    /// Read where it lies: rows `ld` floats apart, columns contiguous. Such blocks
    /// are whole pairs of panels, computed as AVX-512 6x32 tiles and stored
    /// directly (see [`reads_b_in_place`]); [`sequential`] packs the columns left.
    InPlace { ld: usize },
}

/// One packed MC x KC block of A against one KC x NC block of B.
struct Block<'p> {
    a: &'p [f32],
    a_rows: ARows,
    b: &'p [f32],
    b_rows: BRows,
    /// The prepacked A block this thread reads next (empty when A is packed per
    /// call, or this is the last).
    a_next: &'p [f32],
    /// The prepacked B block read next (empty after the last), or `None` when B
    /// is packed per call.
    b_next: Option<&'p [f32]>,
    mc: usize,
    nc: usize,
    kc: usize,
    i0: usize,
    j0: usize,
}

fn macro_kernel<C: OutRows + ?Sized>(isa: Isa, blk: &Block<'_>, c: &mut C, how: &Store<'_, '_>) {
    // Re-checking the CPU (cached atomic loads, once per cache block) keeps this
    // sound however the `Isa` value was obtained.
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512F if isa.is_supported() => {
            // SAFETY: the CPU supports AVX-512F, AVX2 and FMA, checked just above.
            unsafe { macro_avx512(blk, c, how) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma if isa.is_supported() => {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            unsafe { macro_avx2(blk, c, how) }
        }
        _ => macro_loop::<C, false, false>(blk, c, how),
    }
}

/// The macro loop compiled with AVX2 + FMA enabled, so the inlined micro-kernel and
/// the store/epilogue code both use 256-bit vectors.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn macro_avx2<C: OutRows + ?Sized>(blk: &Block<'_>, c: &mut C, how: &Store<'_, '_>) {
    macro_loop::<C, true, false>(blk, c, how)
}

/// The macro loop with AVX-512F tiles.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn macro_avx512<C: OutRows + ?Sized>(blk: &Block<'_>, c: &mut C, how: &Store<'_, '_>) {
    macro_loop::<C, true, true>(blk, c, how)
}

/// One block's tiles. `AVX2`: compiled into a function with AVX2 + FMA, tiles are
/// stored with AVX2 code; `AVX512` (implies `AVX2`): also AVX-512F, products are
/// computed in zmm registers.
#[inline(always)]
fn macro_loop<C: OutRows + ?Sized, const AVX2: bool, const AVX512: bool>(
    blk: &Block<'_>,
    c: &mut C,
    how: &Store<'_, '_>,
) {
    let kc = blk.kc;
    // Full tiles with nothing to scale go straight from registers to C.
    let direct = how.alpha == 1.0 && (how.beta == 0.0 || how.beta == 1.0);
    // ... and apply the epilogue on their way, when it has a register form.
    #[cfg(target_arch = "x86_64")]
    let in_registers = match how.epilogue {
        Some(e) if AVX2 && direct => super::avx2::TileTerms::of(e),
        _ => None,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let in_registers: Option<()> = None;
    let mut acc: Tile = [0.0; MR * NR];
    let (col_panels, row_panels) = (blk.nc.div_ceil(NR), blk.mc.div_ceil(MR));
    // With AVX-512, full tiles span two B panels where two full ones remain (see
    // `avx512`): the loops below walk column panels in pairs.
    let pair = if AVX512 { 2 } else { 1 };
    let col_groups = col_panels.div_ceil(pair);
    // Tiles go down a column of row panels (B micro-panels kept in L1, A from L2),
    // except for shallow products: there each tile is only a few dozen cycles of
    // arithmetic, and writing C down the column keeps one store stream per row of
    // the block (96 at once for a 16 -> 96 pointwise conv) where along a row panel
    // it keeps six. (In-model A/B, 1 thread: MobileNetV2's 16 -> 96 conv at 112x112
    // 0.97 -> 0.70 ms, its stem 6 % faster; 64-deep products were 3 % slower.)
    let rows_outer = kc <= SHALLOW_KC;
    let (outer, inner) = if rows_outer {
        (row_panels, col_groups)
    } else {
        (col_groups, row_panels)
    };
    let tiles = (0..outer).flat_map(|o| (0..inner).map(move |q| (o, q)));
    let ahead = Ahead::new(blk, row_panels, col_groups, pair, rows_outer);
    // Along row panels, the full 6x32 tiles of each go in one sweep (see
    // `avx512::wide_sweep_into`); the loop below skips them.
    let swept_groups = if cfg!(target_arch = "x86_64") && AVX512 && direct && rows_outer {
        blk.nc / (2 * NR)
    } else {
        0
    };
    for (t, (o, q)) in tiles.enumerate() {
        #[cfg(target_arch = "x86_64")]
        if q < swept_groups {
            if q == 0 {
                ahead.before_tiles(blk, t, swept_groups);
                let i = o * MR;
                let (mut rows, count) = c.tile_rows(blk.i0 + i);
                let rows_in_tile = count.min(blk.mc - i);
                let (a_panel, a_ld) = blk.a_panel(o, rows_in_tile);
                let (i, j, accumulate) = (blk.i0 + i, blk.j0, how.beta == 1.0);
                let (b, terms) = (blk.b_sweep(), in_registers.as_ref());
                // SAFETY (both): `AVX512` is true only in `macro_avx512`, which
                // requires AVX-512F, AVX2 and FMA.
                if rows_in_tile == MR {
                    unsafe {
                        super::avx512::wide_sweep_into::<MR>(
                            kc,
                            a_panel,
                            a_ld,
                            b,
                            swept_groups,
                            &mut rows,
                            i,
                            j,
                            accumulate,
                            terms,
                        )
                    };
                } else if rows_in_tile > 0 {
                    unsafe {
                        super::avx512::partial_wide_sweep_into(
                            rows_in_tile,
                            kc,
                            a_panel,
                            a_ld,
                            b,
                            swept_groups,
                            &mut rows,
                            i,
                            j,
                            accumulate,
                            terms,
                        )
                    };
                }
            }
            continue;
        }
        let b_ahead = ahead.before_tile(blk, t, o, q);
        let (ip, group) = if rows_outer { (o, q) } else { (q, o) };
        let jp = group * pair;
        let i = ip * MR;
        let wide = cfg!(target_arch = "x86_64") && AVX512 && direct && blk.nc >= (jp + 2) * NR;
        // Full 6x32 tiles fetch B's next lines during their steps, as many as they
        // stream; the rest are fetched before the tile.
        let streamed = if wide && blk.mc - i >= MR {
            kc / STREAM_EVERY * LINE_FLOATS
        } else {
            0
        };
        let (burst, stream) = b_ahead.split_at(b_ahead.len().saturating_sub(streamed));
        prefetch_lines(burst, 0, burst.len().div_ceil(LINE_FLOATS));
        #[cfg(not(target_arch = "x86_64"))]
        let _ = stream;
        #[cfg(target_arch = "x86_64")]
        if wide {
            let (mut rows, count) = c.tile_rows(blk.i0 + i);
            let rows_in_tile = count.min(blk.mc - i);
            let (a_panel, a_ld) = blk.a_panel(ip, rows_in_tile);
            let (b0, b1, b_step) = blk.b_pair(jp);
            let (i, j, accumulate) = (blk.i0 + i, blk.j0 + jp * NR, how.beta == 1.0);
            let terms = in_registers.as_ref();
            // SAFETY (both): `AVX512` is true only in `macro_avx512`, which requires
            // AVX-512F, AVX2 and FMA.
            if rows_in_tile == MR {
                unsafe {
                    super::avx512::wide_rows_into::<MR>(
                        kc, a_panel, a_ld, b0, b1, b_step, stream, &mut rows, i, j, accumulate, terms,
                    )
                };
                continue;
            }
            if rows_in_tile > 0 {
                unsafe {
                    super::avx512::partial_wide_rows_into(
                        rows_in_tile,
                        kc,
                        a_panel,
                        a_ld,
                        b0,
                        b1,
                        b_step,
                        &mut rows,
                        i,
                        j,
                        accumulate,
                        terms,
                    )
                };
                continue;
            }
        }
        for jp in jp..(jp + pair).min(col_panels) {
            one_tile::<C, AVX2, AVX512>(blk, c, how, ip, jp, direct, in_registers.as_ref(), &mut acc);
        }
    }
    if let Some(e) = how.epilogue {
        // Tiles stored directly applied their terms in registers; the rest (all of
        // them without AVX2, with AVX2 alone the last, partial column panel) get
        // them here.
        let done = match in_registers {
            Some(_) if AVX512 => blk.nc,
            Some(_) => blk.nc / NR * NR,
            None => 0,
        };
        if done < blk.nc {
            finish_block(c, blk.i0, blk.mc, blk.j0 + done, blk.nc - done, e);
        }
    }
}

impl Block<'_> {
    /// Row panel `ip`'s A (its first `rows` rows, for A read in place) and the
    /// distance between its rows: MR values per step from a packed panel, the
    /// rows' own stride where A is read in place (then a step is one float).
    #[inline(always)]
    fn a_panel(&self, ip: usize, rows: usize) -> (&[f32], Option<usize>) {
        let kc = self.kc;
        match self.a_rows {
            ARows::Packed => (&self.a[ip * kc * MR..][..kc * MR], None),
            ARows::InPlace { ld } => {
                let len = if rows == 0 { 0 } else { (rows - 1) * ld + kc };
                (&self.a[ip * MR * ld..][..len], Some(ld))
            }
        }
    }

    /// B's columns `jp * NR..(jp + 1) * NR` and the next NR, and the distance
    /// between their steps.
    #[inline(always)]
    fn b_pair(&self, jp: usize) -> (&[f32], &[f32], usize) {
        match self.b_rows {
            BRows::Packed => {
                let panel = |p: usize| &self.b[p * self.kc * NR..][..self.kc * NR];
                (panel(jp), panel(jp + 1), NR)
            }
            BRows::InPlace { ld } => (&self.b[jp * NR..], &self.b[(jp + 1) * NR..], ld),
        }
    }

    /// B's column groups as a row sweep walks them (see [`Block::b_pair`]).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn b_sweep(&self) -> super::avx512::SweepB<'_> {
        let (group, half, step) = match self.b_rows {
            BRows::Packed => (2 * self.kc * NR, self.kc * NR, NR),
            BRows::InPlace { ld } => (2 * NR, NR, ld),
        };
        super::avx512::SweepB {
            data: self.b,
            group,
            half,
            step,
        }
    }
}

/// Pulls prepacked weights into L2 ahead of use. Prepacked blocks are read
/// straight from memory (a whole model's weights outgrow the caches), and the
/// first pass over a panel, consuming ~20 bytes a cycle, waits on DRAM; the later
/// passes find it in cache. So while one block computes, what this thread reads
/// next is prefetched, a slice before each tile: for prepacked A (read whole in
/// the first column group) the next A block, spread over all of this block's
/// tiles; for prepacked B (one column group of panels at a time) the next group's
/// panels, spread over this group's tiles, the last group fetching the next B
/// block's first. Measured, 1 thread, weights cold (`cold_weight_throughput`):
/// 1024->256 at 14x14 0.547 -> 0.49 ms, 400->400 at 7x7 (swapped) 0.091 -> 0.080
/// ms; in-model, resnet50's kernels 4-6 % and regnet_x_400mf's 9 % faster.
struct Ahead {
    /// Cache lines of A's next block to prefetch before each tile.
    a_lines: usize,
    /// Cache lines of B's next group to prefetch before each tile of a group.
    b_lines: usize,
    /// Floats of B per column group.
    b_group: usize,
}

const LINE_FLOATS: usize = 16;

/// Steps of a full 6x32 tile per cache line of B's next group it prefetches (the
/// AVX-512 tiles fetch their share of [`Ahead`]'s B lines while they compute).
///
/// A tile of a deep product runs for a thousand cycles or more while the next
/// column group's prepacked B (32 KiB, from DRAM) must arrive. Prefetched in one
/// burst before each tile (57 lines per tile for a 7x7 layer's nine row panels),
/// the prefetches overran the miss queues and stalled the core until lines came
/// back; one line every two steps keeps the stream going under the arithmetic.
/// (In-model A/B, 1 thread: three 512 -> 512 3x3 convs at 7x7 4.6 -> 4.0 ms;
/// ResNet-50's swapped layers, 8.8 -> 7.9 ms.)
pub(super) const STREAM_EVERY: usize = 2;

impl Ahead {
    fn new(blk: &Block<'_>, row_panels: usize, col_groups: usize, pair: usize, rows_outer: bool) -> Ahead {
        // Without reuse (a single column group, or a single row panel) the block is
        // one stream the hardware prefetcher follows; prefetching there only costs
        // (a 1 x 2048 x 1000 head: 6 % slower).
        let a_lines = if col_groups < 2 {
            0
        } else {
            let tiles = row_panels * col_groups;
            blk.a_next.len().div_ceil(LINE_FLOATS).div_ceil(tiles)
        };
        let b_group = pair * blk.kc * NR;
        let b_lines = if rows_outer || row_panels < 2 || blk.b_next.is_none() {
            0
        } else {
            b_group.div_ceil(LINE_FLOATS).div_ceil(row_panels)
        };
        Ahead {
            a_lines,
            b_lines,
            b_group,
        }
    }

    /// Prefetches A's lines for tiles `t..t + count`, which take no B lines (a row
    /// sweep).
    #[inline(always)]
    fn before_tiles(&self, blk: &Block<'_>, t: usize, count: usize) {
        debug_assert_eq!(self.b_lines, 0);
        if self.a_lines > 0 {
            prefetch_lines(blk.a_next, t * self.a_lines, count * self.a_lines);
        }
    }

    /// Prefetches A's lines for tile `t` (`(o, q)` in the loop order), and returns
    /// B's: the floats whose cache lines the tile should pull in, as far as they go
    /// (empty when none). The caller prefetches them before the tile, or spreads
    /// them over its steps.
    #[inline(always)]
    fn before_tile<'b>(&self, blk: &Block<'b>, t: usize, o: usize, q: usize) -> &'b [f32] {
        if self.a_lines > 0 {
            prefetch_lines(blk.a_next, t * self.a_lines, self.a_lines);
        }
        if self.b_lines == 0 {
            return &[];
        }
        // Group `o + 1` starts at `(o + 1) * b_group`; past the block's end, in the
        // next block.
        let at = (o + 1) * self.b_group + q * self.b_lines * LINE_FLOATS;
        let (data, at) = if at >= blk.b.len() {
            (blk.b_next.unwrap_or_default(), at - blk.b.len())
        } else {
            (blk.b, at)
        };
        let len = (self.b_lines * LINE_FLOATS).min(data.len().saturating_sub(at));
        data.get(at..at + len).unwrap_or_default()
    }
}

/// Prefetches (into L2) cache lines `first..first + count` of `data`, as far as it goes.
#[inline(always)]
fn prefetch_lines(data: &[f32], first: usize, count: usize) {
    #[cfg(target_arch = "x86_64")]
    for line in first..first + count {
        let Some(v) = data.get(line * LINE_FLOATS) else {
            return;
        };
        // SAFETY: a prefetch is a hint; it never faults, and `v` is in bounds anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>((v as *const f32).cast())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, first, count);
}

/// Tile `(ip, jp)` (row panel, column panel) of a block, 6x16: stored straight from
/// registers where `direct` (with AVX2), else through `acc` and [`store_tile`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn one_tile<C: OutRows + ?Sized, const AVX2: bool, const AVX512: bool>(
    blk: &Block<'_>,
    c: &mut C,
    how: &Store<'_, '_>,
    ip: usize,
    jp: usize,
    direct: bool,
    #[cfg(target_arch = "x86_64")] in_registers: Option<&super::avx2::TileTerms<'_>>,
    #[cfg(not(target_arch = "x86_64"))] _in_registers: Option<&()>,
    acc: &mut Tile,
) {
    let kc = blk.kc;
    // A or B read in place come only in whole 6x32 tiles, which never get here.
    assert!(
        matches!((blk.a_rows, blk.b_rows), (ARows::Packed, BRows::Packed)),
        "an operand read in place outside a 6x32 tile"
    );
    let b_panel = &blk.b[jp * kc * NR..][..kc * NR];
    let a_panel = &blk.a[ip * kc * MR..][..kc * MR];
    let j = jp * NR;
    let i = ip * MR;
    // A partial last row panel (16, 32, 64, 160 or 400 channels leave 2 or 4
    // rows) computes only its real rows, and stores them directly too.
    // (In-model A/B, 1 thread: regnet_x_400mf's kernels 2 % faster.) With
    // AVX-512 so does a partial last column panel, through a mask.
    #[cfg(target_arch = "x86_64")]
    if AVX2 && direct && (AVX512 || blk.nc - j >= NR) {
        let (mut rows, count) = c.tile_rows(blk.i0 + i);
        let rows_in_tile = count.min(blk.mc - i);
        let width = NR.min(blk.nc - j);
        if rows_in_tile == MR && width == NR {
            // The full tile calls its kernel directly: through the row-count
            // dispatch every tile paid a second call (`vzeroupper`, the six
            // rows spilled to the stack), 40 % of a 16-deep product
            // (96x12544x16: 0.85 -> 0.55 ms).
            // SAFETY: `AVX2` is true only in `macro_avx2` and `macro_avx512`,
            // which require AVX2 + FMA, and `AVX512` only in the latter, which
            // also requires AVX-512F.
            unsafe {
                super::avx2::micro_rows_into::<MR, AVX512>(
                    kc,
                    a_panel,
                    b_panel,
                    &mut rows,
                    blk.i0 + i,
                    blk.j0 + j,
                    how.beta == 1.0,
                    in_registers,
                )
            };
            return;
        }
        if rows_in_tile > 0 {
            // SAFETY: as above.
            unsafe {
                super::avx2::micro_into::<AVX512>(
                    rows_in_tile,
                    width,
                    kc,
                    a_panel,
                    b_panel,
                    &mut rows,
                    blk.i0 + i,
                    blk.j0 + j,
                    how.beta == 1.0,
                    in_registers,
                )
            };
            return;
        }
    }
    if AVX2 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as for the direct stores above.
        unsafe {
            super::avx2::micro_6x16::<AVX512>(kc, a_panel, b_panel, acc)
        };
    } else {
        micro_generic(kc, a_panel, b_panel, acc);
    }
    let (m, n) = (MR.min(blk.mc - i), NR.min(blk.nc - j));
    store_tile(acc, c, blk.i0 + i, blk.j0 + j, m, n, how);
}
