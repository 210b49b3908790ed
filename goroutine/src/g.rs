//! The goroutine: its descriptor `G`, its identity, and the context switch into and out of it.
//!
//! A goroutine is a corosensei coroutine running on a gort [`Stack`]. The scheduler (on an M's own
//! thread stack, Go's `g0`) *resumes* a G; the G runs until it *suspends* back with a [`Suspend`]
//! reason, or returns. Every switch therefore goes G -> g0 -> next G, as in Go's `mcall`/`gogo`;
//! decisions about the suspended G (queue it, park it) are taken on g0, after its registers are saved,
//! so no other M can ever resume a G whose context is still live.
//!
//! # Ownership of a G
//! `G` lives in an `Arc`. One strong reference, the *scheduling reference*, moves with the goroutine:
//! it sits in a run queue while the G is runnable, is held by the M while the G runs, and while the G
//! is parked it is kept by the park itself and handed back to a run queue by whichever waker wins the
//! `PARKED -> RUNNING` transition of [`G::park_state`]. Wakers hold extra references only so that the
//! memory stays valid; holding a waker never makes a G runnable twice.
//!
//! # Park protocol (the single wake path)
//! `park_state` is `RUNNING` (no token), `NOTIFIED` (a wake arrived while the G was running) or
//! `PARKED` (suspended, waiting). The G parks by suspending with [`Suspend::Park`]; g0 then tries
//! `RUNNING -> PARKED`. If a wake came first (`NOTIFIED`), g0 consumes it and resumes the G at once.
//! A waker moves `RUNNING -> NOTIFIED` (the G will not sleep) or `PARKED -> RUNNING` and readies the G.
//! Like `std::thread::park`, a park may return spuriously (a stale token), so every wait loops on its
//! condition.
//!
//! # Thread-locals
//! A G may resume on another M than the one it suspended on. Code in this crate reads per-thread
//! runtime state only through `#[inline(never)]` accessors, after every switch, never caching a
//! thread-local address across one.

use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::num::NonZeroU64;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crate::erased::Erased;
use crate::join::{JoinSlot, JoinSource};
use crate::local::Locals;
use crate::park::WaitReason;
use crate::sched::Sched;
use crate::stack::{OverflowChecker, Stack};

/// The identity of a goroutine (or of an async task spawned with `spawn_async`), unique within its
/// runtime. Printed as a plain number, as Go prints goroutine ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GoroutineId(pub(crate) NonZeroU64);

impl GoroutineId {
    /// The id as a number (the first goroutine of a runtime is 1).
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for GoroutineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GoroutineId({})", self.0)
    }
}

impl fmt::Display for GoroutineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a goroutine handed control back to its M.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// `yield_now`: requeue at the tail of the local run queue.
    Yield,
    /// Wait for a wake (see the park protocol in the module docs).
    Park,
    /// Sysmon asked the goroutine to yield (it ran too long), or its P was taken away while it ran:
    /// requeue on the global queue.
    Preempt,
}

pub(crate) type Coroutine = corosensei::Coroutine<(), Suspend, (), Stack>;
pub(crate) type Yielder = corosensei::Yielder<(), Suspend>;

pub(crate) const RUNNING: u8 = 0;
pub(crate) const NOTIFIED: u8 = 1;
pub(crate) const PARKED: u8 = 2;

/// Inline room for a goroutine's closure, in machine words; larger closures are boxed.
const ENTRY_WORDS: usize = 8;

/// A goroutine descriptor (Go's `g`).
///
/// A G carries everything a goroutine needs besides its stack: the closure until it starts, the
/// coroutine once it runs, and the [`JoinSlot`] its `JoinHandle` reads. Spawning a goroutine whose
/// closure fits in [`ENTRY_WORDS`] words therefore allocates nothing when the P has a free G to reuse.
///
/// Layout: the fields an M touches on every switch (the coroutine's stack pointer, the id, the park
/// and running flags, the stack-check flag) come first, together in 64 bytes, so a run queue
/// cycling through thousands of Gs costs one or two cache misses per G and switch rather than one
/// per field. (Aligning the G to a line would save the second miss at ~200 bytes more per
/// goroutine, past the memory budget.)
#[repr(C)]
pub(crate) struct G {
    // ---- hot: touched by the M on every switch -----------------------------------------------
    /// The coroutine, once started. Touched only by the M that holds the scheduling reference.
    coroutine: UnsafeCell<Option<Coroutine>>,
    pub(crate) id: GoroutineId,
    /// See the park protocol in the module docs.
    pub(crate) park_state: AtomicU8,
    /// Whether an M is running it right now.
    pub(crate) running: AtomicBool,
    /// Whether its stack is canary-protected, so `stack_check` must run after each switch out
    /// (false on guard-page stacks, the normal case).
    canary_check: Cell<bool>,
    /// The id of the M (OS thread) this goroutine is locked to by `lock_os_thread`, 0 if none
    /// (Go's `g.lockedm`). Written only by the goroutine itself, while it runs on that M; read by
    /// that M when the goroutine switches out, and by any M that takes it from a run queue (the
    /// queue orders the read after the write).
    pub(crate) locked_m: AtomicU32,
    // ---- warm: touched by the goroutine itself and by wakers ----------------------------------
    /// Set by the goroutine's body when it first runs; valid until the coroutine returns. Only read on
    /// the goroutine's own stack.
    pub(crate) yielder: Cell<*const Yielder>,
    /// The runtime this G belongs to; wakes requeue it there.
    pub(crate) sched: &'static Sched,
    /// Runs the closure in `entry` (monomorphized for its type); `None` once taken.
    entry_fn: Cell<Option<unsafe fn(&G)>>,
    /// Checks a canary-protected stack for overflow after each switch out.
    stack_check: Cell<Option<OverflowChecker>>,
    /// The goroutine's outcome, for its `JoinHandle`.
    pub(crate) join: JoinSlot,
    // ---- cold: diagnostics (goroutine dumps), written by the goroutine or its M, read by anyone --
    /// Why it parks (a `WaitReason`), set just before each park.
    wait_reason: AtomicU8,
    /// When it last parked (runtime coarse clock, ns).
    pub(crate) wait_since: AtomicU64,
    /// Where it was spawned.
    created_at: AtomicPtr<Location<'static>>,
    /// The stack of its last park, with `GORT_DEBUG=waitstacks=1` (written by the goroutine as it
    /// parks, read by dumps).
    wait_stack: std::sync::Mutex<Option<std::backtrace::Backtrace>>,
    /// The closure, until the G first runs. A G that waits in a run queue has no stack yet: it gets
    /// one (warm, from the running P's cache) when it starts, so a burst of spawns costs a G each
    /// rather than a cold stack page each.
    entry: UnsafeCell<Erased<ENTRY_WORDS>>,
    /// Goroutine-local values (`local.rs`); touched only by the goroutine itself.
    locals: UnsafeCell<Locals>,
    /// Live `OsThreadLock` guards of this goroutine (nesting); touched only by the goroutine itself.
    pub(crate) lock_depth: Cell<u32>,
}

// SAFETY: `entry`, `entry_fn`, `coroutine`, `yielder`, `stack_check`, `locals` and `lock_depth`
// are only touched by the one M that currently holds the G's scheduling reference (see the module
// docs), and the hand-over between Ms goes through a run queue (or, for a goroutine locked to its
// thread, the M's `next_g` slot), whose atomics order the accesses. The closure, the
// goroutine-local values (`Send` by their type bound) and the values living on the coroutine's stack
// come from `Send + 'static` code; thread-bound state held across a park is the user-facing caveat
// documented on the crate front page.
unsafe impl Send for G {}
// SAFETY: as above; the fields other threads touch through `&G` are `park_state` (atomic), `join`
// (its own protocol), and `id` and `sched` (not written while shared).
unsafe impl Sync for G {}

/// Runs a goroutine's closure of type `F` and completes its join slot with the `T` it returns.
///
/// # Safety
/// `g.entry` holds an `F` put by [`G::set_entry::<F, T>`], and the caller holds the G's scheduling
/// reference (it runs on the G's own stack).
unsafe fn run_entry<F, T>(g: &G)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: see the function contract.
    let f = unsafe { (*g.entry.get()).take::<F>() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // Goroutine-local values go with the goroutine, before its handle sees the result.
    // SAFETY: the goroutine itself, running.
    unsafe { g.locals_mut().clear(g.id.as_u64()) };
    // SAFETY: the goroutine completes its own slot, once, with the `T` its handle was made for.
    unsafe { g.join.complete(outcome) };
}

impl G {
    /// A G for goroutine `id`, without a closure yet.
    pub(crate) fn new(id: GoroutineId, sched: &'static Sched) -> G {
        G {
            id,
            sched,
            park_state: AtomicU8::new(RUNNING),
            entry: UnsafeCell::new(Erased::new()),
            entry_fn: Cell::new(None),
            coroutine: UnsafeCell::new(None),
            yielder: Cell::new(std::ptr::null()),
            canary_check: Cell::new(false),
            stack_check: Cell::new(None),
            join: JoinSlot::new(),
            wait_reason: AtomicU8::new(WaitReason::Park as u8),
            wait_since: AtomicU64::new(0),
            created_at: AtomicPtr::new(std::ptr::null_mut()),
            wait_stack: std::sync::Mutex::new(None),
            running: AtomicBool::new(false),
            locals: UnsafeCell::new(Locals::default()),
            locked_m: AtomicU32::new(0),
            lock_depth: Cell::new(0),
        }
    }

    /// Records where the goroutine was spawned (for dumps).
    pub(crate) fn set_created_at(&self, at: &'static Location<'static>) {
        self.created_at.store(
            at as *const Location<'static> as *mut Location<'static>,
            Ordering::Relaxed,
        );
    }

    /// Where the goroutine was spawned, if known.
    pub(crate) fn created_at(&self) -> Option<&'static Location<'static>> {
        let p = self.created_at.load(Ordering::Relaxed);
        // SAFETY: only ever set from a `&'static Location`.
        unsafe { p.cast_const().as_ref() }
    }

    /// Records why the goroutine is about to park (and, with `GORT_DEBUG=waitstacks=1`, where).
    pub(crate) fn set_wait_reason(&self, reason: WaitReason) {
        self.wait_reason.store(reason as u8, Ordering::Relaxed);
        if self.sched.wait_stacks {
            self.record_wait_stack();
        }
    }

    #[cold]
    #[inline(never)]
    fn record_wait_stack(&self) {
        let stack = std::backtrace::Backtrace::force_capture();
        *crate::lock(&self.wait_stack) = Some(stack);
    }

    /// The recorded stack of the goroutine's last park, as dumps print it: one frame a line pair,
    /// from the park down to the goroutine's entry (the capture itself and the scheduler's frames
    /// below the entry are cut). `None` unless `GORT_DEBUG=waitstacks=1`.
    pub(crate) fn wait_stack(&self) -> Option<String> {
        let guard = crate::lock(&self.wait_stack);
        let text = guard.as_ref()?.to_string();
        drop(guard);
        Some(trim_wait_stack(&text))
    }

    pub(crate) fn wait_reason(&self) -> WaitReason {
        WaitReason::from_u8(self.wait_reason.load(Ordering::Relaxed))
    }

    /// Whether the goroutine has started or is waiting to start, and has not finished: a G in a
    /// free list, or held only by a `JoinHandle` after it returned, is not live. Read by dumps on
    /// any thread: the join slot's state word tells completion.
    pub(crate) fn is_live(&self) -> bool {
        !self.join.is_complete()
    }

    /// Gives the (unshared) G the closure it will run, whose result its `JoinHandle<T>` will read.
    pub(crate) fn set_entry<F, T>(&mut self, f: F)
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.entry.get_mut().put(f);
        self.entry_fn.set(Some(run_entry::<F, T>));
    }

    /// The goroutine's local values.
    ///
    /// # Safety
    /// Called by the goroutine itself while it runs, with no other borrow of them alive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn locals_mut(&self) -> &mut Locals {
        // SAFETY: see the function contract.
        unsafe { &mut *self.locals.get() }
    }

    /// Readies a finished G, which nothing else refers to, for a new goroutine.
    pub(crate) fn reinit(&mut self, id: GoroutineId) {
        debug_assert!(self.coroutine.get_mut().is_none());
        debug_assert!(self.locals.get_mut().is_empty());
        self.id = id;
        *self.park_state.get_mut() = RUNNING;
        self.entry.get_mut().clear();
        self.entry_fn.set(None);
        *self.yielder.get_mut() = std::ptr::null();
        self.canary_check.set(false);
        self.stack_check.set(None);
        self.join.reset();
        *self.wait_reason.get_mut() = WaitReason::Park as u8;
        *self.locked_m.get_mut() = 0;
        self.lock_depth.set(0);
    }

    /// The G's coroutine, created on `stack()` at the first call.
    ///
    /// # Safety
    /// The caller holds the G's scheduling reference and keeps no other borrow of the coroutine.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn coroutine(&self, stack: impl FnOnce() -> Stack) -> &mut Coroutine {
        // SAFETY: the caller holds the scheduling reference (function contract).
        let slot = unsafe { &mut *self.coroutine.get() };
        if slot.is_none() {
            let entry_fn = self.entry_fn.take().expect("gort: G started twice");
            let stack = stack();
            let check = stack.overflow_checker();
            self.canary_check.set(check.uses_canary());
            self.stack_check.set(Some(check));
            let g_addr = self as *const G as usize;
            *slot = Some(Coroutine::with_stack(
                stack,
                move |yielder: &Yielder, ()| {
                    // SAFETY: the G outlives its coroutine (the running M holds its scheduling
                    // reference), and the yielder lives in this root frame until the closure returns.
                    // The entry was set together with `entry_fn` (spawn), and this is its one run.
                    unsafe {
                        let g = &*(g_addr as *const G);
                        g.yielder.set(yielder);
                        entry_fn(g);
                    }
                },
            ));
        }
        slot.as_mut().expect("gort: G without coroutine")
    }

    /// Takes the finished coroutine out, to recycle its stack.
    ///
    /// # Safety
    /// As for [`G::coroutine`].
    pub(crate) unsafe fn take_coroutine(&self) -> Option<Coroutine> {
        // SAFETY: the caller holds the scheduling reference (function contract).
        unsafe { (*self.coroutine.get()).take() }
    }

    /// Aborts with `goroutine N stack overflow` if the G overran a canary-protected stack. Called by
    /// the M after every switch out.
    #[inline]
    pub(crate) fn check_stack(&self) {
        if !self.canary_check.get() {
            return;
        }
        if let Some(check) = self.stack_check.get() {
            check.check(self.id.as_u64());
        }
    }

    /// Wakes the G if it is parked (readying it on its runtime), or leaves a token if it is running.
    /// `this` is a strong reference the caller gives up or lends (see `wake_by_ref`).
    pub(crate) fn wake(this: &Arc<G>) {
        let mut state = this.park_state.load(Ordering::Acquire);
        loop {
            let next = match state {
                PARKED => RUNNING,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match this.park_state.compare_exchange_weak(
                state,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) if state == PARKED => {
                    // We won the wake: the parked G's scheduling reference, leaked at park time, now
                    // goes back onto a run queue.
                    let raw = Arc::as_ptr(this);
                    this.sched.ready(crate::sched::RunItem::from_g_raw(raw));
                    return;
                }
                Ok(_) => return,
                Err(s) => state = s,
            }
        }
    }
}

impl Drop for G {
    fn drop(&mut self) {
        self.sched.unregister_g(self);
    }
}

impl JoinSource for G {
    fn join_slot(&self) -> &JoinSlot {
        &self.join
    }

    /// The handle let go: if the goroutine has finished too, the G goes back to a free list.
    fn release(self: Arc<Self>) {
        self.sched.gfput(self);
    }
}

/// Cuts a captured park stack (std's `Backtrace` display: a `N: symbol` line per frame, followed by
/// its `at file:line` line) to the frames between the capture and the goroutine's closure: the
/// capture itself above, and below the closure the entry's `catch_unwind` wrapper and the
/// scheduler. Indented as Go indents tracebacks.
fn trim_wait_stack(text: &str) -> String {
    /// Frames of the capture, dropped with everything above them.
    const CAPTURE: [&str; 3] = [
        "std::backtrace",
        "gort_goroutine::g::G::record_wait_stack",
        "gort_goroutine::g::G::set_wait_reason",
    ];
    /// Frames of the goroutine entry's `catch_unwind`, dropped when they end the stack.
    const ENTRY: [&str; 4] = [
        "<core::panic::unwind_safe::AssertUnwindSafe",
        "std::panicking::catch_unwind",
        "std::panic::catch_unwind",
        "std::panicking::try",
    ];
    let mut frames: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let frame = trimmed
            .split_once(':')
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if let Some((_, symbol)) = frame {
            let symbol = symbol.trim();
            if symbol.starts_with("gort_goroutine::g::run_entry") {
                break;
            }
            if CAPTURE.iter().any(|c| symbol.starts_with(c)) {
                frames.clear();
            } else {
                frames.push((symbol, Vec::new()));
            }
        } else if let (Some(last), true) = (frames.last_mut(), trimmed.starts_with("at ")) {
            last.1.push(trimmed);
        }
    }
    while frames
        .last()
        .is_some_and(|(symbol, _)| ENTRY.iter().any(|e| symbol.starts_with(e)))
    {
        frames.pop();
    }
    let mut out = String::new();
    for (symbol, at) in frames {
        out.push_str("    ");
        out.push_str(symbol);
        out.push('\n');
        for a in at {
            out.push_str("        ");
            out.push_str(a);
            out.push('\n');
        }
    }
    out
}

/// The goroutine running on this thread, if any (null on an M's scheduler loop, in an async task,
/// and on plain threads). Read through the M (see "Thread-locals" above: never cached across a
/// switch).
#[inline]
pub(crate) fn current_g() -> *const G {
    crate::sched::current_m().map_or(std::ptr::null(), |m| m.curg.get())
}

/// Suspends the running goroutine with `why`. Must be called on a goroutine stack (`g` is the
/// current G).
#[inline(never)]
pub(crate) fn suspend(g: *const G, why: Suspend) {
    // SAFETY: `g` is the current G, so the M holds its scheduling reference and the G is alive; its
    // yielder was set by the body before any user code ran and stays valid until the body returns,
    // which cannot happen while we are inside it.
    unsafe {
        let y = (*g).yielder.get();
        debug_assert!(!y.is_null());
        (*y).suspend(why);
    }
}
