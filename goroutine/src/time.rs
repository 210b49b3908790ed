//! Sleeping: Go's `time.Sleep` for goroutines.
//!
//! A sleeping goroutine parks on a runtime timer (`timer.rs`): its thread runs other goroutines, and
//! the timer, fired by whichever M looks for work next or by the idle M sleeping until the earliest
//! deadline, readies it. Off goroutines, these block the thread as `std::thread::sleep` does.
//! Channel-based timers (`after`, `tick`, `Timer`, `Ticker`) live with the channels and build on the
//! same timers.

use std::time::{Duration, Instant};

use crate::park::{park_until_with, WaitReason};

/// Parks the calling goroutine for at least `d` (on a plain thread: blocks it).
///
/// ```
/// let start = std::time::Instant::now();
/// gort_goroutine::spawn(|| gort_goroutine::time::sleep(std::time::Duration::from_millis(5))).join().unwrap();
/// assert!(start.elapsed() >= std::time::Duration::from_millis(5));
/// ```
pub fn sleep(d: Duration) {
    sleep_until(Instant::now() + d);
}

/// Parks the calling goroutine until `deadline` (returns at once if it has passed).
pub fn sleep_until(deadline: Instant) {
    while Instant::now() < deadline {
        park_until_with(deadline, WaitReason::Sleep);
    }
}
