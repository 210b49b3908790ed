//! `JoinHandle` and `JoinError`: waiting for a goroutine's (or async task's) result.
//!
//! The goroutine and its handle share a [`JoinState`]: a state word, the result slot and one waker
//! slot. The protocol (the same one tokio's join handles use) lets either side go first without a lock:
//!
//! * the goroutine writes the result, then sets `COMPLETE`; if `WAKER_SET` was already set, it takes
//!   the waker and wakes it;
//! * the handle, when the result is not there yet, writes its waker into the slot *while
//!   `WAKER_SET` is clear* and then sets `WAKER_SET` with a CAS that fails if `COMPLETE` appeared.
//!
//! So the waker slot is written only by the handle while `WAKER_SET` is clear, and read only by the
//! goroutine after it saw `WAKER_SET`; the result slot is written only before `COMPLETE` and read
//! only after it. Dropping the handle detaches: the result is dropped with the shared state.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::g::GoroutineId;

const COMPLETE: usize = 0b01;
const WAKER_SET: usize = 0b10;

/// Shared between a goroutine and its [`JoinHandle`].
pub(crate) struct JoinState<T> {
    state: AtomicUsize,
    result: UnsafeCell<Option<Result<T, JoinError>>>,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the slots are handed between threads by the state word's protocol (module docs): each is
// accessed by one side at a time, with Release/Acquire on `state` ordering the hand-over. `T: Send`
// because the value crosses from the goroutine to the joiner.
unsafe impl<T: Send> Sync for JoinState<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for JoinState<T> {}

impl<T> JoinState<T> {
    pub(crate) fn new() -> JoinState<T> {
        JoinState {
            state: AtomicUsize::new(0),
            result: UnsafeCell::new(None),
            waker: UnsafeCell::new(None),
        }
    }

    /// Called once by the goroutine with its result.
    pub(crate) fn complete(&self, result: Result<T, JoinError>) {
        // SAFETY: before COMPLETE only the goroutine touches the result slot.
        unsafe { *self.result.get() = Some(result) };
        let prev = self.state.fetch_or(COMPLETE, Ordering::AcqRel);
        if prev & WAKER_SET != 0 {
            // SAFETY: WAKER_SET was set and can no longer be cleared (COMPLETE is set), so the handle
            // will not touch the waker slot again.
            if let Some(w) = unsafe { (*self.waker.get()).take() } {
                w.wake();
            }
        }
    }

    fn take_result(&self) -> Result<T, JoinError> {
        // SAFETY: called after observing COMPLETE (Acquire), after which only the handle touches it.
        unsafe { (*self.result.get()).take() }
            .expect("gort: JoinHandle polled after it returned its result")
    }

    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let mut s = self.state.load(Ordering::Acquire);
        if s & COMPLETE != 0 {
            return Poll::Ready(self.take_result());
        }
        if s & WAKER_SET != 0 {
            // Take the slot back before looking at it: while WAKER_SET is set the goroutine may be
            // taking the waker out.
            match self.state.compare_exchange(
                s,
                s & !WAKER_SET,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => s &= !WAKER_SET,
                Err(_) => return Poll::Ready(self.take_result()),
            }
        }
        // SAFETY: WAKER_SET is clear, so the goroutine will not touch the slot.
        let slot = unsafe { &mut *self.waker.get() };
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
        match self
            .state
            .compare_exchange(s, s | WAKER_SET, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Poll::Pending,
            Err(_) => {
                // COMPLETE arrived: the slot is still ours.
                // SAFETY: WAKER_SET was never set for this waker.
                drop(unsafe { (*self.waker.get()).take() });
                Poll::Ready(self.take_result())
            }
        }
    }
}

/// An owned permission to wait for a goroutine (or an async task) and take its result.
///
/// `join` parks a goroutine (blocks a plain thread); the handle is also a `Future` for async code.
/// Dropping the handle detaches the goroutine: it keeps running and its result is dropped.
pub struct JoinHandle<T> {
    id: GoroutineId,
    state: Arc<dyn HasJoinState<T>>,
}

/// An allocation that contains a goroutine's [`JoinState`] (a goroutine's entry, or the state alone
/// for an async task), so the handle can share it without knowing the closure's type.
pub(crate) trait HasJoinState<T>: Send + Sync {
    fn join_state(&self) -> &JoinState<T>;
}

impl<T: Send> HasJoinState<T> for JoinState<T> {
    fn join_state(&self) -> &JoinState<T> {
        self
    }
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(id: GoroutineId, state: Arc<dyn HasJoinState<T>>) -> JoinHandle<T> {
        JoinHandle { id, state }
    }

    /// The goroutine's id.
    pub fn id(&self) -> GoroutineId {
        self.id
    }

    /// Whether the goroutine has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.state.join_state().state.load(Ordering::Acquire) & COMPLETE != 0
    }

    /// Waits for the goroutine to finish and returns its value, or the panic it died with. Parks the
    /// calling goroutine; on a plain thread, blocks the thread.
    pub fn join(self) -> Result<T, JoinError> {
        crate::park::block_on(self)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.state.join_state().poll_join(cx)
    }
}

impl<T> Unpin for JoinHandle<T> {}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a goroutine produced no value: it panicked.
pub struct JoinError {
    id: GoroutineId,
    payload: Box<dyn Any + Send + 'static>,
}

impl JoinError {
    pub(crate) fn panicked(id: GoroutineId, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError { id, payload }
    }

    /// Whether the goroutine panicked. gort goroutines cannot be cancelled, so today every
    /// `JoinError` is a panic; the method exists so code stays correct if other causes are added.
    pub fn is_panic(&self) -> bool {
        true
    }

    /// The panic payload, for `std::panic::resume_unwind` or inspection.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.payload
    }

    /// The goroutine that failed.
    pub fn id(&self) -> GoroutineId {
        self.id
    }

    fn message(&self) -> &str {
        crate::panic::payload_str(&*self.payload)
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinError")
            .field("id", &self.id)
            .field("panic", &self.message())
            .finish()
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "goroutine {} panicked: {}", self.id, self.message())
    }
}

impl std::error::Error for JoinError {}
