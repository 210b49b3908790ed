//! `WaitGroup`: Go's `sync.WaitGroup`.
//!
//! One 64-bit state word holds the counter (high 32 bits) and the number of registered waiters (low
//! 32 bits), so `done` costs one atomic op when nobody waits. Waiters' wakers sit in a list under a
//! mutex. The invariants:
//! * a waiter increments the waiter count with a CAS that also sees the counter is non-zero, and
//!   pushes its waker in the same critical section, before unlocking;
//! * the `done` that takes the counter to zero saw the waiter count in that same atomic op; if it is
//!   non-zero it takes the lock (so every counted waker is in the list), clears the waiter count and
//!   wakes every waker.
//!
//! So a waiter either sees a zero counter, or is counted before the counter can reach zero and then is
//! woken by whoever gets it there.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use crate::park;

const COUNTER_ONE: u64 = 1 << 32;
const WAITERS_MASK: u64 = COUNTER_ONE - 1;

struct Inner {
    state: AtomicU64,
    wakers: Mutex<Vec<Waker>>,
}

/// Waits for a collection of goroutines to finish (Go's `sync.WaitGroup`).
///
/// Clones share one counter. `add(n)` before starting work, `done()` when each piece finishes,
/// `wait()` parks until the counter is zero.
///
/// ```
/// use gort_goroutine::sync::WaitGroup;
/// let wg = WaitGroup::new();
/// for _ in 0..10 {
///     wg.add(1);
///     let wg = wg.clone();
///     gort_goroutine::spawn(move || wg.done());
/// }
/// wg.wait();
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl WaitGroup {
    /// A wait group with a zero counter.
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(Inner {
                state: AtomicU64::new(0),
                wakers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Adds `n` to the counter.
    ///
    /// # Panics
    /// If the counter would exceed `u32::MAX`.
    pub fn add(&self, n: usize) {
        let n = u32::try_from(n)
            .unwrap_or_else(|_| panic!("gort: WaitGroup::add({n}) overflows the counter"));
        let prev = self
            .inner
            .state
            .fetch_add(u64::from(n) * COUNTER_ONE, Ordering::AcqRel);
        if (prev >> 32) + u64::from(n) > u64::from(u32::MAX) {
            panic!("gort: WaitGroup counter overflow");
        }
    }

    /// Subtracts one from the counter, waking every waiter when it reaches zero.
    ///
    /// # Panics
    /// If the counter is already zero (more `done` than `add`), as Go's `negative WaitGroup counter`.
    pub fn done(&self) {
        let prev = self.inner.state.fetch_sub(COUNTER_ONE, Ordering::AcqRel);
        if prev >> 32 == 0 {
            self.inner.state.fetch_add(COUNTER_ONE, Ordering::AcqRel);
            panic!("gort: negative WaitGroup counter (done called more often than add)");
        }
        if prev >> 32 == 1 && prev & WAITERS_MASK != 0 {
            let wakers = {
                let mut list = crate::lock(&self.inner.wakers);
                self.inner.state.fetch_and(!WAITERS_MASK, Ordering::AcqRel);
                std::mem::take(&mut *list)
            };
            for w in wakers {
                w.wake();
            }
        }
    }

    /// Parks until the counter is zero (returns at once if it is).
    pub fn wait(&self) {
        crate::sysmon::safe_point();
        loop {
            if self.inner.state.load(Ordering::Acquire) >> 32 == 0 {
                return;
            }
            {
                let mut list = crate::lock(&self.inner.wakers);
                let mut s = self.inner.state.load(Ordering::Acquire);
                loop {
                    if s >> 32 == 0 {
                        return;
                    }
                    match self.inner.state.compare_exchange_weak(
                        s,
                        s + 1,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => break,
                        Err(now) => s = now,
                    }
                }
                list.push(park::current_waker());
            }
            park::park_with(park::WaitReason::WaitGroup);
        }
    }

    /// The current counter value.
    pub fn count(&self) -> usize {
        (self.inner.state.load(Ordering::Acquire) >> 32) as usize
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn threads_wait_for_threads() {
        let wg = WaitGroup::new();
        let hits = Arc::new(AtomicU64::new(0));
        for _ in 0..8 {
            wg.add(1);
            let (wg, hits) = (wg.clone(), hits.clone());
            std::thread::spawn(move || {
                hits.fetch_add(1, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(hits.load(Ordering::Relaxed), 8);
        assert_eq!(wg.count(), 0);
    }

    #[test]
    #[should_panic(expected = "negative WaitGroup counter")]
    fn done_without_add_panics() {
        WaitGroup::new().done();
    }

    #[test]
    fn wait_on_zero_returns() {
        WaitGroup::new().wait();
    }
}
