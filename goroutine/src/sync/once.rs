//! `Once`: Go's `sync.Once`.
//!
//! # Protocol
//! A state word goes `INCOMPLETE -> RUNNING -> DONE`, never back. `call_once` reads `DONE` with one
//! Acquire load on the fast path. The caller whose CAS moves `INCOMPLETE -> RUNNING` runs the
//! closure; everyone else parks in a [`WaitQueue`] until it finishes. A waiter links itself under
//! the queue lock after a CAS there that saw `RUNNING` and set the `PARKED` bit; the runner's final
//! swap to `DONE` reports whether `PARKED` was set, and if so it takes the queue lock and wakes
//! every linked waiter.
//!
//! # Why no wake is lost
//! A waiter's CAS and its linking happen in one queue-lock critical section. If the CAS precedes
//! the runner's swap, the swap sees `PARKED` and the runner's subsequent queue-lock section (after
//! the waiter's) finds the record; if it follows the swap, the CAS fails on `DONE` and the waiter
//! returns without parking.
//!
//! # Panics: Go's semantics, not std's
//! If the closure panics, the `Once` is marked **done** (as Go's `sync.Once` does, and unlike
//! `std::sync::Once`, which poisons): the panic propagates to the caller that ran the closure,
//! waiting callers return normally, later calls do nothing, and [`Once::is_completed`] is `true`.
//! Reasons: gort's sync types never poison (a panicking `Mutex` holder just unlocks), so a `Once`
//! that turned one panic into a panic in every later caller would be the odd one out; it keeps the
//! guarantee Go programs rely on — the closure runs *at most once*, even if it had side effects
//! before it panicked; and the failure is not silent, because the panic itself is reported (a
//! goroutine's panic is printed and handed to `join`). Code that must not proceed without the
//! initialization should record its success itself (e.g. in a flag set at the closure's end).

use std::fmt;
use std::pin::pin;

use super::rt::{AtomicU8, Ordering};
use super::waitq::{WaitQueue, Waiter};
use crate::park::WaitReason;

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
/// With `RUNNING`: some waiter is (or is about to be) linked.
const PARKED: u8 = 4;

/// Waiter token: the `Once` is done.
const FINISHED: u8 = 2;

/// Runs a one-time initialization (Go's `sync.Once`). Concurrent callers park until the first call
/// finishes; the closure runs at most once, and a panic in it marks the `Once` done (Go's rule, see
/// [`Once::call_once`]).
///
/// ```
/// use gort_goroutine::sync::Once;
/// static INIT: Once = Once::new();
/// let mut ran = 0;
/// INIT.call_once(|| ran += 1);
/// INIT.call_once(|| ran += 1);
/// assert_eq!(ran, 1);
/// assert!(INIT.is_completed());
/// ```
pub struct Once {
    state: AtomicU8,
    queue: WaitQueue,
}

impl Once {
    super::loom_const_fn! {
        /// A `Once` that has not run yet. `const`, so it can initialize a `static`.
        pub fn new() -> Once {
            Once {
                state: AtomicU8::new(INCOMPLETE),
                queue: WaitQueue::new(()),
            }
        }
    }

    /// Runs `f` if no call has run yet; otherwise waits (parking the goroutine) until the call that
    /// runs it has finished, then returns. When `call_once` returns, everything `f` did is visible
    /// to the caller.
    ///
    /// If `f` panics, the panic propagates to this caller and the `Once` is nonetheless **done**:
    /// `f` is never run again, and concurrent and later callers return normally (Go's semantics;
    /// `std::sync::Once` would poison instead). Calling `call_once` on the same `Once` from inside
    /// `f` deadlocks.
    #[inline]
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.state.load(Ordering::Acquire) == DONE {
            return;
        }
        let mut f = Some(f);
        self.call_once_slow(&mut || (f.take().expect("gort: Once closure taken twice"))());
    }

    /// Whether a call has finished (including one whose closure panicked, see
    /// [`Once::call_once`]). When this returns `true`, everything the closure did is visible.
    #[inline]
    pub fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    #[cold]
    fn call_once_slow(&self, f: &mut dyn FnMut()) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            match s {
                DONE => return,
                INCOMPLETE => match self.state.compare_exchange_weak(
                    INCOMPLETE,
                    RUNNING,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        // Marks the Once done when `f` returns or unwinds.
                        let _done = Finish(self);
                        f();
                        return;
                    }
                    Err(now) => s = now,
                },
                _ => {
                    self.wait_for_runner();
                    return;
                }
            }
        }
    }

    /// Parks until the running call finishes.
    fn wait_for_runner(&self) {
        let node = pin!(Waiter::new());
        {
            let mut q = self.queue.lock();
            let mut s = self.state.load(Ordering::Acquire);
            loop {
                if s == DONE {
                    return;
                }
                debug_assert!(s & RUNNING != 0);
                if s & PARKED != 0 {
                    break;
                }
                match self.state.compare_exchange_weak(
                    s,
                    s | PARKED,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            q.push_back(node.as_ref());
        }
        let status = node.as_ref().wait(WaitReason::Once);
        debug_assert_eq!(status, FINISHED);
    }
}

/// Ends the running call: `DONE`, then wakes the waiters.
struct Finish<'a>(&'a Once);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let once = self.0;
        let prev = once.state.swap(DONE, Ordering::AcqRel);
        if prev & PARKED != 0 {
            once.queue.wake_all(|q| q.pop_front(FINISHED));
        }
    }
}

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once")
            .field("completed", &self.is_completed())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn runs_once_across_threads() {
        let once = Arc::new(Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (once, runs) = (once.clone(), runs.clone());
                std::thread::spawn(move || {
                    once.call_once(|| {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        runs.fetch_add(1, Ordering::Relaxed);
                    });
                    // Everything the call did is visible once call_once returns.
                    assert_eq!(runs.load(Ordering::Relaxed), 1);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(once.is_completed());
    }

    #[test]
    fn a_panicking_call_marks_it_done() {
        let once = Once::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            once.call_once(|| panic!("init failed"));
        }));
        assert!(r.is_err());
        assert!(once.is_completed());
        once.call_once(|| unreachable!("runs at most once"));
        assert_eq!(format!("{once:?}"), "Once { completed: true, .. }");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Loom model: every caller returns after the single run and sees its effect (a lost wake
    //! would leave a waiter parked forever, which loom reports).

    use super::*;
    use loom::cell::UnsafeCell as LoomUnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn loom_concurrent_callers_wait_for_the_runner() {
        loom::model(|| {
            let shared = Arc::new((Once::new(), LoomUnsafeCell::new(0u32)));
            let call = |s: &(Once, LoomUnsafeCell<u32>)| {
                // SAFETY: only the single runner writes, and readers are ordered after it by the
                // Once (loom reports a race otherwise).
                s.0.call_once(|| s.1.with_mut(|p| unsafe { *p += 1 }));
                assert_eq!(s.1.with(|p| unsafe { *p }), 1);
            };
            let s2 = shared.clone();
            let t = thread::spawn(move || call(&s2));
            call(&shared);
            t.join().unwrap();
        });
    }
}
