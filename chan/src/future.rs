//! Async operations: [`SendFuture`], [`RecvFuture`] and the waiting state behind `Receiver`'s
//! `Stream`.
//!
//! A future keeps its [`Context`] and [`Waiter`] in its own pinned memory and follows the commit
//! protocol (`protocol.rs`) with the task's waker. Re-polled while waiting, it swaps in the new waker
//! under the channel lock when the task's waker changed. Dropped while waiting, it cancels under the
//! lock: a receive whose value was already delivered puts it back at the front of the channel; a
//! send that had not fired drops its value unsent. So both are cancel-safe.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::task::{Poll, Waker};

use crate::chan::{Chan, RecvStep, SendStep};
use crate::error::{RecvError, SendError};
use crate::protocol::{self, Context, Waiter, Wakers, CLOSED, DONE, RETRY, WAITING};

const IDLE: u8 = 0;
const LINKED: u8 = 1;
const FINISHED: u8 = 2;

/// The waiting state of one async receive: used by [`RecvFuture`] and by `Receiver`'s `Stream`.
pub(crate) struct RecvWait<T> {
    cx: Context,
    w: Waiter<T>,
    phase: Cell<u8>,
    /// The channel of the current wait, for cancelling on drop.
    chan: Cell<*const Chan<T>>,
}

// SAFETY: the cells are only used through `poll` (with the pin held exclusively by the caller) and
// `drop`; the context and waiter are shared with partners as the protocol says.
unsafe impl<T: Send> Send for RecvWait<T> {}
// SAFETY: no method takes `&self` safely (`poll` is unsafe and requires exclusive use).
unsafe impl<T: Send> Sync for RecvWait<T> {}

impl<T> RecvWait<T> {
    pub(crate) fn new() -> RecvWait<T> {
        RecvWait {
            cx: Context::new(),
            w: Waiter::new(false, None),
            phase: Cell::new(IDLE),
            chan: Cell::new(std::ptr::null()),
        }
    }

    /// Polls a receive on `chan`; `Ready` ends the current wait (the next poll starts another).
    ///
    /// # Safety
    /// `self` is pinned and polled by one party at a time; `chan` is the same channel at every call
    /// and outlives `self`.
    pub(crate) unsafe fn poll(&self, chan: &Chan<T>, waker: &Waker) -> Poll<Result<T, RecvError>> {
        self.chan.set(chan);
        loop {
            if self.phase.get() == LINKED {
                let mut s = self.cx.load();
                if !protocol::is_final(s) {
                    let waker = waker.clone(); // foreign code: before locking
                    chan.lock();
                    s = self.cx.load();
                    if !protocol::is_final(s) {
                        // SAFETY: we hold the one lock our waiter can be linked under, and the state
                        // is not final.
                        let spare = unsafe { self.cx.update_waker(waker) };
                        chan.unlock();
                        drop(spare);
                        return Poll::Pending;
                    }
                    chan.unlock();
                }
                self.phase.set(IDLE);
                match protocol::tag(s) {
                    // SAFETY: final, published by the claimer, who unlinked the waiter.
                    DONE => return Poll::Ready(Ok(unsafe { self.w.take() }.expect(LOST))),
                    CLOSED => return Poll::Ready(Err(RecvError)),
                    RETRY => continue,
                    _ => unreachable!("gort: an async receive woke in state {s:#x}"),
                }
            }
            // Clone the task's waker before locking: a waker's clone is foreign code.
            let waker = waker.clone();
            chan.lock();
            // SAFETY: we hold the lock; nothing of ours is linked in the IDLE phase, and `self` stays
            // in place (pinned) until it is unlinked, by its drop at the latest.
            unsafe {
                let st = chan.state();
                let mut wakers = Wakers::default();
                match st.recv_step(&mut wakers) {
                    RecvStep::Got(v) => {
                        chan.unlock();
                        wakers.wake();
                        return Poll::Ready(Ok(v));
                    }
                    RecvStep::Closed => {
                        chan.unlock();
                        return Poll::Ready(Err(RecvError));
                    }
                    RecvStep::Bind => {
                        self.cx.claim_self(0);
                        self.cx.set_waker(waker);
                        st.recvq.push_front(&self.w, &self.cx, 0);
                        self.phase.set(LINKED);
                        chan.unlock();
                        wakers.wake();
                        return Poll::Pending;
                    }
                    RecvStep::Empty => {
                        self.cx.reset();
                        self.cx.set_waker(waker);
                        st.recvq.push_back(&self.w, &self.cx, 0);
                        self.phase.set(LINKED);
                        chan.unlock();
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl<T> Drop for RecvWait<T> {
    fn drop(&mut self) {
        if self.phase.get() != LINKED {
            return;
        }
        // SAFETY: a linked wait recorded its channel, which outlives it (the `poll` contract).
        let chan = unsafe { &*self.chan.get() };
        chan.lock();
        // SAFETY: we hold the lock of the only channel our waiter can be linked in, so no partner is
        // between claim and publication: the state is WAITING, claimed in place, or final.
        let (wakers, unsent) = unsafe {
            let st = chan.state();
            let mut s = self.cx.load();
            if protocol::tag(s) == WAITING && self.cx.try_abort().is_ok() {
                s = protocol::ABORTED;
            }
            st.unlink_receiver(&self.w, s);
            match protocol::tag(s) {
                // Delivered but never returned: put it back at the front.
                DONE => match self.w.take() {
                    Some(v) => match st.put_back(v) {
                        Ok(w) => (Some(w), None),
                        Err(v) => (None, Some(v)),
                    },
                    None => (None, None),
                },
                _ => (None, None),
            }
        };
        chan.unlock();
        if let Some(w) = wakers {
            w.wake();
        }
        drop(unsent);
    }
}

const LOST: &str = "gort: a finished channel waiter lost its value";

/// A future that receives from a channel, from [`Receiver::recv_async`](crate::Receiver::recv_async).
///
/// Resolves to the value, or to [`RecvError`] once the channel is closed and drained. Cancel-safe:
/// dropping it before it resolves loses nothing, even if a sender already handed it a value (the value
/// goes back to the front of the channel, for the next receiver; if the channel was closed in the
/// meantime, the value still waits there, so a receive after another receiver saw the close can
/// get it).
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'a, T> {
    chan: &'a Chan<T>,
    wait: RecvWait<T>,
    done: bool,
}

impl<'a, T> RecvFuture<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>) -> RecvFuture<'a, T> {
        RecvFuture {
            chan,
            wait: RecvWait::new(),
            done: false,
        }
    }
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of the future; `wait` stays where it is (pinned with us).
        let this = unsafe { self.get_unchecked_mut() };
        assert!(
            !this.done,
            "gort: a channel future polled after it completed"
        );
        // SAFETY: `wait` is pinned (inside the pinned future), polled only here, always against
        // `this.chan`, which outlives the future.
        let r = unsafe { this.wait.poll(this.chan, cx.waker()) };
        if r.is_ready() {
            this.done = true;
        }
        r
    }
}

impl<T> fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFuture").finish_non_exhaustive()
    }
}

/// A future that sends a value, from [`Sender::send_async`](crate::Sender::send_async).
///
/// Resolves to `Ok(())` once the value is sent (buffered, or taken by a receiver), or to
/// [`SendError`] with the value if the channel is closed or has no receivers. Cancel-safe: dropping it
/// before it resolves drops the value unsent; it is never both sent and dropped.
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a, T> {
    chan: &'a Chan<T>,
    cx: Context,
    /// Holds the message from creation until it is sent or handed back.
    w: Waiter<T>,
    phase: Cell<u8>,
    _pin: PhantomPinned,
}

// SAFETY: the cells are only used through `poll` (exclusive, pinned) and `drop`; the context and
// waiter follow the protocol.
unsafe impl<T: Send> Send for SendFuture<'_, T> {}
// SAFETY: no method of the future takes `&self`.
unsafe impl<T: Send> Sync for SendFuture<'_, T> {}

impl<'a, T> SendFuture<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>, value: T) -> SendFuture<'a, T> {
        SendFuture {
            chan,
            cx: Context::new(),
            w: Waiter::new(false, Some(value)),
            phase: Cell::new(IDLE),
            _pin: PhantomPinned,
        }
    }
}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, task: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.into_ref().get_ref();
        let chan = this.chan;
        match this.phase.get() {
            FINISHED => panic!("gort: a channel future polled after it completed"),
            LINKED => {
                let mut s = this.cx.load();
                if !protocol::is_final(s) {
                    let waker = task.waker().clone(); // foreign code: before locking
                    chan.lock();
                    s = this.cx.load();
                    if !protocol::is_final(s) {
                        // SAFETY: we hold the one lock our waiter can be linked under; not final.
                        let spare = unsafe { this.cx.update_waker(waker) };
                        chan.unlock();
                        drop(spare);
                        return Poll::Pending;
                    }
                    chan.unlock();
                }
                this.phase.set(FINISHED);
                match protocol::tag(s) {
                    DONE => Poll::Ready(Ok(())),
                    // SAFETY: final, published by the claimer, who unlinked the waiter.
                    CLOSED => Poll::Ready(Err(SendError(unsafe { this.w.take() }.expect(LOST)))),
                    _ => unreachable!("gort: an async send woke in state {s:#x}"),
                }
            }
            _ => {
                let waker = task.waker().clone();
                chan.lock();
                // SAFETY: we hold the lock; our waiter is not linked (IDLE), so its slot is ours; the
                // future is pinned, so `cx` and `w` stay in place until unlinked (by drop at latest).
                unsafe {
                    let st = chan.state();
                    let value = this.w.take().expect(LOST);
                    let mut wakers = Wakers::default();
                    match st.send_step(value, &mut wakers) {
                        SendStep::Sent => {
                            this.phase.set(FINISHED);
                            chan.unlock();
                            wakers.wake();
                            Poll::Ready(Ok(()))
                        }
                        SendStep::Closed(v) => {
                            this.phase.set(FINISHED);
                            chan.unlock();
                            Poll::Ready(Err(SendError(v)))
                        }
                        SendStep::Full(v) => {
                            this.w.put(v);
                            this.cx.set_waker(waker);
                            st.sendq.push_back(&this.w, &this.cx, 0);
                            this.phase.set(LINKED);
                            chan.unlock();
                            Poll::Pending
                        }
                    }
                }
            }
        }
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        if self.phase.get() != LINKED {
            return;
        }
        self.chan.lock();
        // SAFETY: we hold the only lock our waiter can be linked under: its state is WAITING (abort
        // it; nobody else can race) or final (the claimer unlinked it).
        unsafe {
            if protocol::tag(self.cx.load()) == WAITING {
                let _ = self.cx.try_abort();
            }
            self.chan.state().unlink_sender(&self.w);
        }
        self.chan.unlock();
        // An unsent value (aborted, or handed back by CLOSED) drops with the waiter, unlocked.
    }
}

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture").finish_non_exhaustive()
    }
}
