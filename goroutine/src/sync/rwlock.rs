//! `RwLock`: Go's `sync.RWMutex` algorithm behind Rust's guard API.
//!
//! # State
//! * `writer`: a [`RawMutex`] that serializes writers (with its fairness: a writer waiting over
//!   1 ms gets it handed over).
//! * `readers` (Go's `readerCount`): the number of readers that hold the lock or are waiting for
//!   it, minus `MAX_READERS` while a writer holds or is acquiring the lock. Negative therefore means
//!   "writer present": new readers must wait.
//! * `departing` (Go's `readerWait`): how many of the readers that held the lock when the current
//!   writer announced itself have still to leave.
//! * `reader_sem`, `writer_sem`: counting semaphores (a permit count and a FIFO of parked waiters
//!   under one queue lock) where readers wait for a writer to finish, and the writer waits for the
//!   departing readers.
//!
//! # Protocol
//! * `read`: `readers += 1`; if the result is negative a writer is present: wait on `reader_sem`.
//!   The reader is already counted, so it holds the lock as soon as it gets a permit.
//!   `read` unlock: `readers -= 1`; if negative, a writer is waiting for us:
//!   `departing -= 1`, and the reader that brings it to zero posts `writer_sem`.
//! * `write`: lock `writer`, then `readers -= MAX_READERS` (announce), which returns `r`, the
//!   readers inside right now. If `r > 0`, `departing += r`; if that is not zero (some of them
//!   have not left yet), wait on `writer_sem`. `write` unlock: `readers += MAX_READERS`, which
//!   returns how many readers queued up meanwhile; post that many `reader_sem` permits, then
//!   unlock `writer`.
//!
//! # Policy: writer preference without reader starvation (as Go)
//! Once a writer has announced itself, new readers queue behind it, so a stream of readers cannot
//! starve a writer. When the writer unlocks, every reader that queued during its turn is admitted
//! (counted, and given a permit) *before* the next writer can announce itself, so a stream of
//! writers cannot starve readers either. Readers never wait for each other.
//!
//! # Why no wake is lost
//! The semaphores count: a post that comes before the matching wait leaves a permit (both happen
//! under the semaphore's queue lock), so the order in which a reader (or the writer) reaches its
//! wait and the other side reaches its post does not matter. Each reader that saw a negative count
//! is matched by exactly one permit, because the writer's unlock reads exactly the number of readers
//! that arrived during its turn from the same counter. Between the writer and its departing readers,
//! `departing` is updated by read-modify-writes only, so exactly one of them — the writer's add if
//! every reader had already left, else the last departing reader's subtract — sees it reach zero,
//! and only in the latter case is there a post, matching the writer's wait.
//!
//! # No poisoning, guards across threads
//! As with [`Mutex`](super::Mutex): a panic while a guard is held releases the lock, and guards may
//! be held across blocking calls and dropped on another thread.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::pin;

use super::mutex::RawMutex;
use super::rt::{AtomicIsize, Ordering};
use super::waitq::{WaitQueue, Waiter};
use crate::park::WaitReason;

/// Subtracted from `readers` while a writer is present. Half the positive range, so that the
/// reader count and "writer present" never overlap.
const MAX_READERS: isize = 1 << (isize::BITS - 2);

/// Waiter token: a permit was handed to this waiter.
const GRANTED: u8 = 2;

/// A counting semaphore whose waiters park (Go's `runtime_Semacquire`/`runtime_Semrelease`,
/// restricted to what `RwLock` needs). The permit count lives under the queue lock.
struct Sema {
    queue: WaitQueue<usize>,
}

impl Sema {
    super::loom_const_fn! {
        /// No permits, no waiters.
        fn new() -> Sema {
            Sema {
                queue: WaitQueue::new(0),
            }
        }
    }

    /// Takes a permit, parking until one is posted.
    fn acquire(&self) {
        let node = pin!(Waiter::new());
        {
            let mut q = self.queue.lock();
            let permits = q.extra();
            if *permits > 0 {
                *permits -= 1;
                return;
            }
            q.push_back(node.as_ref());
        }
        let status = node.as_ref().wait(WaitReason::Lock);
        debug_assert_eq!(status, GRANTED);
    }

    /// Posts `n` permits: each goes straight to a parked waiter (oldest first) if there is one,
    /// else it is kept for a future `acquire`.
    fn release(&self, n: usize) {
        let mut left = n;
        self.queue.wake_all(|q| {
            if left == 0 {
                return None;
            }
            left -= 1;
            let waker = q.pop_front(GRANTED);
            if waker.is_none() {
                // Nobody parked: keep every remaining permit.
                *q.extra() += left + 1;
                left = 0;
            }
            waker
        });
    }
}

/// A reader-writer lock that parks goroutines, not threads (Go's `sync.RWMutex`, with std's guard
/// API).
///
/// Any number of readers, or one writer. **Writer preference**: once a writer waits, new readers
/// queue behind it; the readers that queued during a writer's turn all get in before the next
/// writer (neither side can be starved). There is **no poisoning**: a panic while a guard is held
/// just releases the lock. Uncontended `read` and its unlock are one atomic add each.
///
/// Guards may be held across blocking calls and released on another OS thread.
///
/// ```
/// use gort_goroutine::sync::RwLock;
///
/// let lock = RwLock::new(5);
/// {
///     let r1 = lock.read();
///     let r2 = lock.read(); // readers share the lock
///     assert_eq!(*r1 + *r2, 10);
///     assert!(lock.try_write().is_none());
/// }
/// *lock.write() += 1;
/// assert_eq!(*lock.read(), 6);
/// ```
pub struct RwLock<T: ?Sized> {
    writer: RawMutex,
    readers: AtomicIsize,
    departing: AtomicIsize,
    reader_sem: Sema,
    writer_sem: Sema,
    data: UnsafeCell<T>,
}

// SAFETY: readers on several threads share `&T` (needs `T: Sync`) and a writer may be on any
// thread (needs `T: Send`): std's rule. `Send` is automatic.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    super::loom_const_fn! {
        /// An unlocked lock holding `value`. `const`, so it can initialize a `static`.
        pub fn new(value: T) -> RwLock<T> {
            RwLock {
                writer: RawMutex::new(),
                readers: AtomicIsize::new(0),
                departing: AtomicIsize::new(0),
                reader_sem: Sema::new(),
                writer_sem: Sema::new(),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Consumes the lock and returns the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, parking while a writer holds the lock or waits for it.
    ///
    /// Taking a second read lock on the same goroutine while a writer waits deadlocks (the writer
    /// waits for the first read lock, the second waits for the writer), as in Go.
    ///
    /// # Panics
    /// If about `isize::MAX / 2` read guards are alive at once (only possible by leaking guards).
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        crate::sysmon::safe_point();
        let prev = self.readers.fetch_add(1, Ordering::Acquire);
        if !(0..MAX_READERS - 1).contains(&prev) {
            self.read_slow(prev);
        }
        RwLockReadGuard {
            lock: self,
            _shares_t: PhantomData,
        }
    }

    #[cold]
    fn read_slow(&self, prev: isize) {
        if prev >= MAX_READERS - 1 || prev == -1 {
            self.readers.fetch_sub(1, Ordering::Relaxed);
            panic!("gort: too many RwLock readers");
        }
        // A writer holds the lock or waits for it; its unlock posts our permit.
        self.reader_sem.acquire();
    }

    /// Locks for reading if that is possible right now (no writer holds or waits for the lock).
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        let mut c = self.readers.load(Ordering::Relaxed);
        loop {
            if !(0..MAX_READERS - 1).contains(&c) {
                return None;
            }
            match self
                .readers
                .compare_exchange_weak(c, c + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(RwLockReadGuard {
                        lock: self,
                        _shares_t: PhantomData,
                    })
                }
                Err(now) => c = now,
            }
        }
    }

    /// Releases one read lock.
    ///
    /// # Safety
    /// The caller holds a read lock and gives it up.
    #[inline]
    unsafe fn read_unlock(&self) {
        let prev = self.readers.fetch_sub(1, Ordering::Release);
        if prev <= 0 {
            // A writer announced itself while we read, and counted us in `departing`.
            if self.departing.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.writer_sem.release(1);
            }
        }
    }

    /// Locks for writing, parking until no reader or writer holds the lock. From the moment it
    /// starts waiting for readers to leave, new readers queue behind it.
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        crate::sysmon::safe_point();
        self.writer.lock();
        // Announce ourselves: readers arriving from now on wait.
        let r = self.readers.fetch_sub(MAX_READERS, Ordering::AcqRel);
        if r != 0 && self.departing.fetch_add(r, Ordering::AcqRel) + r != 0 {
            self.writer_sem.acquire();
        }
        RwLockWriteGuard {
            lock: self,
            _owns_t: PhantomData,
        }
    }

    /// Locks for writing if no reader or writer holds the lock right now.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        if !self.writer.try_lock() {
            return None;
        }
        if self
            .readers
            .compare_exchange(0, -MAX_READERS, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: we took `writer` just above.
            unsafe { self.writer.unlock() };
            return None;
        }
        Some(RwLockWriteGuard {
            lock: self,
            _owns_t: PhantomData,
        })
    }

    /// Releases the write lock.
    ///
    /// # Safety
    /// The caller holds the write lock and gives it up.
    unsafe fn write_unlock(&self) {
        // Readers that queued during our turn are counted in: admit them all.
        let queued = self.readers.fetch_add(MAX_READERS, Ordering::Release) + MAX_READERS;
        debug_assert!(
            queued >= 0,
            "gort: write unlock of an RwLock not write-locked"
        );
        if queued > 0 {
            self.reader_sem.release(queued as usize);
        }
        // SAFETY: per our contract we hold the write lock, hence `writer`.
        unsafe { self.writer.unlock() };
    }

    /// Whether a writer holds the lock or waits for it (a snapshot, for diagnostics and tests).
    pub fn is_write_locked_or_pending(&self) -> bool {
        self.readers.load(Ordering::Relaxed) < 0
    }

    /// The data, through a unique borrow of the lock (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> RwLock<T> {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Shared access to an [`RwLock`]'s data; releases the read lock on drop (also by unwinding).
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    /// Like `&T`: `Send` and `Sync` only when `T: Sync`.
    _shares_t: PhantomData<&'a T>,
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard proves no writer holds the lock, so the data is only shared.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds one read lock and gives it up here, exactly once.
        unsafe { self.lock.read_unlock() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// Exclusive access to an [`RwLock`]'s data; releases the write lock on drop (also by unwinding).
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    /// Like `&mut T`: `Send` only when `T: Send`, `Sync` only when `T: Sync`.
    _owns_t: PhantomData<&'a mut T>,
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write guard proves exclusive access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write guard proves exclusive access; `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds the write lock and gives it up here, exactly once.
        unsafe { self.lock.write_unlock() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn readers_share_writers_exclude() {
        let l = RwLock::new(1);
        {
            let a = l.read();
            let b = l.try_read().expect("readers share");
            assert!(l.try_write().is_none());
            assert_eq!(*a + *b, 2);
        }
        {
            let mut w = l.try_write().expect("free");
            *w += 1;
            assert!(l.try_read().is_none());
            assert!(l.try_write().is_none());
            assert!(l.is_write_locked_or_pending());
        }
        assert!(!l.is_write_locked_or_pending());
        assert_eq!(format!("{l:?}"), "RwLock { data: 2, .. }");
        let mut l = l;
        *l.get_mut() = 5;
        assert_eq!(l.into_inner(), 5);
    }

    #[test]
    fn threads_mix_readers_and_writers() {
        let l = Arc::new(RwLock::new((0u64, 0u64)));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        if i % 2 == 0 {
                            let mut w = l.write();
                            w.0 += 1;
                            w.1 += 1;
                        } else {
                            let r = l.read();
                            assert_eq!(r.0, r.1);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*l.read(), (10_000, 10_000));
        assert_eq!(l.readers.load(Ordering::Relaxed), 0);
        assert_eq!(l.departing.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn semaphore_keeps_early_permits() {
        let s = Sema::new();
        s.release(2);
        s.acquire();
        s.acquire();
        assert_eq!(*s.queue.lock().extra(), 0);
    }

    #[test]
    fn a_static_lock() {
        static TABLE: RwLock<Vec<u32>> = RwLock::new(Vec::new());
        TABLE.write().push(1);
        assert!(TABLE.read().contains(&1));
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Loom models of the reader/writer protocol: the data is a `loom::cell::UnsafeCell`, so a
    //! reader overlapping a writer (or two writers) is reported as a race; a lost permit leaves a
    //! thread parked forever, which loom reports as a deadlock.

    use super::super::rt;
    use super::*;
    use loom::cell::UnsafeCell as LoomUnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    struct Shared {
        l: RwLock<()>,
        data: LoomUnsafeCell<u32>,
    }

    fn read(s: &Shared) -> u32 {
        let _g = s.l.read();
        // SAFETY: a read lock is held (loom checks no write races with it).
        s.data.with(|p| unsafe { *p })
    }

    fn write(s: &Shared) {
        let _g = s.l.write();
        // SAFETY: the write lock is held (loom checks no access races with it).
        s.data.with_mut(|p| unsafe { *p += 1 });
    }

    fn check(s: &Shared, writes: u32) {
        assert_eq!(read(s), writes);
        assert_eq!(s.l.readers.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn loom_reader_and_writer() {
        let _clock = rt::model_clock(rt::NEVER_LONG);
        loom::model(|| {
            let s = Arc::new(Shared {
                l: RwLock::new(()),
                data: LoomUnsafeCell::new(0),
            });
            let s2 = s.clone();
            let t = thread::spawn(move || write(&s2));
            let seen = read(&s);
            assert!(seen <= 1);
            t.join().unwrap();
            check(&s, 1);
        });
    }

    #[test]
    fn loom_two_readers_and_a_writer() {
        let _clock = rt::model_clock(rt::NEVER_LONG);
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(|| {
            let s = Arc::new(Shared {
                l: RwLock::new(()),
                data: LoomUnsafeCell::new(0),
            });
            let (s2, s3) = (s.clone(), s.clone());
            let r = thread::spawn(move || read(&s2));
            let w = thread::spawn(move || write(&s3));
            read(&s);
            r.join().unwrap();
            w.join().unwrap();
            check(&s, 1);
        });
    }

    #[test]
    fn loom_two_writers_and_a_reader() {
        let _clock = rt::model_clock(rt::ALTERNATE);
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(|| {
            rt::reset_clock();
            let s = Arc::new(Shared {
                l: RwLock::new(()),
                data: LoomUnsafeCell::new(0),
            });
            let (s2, s3) = (s.clone(), s.clone());
            let w1 = thread::spawn(move || write(&s2));
            let w2 = thread::spawn(move || write(&s3));
            assert!(read(&s) <= 2);
            w1.join().unwrap();
            w2.join().unwrap();
            check(&s, 2);
        });
    }
}
