//! Engines taking turns, so that every engine's times come from the same minutes.
//!
//! Absolute times on a shared machine drift by tens of percent from one minute to
//! the next; only times taken side by side compare. Each turn starts with a pause
//! ([`SETTLE`]) that lets the previous engine's spinning workers go to sleep, then
//! one untimed run (it re-warms the engine's threads and caches after the pause),
//! then [`Schedule::block`] timed runs back to back, as in a service under load. The
//! order rotates between turns, so no engine always runs right after the same other
//! one. (Single alternating runs would time every kiln run while ONNX Runtime's
//! workers still spin from the run before, and the reverse; runs after idle gaps
//! time a cold CPU instead: benches/RESULTS.md has both.)

use std::time::{Duration, Instant};

use crate::error::Result;

/// Timed runs per turn in `kiln bench --vs ort` and benches/vs_ort.rs: long enough
/// for an engine's threads to stay warm, short enough that load from other tenants
/// falls on every engine alike.
pub const BLOCK: usize = 4;

/// The pause before each turn in `kiln bench --vs ort` and benches/vs_ort.rs.
///
/// After a run, ONNX Runtime's intra-op workers keep spinning for work: measured
/// here, one core's worth of CPU time for 41-48 ms after a 2-thread mobilenet_v2
/// run, several whole runs of the next engine. With only an untimed run between
/// turns, the engine after ORT ran its 2-thread timings on one free core (kiln's
/// mobilenet_v2 at 2 threads read 14.7 ms in the same loop where an identical
/// second kiln session, which followed ORT half as often, read 8.6 ms).
pub const SETTLE: Duration = Duration::from_millis(80);

/// How [`interleaved`] shares the runs out.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Untimed runs of each engine, in turn, before anything is timed.
    pub warmup: usize,
    /// Timed runs of each engine.
    pub runs: usize,
    /// Timed runs per turn (at least 1).
    pub block: usize,
    /// Pause before each turn, so the engine before has gone quiet.
    pub settle: Duration,
}

impl Schedule {
    fn turns(&self) -> usize {
        self.runs.div_ceil(self.block.max(1))
    }

    /// Every run one engine makes, timed or not (the length of a progress bar).
    pub fn runs_per_engine(&self) -> usize {
        self.warmup + self.turns() + self.runs
    }
}

/// Runs `engines` in turn as `schedule` says and returns each one's timed runs in
/// milliseconds, in run order. `after_run` is called after every run (a progress bar).
pub fn interleaved(
    schedule: &Schedule,
    engines: &mut [&mut dyn FnMut() -> Result<()>],
    after_run: &mut dyn FnMut(),
) -> Result<Vec<Vec<f64>>> {
    let n = engines.len();
    for _ in 0..schedule.warmup {
        for engine in engines.iter_mut() {
            engine()?;
            after_run();
        }
    }
    let mut times = vec![Vec::with_capacity(schedule.runs); n];
    for turn in 0..schedule.turns() {
        for k in 0..n {
            let which = (turn + k) % n;
            let engine = &mut engines[which];
            std::thread::sleep(schedule.settle);
            engine()?;
            after_run();
            let timed = schedule.block.max(1).min(schedule.runs - times[which].len());
            for _ in 0..timed {
                let t = Instant::now();
                engine()?;
                times[which].push(t.elapsed().as_secs_f64() * 1e3);
                after_run();
            }
        }
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[test]
    fn turns_rotate_and_every_engine_gets_exactly_its_runs() {
        let log = RefCell::new(String::new());
        let mut a = || {
            log.borrow_mut().push('a');
            Ok(())
        };
        let mut b = || {
            log.borrow_mut().push('b');
            Ok(())
        };
        let mut ticks = 0;
        let schedule = Schedule {
            warmup: 1,
            runs: 5,
            block: 2,
            settle: Duration::ZERO,
        };
        let times = interleaved(&schedule, &mut [&mut a, &mut b], &mut || ticks += 1).expect("runs");
        assert_eq!(times.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5]);
        // Warm-up ab; then turns of 1 untimed + 2 timed, b first on odd turns, 1 timed last.
        assert_eq!(log.into_inner(), ["ab", "aaabbb", "bbbaaa", "aabb"].concat());
        assert_eq!(ticks, 2 * schedule.runs_per_engine());
    }
}
