//! The parking core: one way to wait and one way to wake, for goroutines, plain threads and async
//! tasks alike.
//!
//! Everything that blocks in gort (join, `WaitGroup`, channels, sync types, timers, sockets) waits
//! the same way: it takes a [`Waker`] from [`current_waker`], stores it where the event will be
//! signalled, re-checks its condition, and calls [`park`] until the condition holds. The event's
//! side calls `Waker::wake`. What the waker does depends on who waited:
//!
//! * in a goroutine, it readies the G on its runtime (the G's park protocol, see `g.rs`);
//! * on a plain thread, it unparks the thread (`std::thread::unpark`);
//! * in an async task, the caller uses the `Context`'s own waker instead, which reschedules the task.
//!
//! So a channel or a mutex keeps a single list of `Waker`s and never needs to know who is behind each.
//! [`park`] may return spuriously (a wake meant for an earlier wait): callers always loop.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::time::Instant;

use crate::g::{self, Suspend, G};

/// A [`Waker`] that ends the current wait of the calling goroutine or thread.
///
/// In a goroutine it readies the goroutine; on a plain thread (or inside an async task's `poll`,
/// which runs on a runtime thread) it unparks the thread.
pub fn current_waker() -> Waker {
    let g = g::current_g();
    if g.is_null() {
        thread_waker()
    } else {
        g_waker(g)
    }
}

/// Why a goroutine waits, as goroutine dumps show it (Go's `waitReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum WaitReason {
    /// A plain [`park`] with no reason given.
    Park = 0,
    /// Receiving from a channel.
    ChanReceive,
    /// Sending on a channel.
    ChanSend,
    /// In a `select!` with cases.
    Select,
    /// In a `select!` with no cases (waits forever).
    SelectNoCases,
    /// In `time::sleep`.
    Sleep,
    /// Waiting for a socket to become ready.
    IoWait,
    /// In `WaitGroup::wait`.
    WaitGroup,
    /// Waiting for a `Mutex` or `RwLock`.
    Lock,
    /// In `Condvar::wait`.
    Cond,
    /// Waiting for another caller's `Once::call_once`.
    Once,
    /// In `JoinHandle::join`.
    Join,
    /// In `block_on`, waiting for a future.
    BlockOn,
}

impl WaitReason {
    /// The reason as Go spells it in goroutine dumps.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::Park => "park",
            WaitReason::ChanReceive => "chan receive",
            WaitReason::ChanSend => "chan send",
            WaitReason::Select => "select",
            WaitReason::SelectNoCases => "select (no cases)",
            WaitReason::Sleep => "sleep",
            WaitReason::IoWait => "IO wait",
            WaitReason::WaitGroup => "sync.WaitGroup.Wait",
            WaitReason::Lock => "sync.Mutex.Lock",
            WaitReason::Cond => "sync.Cond.Wait",
            WaitReason::Once => "sync.Once.Do",
            WaitReason::Join => "join",
            WaitReason::BlockOn => "block_on",
        }
    }

    pub(crate) fn from_u8(v: u8) -> WaitReason {
        const ALL: [WaitReason; 13] = [
            WaitReason::Park,
            WaitReason::ChanReceive,
            WaitReason::ChanSend,
            WaitReason::Select,
            WaitReason::SelectNoCases,
            WaitReason::Sleep,
            WaitReason::IoWait,
            WaitReason::WaitGroup,
            WaitReason::Lock,
            WaitReason::Cond,
            WaitReason::Once,
            WaitReason::Join,
            WaitReason::BlockOn,
        ];
        ALL.get(usize::from(v)).copied().unwrap_or(WaitReason::Park)
    }
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Blocks the calling goroutine (or, off goroutines, the calling thread) until a [`Waker`] obtained
/// from [`current_waker`] is woken. May return spuriously; loop on your condition.
pub fn park() {
    park_with(WaitReason::Park);
}

/// [`park`], recording why: goroutine dumps (`runtime::dump`, SIGQUIT, the deadlock report) show
/// the reason and how long the goroutine has waited.
pub fn park_with(reason: WaitReason) {
    let g = g::current_g();
    if g.is_null() {
        std::thread::park();
    } else {
        // SAFETY: `g` is the running goroutine, alive while it runs.
        unsafe { (*g).set_wait_reason(reason) };
        g::suspend(g, Suspend::Park);
    }
}

/// Like [`park`], but returns by `deadline` at the latest: in a goroutine a runtime timer wakes it,
/// on a plain thread `std::thread::park_timeout` bounds the wait. May return early or spuriously;
/// loop on your condition and on `Instant::now() < deadline`.
pub fn park_until(deadline: Instant) {
    park_until_with(deadline, WaitReason::Park);
}

/// [`park_until`], recording why (see [`park_with`]).
pub fn park_until_with(deadline: Instant, reason: WaitReason) {
    let g = g::current_g();
    let now = Instant::now();
    if now >= deadline {
        return;
    }
    if g.is_null() {
        std::thread::park_timeout(deadline - now);
    } else {
        let timer = crate::timer::add(deadline, g_waker(g));
        // SAFETY: `g` is the running goroutine, alive while it runs.
        unsafe { (*g).set_wait_reason(reason) };
        g::suspend(g, Suspend::Park);
        timer.cancel();
    }
}

/// Runs a future to completion on the calling goroutine, parking only the goroutine while the future
/// is pending (other goroutines keep running on this thread). Off goroutines it blocks the thread.
///
/// Inside an async task (`spawn_async`) use `.await` instead: blocking there stalls the whole thread.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    block_on_with(fut, WaitReason::BlockOn)
}

/// [`block_on`], with the wait reason goroutine dumps show while the future is pending.
pub(crate) fn block_on_with<F: Future>(fut: F, reason: WaitReason) -> F::Output {
    let waker = current_waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        park_with(reason);
    }
}

// ---- goroutine wakers ------------------------------------------------------------------------------

static G_WAKER: RawWakerVTable = RawWakerVTable::new(g_clone, g_wake, g_wake_by_ref, g_drop);

/// A waker for the G at `g` (the current goroutine), holding its own strong reference.
fn g_waker(g: *const G) -> Waker {
    // SAFETY: `g` is the running goroutine, kept alive by its scheduling reference while it runs; we
    // add a strong count that the waker owns and releases in `g_drop`/`g_wake`.
    unsafe {
        Arc::increment_strong_count(g);
        Waker::from_raw(RawWaker::new(g as *const (), &G_WAKER))
    }
}

unsafe fn g_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a strong `Arc<G>` reference owned by the waker being cloned.
    unsafe { Arc::increment_strong_count(data as *const G) };
    RawWaker::new(data, &G_WAKER)
}

unsafe fn g_wake(data: *const ()) {
    // SAFETY: the waker owned one strong reference; we take it over and drop it after waking.
    let g = unsafe { Arc::from_raw(data as *const G) };
    G::wake(&g);
}

unsafe fn g_wake_by_ref(data: *const ()) {
    // SAFETY: the waker's strong reference keeps the G alive for this call; ManuallyDrop leaves the
    // count untouched.
    let g = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(data as *const G) });
    G::wake(&g);
}

unsafe fn g_drop(data: *const ()) {
    // SAFETY: releases the strong reference the waker owned.
    drop(unsafe { Arc::from_raw(data as *const G) });
}

// ---- thread wakers ---------------------------------------------------------------------------------

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static THREAD_WAKER: Waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
}

#[inline(never)]
fn thread_waker() -> Waker {
    THREAD_WAKER.with(|w| w.clone())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn thread_park_and_wake() {
        let flag = Arc::new(AtomicBool::new(false));
        let waker = current_waker();
        let f2 = flag.clone();
        let t = std::thread::spawn(move || {
            f2.store(true, Ordering::Release);
            waker.wake();
        });
        while !flag.load(Ordering::Acquire) {
            park();
        }
        t.join().unwrap();
    }

    #[test]
    fn block_on_ready_future() {
        assert_eq!(block_on(async { 7 }), 7);
    }
}
