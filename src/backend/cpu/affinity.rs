//! Pinning the pool's workers to CPUs, one each.
//!
//! A run starts with a chain of wake-ups: the calling thread hands the run to a
//! sleeping worker and goes to sleep itself, and that worker wakes the others. The
//! caller's CPU is still busy for a moment while the second worker is placed, so
//! when the pool has one worker per CPU the scheduler can put that worker on the
//! first one's CPU. Linux then leaves the two sharing a core for the whole run, and
//! often for the runs after it: measured on a 2-core VM (mobilenet_v2, 2 threads,
//! `/proc/self/task/*/schedstat`), such runs took 5.3-5.7 ms with one worker
//! waiting on the run queue throughout, against 2.7-2.9 ms when the two were apart;
//! between runs of another engine, half of kiln's runs went that way. One worker
//! per CPU, fixed, removes the case.
//!
//! [`Pinning::Auto`] pins only when the pool has exactly as many workers as the
//! process has CPUs: the pool then covers the machine anyway, and pinning only
//! stops the stacking. A smaller pool stays free to move, since other work (or
//! another session) may need the remaining CPUs and the scheduler finds idle ones.

use std::str::FromStr;

use crate::error::{Error, Result};

/// Whether a session pins its worker threads to CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pinning {
    /// Pin when the pool has one worker for each CPU the process may use.
    #[default]
    Auto,
    /// Pin worker `i` to the `i`-th usable CPU whenever there are enough CPUs.
    On,
    /// Never pin: the operating system places the workers.
    Off,
}

impl Pinning {
    /// The CPUs to pin workers `0..threads` to, one each, or `None` to leave them
    /// unpinned (also where the usable CPUs cannot be read, or are too few).
    pub fn plan(self, threads: usize) -> Option<Vec<usize>> {
        if self == Pinning::Off {
            return None;
        }
        let cpus = usable_cpus()?;
        let wanted = match self {
            Pinning::Auto => cpus.len() == threads,
            Pinning::On => cpus.len() >= threads,
            Pinning::Off => false,
        };
        wanted.then(|| cpus[..threads].to_vec())
    }
}

impl FromStr for Pinning {
    type Err = Error;
    fn from_str(s: &str) -> Result<Pinning> {
        match s {
            "auto" => Ok(Pinning::Auto),
            "on" => Ok(Pinning::On),
            "off" => Ok(Pinning::Off),
            other => Err(Error::Usage(format!(
                "unknown pinning '{other}' (known: auto, on, off)"
            ))),
        }
    }
}

/// The CPUs this process may run on (its affinity mask), in increasing order.
#[cfg(target_os = "linux")]
pub fn usable_cpus() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array, valid when zeroed;
    // sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        set
    };
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    (!cpus.is_empty()).then_some(cpus)
}

#[cfg(not(target_os = "linux"))]
pub fn usable_cpus() -> Option<Vec<usize>> {
    None
}

/// Restricts the calling thread to `cpu`; returns whether the system agreed.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpu: usize) -> bool {
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: as in `usable_cpus`; `cpu` is below the set's capacity, and
    // sched_setaffinity only reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(_cpu: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_policy() {
        assert_eq!(Pinning::Off.plan(1), None);
        let Some(cpus) = usable_cpus() else {
            eprintln!("skipped: this system does not report the usable CPUs");
            return;
        };
        let n = cpus.len();
        assert_eq!(Pinning::Auto.plan(n), Some(cpus.clone()));
        assert_eq!(Pinning::On.plan(n + 1), None);
        assert_eq!(Pinning::On.plan(1), Some(cpus[..1].to_vec()));
        if n > 1 {
            assert_eq!(Pinning::Auto.plan(n - 1), None);
        }
    }

    /// A thread pinned to a usable CPU reports only that CPU afterwards.
    #[test]
    fn pins_a_thread() {
        let Some(cpus) = usable_cpus() else {
            eprintln!("skipped: this system does not report the usable CPUs");
            return;
        };
        let last = *cpus.last().unwrap();
        let seen = std::thread::spawn(move || pin_current_thread(last).then(usable_cpus))
            .join()
            .unwrap();
        assert_eq!(seen, Some(Some(vec![last])));
    }

    #[test]
    fn parses_names() {
        assert_eq!("auto".parse::<Pinning>().unwrap(), Pinning::Auto);
        assert_eq!("off".parse::<Pinning>().unwrap(), Pinning::Off);
        assert!("sometimes".parse::<Pinning>().is_err());
    }
}
