//! The public handles, [`Sender`] and [`Receiver`], and their blocking operations.
//!
//! A blocking operation tries its step under the channel lock (`chan.rs`); if it must wait, it links
//! a waiter that lives on its own stack, parks, and reads the outcome from its context, following
//! the commit protocol (`protocol.rs`). Handles are counted separately for each side: the last
//! `Sender` to go closes the channel, the last `Receiver` to go disconnects it (waiting senders fail,
//! buffered values are dropped).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::chan::{Chan, RecvStep, SendStep};
use crate::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::future::{RecvFuture, RecvWait, SendFuture};
use crate::protocol::{self, Context, Waiter, Wakers, ABORTED, CLOSED, DONE, RETRY};
use crate::sys::{self, Ordering, WaitReason};

/// Creates a channel with a buffer of `cap` values: Go's `make(chan T, cap)`.
///
/// `bounded(0)` is Go's unbuffered channel: a send waits until a receiver takes the value, directly
/// from the sender's hand. A larger capacity lets senders run ahead by up to `cap` values.
///
/// ```
/// let (tx, rx) = gort_chan::bounded(1);
/// tx.send("ping").unwrap(); // room for one: does not wait
/// assert_eq!(tx.try_send("pong"), Err(gort_chan::TrySendError::Full("pong")));
/// assert_eq!(rx.recv(), Ok("ping"));
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    pair(Arc::new(Chan::new(Some(cap))))
}

/// Creates a channel with an unbounded buffer: sends never wait.
///
/// Go has no such channel; it is here for the places where a producer must never block (the buffer
/// grows as needed, so memory is the limit).
///
/// ```
/// let (tx, rx) = gort_chan::unbounded();
/// for i in 0..1000 {
///     tx.send(i).unwrap();
/// }
/// drop(tx); // closes the channel
/// assert_eq!(rx.iter().sum::<i32>(), 499_500);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    pair(Arc::new(Chan::new(None)))
}

fn pair<T>(chan: Arc<Chan<T>>) -> (Sender<T>, Receiver<T>) {
    (
        Sender { chan: chan.clone() },
        Receiver { chan, stream: None },
    )
}

/// The sending side of a channel. Clone it to send from several goroutines (MPMC).
///
/// Dropping the last `Sender` closes the channel: receivers drain what is buffered, then get
/// [`RecvError`].
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving side of a channel. Clone it to receive from several goroutines (MPMC); each value
/// goes to exactly one receiver.
///
/// Dropping the last `Receiver` makes every send fail (with the value given back) instead of
/// blocking forever, and drops the values still buffered.
pub struct Receiver<T> {
    pub(crate) chan: Arc<Chan<T>>,
    /// The waiting state of this handle's `Stream`, boxed so it stays in place while the handle
    /// moves; allocated at the first `poll_next` that has to wait.
    stream: Option<Pin<Box<RecvWait<T>>>>,
}

/// How long an operation may wait.
#[derive(Clone, Copy)]
enum Wait {
    Never,
    Until(Instant),
    Forever,
}

/// How a send ended without sending.
enum SendFail<T> {
    Disconnected(T),
    /// Full (for a try) or timed out.
    NotNow(T),
}

/// How a receive ended without a value.
enum RecvFail {
    Disconnected,
    /// Empty (for a try) or timed out.
    NotNow,
}

/// Aborts the process if a panic unwinds while a waiter is linked: its memory is about to go away
/// under other threads' feet. Only the runtime's park could panic there, which would be a gort bug.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!("gort: a panic unwound through a parked channel operation; aborting");
        std::process::abort();
    }
}

/// Waits on `cx` (see [`Context::wait`]), aborting the process if that panics.
pub(crate) fn wait_guarded(cx: &Context, deadline: Option<Instant>, reason: WaitReason) -> usize {
    let guard = AbortOnUnwind;
    let s = cx.wait(deadline, reason);
    std::mem::forget(guard);
    s
}

fn deadline_after(timeout: Duration) -> Wait {
    match Instant::now().checked_add(timeout) {
        Some(d) => Wait::Until(d),
        None => Wait::Forever,
    }
}

impl<T> Chan<T> {
    fn send_with(&self, value: T, wait: Wait) -> Result<(), SendFail<T>> {
        self.lock();
        let mut wakers = Wakers::default();
        // SAFETY: we hold the lock.
        let value = match unsafe { self.state().send_step(value, &mut wakers) } {
            SendStep::Sent => {
                self.unlock();
                wakers.wake();
                sys::safe_point();
                return Ok(());
            }
            SendStep::Closed(v) => {
                self.unlock();
                sys::safe_point();
                return Err(SendFail::Disconnected(v));
            }
            SendStep::Full(v) => v,
        };
        let deadline = match wait {
            Wait::Never => {
                self.unlock();
                sys::safe_point();
                return Err(SendFail::NotNow(value));
            }
            Wait::Until(d) => Some(d),
            Wait::Forever => None,
        };
        // Block: a waiter on this stack frame, which stays in place until it is unlinked.
        let cx = Context::for_op(deadline);
        let w = Waiter::new(false, Some(value));
        // SAFETY: we hold the lock and nothing of ours is linked yet; `cx` and `w` outlive the link
        // (every exit below happens after the waiter is unlinked: by the claimer for a final state
        // it publishes, by us for an abort).
        unsafe {
            cx.set_waker(sys::current_waker());
            self.state().sendq.push_back(&w, &cx, 0);
        }
        self.unlock();
        let s = wait_guarded(&cx, deadline, WaitReason::ChanSend);
        // SAFETY (all three arms): the state is final; the claimer unlinked the waiter before
        // publishing DONE/CLOSED; after our own abort we unlink it under the lock first.
        match protocol::tag(s) {
            DONE => Ok(()),
            CLOSED => Err(SendFail::Disconnected(unsafe { take_message(&w) })),
            ABORTED => {
                // SAFETY: under the lock; `w` is ours.
                self.with(|st| unsafe { st.unlink_sender(&w) });
                Err(SendFail::NotNow(unsafe { take_message(&w) }))
            }
            _ => unreachable!("gort: a blocked send woke in state {s:#x}"),
        }
    }

    fn recv_with(&self, wait: Wait) -> Result<T, RecvFail> {
        loop {
            self.lock();
            let mut wakers = Wakers::default();
            // SAFETY: we hold the lock.
            match unsafe { self.state().recv_step(&mut wakers) } {
                RecvStep::Got(v) => {
                    self.unlock();
                    wakers.wake();
                    sys::safe_point();
                    return Ok(v);
                }
                RecvStep::Closed => {
                    self.unlock();
                    sys::safe_point();
                    return Err(RecvFail::Disconnected);
                }
                RecvStep::Bind => {
                    // A select's send case fired for us; wait for its value (even for a try, or past
                    // a deadline: the send has happened, so the value must land somewhere).
                    let cx = Context::new();
                    let w = Waiter::new(false, None);
                    // SAFETY: under the lock, nothing of ours linked; `recv_step` counted us among
                    // the claimed receivers, and we join the claimed prefix at the head.
                    unsafe {
                        cx.claim_self(0);
                        cx.set_waker(sys::current_waker());
                        self.state().recvq.push_front(&w, &cx, 0);
                    }
                    self.unlock();
                    wakers.wake();
                    let s = wait_guarded(&cx, None, WaitReason::ChanReceive);
                    match protocol::tag(s) {
                        // SAFETY: final and published by the claimer, who unlinked `w`.
                        DONE => return Ok(unsafe { take_message(&w) }),
                        RETRY => continue,
                        _ => unreachable!("gort: a bound receive woke in state {s:#x}"),
                    }
                }
                RecvStep::Empty => {}
            }
            let deadline = match wait {
                Wait::Never => {
                    self.unlock();
                    sys::safe_point();
                    return Err(RecvFail::NotNow);
                }
                Wait::Until(d) => Some(d),
                Wait::Forever => None,
            };
            let cx = Context::for_op(deadline);
            let w = Waiter::new(false, None);
            // SAFETY: as in `send_with`.
            unsafe {
                cx.set_waker(sys::current_waker());
                self.state().recvq.push_back(&w, &cx, 0);
            }
            self.unlock();
            let s = wait_guarded(&cx, deadline, WaitReason::ChanReceive);
            match protocol::tag(s) {
                // SAFETY: final and published by the claimer, who unlinked `w` first.
                DONE => return Ok(unsafe { take_message(&w) }),
                CLOSED => return Err(RecvFail::Disconnected),
                // Claimed in place by a select's send case that then gave up: start over.
                RETRY => continue,
                ABORTED => {
                    // SAFETY: under the lock; `w` is ours and `ABORTED` means it was not claimed.
                    self.with(|st| unsafe { st.unlink_receiver(&w, s) });
                    return Err(RecvFail::NotNow);
                }
                _ => unreachable!("gort: a blocked receive woke in state {s:#x}"),
            }
        }
    }

    fn len(&self) -> usize {
        self.with(|st| st.buf.len())
    }

    fn capacity(&self) -> Option<usize> {
        self.with(|st| (st.cap != usize::MAX).then_some(st.cap))
    }
}

/// Takes the message out of our own waiter after the wait ended.
///
/// # Safety
/// `w` is unlinked and its state is final (nobody else can reach it).
unsafe fn take_message<T>(w: &Waiter<T>) -> T {
    // SAFETY: function contract.
    unsafe { w.take() }.expect("gort: a finished channel waiter lost its value")
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full (for an unbuffered channel: until a receiver
    /// takes it). Fails, giving the value back, if the channel is closed or every receiver is gone.
    ///
    /// In a goroutine only the goroutine waits; on a plain thread the thread blocks.
    ///
    /// ```
    /// let (tx, rx) = gort_chan::bounded(0);
    /// let h = gort_goroutine::spawn(move || rx.recv().unwrap());
    /// tx.send(7).unwrap(); // waits for the goroutine to take it
    /// assert_eq!(h.join().unwrap(), 7);
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.chan.send_with(value, Wait::Forever) {
            Ok(()) => Ok(()),
            Err(SendFail::Disconnected(v) | SendFail::NotNow(v)) => Err(SendError(v)),
        }
    }

    /// Sends `value` if that needs no waiting: a receiver is waiting, or the buffer has room.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match self.chan.send_with(value, Wait::Never) {
            Ok(()) => Ok(()),
            Err(SendFail::Disconnected(v)) => Err(TrySendError::Disconnected(v)),
            Err(SendFail::NotNow(v)) => Err(TrySendError::Full(v)),
        }
    }

    /// Like [`Sender::send`], giving up after `timeout`.
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_until(value, deadline_after(timeout))
    }

    /// Like [`Sender::send`], giving up at `deadline`.
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.send_until(value, Wait::Until(deadline))
    }

    fn send_until(&self, value: T, wait: Wait) -> Result<(), SendTimeoutError<T>> {
        match self.chan.send_with(value, wait) {
            Ok(()) => Ok(()),
            Err(SendFail::Disconnected(v)) => Err(SendTimeoutError::Disconnected(v)),
            Err(SendFail::NotNow(v)) => Err(SendTimeoutError::Timeout(v)),
        }
    }

    /// A future that sends `value`, for async code. Cancel-safe: dropping it before it completes
    /// leaves the value unsent (and drops it); once it completed, the value was sent exactly once.
    ///
    /// ```
    /// let (tx, rx) = gort_chan::bounded(1);
    /// gort_goroutine::block_on(async {
    ///     tx.send_async(5).await.unwrap();
    ///     assert_eq!(rx.recv_async().await, Ok(5));
    /// });
    /// ```
    pub fn send_async(&self, value: T) -> SendFuture<'_, T> {
        SendFuture::new(&self.chan, value)
    }

    /// Closes the channel (Go's `close`): every later send fails, waiting senders fail at once, and
    /// receivers drain the buffered values and then get [`RecvError`]. Returns whether this call
    /// closed it (closing twice is a no-op here; Go panics).
    pub fn close(&self) -> bool {
        self.chan.close()
    }

    /// Number of values in the buffer (Go's `len(ch)`).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer is full (always true for an unbuffered channel).
    pub fn is_full(&self) -> bool {
        self.chan.with(|st| st.buf.len() >= st.cap)
    }

    /// The buffer's capacity (Go's `cap(ch)`), `None` for an unbounded channel.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Whether sends now fail: the channel is closed, or every receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.chan.with(|st| st.closed || st.disconnected)
    }

    /// Whether both handles belong to the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Receiver<T> {
    /// Receives a value, waiting while the channel is empty. Fails once the channel is closed and
    /// every buffered value has been received.
    ///
    /// In a goroutine only the goroutine waits; on a plain thread the thread blocks.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv_with(Wait::Forever).map_err(|_| RecvError)
    }

    /// Receives a value if one is there now (buffered, or offered by a waiting sender).
    ///
    /// If the waiting sender is a `select!` send case, taking it makes that case fire, and this call
    /// waits while the case's message expression is evaluated (it is evaluated only once the case
    /// fires); see [`select!`](crate::select!).
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.recv_with(Wait::Never).map_err(|e| match e {
            RecvFail::Disconnected => TryRecvError::Disconnected,
            RecvFail::NotNow => TryRecvError::Empty,
        })
    }

    /// Like [`Receiver::recv`], giving up after `timeout`.
    ///
    /// Once a `select!` send case has fired for this receive, the receive waits for its value past
    /// the deadline (the send has happened), as [`Receiver::try_recv`] does.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_until(deadline_after(timeout))
    }

    /// Like [`Receiver::recv`], giving up at `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_until(Wait::Until(deadline))
    }

    fn recv_until(&self, wait: Wait) -> Result<T, RecvTimeoutError> {
        self.chan.recv_with(wait).map_err(|e| match e {
            RecvFail::Disconnected => RecvTimeoutError::Disconnected,
            RecvFail::NotNow => RecvTimeoutError::Timeout,
        })
    }

    /// A future that receives a value, for async code. Cancel-safe: dropping it before it completes
    /// loses nothing (a value already handed to it goes back to the front of the channel).
    pub fn recv_async(&self) -> RecvFuture<'_, T> {
        RecvFuture::new(&self.chan)
    }

    /// A blocking iterator over received values; it ends when the channel is closed and drained.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the values receivable now, without waiting.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Number of values in the buffer (Go's `len(ch)`).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer is full (always true for an unbuffered channel).
    pub fn is_full(&self) -> bool {
        self.chan.with(|st| st.buf.len() >= st.cap)
    }

    /// The buffer's capacity (Go's `cap(ch)`), `None` for an unbounded channel.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Whether the channel is closed: no more values will be sent (buffered ones may remain).
    pub fn is_closed(&self) -> bool {
        self.chan.with(|st| st.closed)
    }

    /// Whether both handles belong to the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.receivers.fetch_add(1, Ordering::Relaxed);
        Receiver {
            chan: self.chan.clone(),
            stream: None,
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.close();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // First the stream's wait (it may hold a value to put back), then the handle count.
        drop(self.stream.take());
        if self.chan.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.disconnect();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl<T> futures::Stream for Receiver<T> {
    type Item = T;

    /// Receives the next value; `None` once the channel is closed and drained. Cancel-safe like
    /// [`Receiver::recv_async`]: a value handed to a pending poll is kept for the next one.
    fn poll_next(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let chan: &Chan<T> = &this.chan;
        let wait = this.stream.get_or_insert_with(|| Box::pin(RecvWait::new()));
        // SAFETY: the wait is boxed and pinned, always polled against this handle's channel, and
        // dropped (which unlinks it) before the handle's reference to the channel goes away.
        match unsafe { wait.as_ref().poll(chan, cx.waker()) } {
            Poll::Ready(Ok(v)) => Poll::Ready(Some(v)),
            Poll::Ready(Err(RecvError)) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A blocking iterator over a [`Receiver`]'s values, from [`Receiver::iter`].
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// A non-blocking iterator over a [`Receiver`]'s values, from [`Receiver::try_iter`].
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// An owning blocking iterator over a [`Receiver`]'s values (`for v in rx`).
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter").finish_non_exhaustive()
    }
}
