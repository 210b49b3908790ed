//! Synchronization that parks goroutines, not threads.
//!
//! Every type here waits through the parking core (`crate::park`): a goroutine that waits gives its
//! thread to other goroutines; a plain thread that waits blocks as with std. The types:
//!
//! * [`WaitGroup`]: Go's `sync.WaitGroup`.
//! * [`Mutex`] (with [`MutexGuard`]): Go's `sync.Mutex` with Rust's guard API. One CAS to lock and one
//!   to unlock when uncontended; normal mode lets a running goroutine barge in ahead of parked ones
//!   (throughput), starvation mode hands the lock straight to a waiter that has waited over 1 ms
//!   (fairness), as in Go.
//! * [`RwLock`] (with [`RwLockReadGuard`], [`RwLockWriteGuard`]): Go's `sync.RWMutex`. A waiting
//!   writer blocks new readers, so writers are not starved; readers that queue behind a writer all
//!   get in when it unlocks, before the next writer, so readers are not starved either.
//! * [`Condvar`]: a condition variable for [`MutexGuard`]s (Go's `sync.Cond`, std's API), FIFO.
//! * [`Once`]: Go's `sync.Once`; concurrent callers park until the first call finishes.
//!
//! # No poisoning
//! None of these types poison. As in Go and parking_lot, a panic while a guard is held unwinds
//! through the guard's `Drop`, which unlocks; the next `lock` returns the guard itself, not a
//! `Result`. A panic in [`Once::call_once`]'s closure marks the `Once` done, as Go does (see
//! `once.rs` for why). Code that must not observe a half-updated value after a panic has to restore
//! its invariants itself (or catch the panic) — there is no `PoisonError` to tell it.
//!
//! # Guards and goroutine migration
//! A goroutine can move to another OS thread whenever it blocks. gort's locks are not tied to a
//! thread (nothing records the owner thread, there is no pthread mutex underneath), so a guard may
//! be held across blocking calls — a channel receive, a `join`, `yield_now`, a sleep, even parking on
//! another gort lock — and released on a different thread than the one that took it. That is exactly
//! what a `std::sync::MutexGuard` must not do, which is why std's guards are `!Send` and ours are
//! `Send` when the protected data allows it. (Holding a lock across a long blocking call is still a
//! design smell: everyone else queues behind it.)
//!
//! # Async tasks
//! These are blocking primitives. In an async task (`spawn_async`) a contended `lock` blocks the
//! worker thread like a std lock would, so keep such critical sections short there.
//!
//! # Shared machinery
//! `Mutex`, `RwLock` and `Once` keep a *state word* (or counters) that their fast paths update with
//! one atomic instruction; `Condvar`'s fast path is a lock-free look at whether anyone waits. The
//! slow paths share one wait queue (`waitq::WaitQueue`): an intrusive FIFO of waiter records that
//! live on the waiters' own stacks (goroutine stacks stay put while parked), guarded by a
//! short-held std mutex that is never held across a park. A waiter links its record and stores its
//! `Waker` under that mutex; whoever wakes it unlinks the record, takes the waker and *then*
//! publishes a token in the record's status word. The waiter parks until the status changes, so
//! spurious returns from `park` are harmless, and nothing touches a record after its waiter may
//! have returned. Parking costs no heap allocation, and waking many waiters (`notify_all`, a
//! writer admitting queued readers) wakes them in batches with the queue lock released. Each module
//! opens with its own protocol and its no-lost-wake argument. Goroutine dumps show waiters as
//! `sync.Mutex.Lock` (both locks), `sync.Cond.Wait` or `sync.Once.Do`.
//!
//! # Loom models
//! `mutex.rs`, `rwlock.rs`, `condvar.rs` and `once.rs` each hold a `loom_tests` module: the
//! protocols run under loom's scheduler with loom's atomics, mutex and a loom parking spot per
//! thread (`rt` below swaps them in under `cfg(all(loom, test))`, and replaces the clock behind
//! starvation mode and timeouts with deterministic answers), checking mutual exclusion through
//! `loom::cell::UnsafeCell` (a missing happens-before edge is a reported data race) and the absence
//! of lost wake-ups (a waiter left parked forever is a reported deadlock). Three-thread models are
//! bounded to 3 preemptions; `LOOM_MAX_PREEMPTIONS` overrides every bound. Run them with
//! `scripts/loom.sh` (all loom models of the crate) or, for these only,
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p gort-goroutine --release --lib
//! -- sync::` (a few seconds; about 9 minutes with `LOOM_MAX_PREEMPTIONS=5`).

mod condvar;
mod mutex;
mod once;
mod rwlock;
mod waitgroup;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
pub use once::Once;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use waitgroup::WaitGroup;

/// Declares a `const fn` in normal builds and a plain `fn` in loom test builds, where loom's atomics
/// and mutex have no `const` constructors. Lets `static M: Mutex<T> = Mutex::new(..)` work for users
/// while the loom models still build.
macro_rules! loom_const_fn {
    ($(#[$m:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(all(loom, test)))]
        $(#[$m])* $vis const fn $($rest)*
        #[cfg(all(loom, test))]
        $(#[$m])* $vis fn $($rest)*
    };
}
pub(crate) use loom_const_fn;

/// What the sync types need from the platform, in one place so that loom test builds can swap it:
/// atomics, the short-held queue lock, the parking core, the clock behind starvation mode and
/// timeouts, and spinning.
mod rt {
    pub(super) use imp::*;

    #[cfg(not(all(loom, test)))]
    mod imp {
        use std::sync::atomic::AtomicUsize as StdAtomicUsize;
        use std::time::{Duration, Instant};

        pub(crate) use crate::park::current_waker;
        pub(crate) use std::sync::atomic::{AtomicIsize, AtomicPtr, AtomicU32, AtomicU8, Ordering};

        use crate::park::WaitReason;
        pub(crate) use std::sync::{Mutex as QueueLock, MutexGuard as QueueLockGuard};

        /// How long a `Mutex` waiter may wait before the mutex switches to starvation mode (Go's
        /// `starvationThresholdNs`).
        const STARVATION_THRESHOLD: Duration = Duration::from_millis(1);

        /// Spin rounds before a plain thread parks on a held `Mutex`.
        const SPIN_ROUNDS: u32 = 4;

        /// Parks the calling goroutine (or thread), recording `reason` for goroutine dumps.
        pub(crate) fn park(reason: WaitReason) {
            crate::park::park_with(reason);
        }

        /// When a waiter started waiting.
        pub(crate) type Stamp = Instant;

        /// Now, for [`waited_long`].
        pub(crate) fn now() -> Stamp {
            Instant::now()
        }

        /// Whether a waiter that started waiting at `since` has waited past the starvation
        /// threshold.
        pub(crate) fn waited_long(since: Stamp) -> bool {
            since.elapsed() >= STARVATION_THRESHOLD
        }

        /// A timeout's end, for `Condvar::wait_timeout`.
        pub(crate) struct Deadline(Instant);

        impl Deadline {
            /// `timeout` from now, or `None` if that is too far in the future to represent (then
            /// the wait has no deadline).
            pub(crate) fn after(timeout: Duration) -> Option<Deadline> {
                Instant::now().checked_add(timeout).map(Deadline)
            }

            /// Whether the deadline has passed.
            pub(crate) fn passed(&self) -> bool {
                Instant::now() >= self.0
            }

            /// Parks until woken or until the deadline, whichever comes first (may return early).
            pub(crate) fn park(&self, reason: WaitReason) {
                crate::park::park_until_with(self.0, reason);
            }
        }

        /// Whether a `Mutex` waiter should spin once more (round `round`, from 0) before parking.
        ///
        /// Only plain threads spin, and only on multi-core machines: their park is a futex round
        /// trip of microseconds, which a short spin often avoids. Goroutines park at once. Go
        /// spins in goroutines too, but only after asking its scheduler whether that can pay off
        /// (other Ps running, nothing else in the local run queue); without that check a spinning
        /// goroutine mostly waits for a holder that sits in a run queue, possibly its own. Measured
        /// on a 2-core machine (a `pause` there costs ~30 ns, so Go's 4 x 30 pauses are ~4 us),
        /// spinning goroutines gained nothing on short critical sections and cost 3-6x when the
        /// holder yielded inside its critical section.
        pub(crate) fn can_spin(round: u32) -> bool {
            round < SPIN_ROUNDS && multicore() && crate::runtime::current_id().is_none()
        }

        /// Spin round `round`: exponential back-off, 1, 2, 4, 8 pause instructions.
        pub(crate) fn spin(round: u32) {
            for _ in 0..1u32 << round.min(SPIN_ROUNDS) {
                std::hint::spin_loop();
            }
        }

        /// Whether the machine has more than one CPU (cached: the first query reads cgroup files).
        fn multicore() -> bool {
            static NCPU: StdAtomicUsize = StdAtomicUsize::new(0);
            let mut n = NCPU.load(std::sync::atomic::Ordering::Relaxed);
            if n == 0 {
                n = std::thread::available_parallelism().map_or(1, |n| n.get());
                NCPU.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            n > 1
        }
    }

    #[cfg(all(loom, test))]
    mod imp {
        use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
        use std::sync::Arc;
        use std::task::{Wake, Waker};
        use std::time::Duration;

        pub(crate) use loom::sync::atomic::{
            AtomicIsize, AtomicPtr, AtomicU32, AtomicU8, Ordering,
        };
        pub(crate) use loom::sync::{Mutex as QueueLock, MutexGuard as QueueLockGuard};

        use crate::park::WaitReason;

        /// What [`waited_long`] answers in loom models, which replay executions, so the answer must
        /// not depend on real time: [`NEVER_LONG`], [`ALWAYS_LONG`] or [`ALTERNATE`]. Models set it
        /// with [`model_clock`].
        pub(crate) static STARVE: StdAtomicUsize = StdAtomicUsize::new(NEVER_LONG);
        /// Every waiter is fresh: normal mode only.
        pub(crate) const NEVER_LONG: usize = 0;
        /// Every waiter waited long: unlocks always hand over.
        pub(crate) const ALWAYS_LONG: usize = 1;
        /// The answers alternate, starting with "long" (the count is reset by [`reset_clock`] at
        /// the start of each execution, so each execution is deterministic): waiters enter and
        /// leave starvation mode from both the waiter's and the unlocker's side.
        pub(crate) const ALTERNATE: usize = 2;
        static ASKED: StdAtomicUsize = StdAtomicUsize::new(0);

        /// Sets the clock mode for one model and keeps other models that use the sync types from
        /// running until the returned guard is dropped (the mode is process-wide, and a model
        /// whose answers changed mid-run would not replay deterministically).
        pub(crate) fn model_clock(mode: usize) -> std::sync::MutexGuard<'static, ()> {
            static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
            STARVE.store(mode, StdOrdering::Relaxed);
            serial
        }

        /// Restarts the [`ALTERNATE`] sequence; call at the start of each model execution.
        pub(crate) fn reset_clock() {
            ASKED.store(0, StdOrdering::Relaxed);
        }

        loom::thread_local! {
            /// Each loom thread's parking spot. A `loom::sync::Notify` rather than loom's
            /// `park`/`unpark`: loom's `unpark` makes a thread runnable whatever it is blocked on
            /// (a `join`, a loom mutex), while a real unpark only leaves a token for the next
            /// `park`. Our wakers fire after the queue lock is released, so a wake can arrive late,
            /// after its waiter saw its token and moved on; `Notify` keeps such a late wake as a
            /// token (a spurious return of a later `park`, which every wait loops over), as std and
            /// gort do. Loom also explores spurious returns of `Notify::wait` by itself.
            static PARKER: Arc<loom::sync::Notify> = Arc::new(loom::sync::Notify::new());
        }

        /// A waker that notifies a loom thread's [`PARKER`].
        struct LoomWaker(Arc<loom::sync::Notify>);

        impl Wake for LoomWaker {
            fn wake(self: Arc<Self>) {
                self.0.notify();
            }
        }

        /// The calling loom thread's waker.
        pub(crate) fn current_waker() -> Waker {
            Waker::from(Arc::new(LoomWaker(PARKER.with(Arc::clone))))
        }

        /// Parks the calling loom thread until its waker is woken (or spuriously).
        pub(crate) fn park(_reason: WaitReason) {
            PARKER.with(Arc::clone).wait();
        }

        /// Waiting starts are not measured under loom.
        #[derive(Clone, Copy)]
        pub(crate) struct Stamp;

        /// See [`Stamp`].
        pub(crate) fn now() -> Stamp {
            Stamp
        }

        /// The model's choice, see [`STARVE`].
        pub(crate) fn waited_long(_since: Stamp) -> bool {
            match STARVE.load(StdOrdering::Relaxed) {
                NEVER_LONG => false,
                ALWAYS_LONG => true,
                _ => ASKED.fetch_add(1, StdOrdering::Relaxed) % 2 == 0,
            }
        }

        /// A deadline that passes the second time it is asked about: a timed wait checks it once
        /// before its first park, so the model sees both a notification arriving in time and a
        /// timeout racing with one, deterministically.
        pub(crate) struct Deadline(std::cell::Cell<u32>);

        impl Deadline {
            /// Any timeout: passes after one park.
            pub(crate) fn after(_timeout: Duration) -> Option<Deadline> {
                Some(Deadline(std::cell::Cell::new(1)))
            }

            /// See the type.
            pub(crate) fn passed(&self) -> bool {
                let left = self.0.get();
                self.0.set(left.saturating_sub(1));
                left == 0
            }

            /// A timed park that may return at once: a yield.
            pub(crate) fn park(&self, _reason: WaitReason) {
                loom::thread::yield_now();
            }
        }

        /// One spin round at most, so that the models cover a spinner announcing itself.
        pub(crate) fn can_spin(round: u32) -> bool {
            round < 1
        }

        /// A spin is a yield under loom.
        pub(crate) fn spin(_round: u32) {
            loom::thread::yield_now();
        }
    }
}

/// The intrusive FIFO of parked waiters that every lock here shares (see "Shared machinery" above).
mod waitq {
    use std::cell::{Cell, UnsafeCell};
    use std::marker::PhantomPinned;
    use std::pin::Pin;
    use std::ptr;
    use std::task::Waker;

    use super::rt::{self, AtomicPtr, AtomicU8, Ordering, QueueLock, QueueLockGuard};
    use crate::park::WaitReason;

    /// A waiter's status before it is queued, and after it left the queue by itself.
    pub(super) const IDLE: u8 = 0;
    /// A waiter's status while it is linked into a queue. Every other value is a token left by the
    /// waiter's waker, whose meaning belongs to the lock (lock handed over, notified, ...).
    pub(super) const WAITING: u8 = 1;

    /// Most wakers collected under the queue lock before it is released to wake them.
    const WAKE_BATCH: usize = 16;

    /// A waiter record. It lives on the waiting goroutine's (or thread's) stack, pinned, and is
    /// linked into one [`WaitQueue`] at a time.
    ///
    /// Ownership: while `status == WAITING` the record is linked, and its links and `waker` belong
    /// to whoever holds the queue lock. A waker (under the lock) unlinks it, takes `waker`, and
    /// stores a token in `status` as its *last* access; the waiter reads `status` (Acquire) and
    /// returns only once it is not `WAITING`, so a record is never freed while another thread can
    /// still reach it. `Drop` unlinks a record that is still `WAITING` (only reachable if a wait
    /// unwinds), so even then no dangling pointer stays in the queue.
    pub(super) struct Waiter<E = ()> {
        status: AtomicU8,
        /// Under the queue lock: set by the waiter when it links itself, taken by its waker.
        waker: UnsafeCell<Option<Waker>>,
        /// Under the queue lock: neighbours in the circular list (null when unlinked).
        prev: Cell<*const Waiter<E>>,
        next: Cell<*const Waiter<E>>,
        /// The queue this record was last linked into (set at link time; that queue outlives the
        /// record, because every record is a local of a method borrowing the queue's owner).
        queue: Cell<*const WaitQueue<E>>,
        /// Written by the waiter before it links itself, read by others under the queue lock:
        /// when the waiter started waiting (`Mutex`), its ticket (`Condvar`).
        since: Cell<Option<rt::Stamp>>,
        ticket: Cell<u64>,
        _pinned: PhantomPinned,
    }

    impl<E> Waiter<E> {
        /// An unqueued record.
        pub(super) fn new() -> Waiter<E> {
            Waiter {
                status: AtomicU8::new(IDLE),
                waker: UnsafeCell::new(None),
                prev: Cell::new(ptr::null()),
                next: Cell::new(ptr::null()),
                queue: Cell::new(ptr::null()),
                since: Cell::new(None),
                ticket: Cell::new(0),
                _pinned: PhantomPinned,
            }
        }

        /// Sets when the waiter started waiting (before linking it).
        pub(super) fn set_since(&self, since: rt::Stamp) {
            self.since.set(Some(since));
        }

        /// When the waiter started waiting, if it said so.
        pub(super) fn since(&self) -> Option<rt::Stamp> {
            self.since.get()
        }

        /// Sets the waiter's ticket (before linking it).
        pub(super) fn set_ticket(&self, ticket: u64) {
            self.ticket.set(ticket);
        }

        /// The waiter's ticket.
        pub(super) fn ticket(&self) -> u64 {
            self.ticket.get()
        }

        /// Parks until a waker unlinks the record, and returns the token it left. Spurious returns
        /// from `park` just loop. `reason` is what goroutine dumps show meanwhile.
        pub(super) fn wait(self: Pin<&Self>, reason: WaitReason) -> u8 {
            loop {
                let status = self.status.load(Ordering::Acquire);
                if status != WAITING {
                    return status;
                }
                rt::park(reason);
            }
        }

        /// Like [`Waiter::wait`], but gives up at `deadline`: then the waiter unlinks itself and
        /// gets `None`. If a waker unlinked it first (the race is settled under the queue lock),
        /// the waker's token is returned even if the deadline has passed, so a token is never lost.
        pub(super) fn wait_until(
            self: Pin<&Self>,
            deadline: &rt::Deadline,
            reason: WaitReason,
        ) -> Option<u8> {
            loop {
                let status = self.status.load(Ordering::Acquire);
                if status != WAITING {
                    return Some(status);
                }
                if deadline.passed() {
                    // SAFETY: `queue` was set when the record was linked, and that queue outlives
                    // the record (see the field).
                    let queue = unsafe { &*self.queue.get() };
                    let mut q = queue.lock();
                    if q.remove(&self) {
                        return None;
                    }
                    return Some(self.status.load(Ordering::Acquire));
                }
                deadline.park(reason);
            }
        }
    }

    impl<E> Drop for Waiter<E> {
        fn drop(&mut self) {
            // A failing loom model unwinds out of its execution, where loom's mutex can no longer
            // be used (and the execution is discarded anyway).
            #[cfg(all(loom, test))]
            if std::thread::panicking() {
                return;
            }
            if self.status.load(Ordering::Acquire) == WAITING {
                // Still linked: the wait unwound. Unlink before the memory goes away.
                // SAFETY: a WAITING record was linked into `queue`, which outlives it.
                let queue = unsafe { &*self.queue.get() };
                queue.lock().remove(self);
            }
        }
    }

    /// The queue: a circular doubly linked list of [`Waiter`]s under a short-held lock, plus `E`,
    /// data its owner keeps under the same lock (a semaphore's permits, a condvar's ticket
    /// counter).
    pub(super) struct WaitQueue<E = ()> {
        lock: QueueLock<E>,
        /// The oldest waiter, or null. Written only under `lock`; read without it as a hint by
        /// [`WaitQueue::is_empty_hint`].
        head: AtomicPtr<Waiter<E>>,
    }

    // SAFETY: the raw pointers in `head` and in the records are only followed under `lock`, and
    // every record they reach is alive (see `Waiter`); `E` is only reached through `lock`.
    unsafe impl<E: Send> Send for WaitQueue<E> {}
    // SAFETY: as above; all shared access goes through `lock` or is an atomic load of `head`.
    unsafe impl<E: Send> Sync for WaitQueue<E> {}

    impl<E> WaitQueue<E> {
        super::loom_const_fn! {
            /// An empty queue.
            pub(super) fn new(extra: E) -> WaitQueue<E> {
                WaitQueue {
                    lock: QueueLock::new(extra),
                    head: AtomicPtr::new(ptr::null_mut()),
                }
            }
        }

        /// Takes the queue lock. Never held across a park.
        pub(super) fn lock(&self) -> QueueGuard<'_, E> {
            QueueGuard {
                queue: self,
                // Nothing panics while the lock is held (no user code runs under it), so poison
                // can only come from an abort-in-progress; ignore it.
                extra: self.lock.lock().unwrap_or_else(|e| e.into_inner()),
            }
        }

        /// Whether the queue looked empty. Exact for callers ordered after the last change by
        /// some other synchronization (e.g. a condvar notifier that holds the mutex its waiters
        /// held when they queued).
        pub(super) fn is_empty_hint(&self) -> bool {
            self.head.load(Ordering::Relaxed).is_null()
        }

        /// Pops waiters with `next` in batches, waking them with the lock released: `next` pops
        /// one (or returns `None` to stop). At most [`WAKE_BATCH`] wakers are held at a time, so
        /// waking any number of waiters needs no allocation.
        pub(super) fn wake_all(
            &self,
            mut next: impl FnMut(&mut QueueGuard<'_, E>) -> Option<Waker>,
        ) {
            loop {
                let mut batch: [Option<Waker>; WAKE_BATCH] = Default::default();
                let mut full = true;
                {
                    let mut q = self.lock();
                    for slot in batch.iter_mut() {
                        match next(&mut q) {
                            Some(w) => *slot = Some(w),
                            None => {
                                full = false;
                                break;
                            }
                        }
                    }
                }
                for w in batch.into_iter().flatten() {
                    w.wake();
                }
                if !full {
                    return;
                }
            }
        }
    }

    /// The queue lock held: the list and the owner's data.
    pub(super) struct QueueGuard<'a, E> {
        queue: &'a WaitQueue<E>,
        extra: QueueLockGuard<'a, E>,
    }

    impl<E> QueueGuard<'_, E> {
        /// The owner's data kept under the queue lock.
        pub(super) fn extra(&mut self) -> &mut E {
            &mut self.extra
        }

        fn head(&self) -> *const Waiter<E> {
            self.queue.head.load(Ordering::Relaxed)
        }

        fn set_head(&self, w: *const Waiter<E>) {
            self.queue
                .head
                .store(w as *mut Waiter<E>, Ordering::Relaxed);
        }

        /// The oldest waiter, for reading what it published before it linked itself.
        pub(super) fn front(&self) -> Option<&Waiter<E>> {
            // SAFETY: a linked record is alive while it is linked, and it cannot be unlinked while
            // we hold the lock (which the returned borrow of `self` keeps held).
            unsafe { self.head().as_ref() }
        }

        /// Whether exactly one waiter is queued.
        pub(super) fn has_one(&self) -> bool {
            let head = self.head();
            // SAFETY: as in `front`.
            !head.is_null() && unsafe { (*head).next.get() } == head
        }

        /// Links the caller's own record at the tail, with the caller's waker.
        pub(super) fn push_back(&mut self, w: Pin<&Waiter<E>>) {
            self.link(&w);
        }

        /// Links the caller's own record at the head (a waiter that already waited its turn).
        pub(super) fn push_front(&mut self, w: Pin<&Waiter<E>>) {
            self.link(&w);
            self.set_head(&*w);
        }

        /// Links `w` just before the head (at the tail of the circle).
        fn link(&mut self, w: &Waiter<E>) {
            debug_assert_ne!(w.status.load(Ordering::Relaxed), WAITING);
            let me: *const Waiter<E> = w;
            // SAFETY: the record is not linked (status is not WAITING), so only its owner (us)
            // touches it; it is pinned, so its address stays valid until its `Drop`, which
            // unlinks it if it is still linked. The waker slot is ours under the lock.
            unsafe { *w.waker.get() = Some(rt::current_waker()) };
            w.queue.set(self.queue);
            w.status.store(WAITING, Ordering::Relaxed);
            let head = self.head();
            if head.is_null() {
                w.prev.set(me);
                w.next.set(me);
                self.set_head(me);
            } else {
                // SAFETY: `head` and its `prev` are linked records, alive and ours under the lock.
                unsafe {
                    let tail = (*head).prev.get();
                    w.prev.set(tail);
                    w.next.set(head);
                    (*tail).next.set(me);
                    (*head).prev.set(me);
                }
            }
        }

        /// Unlinks the linked record `w`.
        ///
        /// # Safety
        /// `w` must be linked into this queue.
        unsafe fn unlink(&mut self, w: *const Waiter<E>) {
            // SAFETY: per the contract `w` and its neighbours are linked records, alive and ours
            // under the lock.
            unsafe {
                let next = (*w).next.get();
                if next == w {
                    self.set_head(ptr::null());
                } else {
                    let prev = (*w).prev.get();
                    (*prev).next.set(next);
                    (*next).prev.set(prev);
                    if self.head() == w {
                        self.set_head(next);
                    }
                }
                (*w).prev.set(ptr::null());
                (*w).next.set(ptr::null());
            }
        }

        /// Unlinks the oldest waiter, leaving `token` in its status, and returns its waker (to be
        /// woken, preferably after the lock is released). `None` if the queue is empty.
        pub(super) fn pop_front(&mut self, token: u8) -> Option<Waker> {
            debug_assert!(token > WAITING);
            let w = self.head();
            if w.is_null() {
                return None;
            }
            // SAFETY: `w` is the head, so it is linked here and alive; we take its waker and then
            // publish the token as our last access (after the Release store the waiter may return
            // and free the record).
            unsafe {
                self.unlink(w);
                let waker = (*(*w).waker.get()).take();
                (*w).status.store(token, Ordering::Release);
                Some(waker.expect("gort: a queued waiter has no waker"))
            }
        }

        /// Unlinks the caller's own record if it is still queued (status `WAITING`; it becomes
        /// `IDLE`). Returns whether it was.
        pub(super) fn remove(&mut self, w: &Waiter<E>) -> bool {
            if w.status.load(Ordering::Relaxed) != WAITING {
                return false;
            }
            // SAFETY: a WAITING record is linked, and the only queue it can be linked into is the
            // one it recorded, whose lock we hold (callers reach this queue through `w.queue`, or
            // own both). Its waker slot is ours under the lock.
            unsafe {
                debug_assert!(ptr::eq(w.queue.get(), self.queue));
                self.unlink(w);
                drop((*w.waker.get()).take());
            }
            w.status.store(IDLE, Ordering::Relaxed);
            true
        }
    }
}
