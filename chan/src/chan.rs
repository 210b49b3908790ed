//! The shared channel: its lock, ring buffer, waiter queues and reservation counts, and the steps
//! every operation is built from (Go's `hchan` with `chansend`/`chanrecv`/`closechan`).
//!
//! Every `*_step` and helper on [`State`] runs with the channel lock held and follows the commit
//! protocol of `protocol.rs`. Invariants of the locked state, outside a critical section:
//!
//! * `claimed <= reserved`, and the `claimed` waiters claimed in place are exactly a prefix of `recvq`.
//! * If `buf` is not empty, no receiver waits unclaimed (a receiver only waits on an empty buffer).
//! * A sender waits only when the channel is *full*: `buf.len() + reserved - claimed >= cap` and no
//!   receiver waits unclaimed.
//! * Once `closed`, no sender waits; no receiver waits unclaimed unless values are still reserved.
//! * Once `disconnected` (every receiver gone), no sender waits and `buf` is empty.
//!
//! Values of type `T` are never dropped with the lock held (a `Drop` could use the channel): they are
//! handed back to the caller, or moved out and dropped after unlocking.

use std::collections::VecDeque;
use std::task::Waker;

use crate::lock::RawLock;
use crate::protocol::{Queue, Waiter, Wakers, CLOSED, DONE, RESERVED, RETRY};
use crate::sys::{AtomicUsize, Slot};

/// Largest buffer allocated up front; bigger capacities grow on demand.
const PREALLOC: usize = 1 << 16;

/// A channel shared by its `Sender`s and `Receiver`s.
pub(crate) struct Chan<T> {
    lock: RawLock,
    state: Slot<State<T>>,
    /// Live `Sender` handles; the last one to go closes the channel.
    pub(crate) senders: AtomicUsize,
    /// Live `Receiver` handles; the last one to go disconnects the channel.
    pub(crate) receivers: AtomicUsize,
}

// SAFETY: the state (values of `T` and raw pointers to waiters) is only touched under `lock`; waiters
// follow the protocol's rules, and values cross threads only as `T: Send`.
unsafe impl<T: Send> Send for Chan<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Chan<T> {}

/// The locked part of a channel.
pub(crate) struct State<T> {
    pub(crate) buf: VecDeque<T>,
    /// Buffer capacity; `usize::MAX` when unbounded.
    pub(crate) cap: usize,
    /// Values promised by fired lazy send cases and not yet written.
    pub(crate) reserved: usize,
    /// Receivers claimed in place, waiting for a reserved value (a prefix of `recvq`).
    pub(crate) claimed: usize,
    /// `close` was called, or every sender is gone.
    pub(crate) closed: bool,
    /// Every receiver is gone.
    pub(crate) disconnected: bool,
    pub(crate) recvq: Queue<T>,
    pub(crate) sendq: Queue<T>,
}

/// What a receive attempt found. A party to wake (a sender that moved into the buffer, or fired)
/// goes into the caller's `Wakers`, kept apart so the common step stays a small value in registers.
pub(crate) enum RecvStep<T> {
    /// A value.
    Got(T),
    /// Closed and drained.
    Closed,
    /// A lazy sender fired (it got `RESERVED`): the caller must link itself claimed in place and wait
    /// for the completion.
    Bind,
    /// Nothing to receive.
    Empty,
}

/// What a send attempt found (a receiver to wake goes into the caller's `Wakers`).
pub(crate) enum SendStep<T> {
    /// Sent.
    Sent,
    /// Closed or disconnected: the value comes back.
    Closed(T),
    /// Full, and no receiver waits: the value comes back.
    Full(T),
}

/// What a lazy send attempt (a `select!` send case) found.
pub(crate) enum LazyStep {
    /// A reservation was taken: the case fires, and its completion writes the value.
    Reserved,
    /// Closed or disconnected: the case fires with an error.
    Closed,
    /// Not ready.
    Full,
}

impl<T> Chan<T> {
    /// A channel of capacity `cap` (`None`: unbounded), with one sender and one receiver.
    pub(crate) fn new(cap: Option<usize>) -> Chan<T> {
        let buf = match cap {
            Some(c) => VecDeque::with_capacity(c.min(PREALLOC)),
            None => VecDeque::new(),
        };
        Chan {
            lock: RawLock::new(),
            state: Slot::new(State {
                buf,
                cap: cap.unwrap_or(usize::MAX),
                reserved: 0,
                claimed: 0,
                closed: false,
                disconnected: false,
                recvq: Queue::new(),
                sendq: Queue::new(),
            }),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
        }
    }

    /// Takes the lock (paired with [`Chan::unlock`]).
    #[inline]
    pub(crate) fn lock(&self) {
        self.lock.lock();
    }

    /// Releases the lock.
    #[inline]
    pub(crate) fn unlock(&self) {
        self.lock.unlock();
    }

    /// The locked state.
    ///
    /// # Safety
    /// The caller holds the lock, and keeps the reference no longer than that, nor alongside another
    /// reference from this function.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn state(&self) -> &mut State<T> {
        // SAFETY: the lock makes the access exclusive (function contract).
        unsafe { &mut *self.state.with_mut(|p| p) }
    }

    /// Runs `f` on the locked state.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State<T>) -> R) -> R {
        self.lock();
        // SAFETY: we hold the lock, and the reference does not escape `f`.
        let r = f(unsafe { self.state() });
        self.unlock();
        r
    }

    /// Closes the channel (Go's `close`): wakes every waiting sender with "closed", and every
    /// waiting receiver too once nothing is buffered or reserved. Returns whether this call closed it.
    pub(crate) fn close(&self) -> bool {
        self.lock();
        // SAFETY: we hold the lock.
        let st = unsafe { self.state() };
        if st.closed {
            self.unlock();
            return false;
        }
        st.closed = true;
        self.release_all(|st| st.release_receivers_if_drained());
        true
    }

    /// Marks the channel as having no receivers (the last `Receiver` is gone): wakes every waiting
    /// sender with "closed" and drops the buffered values.
    pub(crate) fn disconnect(&self) {
        self.lock();
        // SAFETY: we hold the lock.
        let st = unsafe { self.state() };
        st.disconnected = true;
        let buf = std::mem::take(&mut st.buf);
        self.release_all(|_| false);
        drop(buf);
    }

    /// With the lock held on entry: releases every waiting sender, then, while `receivers_too` says
    /// so, every waiting receiver, with `CLOSED`, in batches woken with the lock released. Unlocks.
    ///
    /// Batching keeps wakers out of the critical section without allocating. Between batches new
    /// waiters cannot join: the channel is closed or disconnected, so senders fail at once and
    /// receivers wait only while values are buffered or reserved (and `receivers_too` re-checks).
    fn release_all(&self, receivers_too: impl Fn(&mut State<T>) -> bool) {
        const BATCH: usize = 8;
        loop {
            let mut batch: [Option<Waker>; BATCH] = Default::default();
            let mut n = 0;
            // SAFETY: we hold the lock (on entry, and re-taken below).
            let st = unsafe { self.state() };
            while n < BATCH {
                // SAFETY: we hold the lock.
                let w = match unsafe { st.sendq.claim() } {
                    Some(w) => w,
                    None => break,
                };
                // SAFETY: claimed just now, under the lock. A blocked sender keeps its value: it
                // reads it back from its own slot and returns it in the error.
                batch[n] = unsafe { st.sendq.finish(w, CLOSED, |_| {}) };
                n += 1;
            }
            if n < BATCH && receivers_too(st) {
                while n < BATCH {
                    // SAFETY: we hold the lock; claimed-in-place receivers are skipped by `claim`
                    // (and there are none when `receivers_too` allows this: nothing is reserved).
                    let w = match unsafe { st.recvq.claim() } {
                        Some(w) => w,
                        None => break,
                    };
                    // SAFETY: claimed just now, under the lock.
                    batch[n] = unsafe { st.recvq.finish(w, CLOSED, |_| {}) };
                    n += 1;
                }
            }
            self.unlock();
            for w in batch.iter_mut().filter_map(Option::take) {
                w.wake();
            }
            if n < BATCH {
                return;
            }
            self.lock();
        }
    }
}

impl<T> State<T> {
    /// Whether a sender must wait: values buffered plus those reserved for the buffer fill it.
    #[inline]
    fn full(&self) -> bool {
        self.buf.len() + (self.reserved - self.claimed) >= self.cap
    }

    /// Whether receivers of a closed channel can be told it is drained.
    #[inline]
    fn drained(&self) -> bool {
        self.buf.is_empty() && self.reserved == 0
    }

    /// `close`'s condition for releasing receivers.
    fn release_receivers_if_drained(&mut self) -> bool {
        self.closed && self.drained()
    }

    /// A receive attempt (Go's `chanrecv` up to the point where it would block).
    ///
    /// # Safety
    /// Under the channel lock.
    #[inline]
    pub(crate) unsafe fn recv_step(&mut self, wake: &mut Wakers) -> RecvStep<T> {
        if let Some(v) = self.buf.pop_front() {
            // SAFETY: under the lock (function contract).
            unsafe { self.refill(wake) };
            return RecvStep::Got(v);
        }
        // SAFETY: under the lock.
        if let Some(w) = unsafe { self.sendq.claim() } {
            // SAFETY: `w` is claimed by us and linked in `sendq` (rule 3).
            unsafe {
                if (*w).is_lazy() {
                    // A select's send case fires; its value will come through a reservation, and the
                    // caller binds itself to it (claimed in place at the head of `recvq`).
                    self.reserved += 1;
                    self.claimed += 1;
                    wake.push(self.sendq.finish(w, RESERVED, |_| {}));
                    return RecvStep::Bind;
                }
                let mut value = None;
                let waker = self.sendq.finish(w, DONE, |w| value = w.take());
                let value = value.expect("gort: a blocked sender without its value");
                wake.push(waker);
                return RecvStep::Got(value);
            }
        }
        if self.closed && self.drained() {
            return RecvStep::Closed;
        }
        RecvStep::Empty
    }

    /// After a value left the buffer: moves the first waiting sender in, if there is now room (Go's
    /// "take from the head, put the sender's value at the tail"). A lazy sender fires with a
    /// reservation that will refill the buffer.
    ///
    /// # Safety
    /// Under the channel lock.
    unsafe fn refill(&mut self, wake: &mut Wakers) {
        if self.full() || self.sendq.is_empty() {
            return;
        }
        // SAFETY: under the lock.
        let Some(w) = (unsafe { self.sendq.claim() }) else {
            return;
        };
        // SAFETY: `w` is claimed by us and linked in `sendq`.
        unsafe {
            if (*w).is_lazy() {
                self.reserved += 1;
                wake.push(self.sendq.finish(w, RESERVED, |_| {}));
            } else {
                let buf = &mut self.buf;
                wake.push(self.sendq.finish(w, DONE, |w| {
                    buf.push_back(w.take().expect("gort: a blocked sender without its value"))
                }));
            }
        }
    }

    /// A send attempt with the value in hand (Go's `chansend` up to the point where it would block).
    ///
    /// # Safety
    /// Under the channel lock.
    #[inline]
    pub(crate) unsafe fn send_step(&mut self, value: T, wake: &mut Wakers) -> SendStep<T> {
        if self.closed || self.disconnected {
            return SendStep::Closed(value);
        }
        // SAFETY: under the lock.
        if let Some(w) = unsafe { self.recvq.claim() } {
            // SAFETY: `w` is claimed by us and linked in `recvq`; we own its slot.
            wake.push(unsafe { self.recvq.finish(w, DONE, |w| w.put(value)) });
            return SendStep::Sent;
        }
        if !self.full() {
            self.buf.push_back(value);
            return SendStep::Sent;
        }
        SendStep::Full(value)
    }

    /// A `select!` send case's attempt: takes a reservation if a receiver waits (claiming it in place)
    /// or the buffer has room.
    ///
    /// # Safety
    /// Under the channel lock.
    pub(crate) unsafe fn lazy_send_step(&mut self) -> LazyStep {
        if self.closed || self.disconnected {
            return LazyStep::Closed;
        }
        // SAFETY: under the lock. A successful claim is left in place: the receiver stays linked,
        // `CLAIMED`, right after the claimed prefix (everything before it was claimed or unlinked).
        if unsafe { self.recvq.claim() }.is_some() {
            self.reserved += 1;
            self.claimed += 1;
            return LazyStep::Reserved;
        }
        if !self.full() {
            self.reserved += 1;
            return LazyStep::Reserved;
        }
        LazyStep::Full
    }

    /// A fired lazy send case delivers its value: to the first receiver claimed in place, else to a
    /// waiting receiver, else into the buffer (even if the channel was closed meanwhile: the send
    /// happened first). `Err` gives the value back if every receiver is gone.
    ///
    /// # Safety
    /// Under the channel lock; the caller holds one reservation, which this consumes.
    pub(crate) unsafe fn complete_reservation(&mut self, value: T) -> Result<Wakers, T> {
        debug_assert!(self.reserved > 0);
        self.reserved -= 1;
        if self.disconnected {
            return Err(value);
        }
        let mut wakers = Wakers::default();
        if self.claimed > 0 {
            let w = self.recvq.head();
            // SAFETY: under the lock; `w` is the head of `recvq` (or null).
            debug_assert!(unsafe { self.claimed_in_place(w) });
            self.claimed -= 1;
            // SAFETY: the head of `recvq` is claimed in place (the prefix invariant), linked, and its
            // claim is the channel's, which we exercise under the lock.
            wakers.push(unsafe { self.recvq.finish(w, DONE, |w| w.put(value)) });
        } else {
            // SAFETY: under the lock; we own a claimed receiver's slot.
            match unsafe { self.recvq.claim() } {
                Some(w) => wakers.push(unsafe { self.recvq.finish(w, DONE, |w| w.put(value)) }),
                None => self.buf.push_back(value),
            }
        }
        // The value may have gone straight to a receiver, freeing room.
        // SAFETY: under the lock.
        unsafe { self.refill(&mut wakers) };
        Ok(wakers)
    }

    /// A fired lazy send case gives up its reservation (its message expression panicked, or an async
    /// select was dropped). A claimed receiver left without a promised value gets `RETRY`; the room
    /// freed may let a sender in; a closed channel may now be drained.
    ///
    /// # Safety
    /// Under the channel lock; the caller holds one reservation, which this consumes.
    pub(crate) unsafe fn abandon_reservation(&mut self) -> Wakers {
        debug_assert!(self.reserved > 0);
        self.reserved -= 1;
        let mut wakers = Wakers::default();
        if self.claimed > self.reserved {
            let w = self.recvq.head();
            // SAFETY: under the lock; `w` is the head of `recvq` (or null).
            debug_assert!(unsafe { self.claimed_in_place(w) });
            self.claimed -= 1;
            // SAFETY: the head is claimed in place (prefix invariant); see `complete_reservation`.
            wakers.push(unsafe { self.recvq.finish(w, RETRY, |_| {}) });
        }
        // SAFETY: under the lock.
        unsafe { self.refill(&mut wakers) };
        wakers
    }

    /// Whether `w` is a receiver claimed in place (for debug assertions).
    ///
    /// # Safety
    /// Under the channel lock; `w` is null or linked in `recvq`.
    unsafe fn claimed_in_place(&self, w: *const Waiter<T>) -> bool {
        // SAFETY: a linked waiter and its context, under the lock (function contract).
        !w.is_null()
            && unsafe {
                (*w).cx().load() == crate::protocol::word(crate::protocol::CLAIMED, (*w).case())
            }
    }

    /// Whether receivers still waiting must now be released as "closed" (after a reservation ended on
    /// a closed channel).
    pub(crate) fn must_release_receivers(&self) -> bool {
        self.closed && self.drained() && !self.recvq.is_empty()
    }

    /// Puts back a value that a dropped receive future had already been given: to a waiting receiver,
    /// else at the head of the buffer (past capacity if need be; it is the oldest value).
    ///
    /// # Safety
    /// Under the channel lock.
    pub(crate) unsafe fn put_back(&mut self, value: T) -> Result<Wakers, T> {
        if self.disconnected {
            return Err(value);
        }
        if self.buf.is_empty() {
            // SAFETY: under the lock; we own a claimed receiver's slot.
            if let Some(w) = unsafe { self.recvq.claim() } {
                return Ok(Wakers::one(unsafe {
                    self.recvq.finish(w, DONE, |w| w.put(value))
                }));
            }
        }
        self.buf.push_front(value);
        Ok(Wakers::default())
    }

    /// Unlinks `w` from `recvq` if it is linked, keeping the count of claimed receivers right.
    ///
    /// # Safety
    /// Under the channel lock; `w` belongs to the caller (its owner), whose context is `cx_state`.
    pub(crate) unsafe fn unlink_receiver(&mut self, w: &Waiter<T>, cx_state: usize) {
        if w.is_linked() {
            if cx_state == crate::protocol::word(crate::protocol::CLAIMED, w.case()) {
                self.claimed -= 1;
            }
            // SAFETY: linked in `recvq`, under the lock.
            unsafe { self.recvq.remove(w) };
        }
    }

    /// Unlinks `w` from `sendq` if it is linked.
    ///
    /// # Safety
    /// Under the channel lock; `w` belongs to the caller.
    pub(crate) unsafe fn unlink_sender(&mut self, w: &Waiter<T>) {
        if w.is_linked() {
            // SAFETY: linked in `sendq`, under the lock.
            unsafe { self.sendq.remove(w) };
        }
    }
}

impl<T> Chan<T> {
    /// Ends a reservation on a closed channel: releases the receivers left waiting, if now drained.
    /// Called with the lock held; unlocks.
    pub(crate) fn unlock_after_reservation(&self) {
        // SAFETY: the lock is held on entry.
        if unsafe { self.state() }.must_release_receivers() {
            self.release_all(|st| st.release_receivers_if_drained());
        } else {
            self.unlock();
        }
    }
}

impl<T> Drop for Chan<T> {
    fn drop(&mut self) {
        let st = self.state.get_mut();
        debug_assert!(st.recvq.is_empty() && st.sendq.is_empty());
        debug_assert_eq!(st.reserved, 0);
    }
}
