//! Creating goroutines and async tasks (Go's `newproc`), and yielding.
//!
//! A new goroutine gets an id from its P's batch, a warm stack from its P's cache, a [`G`] and a
//! coroutine whose closure lives at the top of that stack (corosensei writes it there: no extra heap
//! allocation), and goes to the current P's `runnext`, so that a spawner which then waits hands its P
//! straight to the child. Spawned from a plain thread, it goes to the runtime's global queue.
//!
//! The goroutine's root catches any panic, so a panicking goroutine never unwinds into the
//! scheduler; the payload goes to the `JoinHandle` and the panic hook reports it once.

use std::cell::UnsafeCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::g::{self, Entry, GoroutineId, Suspend};
use crate::join::{HasJoinState, JoinError, JoinHandle, JoinState};
use crate::sched::{RunItem, Sched};

/// Starts `f` as a goroutine on `sched`.
pub(crate) fn spawn_on<F, T>(sched: &'static Sched, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let mut start = None;
    let id = sched.newproc(|id, new_g| {
        let s = Arc::new(Start {
            id,
            f: UnsafeCell::new(Some(f)),
            join: JoinState::new(),
        });
        let g = new_g.with_entry(s.clone());
        start = Some(s);
        RunItem::from_g(g)
    });
    JoinHandle::new(id, start.expect("newproc calls make"))
}

/// A goroutine's closure and its join state, in one allocation shared by the G (as its `Entry`,
/// until it has run) and the `JoinHandle` (as `HasJoinState`).
struct Start<F, T> {
    id: GoroutineId,
    f: UnsafeCell<Option<F>>,
    join: JoinState<T>,
}

// SAFETY: `f` is taken exactly once, by the goroutine itself in `Entry::run` (the G calls its entry
// once, on the M holding its scheduling reference); the handle never touches it. `F: Send` lets it
// move to that M; `JoinState` is `Sync` for `T: Send`.
unsafe impl<F: Send, T: Send> Sync for Start<F, T> {}

impl<F, T> Entry for Start<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn run(&self) {
        // SAFETY: see the `Sync` impl: this is the single call, made by the goroutine.
        let f = unsafe { (*self.f.get()).take() }.expect("gort: goroutine started twice");
        let result = catch_unwind(AssertUnwindSafe(f))
            .map_err(|payload| JoinError::panicked(self.id, payload));
        self.join.complete(result);
    }
}

impl<F: Send, T: Send> HasJoinState<T> for Start<F, T> {
    fn join_state(&self) -> &JoinState<T> {
        &self.join
    }
}

/// Starts `fut` as an async task on `sched`'s Ps.
pub(crate) fn spawn_async_on<F>(sched: &'static Sched, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let join = Arc::new(JoinState::new());
    let join_in_task = join.clone();
    let id = sched.newproc(move |id, _| {
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
        RunItem::from_task(runnable)
    });
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
