//! `Mutex`: Go's `sync.Mutex` policy behind Rust's guard API.
//!
//! # State word
//! One `AtomicU32` with four bits:
//! * `LOCKED`: somebody holds the mutex.
//! * `PARKED`: the wait queue is not empty. Set (together with a check that `LOCKED` is set) only
//!   by a waiter that then links itself, and cleared only by the unlocker that unlinks the last
//!   waiter; both happen under the queue lock.
//! * `WOKEN`: somebody who will try to take the mutex is awake — a waiter that was just woken, or a
//!   newcomer (a plain thread) spinning on a held mutex, announcing itself to parked waiters. An unlock that
//!   sees `WOKEN` wakes nobody: that goroutine will see the mutex free, or park again.
//! * `STARVING`: starvation mode (below).
//!
//! The uncontended paths are one CAS each: `0 -> LOCKED` to lock, `LOCKED -> 0` to unlock. Anything
//! else goes to the slow paths.
//!
//! # Policy: normal mode and starvation mode (as Go)
//! In *normal mode* an unlock releases the mutex and wakes the oldest waiter, which then competes
//! with whoever else arrives: a running goroutine may barge in ahead of it and take the mutex
//! (possibly many times in a row), which keeps throughput high, because handing the mutex to a
//! goroutine that still has to be scheduled leaves it idle meanwhile. A woken waiter that loses goes
//! back to the *front* of the queue. A goroutine that finds the mutex held parks at once (a
//! goroutine's park and wake are cheap); a plain thread first spins briefly on multi-core machines
//! (4 rounds of exponential back-off, 15 pause instructions in all), since its park is a futex
//! round trip. Unlike Go, goroutines do not spin: Go asks its scheduler whether a spin can pay off
//! (see `rt::can_spin` for the measurements behind this).
//!
//! A waiter that has waited for more than **1 ms** switches the mutex to *starvation mode*: it sets
//! `STARVING` when it loses a race after being woken, or the unlocker notices it at the head of the
//! queue. In starvation mode an unlock *hands the mutex over* to the oldest waiter: `LOCKED` stays
//! set, so newcomers can neither barge nor usefully spin, and queue at the tail. The mutex returns
//! to normal mode when the waiter it is handed to is the last one, or had waited less than 1 ms.
//! So no waiter waits much longer than 1 ms plus the critical sections of those queued before it.
//!
//! # Invariants
//! * `STARVING` implies `LOCKED` and `PARKED`: it is only set by a waiter that also sets `PARKED`
//!   while seeing `LOCKED`, a hand-off keeps `LOCKED`, and the hand-off that empties the queue
//!   clears `STARVING`. So "free" always means "free for anyone", and in starvation mode nobody can
//!   take the mutex except by hand-off.
//! * `WOKEN` has at most one holder, who is running (not parked): it is set by a CAS that saw it
//!   clear (by a spinner, or by the unlocker on behalf of the waiter it wakes), and its holder
//!   clears it in the same CAS that either takes the mutex or parks.
//!
//! # Why no wake is lost
//! A waiter parks only after a CAS, under the queue lock, that saw `LOCKED` and set `PARKED`; it
//! links itself before releasing the queue lock. An unlock that clears `LOCKED` either saw `PARKED`
//! with `WOKEN` clear — then it takes the queue lock (so it finds every waiter whose CAS preceded
//! its own) and wakes the oldest — or saw `WOKEN`, whose holder is awake and will retry: it takes
//! the free mutex, or finds it held by someone else, whose unlock comes later, after the holder has
//! given `WOKEN` up in its park CAS. A waiter whose park CAS comes after the unlock sees `LOCKED`
//! clear and retries instead of parking. A hand-off never clears `LOCKED`, and is delivered through
//! the waiter's status word, so it cannot be missed either.
//!
//! # No poisoning, guards across threads
//! A panic while the mutex is held unlocks it (the guard's `Drop` runs during unwinding) and the next
//! `lock` simply gets the guard. The guard may be held across blocking calls and dropped on another
//! OS thread (see the module docs of `gort::sync`); it is `Send` when `T: Send`.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::pin;

use super::rt::{self, AtomicU32, Ordering};
use super::waitq::{WaitQueue, Waiter};
use crate::park::WaitReason;

const LOCKED: u32 = 1;
const WOKEN: u32 = 2;
const STARVING: u32 = 4;
const PARKED: u32 = 8;

/// Waiter token: woken in normal mode, compete for the mutex.
const COMPETE: u8 = 2;
/// Waiter token: the mutex was handed over; the waiter owns it.
const HANDOFF: u8 = 3;

/// The lock without data: the state word and the wait queue. `RwLock` uses it to serialize
/// writers.
pub(super) struct RawMutex {
    state: AtomicU32,
    queue: WaitQueue,
}

impl RawMutex {
    super::loom_const_fn! {
        /// An unlocked mutex.
        pub(super) fn new() -> RawMutex {
            RawMutex {
                state: AtomicU32::new(0),
                queue: WaitQueue::new(()),
            }
        }
    }

    /// Takes the mutex if it is free (also while waiters are parked: a try is a barging attempt).
    #[inline]
    pub(super) fn try_lock(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & LOCKED == 0 {
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// Takes the mutex, parking until it is available.
    #[inline]
    pub(super) fn lock(&self) {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
    }

    /// Releases the mutex.
    ///
    /// # Safety
    /// The caller holds the mutex (and gives it up now).
    #[inline]
    pub(super) unsafe fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    /// Whether somebody holds the mutex right now.
    pub(super) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    #[cold]
    fn lock_slow(&self) {
        let node = pin!(Waiter::<()>::new());
        // Spin rounds since we last woke up.
        let mut spins = 0;
        // Whether we hold the WOKEN bit.
        let mut awake = false;
        // When we first parked.
        let mut since: Option<rt::Stamp> = None;
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            // Free: take it. (STARVING implies LOCKED, so a free mutex is nobody's reservation.)
            if s & LOCKED == 0 {
                let new = if awake {
                    (s | LOCKED) & !WOKEN
                } else {
                    s | LOCKED
                };
                match self
                    .state
                    .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => return,
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }

            // Held, normal mode: a plain thread spins a little, telling unlockers not to wake a
            // parked waiter since it is here to take the mutex.
            if s & STARVING == 0 && rt::can_spin(spins) {
                if !awake
                    && s & (WOKEN | PARKED) == PARKED
                    && self
                        .state
                        .compare_exchange(s, s | WOKEN, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    awake = true;
                }
                rt::spin(spins);
                spins += 1;
                s = self.state.load(Ordering::Relaxed);
                continue;
            }

            // Park. A waiter that has been woken before goes back to the front of the queue, and
            // switches the mutex to starvation mode if it has waited too long.
            let first = since.is_none();
            let started = *since.get_or_insert_with(rt::now);
            let starving = !first && rt::waited_long(started);
            {
                let mut q = self.queue.lock();
                s = self.state.load(Ordering::Relaxed);
                let parked = loop {
                    if s & LOCKED == 0 {
                        break false;
                    }
                    let mut new = s | PARKED;
                    if awake {
                        new &= !WOKEN;
                    }
                    if starving {
                        new |= STARVING;
                    }
                    match self.state.compare_exchange_weak(
                        s,
                        new,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break true,
                        Err(now) => s = now,
                    }
                };
                if !parked {
                    // Freed meanwhile: go take it (still holding WOKEN if we had it).
                    continue;
                }
                // (Our WOKEN, if any, went with that CAS; `awake` is set again below.)
                node.set_since(started);
                if first {
                    q.push_back(node.as_ref());
                } else {
                    q.push_front(node.as_ref());
                }
            }
            match node.as_ref().wait(WaitReason::Lock) {
                // The unlocker left LOCKED set for us and already updated PARKED and STARVING.
                HANDOFF => return,
                status => {
                    debug_assert_eq!(status, COMPETE);
                    // The unlocker set WOKEN on our behalf.
                    awake = true;
                    spins = 0;
                    s = self.state.load(Ordering::Relaxed);
                }
            }
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        debug_assert!(s & LOCKED != 0, "gort: unlock of an unlocked Mutex");
        // Nobody to wake (no waiter, or one is awake already): just release.
        while s & STARVING == 0 && (s & PARKED == 0 || s & WOKEN != 0) {
            match self.state.compare_exchange_weak(
                s,
                s & !LOCKED,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }

        let mut q = self.queue.lock();
        // While we hold both the mutex and the queue lock, only WOKEN can change (a spinner
        // announcing itself): PARKED and STARVING change under the queue lock, LOCKED is ours.
        s = self.state.load(Ordering::Relaxed);
        loop {
            let front_since = q.front().map(|w| w.since());
            let wake = match front_since {
                // PARKED without waiters happens only if a waiter's wait unwound (it unlinked
                // itself): release and drop the stale bits.
                None => {
                    let new = s & !(LOCKED | PARKED | STARVING);
                    match self.state.compare_exchange_weak(
                        s,
                        new,
                        Ordering::Release,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return,
                        Err(now) => {
                            s = now;
                            continue;
                        }
                    }
                }
                Some(since) => {
                    let long = since.is_some_and(rt::waited_long);
                    let last = q.has_one();
                    if s & STARVING != 0 || long {
                        // Hand over: LOCKED stays set for the oldest waiter. Stay in (or enter)
                        // starvation mode only if it waited long and others still wait.
                        let mut new = s & !STARVING;
                        if long && !last {
                            new |= STARVING;
                        }
                        if last {
                            new &= !PARKED;
                        }
                        (new, HANDOFF)
                    } else if s & WOKEN != 0 {
                        // A spinner announced itself since we looked: it will take the mutex.
                        (s & !LOCKED, 0)
                    } else {
                        let mut new = (s & !LOCKED) | WOKEN;
                        if last {
                            new &= !PARKED;
                        }
                        (new, COMPETE)
                    }
                }
            };
            let (new, token) = wake;
            // Release: our critical section must be visible to whoever takes the mutex next (a
            // hand-off also publishes it through the waiter's status word).
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if token != 0 {
                        let waker = q.pop_front(token);
                        drop(q);
                        if let Some(w) = waker {
                            w.wake();
                        }
                    }
                    return;
                }
                Err(now) => s = now,
            }
        }
    }
}

impl fmt::Debug for RawMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("RawMutex")
            .field("locked", &(s & LOCKED != 0))
            .field("waiters", &(s & PARKED != 0))
            .field("starving", &(s & STARVING != 0))
            .finish()
    }
}

/// A mutual exclusion lock that parks goroutines, not threads (Go's `sync.Mutex`, with std's guard
/// API).
///
/// `lock` returns the guard itself: there is **no poisoning**. A panic while the lock is held
/// unlocks it during unwinding, as in Go and parking_lot, and later `lock` calls succeed as usual
/// (the data is whatever the panicking code left). A contended `lock` parks the calling goroutine
/// (a plain thread blocks); uncontended lock and unlock are one atomic instruction each.
///
/// Fairness follows Go: waiters normally compete with running goroutines (fast), but a waiter that
/// has waited more than 1 ms gets the lock handed to it directly (no starvation). See the module
/// docs of `mutex.rs` for the protocol.
///
/// Unlike a `std::sync::MutexGuard`, a [`MutexGuard`] may be held across blocking calls (channel
/// operations, `join`, `yield_now`, another lock) and released on another OS thread: the goroutine
/// may have migrated meanwhile, and that is fine for this lock.
///
/// ```
/// use gort_goroutine::sync::Mutex;
/// use std::sync::Arc;
///
/// let total = Arc::new(Mutex::new(0u64));
/// let handles: Vec<_> = (0..8)
///     .map(|_| {
///         let total = total.clone();
///         gort_goroutine::spawn(move || {
///             for _ in 0..1000 {
///                 *total.lock() += 1;
///             }
///         })
///     })
///     .collect();
/// for h in handles {
///     h.join().unwrap();
/// }
/// assert_eq!(*total.lock(), 8000);
/// ```
pub struct Mutex<T: ?Sized> {
    pub(super) raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `T` to one thread at a time, so it may be shared between
// threads when `T` may be sent between them (std's rule). `Send` is automatic.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    super::loom_const_fn! {
        /// An unlocked mutex holding `value`. `const`, so it can initialize a `static`.
        pub fn new(value: T) -> Mutex<T> {
            Mutex {
                raw: RawMutex::new(),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Consumes the mutex and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, parking the calling goroutine (blocking a plain thread) until it is
    /// available, and returns the guard that unlocks it on drop.
    ///
    /// Locking a mutex the caller already holds deadlocks (the mutex is not re-entrant).
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        crate::sysmon::safe_point();
        self.raw.lock();
        MutexGuard {
            mutex: self,
            _not_sync_unless_t: PhantomData,
        }
    }

    /// Locks the mutex if it is free right now, without waiting.
    ///
    /// While waiters are parked in normal mode a `try_lock` may take the mutex ahead of them, as a
    /// running `lock` caller may.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        if self.raw.try_lock() {
            Some(MutexGuard {
                mutex: self,
                _not_sync_unless_t: PhantomData,
            })
        } else {
            None
        }
    }

    /// Whether the mutex is held right now (a snapshot, for diagnostics and tests).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The data, through a unique borrow of the mutex (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Holds a [`Mutex`] locked; unlocks it on drop (also when dropped by unwinding: no poisoning).
///
/// Dereferences to the data. It may be held across blocking calls and dropped on another thread
/// (`Send` when `T: Send`), unlike std's guard.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    pub(super) mutex: &'a Mutex<T>,
    /// Makes the guard `Sync` only when `T: Sync` (a shared guard hands out `&T`), and `Send`
    /// only when `T: Send` (it hands out `&mut T`).
    _not_sync_unless_t: PhantomData<&'a mut T>,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the mutex is held, so no one else accesses the data.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow through the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds the mutex and gives it up here, exactly once.
        unsafe { self.mutex.raw.unlock() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lock_try_lock_and_data_access() {
        let m = Mutex::new(vec![1]);
        m.lock().push(2);
        {
            let g = m.lock();
            assert!(m.is_locked());
            assert!(m.try_lock().is_none());
            assert_eq!(*g, [1, 2]);
        }
        assert!(!m.is_locked());
        m.try_lock().expect("free").push(3);
        assert_eq!(m.into_inner(), [1, 2, 3]);
    }

    #[test]
    fn get_mut_default_from_and_unsized() {
        let mut m: Mutex<u32> = Mutex::default();
        *m.get_mut() += 5;
        assert_eq!(*m.lock(), 5);
        assert_eq!(*Mutex::from(7).lock(), 7);
        let boxed: Box<Mutex<[u8]>> = Box::new(Mutex::new([1, 2, 3]));
        boxed.lock()[0] = 9;
        assert_eq!(&*boxed.lock(), &[9, 2, 3]);
    }

    #[test]
    fn usable_in_a_static() {
        static COUNT: Mutex<u64> = Mutex::new(0);
        *COUNT.lock() += 1;
        assert!(*COUNT.lock() >= 1);
    }

    #[test]
    fn debug_shows_data_or_locked() {
        let m = Mutex::new(3);
        assert_eq!(format!("{m:?}"), "Mutex { data: 3, .. }");
        let g = m.lock();
        assert_eq!(format!("{m:?}"), "Mutex { data: <locked>, .. }");
        assert_eq!(format!("{g:?} {g}"), "3 3");
    }

    #[test]
    fn small_footprint() {
        // The state word plus the wait queue (a std mutex and a head pointer).
        assert!(std::mem::size_of::<Mutex<()>>() <= 24);
    }

    #[test]
    fn guard_is_send_and_unlocks_on_another_thread() {
        fn assert_send<T: Send>(_: &T) {}
        let m = Arc::new(Mutex::new(0));
        let g = m.lock();
        assert_send(&g);
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut g = g;
                *g += 1;
            });
        });
        assert_eq!(*m.lock(), 1);
    }

    #[test]
    fn threads_contend_and_park() {
        let m = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *m.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 80_000);
        assert_eq!(m.raw.state.load(Ordering::Relaxed), 0, "no stale bits");
    }

    #[test]
    fn a_long_waiter_gets_the_lock_handed_over() {
        // One thread re-locks in a tight loop; the other must still get in (starvation mode).
        let m = Arc::new(Mutex::new(()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hog = {
            let (m, stop) = (m.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _g = m.lock();
                    n += 1;
                    std::hint::black_box(n);
                }
            })
        };
        for _ in 0..20 {
            drop(m.lock());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hog.join().unwrap();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Loom models of the mutex protocol. The protected counter is a `loom::cell::UnsafeCell`, so
    //! a missing happens-before edge between critical sections is reported as a data race; a lost
    //! wake-up leaves every thread parked, which loom reports as a deadlock.

    use super::*;
    use loom::cell::UnsafeCell as LoomUnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    struct Shared {
        m: Mutex<()>,
        count: LoomUnsafeCell<usize>,
    }

    fn increment(s: &Shared) {
        let _g = s.m.lock();
        s.count.with_mut(|p| {
            // SAFETY: the mutex is held (loom checks that no other access races with this one).
            unsafe { *p += 1 }
        });
    }

    fn run(threads: usize, rounds: usize, clock: usize, preemptions: Option<usize>) {
        let _clock = rt::model_clock(clock);
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = preemptions;
        }
        b.check(move || {
            rt::reset_clock();
            let s = Arc::new(Shared {
                m: Mutex::new(()),
                count: LoomUnsafeCell::new(0),
            });
            let handles: Vec<_> = (0..threads - 1)
                .map(|_| {
                    let s = s.clone();
                    thread::spawn(move || {
                        for _ in 0..rounds {
                            increment(&s);
                        }
                    })
                })
                .collect();
            for _ in 0..rounds {
                increment(&s);
            }
            for h in handles {
                h.join().unwrap();
            }
            let g = s.m.lock();
            // SAFETY: the mutex is held.
            assert_eq!(s.count.with(|p| unsafe { *p }), threads * rounds);
            drop(g);
            assert_eq!(s.m.raw.state.load(Ordering::Relaxed), 0, "stale state bits");
        });
    }

    #[test]
    fn loom_two_threads_normal_mode() {
        run(2, 2, rt::NEVER_LONG, None);
    }

    #[test]
    fn loom_two_threads_starvation_mode() {
        run(2, 2, rt::ALWAYS_LONG, None);
    }

    #[test]
    fn loom_two_threads_mode_switches() {
        run(2, 2, rt::ALTERNATE, None);
    }

    #[test]
    fn loom_three_threads_normal_mode() {
        run(3, 1, rt::NEVER_LONG, Some(3));
    }

    #[test]
    fn loom_three_threads_starvation_mode() {
        run(3, 1, rt::ALWAYS_LONG, Some(3));
    }

    #[test]
    fn loom_three_threads_mode_switches() {
        run(3, 1, rt::ALTERNATE, Some(3));
    }
}
