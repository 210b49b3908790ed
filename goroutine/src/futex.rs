//! A one-shot wake-up flag on a Linux futex: how an idle M sleeps; and the futex calls themselves,
//! which the channel crate's lock uses too (one place for the syscall).
//!
//! Go parks an M that has no work on a `note` (`notesleep`/`notewakeup` over a futex). `Note` is the
//! same idea: one sleeper, any number of wakers, and a token so that a wake which arrives before the
//! sleep is not lost. An idle M sits in `futex(FUTEX_WAIT)` and burns no CPU.
//!
//! States: `EMPTY` (nobody asleep, no token), `NOTIFIED` (a wake is pending), `SLEEPING` (the owner is,
//! or is about to be, inside `futex_wait`). Only the owner moves `EMPTY -> SLEEPING` and consumes a
//! token; a waker moves anything to `NOTIFIED` and issues the `FUTEX_WAKE` syscall only when it saw
//! `SLEEPING`, so waking an M that is awake costs one atomic swap.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const EMPTY: u32 = 0;
const NOTIFIED: u32 = 1;
const SLEEPING: u32 = 2;

/// A single-sleeper wake-up flag (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Note {
    state: AtomicU32,
}

impl Note {
    /// A note with no pending wake.
    pub(crate) const fn new() -> Note {
        Note {
            state: AtomicU32::new(EMPTY),
        }
    }

    /// Sleeps until [`Note::wake`] is called (or returns at once if a wake is pending), consuming
    /// the wake. Only one thread may sleep on a note.
    pub(crate) fn sleep(&self) {
        self.sleep_until(None);
    }

    /// Like [`Note::sleep`], but gives up after `timeout`. Returns whether a wake was consumed.
    pub(crate) fn sleep_timeout(&self, timeout: Duration) -> bool {
        self.sleep_until(Some(std::time::Instant::now() + timeout))
    }

    fn sleep_until(&self, deadline: Option<std::time::Instant>) -> bool {
        loop {
            if self
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Acquire)
                .is_ok()
            {
                return true;
            }
            // EMPTY -> SLEEPING (it may already be SLEEPING after a spurious futex return). A wake
            // that races in turns it into NOTIFIED, and the next turn of the loop consumes it.
            let _ =
                self.state
                    .compare_exchange(EMPTY, SLEEPING, Ordering::Acquire, Ordering::Acquire);
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        return self.state.swap(EMPTY, Ordering::Acquire) == NOTIFIED;
                    }
                    Some(d - now)
                }
            };
            futex_wait(&self.state, SLEEPING, timeout);
        }
    }

    /// Consumes a pending wake without sleeping; returns whether there was one.
    pub(crate) fn try_consume(&self) -> bool {
        self.state.load(Ordering::Relaxed) == NOTIFIED
            && self
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Wakes the sleeper, or leaves a token for its next sleep.
    pub(crate) fn wake(&self) {
        if self.state.swap(NOTIFIED, Ordering::Release) == SLEEPING {
            futex_wake(&self.state);
        }
    }
}

/// Blocks the calling thread while `*word == expected`, for at most `timeout` (Linux
/// `FUTEX_WAIT`, process-private). Returns on a wake, a signal, a timeout, or at once when the word
/// no longer holds `expected`: callers loop on their own condition.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32 for the duration of the call; the kernel only reads it and
    // compares it with `expected`. `ts_ptr` is null or points at a timespec that outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// Wakes one thread blocked in [`futex_wait`] on `word`.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key; `word` is live for the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wake_before_sleep_is_kept() {
        let n = Note::new();
        n.wake();
        n.sleep(); // returns at once
        assert!(!n.sleep_timeout(Duration::from_millis(5)));
    }

    #[test]
    fn wake_from_another_thread() {
        let n = Arc::new(Note::new());
        let n2 = n.clone();
        let t = std::thread::spawn(move || {
            for _ in 0..1000 {
                n2.sleep();
            }
        });
        let mut woken = 0;
        while !t.is_finished() {
            n.wake();
            woken += 1;
            std::thread::yield_now();
        }
        t.join().unwrap();
        assert!(woken >= 1000);
    }
}
