//! `Condvar`: a condition variable for gort's [`Mutex`](super::Mutex) (Go's `sync.Cond`, std's API).
//!
//! # Protocol
//! The condvar is a FIFO [`WaitQueue`] whose lock also guards a ticket counter. `wait` takes a
//! ticket, links its waiter record at the tail and only *then* unlocks the mutex, parks until a
//! notifier unlinks the record, and locks the mutex again. `notify_one` unlinks the oldest waiter;
//! `notify_all` unlinks, in batches with the queue lock released in between (no allocation), every
//! waiter whose ticket was issued before the call — so it ends even if woken waiters keep coming
//! back. A timed wait that reaches its deadline unlinks itself under the queue lock; if a notifier
//! got there first, the notification wins and the wait reports that it was notified.
//!
//! # Why no wake is lost
//! A waiter is in the queue before it releases the mutex. A notifier that changed the condition
//! under the mutex did so either before the waiter locked it (then the waiter saw the new condition
//! and did not wait) or after the waiter unlocked it, and then the waiter's linking happened before
//! the notifier's mutex acquisition, so the notifier sees the waiter — even through the lock-free
//! emptiness check of the fast path, which is ordered by that same mutex hand-over. A notification
//! is delivered through the waiter's status word, so a spurious return from `park` cannot eat it,
//! and `wait` returns only after a notification (or, for timed waits, the deadline): this
//! implementation has no spurious wake-ups, though callers should still loop on their condition
//! (or use [`Condvar::wait_while`]) as with any condition variable — another goroutine may have
//! taken the mutex first and changed the condition back.
//!
//! A condvar is not tied to one mutex: each wait unlocks and relocks the mutex of the guard it is
//! given, nothing else.

use std::fmt;
use std::pin::pin;
use std::time::Duration;

use super::mutex::MutexGuard;
use super::rt;
use super::waitq::{WaitQueue, Waiter};
use crate::park::WaitReason;

/// Waiter token: notified.
const NOTIFIED: u8 = 2;

/// A condition variable: goroutines wait on it with a [`MutexGuard`] until another one notifies
/// them. Waiting parks the goroutine (a plain thread blocks); waiters are woken in FIFO order.
///
/// ```
/// use gort_goroutine::sync::{Condvar, Mutex};
/// use std::sync::Arc;
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let pair2 = pair.clone();
/// gort_goroutine::spawn(move || {
///     let (ready, cv) = &*pair2;
///     *ready.lock() = true;
///     cv.notify_one();
/// });
/// let (ready, cv) = &*pair;
/// let guard = cv.wait_while(ready.lock(), |ready| !*ready);
/// assert!(*guard);
/// ```
pub struct Condvar {
    /// Waiters, and the next ticket to hand out.
    queue: WaitQueue<u64>,
}

/// Whether a timed wait ([`Condvar::wait_timeout`], [`Condvar::wait_timeout_while`]) ended
/// because its timeout elapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the timeout elapsed (rather than by a notification, or, for
    /// `wait_timeout_while`, by the condition becoming false).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    super::loom_const_fn! {
        /// A condition variable with no waiters. `const`, so it can initialize a `static`.
        pub fn new() -> Condvar {
            Condvar {
                queue: WaitQueue::new(0),
            }
        }
    }

    /// Links a new waiter record for the caller (with a fresh ticket).
    fn enqueue(&self, node: std::pin::Pin<&Waiter<u64>>) {
        let mut q = self.queue.lock();
        let ticket = *q.extra();
        *q.extra() = ticket + 1;
        node.set_ticket(ticket);
        q.push_back(node);
    }

    /// Unlocks the guard's mutex, parks until notified, and locks the mutex again before
    /// returning the new guard.
    ///
    /// Returns only after a notification, but the condition may have changed again by then (the
    /// mutex is re-acquired in competition with others): loop, or use [`Condvar::wait_while`].
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex = guard.mutex;
        let node = pin!(Waiter::new());
        self.enqueue(node.as_ref());
        drop(guard);
        node.as_ref().wait(WaitReason::Cond);
        mutex.lock()
    }

    /// Waits while `condition` holds for the protected data: returns the guard once it is false
    /// (at once if it already is).
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> MutexGuard<'a, T>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Like [`Condvar::wait`], but gives up after `timeout`; the result says whether it timed out.
    /// The mutex is locked again either way. A notification that races with the timeout is never
    /// lost: if it unlinked the waiter first, the wait reports that it was notified.
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let Some(deadline) = rt::Deadline::after(timeout) else {
            // Too far in the future to represent: an untimed wait.
            return (self.wait(guard), WaitTimeoutResult(false));
        };
        let mutex = guard.mutex;
        let node = pin!(Waiter::new());
        self.enqueue(node.as_ref());
        drop(guard);
        let notified = node
            .as_ref()
            .wait_until(&deadline, WaitReason::Cond)
            .is_some();
        (mutex.lock(), WaitTimeoutResult(!notified))
    }

    /// Waits while `condition` holds, for at most `timeout` in total. Returns the guard and
    /// whether the timeout elapsed with the condition still true.
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult)
    where
        F: FnMut(&mut T) -> bool,
    {
        let start = std::time::Instant::now();
        loop {
            if !condition(&mut *guard) {
                return (guard, WaitTimeoutResult(false));
            }
            let Some(left) = timeout.checked_sub(start.elapsed()) else {
                return (guard, WaitTimeoutResult(true));
            };
            guard = self.wait_timeout(guard, left).0;
        }
    }

    /// Wakes the longest-waiting waiter, if any.
    ///
    /// Notifying while holding the mutex or after releasing it both work; a waiter that started
    /// waiting after this call is not woken by it.
    pub fn notify_one(&self) {
        if self.queue.is_empty_hint() {
            return;
        }
        let waker = self.queue.lock().pop_front(NOTIFIED);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Wakes every goroutine (or thread) waiting at the time of the call.
    pub fn notify_all(&self) {
        if self.queue.is_empty_hint() {
            return;
        }
        // Tickets below `end` were issued before this call; read it under the first lock.
        let mut end = None;
        self.queue.wake_all(|q| {
            let end = *end.get_or_insert(*q.extra());
            match q.front() {
                Some(w) if w.ticket() < end => q.pop_front(NOTIFIED),
                _ => None,
            }
        });
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::Mutex;
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn notify_without_waiters_is_a_no_op() {
        let cv = Condvar::new();
        cv.notify_one();
        cv.notify_all();
    }

    #[test]
    fn threads_wait_and_get_notified() {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let pair = pair.clone();
                std::thread::spawn(move || {
                    let (m, cv) = &*pair;
                    let g = cv.wait_while(m.lock(), |n| *n == 0);
                    *g
                })
            })
            .collect();
        *pair.0.lock() = 7;
        pair.1.notify_all();
        for w in waiters {
            assert_eq!(w.join().unwrap(), 7);
        }
    }

    #[test]
    fn wait_timeout_times_out_and_relocks() {
        let m = Mutex::new(());
        let cv = Condvar::new();
        let start = Instant::now();
        let (g, r) = cv.wait_timeout(m.lock(), Duration::from_millis(20));
        assert!(r.timed_out());
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(m.is_locked());
        drop(g);
        let (_g, r) = cv.wait_timeout_while(m.lock(), Duration::from_millis(5), |_| true);
        assert!(r.timed_out());
    }

    #[test]
    fn huge_timeout_is_an_untimed_wait() {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p2 = pair.clone();
        let t = std::thread::spawn(move || {
            let (m, cv) = &*p2;
            let (g, r) = cv.wait_timeout_while(m.lock(), Duration::MAX, |done| !*done);
            assert!(*g && !r.timed_out());
        });
        std::thread::sleep(Duration::from_millis(5));
        *pair.0.lock() = true;
        pair.1.notify_all();
        t.join().unwrap();
    }

    #[test]
    fn notify_all_wakes_more_than_one_batch() {
        let pair = Arc::new((Mutex::new((0usize, false)), Condvar::new()));
        let n = 40; // more than one wake batch
        let waiters: Vec<_> = (0..n)
            .map(|_| {
                let pair = pair.clone();
                std::thread::spawn(move || {
                    let (m, cv) = &*pair;
                    let mut g = m.lock();
                    g.0 += 1;
                    drop(cv.wait_while(g, |s| !s.1));
                })
            })
            .collect();
        let (m, cv) = &*pair;
        while m.lock().0 < n {
            std::thread::yield_now();
        }
        m.lock().1 = true;
        cv.notify_all();
        for w in waiters {
            w.join().unwrap();
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Loom models: a notification is never lost (a lost one leaves the waiter parked forever,
    //! which loom reports), including when it races with a timeout.

    use super::super::Mutex;
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn loom_notify_one_is_not_lost() {
        let _clock = rt::model_clock(rt::NEVER_LONG);
        loom::model(|| {
            let pair = Arc::new((Mutex::new(false), Condvar::new()));
            let p2 = pair.clone();
            let t = thread::spawn(move || {
                *p2.0.lock() = true;
                p2.1.notify_one();
            });
            let (m, cv) = &*pair;
            let g = cv.wait_while(m.lock(), |ready| !*ready);
            assert!(*g);
            drop(g);
            t.join().unwrap();
        });
    }

    #[test]
    fn loom_notify_all_wakes_both() {
        let _clock = rt::model_clock(rt::NEVER_LONG);
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(|| {
            let pair = Arc::new((Mutex::new(false), Condvar::new()));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let p = pair.clone();
                    thread::spawn(move || {
                        let (m, cv) = &*p;
                        drop(cv.wait_while(m.lock(), |ready| !*ready));
                    })
                })
                .collect();
            *pair.0.lock() = true;
            pair.1.notify_all();
            for w in waiters {
                w.join().unwrap();
            }
        });
    }

    #[test]
    fn loom_timeout_races_with_notify() {
        let _clock = rt::model_clock(rt::NEVER_LONG);
        loom::model(|| {
            let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
            let p2 = pair.clone();
            let t = thread::spawn(move || {
                *p2.0.lock() += 1;
                p2.1.notify_one();
            });
            let (m, cv) = &*pair;
            let g = m.lock();
            let before = *g;
            let (g, r) = cv.wait_timeout(g, Duration::from_millis(1));
            if !r.timed_out() {
                // Only a notification ends an untimed-out wait, and it comes after the increment.
                assert_eq!(before, 0);
                assert_eq!(*g, 1);
            }
            drop(g);
            t.join().unwrap();
            // Whatever happened, the queue is empty again (a timed-out waiter unlinked itself).
            assert!(cv.queue.is_empty_hint());
        });
    }
}
