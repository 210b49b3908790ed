//! `GcCell<T>`: the one place handles inside the heap may change, and so the home of the write
//! barrier.
//!
//! A cell is a reader-writer lock whose state word counts readers and has a `WRITER` bit;
//! contention parks the goroutine (or thread) through gort's parking core. The collector reads a
//! cell's contents under a shared lock taken with `try` only: it never waits for a writer.
//!
//! Accounting. A cell that sits in a heap object is `IN_HEAP`, and its handles are counted as
//! *internal* (adopted). A write guard takes them out of the heap's accounting for its lifetime:
//! * `borrow_mut` locks, then, pinned to the collector's phase (`phase.rs`), *disowns* the contents
//!   (each target's `internal` count goes down) and, if the phase is Mark, shades every target (the
//!   deletion barrier: whatever was reachable through the cell at the snapshot stays marked even if
//!   the writer moves it elsewhere). During mark termination it waits (microseconds) instead.
//! * Dropping the guard *adopts* the new contents (each target's `internal` goes up, with `DIRTY`,
//!   which records the move for the scan), then unlocks, both under one pin: the collector's
//!   snapshot point never falls between the two, so a cell it finds locked never holds adopted
//!   contents from before the snapshot.
//!
//! So while a guard lives, everything in the cell counts as outside the heap (a root), and the
//! collector may skip an exclusively locked cell. A cell not (yet) in the heap does no accounting;
//! `Gc::new` adopts it (and its contents) with the rest of the value.
//!
//! A `Trace` impl that panics while the cell is disowned or adopted leaves its counts half-updated;
//! the cell is then *broken*: further `borrow_mut`s panic, and its contents are never dropped
//! (leaked), which keeps every count consistent with a handle that really exists.

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::Waker;

use gort_goroutine::park::{current_waker, park_with, WaitReason};

use crate::collector::{self, PHASES};
use crate::phase::Phase;
use crate::trace::{Mode, Trace, Tracer};

const WRITER: usize = 1 << (usize::BITS - 1);
const IN_HEAP: u8 = 1;
const BROKEN: u8 = 2;

/// Interior mutability for data in the traced heap: a reader-writer lock that parks goroutines,
/// and the write barrier that keeps concurrent marking correct.
///
/// [`borrow`](GcCell::borrow) gives shared access (many at once); [`borrow_mut`](GcCell::borrow_mut)
/// gives exclusive access. Both park the calling goroutine while the other kind is held (plain
/// threads block). Neither waits for the collector, except that a `borrow_mut` or
/// [`Weak::upgrade`](crate::Weak::upgrade) that lands in a collection's mark termination waits for
/// it to end (microseconds; the only pause gort's collector has, see `GcStats::max_pause`).
pub struct GcCell<T> {
    state: AtomicUsize,
    flags: AtomicU8,
    has_waiters: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
    value: UnsafeCell<ManuallyDrop<T>>,
}

// SAFETY: the lock gives shared access to many threads or exclusive access to one, like RwLock.
unsafe impl<T: Send + Sync> Sync for GcCell<T> {}
// SAFETY: moving the cell moves the T.
unsafe impl<T: Send> Send for GcCell<T> {}

impl<T> GcCell<T> {
    /// A new, unlocked cell.
    pub fn new(value: T) -> GcCell<T> {
        GcCell {
            state: AtomicUsize::new(0),
            flags: AtomicU8::new(0),
            has_waiters: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            value: UnsafeCell::new(ManuallyDrop::new(value)),
        }
    }

    /// Exclusive access through `&mut` (no locking: the borrow checker proves exclusivity). Only
    /// possible for a cell outside the heap, so no accounting is needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// The value, for a cell outside the heap.
    pub fn into_inner(self) -> T {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; the value is taken once.
        unsafe { ManuallyDrop::take(this.value.get_mut()) }
    }

    fn try_read(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & WRITER != 0 {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    fn read_unlock(&self) {
        if self.state.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.wake_all();
        }
    }

    fn wake_all(&self) {
        if self.has_waiters.load(Ordering::SeqCst) {
            let ws = {
                let mut w = self
                    .waiters
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                self.has_waiters.store(false, Ordering::SeqCst);
                std::mem::take(&mut *w)
            };
            for w in ws {
                w.wake();
            }
        }
    }

    /// Parks until `ready(state)` may hold (returns spuriously; callers loop).
    fn wait(&self, ready: impl Fn(usize) -> bool) {
        {
            let mut w = self
                .waiters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            w.push(current_waker());
            self.has_waiters.store(true, Ordering::SeqCst);
        }
        if ready(self.state.load(Ordering::SeqCst)) {
            return;
        }
        park_with(WaitReason::Lock);
    }

    /// Shared access; parks while a write guard is held.
    pub fn borrow(&self) -> GcRef<'_, T> {
        while !self.try_read() {
            self.wait(|s| s & WRITER == 0);
        }
        GcRef { cell: self }
    }

    /// Shared access if no write guard is held.
    pub fn try_borrow(&self) -> Option<GcRef<'_, T>> {
        self.try_read().then_some(GcRef { cell: self })
    }

    fn contents(&self) -> &T {
        // SAFETY: callers hold a read or write lock (or exclusive logical access).
        unsafe { &*self.value.get() }
    }
}

impl<T: Trace> GcCell<T> {
    /// Exclusive access; parks while any guard is held. Runs the write barrier (see the module
    /// docs), so it costs a trace of the contents when the cell is in the heap.
    ///
    /// # Panics
    /// If the cell is broken (an earlier `Trace` of its contents panicked).
    pub fn borrow_mut(&self) -> GcRefMut<'_, T> {
        loop {
            if self.flags.load(Ordering::Relaxed) & IN_HEAP == 0 {
                // Not in the heap: no accounting, so no pin.
                if self.try_write() {
                    return self.finish_write(None);
                }
            } else {
                let pin = PHASES.pin();
                if pin.state.phase == Phase::Terminating {
                    drop(pin);
                    collector::wait_out_termination();
                    continue;
                }
                if self.try_write() {
                    let shade = pin.state.phase == Phase::Mark;
                    let guard = self.finish_write(Some(shade));
                    drop(pin);
                    return guard;
                }
            }
            self.wait(|s| s == 0);
        }
    }

    fn try_write(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// After locking: disown the contents (if in the heap), shading them if marking.
    fn finish_write(&self, disown: Option<bool>) -> GcRefMut<'_, T> {
        if self.flags.load(Ordering::Relaxed) & BROKEN != 0 {
            self.write_unlock();
            panic!(
                "gort: GcCell<{}> is broken (a Trace of its contents panicked); it cannot be \
                 written any more",
                std::any::type_name::<T>()
            );
        }
        if let Some(shade) = disown {
            let mut gray = Vec::new();
            let mut t = Tracer::new(Mode::Disown {
                shade,
                gray: &mut gray,
            });
            let r = catch_unwind(AssertUnwindSafe(|| self.contents().trace(&mut t)));
            if !gray.is_empty() {
                collector::push_gray(gray);
            }
            if r.is_err() {
                self.flags.fetch_or(BROKEN, Ordering::Relaxed);
                self.write_unlock();
                panic!(
                    "gort: Trace::trace of {} panicked in GcCell::borrow_mut; the cell is broken",
                    std::any::type_name::<T>()
                );
            }
        }
        GcRefMut { cell: self }
    }

    fn write_unlock(&self) {
        self.state.store(0, Ordering::SeqCst);
        self.wake_all();
    }

    /// Releasing a write guard: adopt the new contents, then unlock, pinned: the collector's
    /// snapshot point cannot fall between the adoption and the unlock (a cell the tracer finds
    /// locked must hold disowned contents; see the crate docs).
    fn release_write(&self) {
        if self.flags.load(Ordering::Relaxed) & IN_HEAP != 0 {
            let pin = PHASES.pin();
            let mut t = Tracer::new(Mode::Adopt);
            if catch_unwind(AssertUnwindSafe(|| self.contents().trace(&mut t))).is_err() {
                self.flags.fetch_or(BROKEN, Ordering::Relaxed);
                eprintln!(
                    "gort: Trace::trace of {} panicked while releasing a GcCell write guard; the \
                     cell is broken and its contents will be leaked",
                    std::any::type_name::<T>()
                );
            }
            self.state.store(0, Ordering::SeqCst);
            drop(pin);
            self.wake_all();
            return;
        }
        self.write_unlock();
    }

    /// The tracer's entry for a cell (its `Trace` impl).
    fn trace_cell(&self, t: &mut Tracer<'_>) {
        match t.mode {
            Mode::Mark { .. } => {
                // A write-locked cell is skipped: its contents are outside the heap's accounting
                // (disowned) while the guard lives, so they are roots.
                if self.try_read() {
                    let r = catch_unwind(AssertUnwindSafe(|| self.contents().trace(t)));
                    self.read_unlock();
                    if let Err(p) = r {
                        std::panic::resume_unwind(p);
                    }
                }
            }
            Mode::Adopt => {
                // We have exclusive logical access (the value is being moved into the heap, or an
                // outer write guard is being released). A WRITER bit here can only come from a
                // forgotten guard: those contents stay outside the accounting for good.
                if self.state.load(Ordering::Acquire) & WRITER == 0
                    && self.flags.load(Ordering::Relaxed) & (IN_HEAP | BROKEN) == 0
                {
                    self.flags.fetch_or(IN_HEAP, Ordering::Relaxed);
                    self.contents().trace(t);
                }
            }
            Mode::Disown { .. } => {
                if self.state.load(Ordering::Acquire) & WRITER == 0
                    && self.flags.load(Ordering::Relaxed) & (IN_HEAP | BROKEN) == IN_HEAP
                {
                    self.flags.fetch_and(!IN_HEAP, Ordering::Relaxed);
                    self.contents().trace(t);
                }
            }
            Mode::Finalize { .. } | Mode::Release { .. } => {
                // The holder is dead: nobody else can reach this cell.
                if self.state.load(Ordering::Acquire) & WRITER == 0
                    && self.flags.load(Ordering::Relaxed) & (IN_HEAP | BROKEN) == IN_HEAP
                {
                    self.contents().trace(t);
                }
            }
        }
    }
}

// SAFETY: reports the contents' handles under the cell's rules (module docs). Dropping a cell
// drops its contents and its waiter list (wakers gort made for goroutines that waited on it: no
// user code, so plain if the contents are); it may free
// that list's buffer, so it is not `drop_is_handles_only` (the default, false, since a cell
// always has drop glue).
unsafe impl<T: Trace> Trace for GcCell<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        self.trace_cell(t);
    }
    fn plain_drop() -> bool {
        T::plain_drop()
    }
}

impl<T> Drop for GcCell<T> {
    fn drop(&mut self) {
        if self.flags.load(Ordering::Relaxed) & BROKEN == 0 {
            // SAFETY: dropped once, here; a broken cell's contents are leaked on purpose.
            unsafe { ManuallyDrop::drop(self.value.get_mut()) };
        }
    }
}

impl<T: Default> Default for GcCell<T> {
    fn default() -> GcCell<T> {
        GcCell::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for GcCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_borrow() {
            Some(v) => f.debug_tuple("GcCell").field(&*v).finish(),
            None => f.write_str("GcCell(<locked>)"),
        }
    }
}

/// A shared guard from [`GcCell::borrow`].
pub struct GcRef<'a, T> {
    cell: &'a GcCell<T>,
}

impl<T> Deref for GcRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.cell.contents()
    }
}

impl<T> Drop for GcRef<'_, T> {
    fn drop(&mut self) {
        self.cell.read_unlock();
    }
}

/// An exclusive guard from [`GcCell::borrow_mut`]; dropping it runs the barrier's second half.
pub struct GcRefMut<'a, T: Trace> {
    cell: &'a GcCell<T>,
}

impl<T: Trace> Deref for GcRefMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.cell.contents()
    }
}

impl<T: Trace> DerefMut for GcRefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the cell's write lock.
        unsafe { &mut *self.cell.value.get() }
    }
}

impl<T: Trace> Drop for GcRefMut<'_, T> {
    fn drop(&mut self) {
        self.cell.release_write();
    }
}
