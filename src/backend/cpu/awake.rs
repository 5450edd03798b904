//! Keeping the pool's other workers awake for the length of one run.
//!
//! A run is a sequence of short parallel regions (a few per layer, each tens of
//! microseconds to a few milliseconds) separated by short serial stretches. An idle
//! rayon worker spins only a few microseconds before it sleeps on a futex, so
//! nearly every region started by waking the other threads, and on these VMs a
//! wake-up takes tens of microseconds: a large share of a small region. ONNX
//! Runtime's workers spin between regions for the same reason.
//!
//! [`StayAwake`] gives every other worker a job that keeps looking for work (and
//! runs what it finds) until the run is over, so the halves a region splits off
//! are picked up at once. The cost is the other cores spinning through the run's
//! serial stretches.
//!
//! A worker can also take its spinning job while it waits inside a join, deep in
//! a task it stole from this very run: the run then waits for that task, and the
//! task for the spinner to end. So a spinner also ends after [`IDLE_LIMIT`] without
//! finding work, which such a wait always reaches (the run is stuck, so nothing
//! new is split off). An idle stretch that long between regions is rare in a run;
//! it costs one wake-up, as before. (A `vs_ort` bench hung this way before the
//! limit existed: the spinner under a `join` inside a stolen half.)
//!
//! Only one run per pool spins at a time (the `claim` flag), so a run's spinners
//! never hold up another run for longer than the limit either.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a spinning worker keeps looking without finding work before it goes
/// back to rayon's own idle loop (and, from there, to sleep). Gaps between a run's
/// parallel regions are a few microseconds.
const IDLE_LIMIT: Duration = Duration::from_micros(200);

/// While alive, the other workers of the current rayon pool look for work instead
/// of sleeping. Create it on a pool thread, at the start of a run.
pub struct StayAwake<'a> {
    /// The pool's claim, held while this run's workers spin.
    claim: &'a AtomicBool,
    done: Option<Arc<AtomicBool>>,
}

impl<'a> StayAwake<'a> {
    /// Starts spinning unless the pool has a single thread, this is not a pool
    /// thread, or another run holds `claim` (one flag per pool).
    pub fn start(claim: &'a AtomicBool) -> StayAwake<'a> {
        let idle = StayAwake { claim, done: None };
        let Some(me) = rayon::current_thread_index() else {
            return idle;
        };
        if rayon::current_num_threads() < 2
            || claim
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return idle;
        }
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        rayon::spawn_broadcast(move |ctx| {
            // The running thread sets the flag: if it ran this job it would wait
            // for itself. (It can pick its copy up while it waits inside a join.)
            if ctx.index() == me {
                return;
            }
            let mut idle_since: Option<Instant> = None;
            while !flag.load(Ordering::Acquire) {
                if rayon::yield_now() == Some(rayon::Yield::Executed) {
                    idle_since = None;
                    continue;
                }
                if idle_since.get_or_insert_with(Instant::now).elapsed() > IDLE_LIMIT {
                    return;
                }
                std::hint::spin_loop();
            }
        });
        StayAwake {
            claim,
            done: Some(done),
        }
    }
}

impl Drop for StayAwake<'_> {
    fn drop(&mut self) {
        if let Some(done) = &self.done {
            done.store(true, Ordering::Release);
            self.claim.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    /// Parallel work still completes (on every thread count) while the other
    /// workers spin, a second claim on the same pool does not spin, and the workers
    /// stop when it is dropped: the pool can be dropped afterwards without hanging.
    #[test]
    fn runs_parallel_work_and_lets_the_pool_go() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let claim = AtomicBool::new(false);
            let sum: u64 = pool.install(|| {
                let _awake = StayAwake::start(&claim);
                let _second = StayAwake::start(&claim);
                (0..100u64)
                    .map(|round| (0..10_000u64).into_par_iter().map(|i| i ^ round).sum::<u64>())
                    .sum()
            });
            let want: u64 = (0..100u64)
                .map(|round| (0..10_000u64).map(|i| i ^ round).sum::<u64>())
                .sum();
            assert_eq!(sum, want, "{threads} threads");
            assert!(!claim.load(Ordering::Acquire), "claim released");
            drop(pool);
        }
    }

    /// The hang the idle limit exists for, staged step by step: the other worker
    /// takes its spinning job while it waits inside a join, in a task stolen from
    /// the run, after the run's own thread stole that join's other half. Without
    /// the limit this never returns (checked by setting the limit to an hour); the
    /// test fails after 30 s instead of hanging.
    #[test]
    fn spinning_inside_a_stolen_task_does_not_hang_the_run() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            let claim = AtomicBool::new(false);
            let (in_b, second_taken) = (AtomicBool::new(false), AtomicBool::new(false));
            let wait_for = |flag: &AtomicBool| {
                while !flag.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
            };
            pool.install(|| {
                let mut awake = None;
                rayon::join(
                    || {
                        // The run's thread: start spinning once the other worker is
                        // busy in B, then wait for B (stealing B's second half).
                        wait_for(&in_b);
                        awake = Some(StayAwake::start(&claim));
                    },
                    || {
                        in_b.store(true, Ordering::Release);
                        rayon::join(
                            || wait_for(&second_taken),
                            || {
                                second_taken.store(true, Ordering::Release);
                                std::thread::sleep(std::time::Duration::from_millis(20));
                            },
                        );
                    },
                );
                drop(awake);
            });
            let _ = done.send(());
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the run hung: a spinner held the task it was called from");
    }
}
