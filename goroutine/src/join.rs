//! `JoinHandle` and `JoinError`: waiting for a goroutine's (or async task's) result.
//!
//! The goroutine and its handle share a [`JoinSlot`], which lives inside the G itself (or, for an
//! async task, in a small shared allocation): a state word, the result and one waker. The protocol
//! lets either side go first without a lock:
//!
//! * the goroutine writes its outcome, then sets `COMPLETE`; if `WAKER_SET` was already set, it takes
//!   the waker and wakes it;
//! * the handle, when the result is not there yet, writes its waker into the slot *while `WAKER_SET`
//!   is clear* and then sets `WAKER_SET` with a CAS that fails if `COMPLETE` appeared. To change its
//!   waker it first clears `WAKER_SET` with a CAS (which fails once `COMPLETE` is set).
//!
//! So the waker is written only by the handle while `WAKER_SET` is clear and read only by the
//! goroutine after it saw `WAKER_SET`; the outcome is written only before `COMPLETE` and read only
//! after it. Dropping the handle detaches: an unread result is dropped when the G is reused or freed.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::erased::Erased;
use crate::g::GoroutineId;

const COMPLETE: usize = 0b01;
const WAKER_SET: usize = 0b10;

/// A goroutine's outcome and the waker of whoever waits for it (see the module docs).
pub(crate) struct JoinSlot {
    state: AtomicUsize,
    /// The `T` the goroutine returned (two words inline, larger values boxed).
    value: UnsafeCell<Erased<2>>,
    /// Or the payload it panicked with.
    panic: UnsafeCell<Option<Box<dyn Any + Send + 'static>>>,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the cells are handed between threads by the state word's protocol (module docs): each is
// accessed by one side at a time, with Release/Acquire on `state` ordering the hand-over; the values
// in them are `Send`.
unsafe impl Sync for JoinSlot {}
// SAFETY: as above.
unsafe impl Send for JoinSlot {}

impl JoinSlot {
    pub(crate) const fn new() -> JoinSlot {
        JoinSlot {
            state: AtomicUsize::new(0),
            value: UnsafeCell::new(Erased::new()),
            panic: UnsafeCell::new(None),
            waker: UnsafeCell::new(None),
        }
    }

    /// Empties the slot for a new goroutine (dropping an unread result).
    pub(crate) fn reset(&mut self) {
        *self.state.get_mut() = 0;
        self.value.get_mut().clear();
        *self.panic.get_mut() = None;
        *self.waker.get_mut() = None;
    }

    /// Called once by the goroutine with its outcome.
    ///
    /// # Safety
    /// Called once per goroutine, by the goroutine, and `T` is the type its `JoinHandle` reads.
    pub(crate) unsafe fn complete<T: Send + 'static>(&self, outcome: std::thread::Result<T>) {
        // SAFETY: before COMPLETE only the goroutine touches the outcome cells.
        unsafe {
            match outcome {
                Ok(v) => (*self.value.get()).put(v),
                Err(payload) => *self.panic.get() = Some(payload),
            }
        }
        let prev = self.state.fetch_or(COMPLETE, Ordering::AcqRel);
        if prev & WAKER_SET != 0 {
            // SAFETY: WAKER_SET was set and can no longer be cleared (COMPLETE is set), so the handle
            // will not touch the waker slot again.
            if let Some(w) = unsafe { (*self.waker.get()).take() } {
                w.wake();
            }
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMPLETE != 0
    }

    /// # Safety
    /// Called after observing COMPLETE, by the single handle, with the goroutine's `T`.
    unsafe fn take_outcome<T>(&self, id: GoroutineId) -> Result<T, JoinError> {
        // SAFETY: COMPLETE was observed with Acquire, so the goroutine is done with the cells and
        // only the handle touches them now.
        unsafe {
            if let Some(payload) = (*self.panic.get()).take() {
                return Err(JoinError::panicked(id, payload));
            }
            let value = &mut *self.value.get();
            assert!(
                value.is_full(),
                "gort: JoinHandle polled after it returned its result"
            );
            Ok(value.take::<T>())
        }
    }

    /// # Safety
    /// Called by the single handle, with the goroutine's `T`.
    unsafe fn poll_join<T>(
        &self,
        id: GoroutineId,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, JoinError>> {
        let mut s = self.state.load(Ordering::Acquire);
        if s & COMPLETE != 0 {
            // SAFETY: COMPLETE observed; the caller's contract covers the rest.
            return Poll::Ready(unsafe { self.take_outcome(id) });
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
                // SAFETY: the CAS can only fail because COMPLETE was set.
                Err(_) => return Poll::Ready(unsafe { self.take_outcome(id) }),
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
                // COMPLETE arrived; WAKER_SET was never set for this waker, so the slot is ours.
                drop(slot.take());
                // SAFETY: COMPLETE observed.
                Poll::Ready(unsafe { self.take_outcome(id) })
            }
        }
    }
}

/// Something that holds a goroutine's [`JoinSlot`]: the G itself, or an async task's slot.
pub(crate) trait JoinSource: Send + Sync {
    fn join_slot(&self) -> &JoinSlot;
    /// The handle is done with this source (a G uses it to go back to its P's free list).
    fn release(self: Arc<Self>) {}
}

impl JoinSource for JoinSlot {
    fn join_slot(&self) -> &JoinSlot {
        self
    }
}

/// An owned permission to wait for a goroutine (or an async task) and take its result.
///
/// `join` parks a goroutine (blocks a plain thread); the handle is also a `Future` for async code.
/// Dropping the handle detaches the goroutine: it keeps running and its result is dropped.
pub struct JoinHandle<T> {
    id: GoroutineId,
    source: Option<Arc<dyn JoinSource>>,
    _result: PhantomData<fn() -> T>,
}

impl<T> JoinHandle<T> {
    /// # Safety
    /// The goroutine behind `source` completes its slot with a `T`.
    pub(crate) unsafe fn new(id: GoroutineId, source: Arc<dyn JoinSource>) -> JoinHandle<T> {
        JoinHandle {
            id,
            source: Some(source),
            _result: PhantomData,
        }
    }

    fn slot(&self) -> &JoinSlot {
        self.source
            .as_ref()
            .expect("gort: JoinHandle used after drop")
            .join_slot()
    }

    /// The goroutine's id.
    pub fn id(&self) -> GoroutineId {
        self.id
    }

    /// Whether the goroutine has finished (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.slot().is_complete()
    }

    /// Waits for the goroutine to finish and returns its value, or the panic it died with. Parks the
    /// calling goroutine; on a plain thread, blocks the thread.
    pub fn join(self) -> Result<T, JoinError> {
        crate::park::block_on_with(self, crate::park::WaitReason::Join)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        // SAFETY: this handle is the only reader of the slot, and `new`'s contract says the goroutine
        // completes it with a `T`.
        unsafe { self.slot().poll_join::<T>(id, cx) }
    }
}

impl<T> Unpin for JoinHandle<T> {}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(source) = self.source.take() {
            source.release();
        }
    }
}

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
