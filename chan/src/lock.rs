//! The per-channel lock: a small futex mutex with raw `lock`/`unlock`.
//!
//! A channel's critical sections are a few dozen instructions (move a value, link or unlink a waiter,
//! flip an atomic), never a park: so, as Go's runtime `lock`, the lock spins briefly and then sleeps in
//! `futex(FUTEX_WAIT)`. It is raw (no guard type) because `select!` locks several channels of different
//! element types in address order and unlocks them later, through trait objects.
//!
//! States: `0` unlocked, `1` locked, `2` locked and someone may sleep on it. An unlock that sees `2`
//! issues one `FUTEX_WAKE`; a woken waiter re-takes the lock as `2` (it cannot know whether others
//! still sleep), which at worst costs one needless wake later. Under `cfg(loom)` it is loom's
//! blocking `Mutex` with its guard parked inside (a spin lock would livelock loom's bounded
//! scheduler).

#[cfg(not(loom))]
use crate::sys::{AtomicU32, Ordering};
#[cfg(not(loom))]
use gort_goroutine::futex::{futex_wait, futex_wake};

#[cfg(not(loom))]
pub(crate) struct RawLock {
    state: AtomicU32,
}

/// Spinning before sleeping, as Go's runtime `lock`: a few rounds of `PAUSE` bursts with a look
/// at the lock after each (polling it every instruction would keep pulling its cache line away from
/// the holder, which is what makes a contended lock slow), then one yield of the thread.
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 4;
#[cfg(not(loom))]
const PAUSES_PER_ROUND: u32 = 30;

#[cfg(not(loom))]
impl RawLock {
    pub(crate) fn new() -> RawLock {
        RawLock {
            state: AtomicU32::new(0),
        }
    }

    /// Takes the lock; every `lock` is paired with one [`RawLock::unlock`] by the same party.
    #[inline]
    pub(crate) fn lock(&self) {
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[cfg(not(loom))]
    #[cold]
    fn lock_contended(&self) {
        let try_take = || {
            self.state.load(Ordering::Relaxed) == 0
                && self
                    .state
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        };
        for _ in 0..SPIN_ROUNDS {
            for _ in 0..PAUSES_PER_ROUND {
                std::hint::spin_loop();
            }
            if try_take() {
                return;
            }
        }
        std::thread::yield_now();
        if try_take() {
            return;
        }
        while self.state.swap(2, Ordering::Acquire) != 0 {
            futex_wait(&self.state, 2, None);
        }
    }

    /// Releases the lock taken by the matching [`RawLock::lock`].
    #[inline]
    pub(crate) fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            futex_wake(&self.state);
        }
    }
}

/// The loom model's lock: loom's `Mutex`, whose guard waits inside between `lock` and `unlock`.
#[cfg(loom)]
pub(crate) struct RawLock {
    mutex: loom::sync::Mutex<()>,
    guard: std::cell::UnsafeCell<Option<loom::sync::MutexGuard<'static, ()>>>,
}

// SAFETY: `guard` is only touched by the holder of `mutex`.
#[cfg(loom)]
unsafe impl Sync for RawLock {}
// SAFETY: as above; the guard never outlives its lock/unlock pair.
#[cfg(loom)]
unsafe impl Send for RawLock {}

#[cfg(loom)]
impl RawLock {
    pub(crate) fn new() -> RawLock {
        RawLock {
            mutex: loom::sync::Mutex::new(()),
            guard: std::cell::UnsafeCell::new(None),
        }
    }

    pub(crate) fn lock(&self) {
        let guard = self.mutex.lock().unwrap();
        // SAFETY: the guard borrows `self.mutex`, and is dropped in `unlock`, before `self` can go
        // away (a channel is never dropped while locked) and without `self` moving (it lives in an
        // `Arc`); only the holder touches `guard`.
        unsafe {
            let guard: loom::sync::MutexGuard<'static, ()> = std::mem::transmute(guard);
            *self.guard.get() = Some(guard);
        }
    }

    pub(crate) fn unlock(&self) {
        // SAFETY: we hold the mutex (paired `lock`), so the slot is ours.
        drop(unsafe { (*self.guard.get()).take() });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_across_threads() {
        struct Shared {
            lock: RawLock,
            count: std::cell::UnsafeCell<u64>,
        }
        // SAFETY: `count` is only touched with `lock` held.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared {
            lock: RawLock::new(),
            count: std::cell::UnsafeCell::new(0),
        });
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        s.lock.lock();
                        // SAFETY: the lock is held.
                        unsafe { *s.count.get() += 1 };
                        s.lock.unlock();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // SAFETY: every thread has finished.
        assert_eq!(unsafe { *s.count.get() }, 80_000);
    }
}
