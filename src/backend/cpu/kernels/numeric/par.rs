//! When and how kernels split their output across rayon's threads.

use rayon::prelude::*;

/// Below this much work (elements × per-element cost) a kernel stays on the calling
/// thread: rayon's fork/join costs a few microseconds, about what 64K additions take.
pub const PAR_THRESHOLD: usize = 64 * 1024;

/// Pieces per thread, so that uneven progress between threads evens out.
const PIECES_PER_THREAD: usize = 4;

/// Calls `f(start, chunk)` over consecutive chunks of `out` that together cover it,
/// where `start` is the chunk's offset in `out`. Chunk boundaries fall on multiples of
/// `unit` (a row length, so a chunk holds whole rows). `cost` is the relative work per
/// element (1 for an add, more for a transcendental or for a whole reduced row); when
/// `out.len() * cost` is below [`PAR_THRESHOLD`] everything runs on this thread.
pub fn par_chunks<T: Send>(
    out: &mut [T],
    unit: usize,
    cost: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    let len = out.len();
    let unit = unit.max(1);
    let threads = rayon::current_num_threads();
    if len.saturating_mul(cost.max(1)) < PAR_THRESHOLD || threads <= 1 || len <= unit {
        f(0, out);
        return;
    }
    // Enough pieces to balance, none so small that the split costs more than it saves.
    let min_piece = (PAR_THRESHOLD / PIECES_PER_THREAD / cost.max(1)).max(1);
    let piece = len.div_ceil(threads * PIECES_PER_THREAD).max(min_piece);
    let chunk = piece.div_ceil(unit) * unit;
    out.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i * chunk, c));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_everything_once_on_unit_boundaries() {
        for (len, unit, cost) in [
            (10, 1, 1),
            (1 << 20, 1, 1),
            (1 << 20, 7, 1),
            (999_983, 13, 3),
            (5, 10, 1000),
        ] {
            let mut out = vec![0u32; len];
            par_chunks(&mut out, unit, cost, |start, chunk| {
                assert!(start % unit == 0 || start == 0);
                for (i, v) in chunk.iter_mut().enumerate() {
                    *v += (start + i) as u32 + 1;
                }
            });
            assert!(out.iter().enumerate().all(|(i, &v)| v == i as u32 + 1));
        }
    }
}
