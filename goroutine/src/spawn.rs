//! Creating goroutines and async tasks (Go's `newproc`), and yielding.
//!
//! A new goroutine gets an id from its P's batch and a `G` from its P's free list, with its closure
//! stored inside the G (boxed only when larger than the G's inline room); it goes to the current
//! P's `runnext`, so that a spawner which then waits hands its P straight to the child. Spawned from
//! a plain thread, it goes to the runtime's global queue. It gets a stack only when it first runs,
//! from the running P's cache of warm stacks. Spawning therefore allocates nothing in the common
//! case, and the `JoinHandle` shares the G itself.
//!
//! The goroutine's root catches any panic, so a panicking goroutine never unwinds into the
//! scheduler; the payload goes to the `JoinHandle` and the panic hook reports it once. An async task
//! (`spawn_async`) is an `async_task` runnable that travels through the same run queues; its
//! outcome goes to a small shared `JoinSlot`.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::g::{self, Suspend};
use crate::join::{JoinHandle, JoinSlot, JoinSource};
use crate::sched::{RunItem, Sched};

/// Starts `f` as a goroutine on `sched`.
pub(crate) fn spawn_on<F, T>(
    sched: &'static Sched,
    f: F,
    at: &'static std::panic::Location<'static>,
) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let mut source = None;
    let id = sched.newproc(|_, new_g| {
        let g = new_g.with_entry(f, at);
        source = Some(g.clone());
        RunItem::from_g(g)
    });
    let g: Arc<dyn JoinSource> = source.expect("newproc calls its builder");
    crate::sysmon::safe_point();
    // SAFETY: the G's entry runs `f` and completes its join slot with `f`'s `T` (`run_entry::<F, T>`).
    unsafe { JoinHandle::new(id, g) }
}

/// Starts `fut` as an async task on `sched`'s Ps.
pub(crate) fn spawn_async_on<F>(sched: &'static Sched, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let slot = Arc::new(JoinSlot::new());
    let slot_in_task = slot.clone();
    let id = sched.newproc(move |id, _| {
        let body = async move {
            let outcome = CatchUnwind(fut).await;
            // SAFETY: the task completes its slot once, with the `F::Output` its handle reads.
            unsafe { slot_in_task.complete(outcome) };
            sched.note_exited();
        };
        let (runnable, task) = async_task::Builder::new().metadata(id.as_u64()).spawn(
            move |_| body,
            async_task::WithInfo(move |r, info| sched.schedule_task(r, info)),
        );
        task.detach();
        RunItem::from_task(runnable)
    });
    // SAFETY: the task completes the slot with an `F::Output` (above).
    unsafe { JoinHandle::new(id, slot) }
}

/// Catches a panic from the inner future's `poll`, so an async task's panic reaches its handle.
struct CatchUnwind<F>(F);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field: it is never moved out of `self`.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Yields the processor: the calling goroutine goes to the back of its P's run queue and others run
/// (Go's `runtime.Gosched`). Off goroutines it yields the OS thread.
pub fn yield_now() {
    let g = g::current_g();
    if g.is_null() {
        std::thread::yield_now();
    } else {
        g::suspend(g, Suspend::Yield);
    }
}
