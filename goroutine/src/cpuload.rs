//! Whether the machine has a CPU to spare: the one fact about the world outside the runtime that
//! the scheduler's choice to spread network work over more Ms depends on.
//!
//! # Why the scheduler asks
//! When a network poll readies several goroutines at once, waking a second M to share them is
//! what Go and tokio do, and it is right when a CPU is idle: the batch finishes sooner. When every
//! CPU is already busy (a load client on the same machine, other programs, a container at its
//! quota), the woken M only joins the kernel's run queue. Now two of our threads take turns being
//! descheduled, and the goroutines queued on whichever is off its CPU wait out a kernel time slice:
//! measured on a 2-core machine with the load client beside the server, that doubled the p99
//! latency of both benchmark servers (`scripts/bench_net.sh`) and lost throughput as well. So the
//! scheduler shares a batch at once only while this module says a CPU is spare, and otherwise
//! only when the batch is worth parallelism however busy the machine is (`sched.rs`, "Network
//! poll batches").
//!
//! # The estimate
//! The kernel's count of runnable threads, machine-wide (`/proc/loadavg`, fourth field: the
//! instantaneous `nr_running`), sampled by sysmon at most once per [`SAMPLE_NS`] while a P is busy,
//! and smoothed (`crate::smooth`: about the last eight samples, so a few milliseconds). A CPU is
//! spare when the average leaves at least half a CPU of the machine unused. sysmon does not count
//! itself.
//!
//! # Invariants
//! * Only sysmon threads sample (`sample`), at most one at a time and no more often than
//!   `SAMPLE_NS` (a CAS on the last sample's time); the scheduler only reads [`spare_cpu`], one
//!   relaxed load.
//! * Where the count cannot be read (no procfs), a CPU is assumed spare: the scheduler then wakes
//!   Ms as Go does, which is never wrong, only slower on a saturated machine.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The least time between two samples of the run queue count.
pub(crate) const SAMPLE_NS: u64 = 1_000_000;
/// Fixed-point scale of the averaged count of running threads.
const ONE: u64 = 256;

struct CpuLoad {
    /// `/proc/loadavg`, kept open: procfs regenerates it on every read at offset 0.
    loadavg: Mutex<Option<File>>,
    /// CPUs this process may run on.
    cpus: u64,
    /// Average count of runnable threads, besides the sampling sysmon, times `ONE`.
    running: AtomicU64,
    /// When the last sample was taken (`timer::clock_ns`).
    sampled_at: AtomicU64,
    spare: AtomicBool,
}

fn get() -> &'static CpuLoad {
    static LOAD: OnceLock<CpuLoad> = OnceLock::new();
    LOAD.get_or_init(|| CpuLoad {
        loadavg: Mutex::new(File::open("/proc/loadavg").ok()),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        running: AtomicU64::new(0),
        sampled_at: AtomicU64::new(0),
        spare: AtomicBool::new(true),
    })
}

/// Whether a CPU of the machine looks spare (see the module docs).
pub(crate) fn spare_cpu() -> bool {
    get().spare.load(Ordering::Relaxed)
}

/// The estimate for `GORT_SCHEDTRACE` lines: `runnable=1.92/2cpu spare=0`.
pub(crate) fn trace() -> String {
    let load = get();
    format!(
        "runnable={:.2}/{}cpu spare={}",
        load.running.load(Ordering::Relaxed) as f64 / ONE as f64,
        load.cpus,
        u8::from(load.spare.load(Ordering::Relaxed))
    )
}

/// sysmon's round: takes a sample if the last one is `SAMPLE_NS` old.
pub(crate) fn sample(now: u64) {
    let load = get();
    let last = load.sampled_at.load(Ordering::Relaxed);
    if now.saturating_sub(last) < SAMPLE_NS
        || load
            .sampled_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let Some(runnable) = read_runnable(load) else {
        load.spare.store(true, Ordering::Relaxed);
        return;
    };
    // The sampling sysmon is one of the runnable threads.
    let others = runnable.saturating_sub(1) * ONE;
    let avg = crate::smooth(load.running.load(Ordering::Relaxed), others);
    load.running.store(avg, Ordering::Relaxed);
    load.spare
        .store(avg + ONE / 2 <= load.cpus * ONE, Ordering::Relaxed);
}

/// The fourth field of `/proc/loadavg` ("runnable/total"): threads runnable right now.
fn read_runnable(load: &CpuLoad) -> Option<u64> {
    let file = crate::lock(&load.loadavg);
    let mut buf = [0u8; 128];
    let n = file.as_ref()?.read_at(&mut buf, 0).ok()?;
    parse_runnable(std::str::from_utf8(&buf[..n]).ok()?)
}

fn parse_runnable(loadavg: &str) -> Option<u64> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_runnable_count() {
        assert_eq!(parse_runnable("0.52 0.61 0.70 3/219 12345\n"), Some(3));
        assert_eq!(parse_runnable("0.52 0.61 0.70"), None);
        assert_eq!(parse_runnable("0.52 0.61 0.70 x/219 1"), None);
    }

    #[test]
    fn reads_this_machine() {
        if std::path::Path::new("/proc/loadavg").exists() {
            // This test's own thread is runnable while it reads.
            assert!(read_runnable(get()).is_some_and(|n| n >= 1));
        }
    }
}
