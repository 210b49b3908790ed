//! Creating goroutines and async tasks (Go's `newproc`), and yielding.
//!
//! A new goroutine gets an id from its P's batch, a warm stack from its P's cache, a [`G`] and a
//! coroutine whose closure lives at the top of that stack (corosensei writes it there: no extra heap
//! allocation), and goes to the current P's `runnext`, so that a spawner which then waits hands its P
//! straight to the child. Spawned from a plain thread, it goes to the runtime's global queue.
//!
//! The goroutine's root catches any panic, so a panicking goroutine never unwinds into the
//! scheduler; the payload goes to the `JoinHandle` and the panic hook reports it once.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::g::{self, Entry, Suspend, G};
use crate::join::{JoinError, JoinHandle, JoinState};
use crate::sched::{RunItem, Sched};

/// Starts `f` as a goroutine on `sched`.
pub(crate) fn spawn_on<F, T>(sched: &'static Sched, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let id = sched.next_goid();
    let join = Arc::new(JoinState::new());
    let join_in_g = join.clone();
    let entry: Entry = Box::new(move || {
        let result =
            catch_unwind(AssertUnwindSafe(f)).map_err(|payload| JoinError::panicked(id, payload));
        join_in_g.complete(result);
    });
    sched.note_created();
    sched.ready(RunItem::from_g(Arc::new(G::new(id, sched, entry))));
    JoinHandle::new(id, join)
}

/// Starts `fut` as an async task on `sched`'s Ps.
pub(crate) fn spawn_async_on<F>(sched: &'static Sched, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let id = sched.next_goid();
    let join = Arc::new(JoinState::new());
    let join_in_task = join.clone();
    let body = async move {
        let result = CatchUnwind(fut)
            .await
            .map_err(|payload| JoinError::panicked(id, payload));
        join_in_task.complete(result);
        sched.note_exited();
    };
    let (runnable, task) = async_task::Builder::new().metadata(id.as_u64()).spawn(
        move |_| body,
        async_task::WithInfo(move |r, info| sched.schedule_task(r, info)),
    );
    task.detach();
    sched.note_created();
    runnable.schedule();
    JoinHandle::new(id, join)
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
