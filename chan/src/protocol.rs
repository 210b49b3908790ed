//! The commit protocol: how a blocked channel operation or `select!` waits, and how exactly one of its
//! cases fires.
//!
//! This is the one place where the protocol is written down; `chan.rs` (the per-channel state
//! machine), `channel.rs` (blocking operations), `select.rs` (the `select!` engine) and `future.rs`
//! (async operations) all follow it. It is Go's `runtime/chan.go` + `select.go` (a lock per channel,
//! queues of waiting `sudog`s, direct hand-off, `selectDone`), adapted to three facts of gort:
//! parking may return spuriously, a wait may end by deadline or by a dropped future, and a `select!`
//! evaluates a send case's value only once that case has fired.
//!
//! # Parties and records
//!
//! A *waiting party* is whoever blocks: a goroutine, a plain thread, or an async task. For one wait it
//! owns one [`Context`] and one [`Waiter`] per case (a plain `send`/`recv` has one case; a `select!`
//! with *n* channel cases has *n*). Both live where the party can keep them in place for the whole
//! wait: on the stack of the blocked goroutine or thread (a gort goroutine's stack never moves), or
//! inside a pinned future. Nothing is allocated per operation.
//!
//! * The **context** holds the *state word* (below) and the party's [`Waker`]. It is Go's
//!   `g.selectDone` plus `g.param`: one word that every case of the wait races on.
//! * A **waiter** (Go's `sudog`) is linked into one channel's queue of waiting receivers (`recvq`) or
//!   senders (`sendq`). It points at its context and knows its case index. Its *slot* holds the value:
//!   the message of a blocked plain send, or the place a receive's value is delivered to. A waiter of
//!   a `select!` send case is *lazy*: its slot is empty, because the message expression is evaluated
//!   only when that case fires.
//!
//! A *partner* is any other party acting on a channel while holding its lock: a sender meeting a
//! waiting receiver, a receiver meeting a waiting sender, `close`, the drop of the last receiver.
//!
//! # The state word
//!
//! | state          | meaning                                                                    | final |
//! |----------------|----------------------------------------------------------------------------|-------|
//! | `WAITING`      | waiting; any case may still fire                                            | no    |
//! | `CLAIMED(i)`   | a partner owns case *i*: it is completing it, or will (claimed in place)    | no    |
//! | `DONE(i)`      | case *i* completed: its value was taken (send) or delivered into its slot   | yes   |
//! | `CLOSED(i)`    | case *i* fired on a closed channel (or, for a send, one with no receivers) | yes   |
//! | `RESERVED(i)`  | lazy send case *i* fired: the channel holds a reservation for its value    | yes   |
//! | `RETRY`        | a promised value was withdrawn (see reservations); nothing fired: start over | yes   |
//! | `ABORTED`      | the owner gave up (deadline, dropped future); nothing fired                 | yes   |
//!
//! # Rules
//!
//! 1. **Locks guard queues.** A waiter is linked and unlinked only under the lock of its channel, and a
//!    partner reads or writes a waiter, or the context it points at, only while holding the lock of
//!    the channel whose queue the waiter is linked in (or was unlinked from in the same critical
//!    section).
//! 2. **One CAS decides.** A context leaves `WAITING` only by a compare-and-swap: to `CLAIMED(i)` by a
//!    partner on case *i*'s channel, or to `ABORTED` by the owner. Exactly one wins. A partner whose
//!    CAS fails leaves the waiter alone if the word reads `CLAIMED(i)` for this very waiter (claimed in
//!    place, see below) and otherwise unlinks it: that wait is over, and the waiter can never fire.
//!    A *solo* context (a plain blocking `send`/`recv` without a deadline: one waiter, in one queue,
//!    an owner that never aborts) has no race to decide: every write to its word before the final
//!    one happens under that one channel's lock, so its claim is a plain load and store there.
//! 3. **The winner finishes.** The claimer of case *i* owns waiter *i*'s slot and the context's waker
//!    until it stores a final state: it unlinks the waiter, moves the value, takes the waker, stores the
//!    final state with `Release`, and only then (after unlocking) wakes the waker it took. After that
//!    store it touches neither the context nor the waiter.
//! 4. **The owner reads only what is published.** The owner writes its slots and waker before linking
//!    (the channel lock publishes them), and reads them back only after loading a final state with
//!    `Acquire`, which orders the claimer's writes before.
//! 5. **The owner cleans up.** Before its waiters go out of scope, the owner locks the channel of every
//!    waiter that may still be linked (all but the one the final state names) and unlinks it if it
//!    is. After that no partner can reach any of its records: by rule 1 a partner needs a linked
//!    waiter and that channel's lock. This is what makes stack records safe: the frame outlives every
//!    access to it. (Go's third `sellock` pass does the same.) A plain operation's single waiter needs
//!    no clean-up unless it aborted.
//!
//! # Why exactly one case fires, and no value is lost or duplicated
//!
//! A case fires only through the transition out of `WAITING` (rule 2), which happens once per round.
//! In the poll pass of a `select!` (all its channels locked, nothing linked yet), the first ready case
//! in a random order fires directly, and the select does not link anything. A value moves only inside
//! a critical section of the claimer (rule 3): from a waiting sender's slot into a receiver or the
//! buffer, or from a sender into a waiting receiver's slot. Every path that does not complete a case
//! leaves the value where it was: a failed claim moves nothing; an abort keeps a blocked sender's
//! value in its own slot, returned to the caller. The owner learns which case fired from the final
//! state, so it never reads a slot that was not filled.
//!
//! # Why no wake-up is lost
//!
//! The waker is stored before the first waiter is linked, and every final state is stored before the
//! waker is woken (rule 3). The owner loops `load state; if not final { park }`; the parking core
//! keeps a wake that comes before the park as a token, so the park returns. Spurious returns just
//! loop. A `CLAIMED` owner cannot abort (rule 2) and parks with no deadline: its claimer is at most
//! a few instructions, or one message expression, from publishing.
//!
//! # Lazy send cases and reservations
//!
//! `select!` evaluates `send(s, v)`'s `v` only when that case fires (crossbeam's semantics; a send
//! case that does not fire does not even move `v`). So a waiting select's send waiter has no value to
//! hand over, and a select that picks a send case must pick it *before* it has the value, and cannot
//! run user code with channel locks held. The channel therefore keeps a count of **reservations**:
//! values promised by fired lazy send cases and not yet written.
//!
//! * A `select!` whose send case is ready takes a reservation: if a receiver waits it claims it **in
//!   place** (`CLAIMED(i)`, left linked at the head of `recvq`); otherwise the buffer has room. The
//!   select returns, the message is evaluated, and the *completion* (under the lock again) delivers
//!   the value to the first receiver claimed in place, else to a waiting receiver, else to the buffer.
//! * A receiver that meets a lazy waiting sender publishes `RESERVED(i)` to it (its send case fires)
//!   and, having no value yet, links itself claimed in place and waits for the completion. (On a
//!   buffered channel the receiver took a buffered value, so the reservation just refills the buffer.)
//! * Claimed-in-place receivers always form a prefix of `recvq`, and there are never more of them
//!   than reservations (`claimed <= reserved`). If a completion is abandoned (the message expression
//!   panicked, an async select was dropped), the reservation is dropped and, if that leaves a
//!   claimed receiver without a promised value, the first one gets `RETRY`: nothing fired for it
//!   and it starts over.
//! * Senders see a channel as full when `buffered + reserved - claimed >= capacity`; receivers of a
//!   closed channel get "closed" only when nothing is buffered **and** nothing is reserved (the
//!   reserved sends happened before the close).
//!
//! Claiming in place is also why a claimer never holds a pointer to a waiter outside the lock: the
//! completion finds its receiver again through the queue. So a claimed waiter inside a future can be
//! dropped safely: its drop unlinks it under the lock, and the value goes to the next receiver.
//!
//! # Async waits and cancellation
//!
//! A future keeps its context and waiter in its own (pinned) memory and follows the same rules; the
//! task's waker is the context's waker, replaced under the channel locks when the task is polled
//! with a different one. Dropping a pending future locks its channels, aborts (or finds the final
//! state), unlinks, and then: a receive whose value was already delivered puts it back at the
//! *front* of the channel (to a waiting receiver, else the head of the buffer, even past capacity),
//! so cancelling loses nothing and duplicates nothing; a send whose value was taken has sent it; a
//! send that had not fired drops its value, never sent.
//!
//! # Cost
//!
//! An uncontended send or receive is one lock round trip. A hand-off to a parked partner adds one CAS,
//! one store and one wake (which puts the partner goroutine in its P's `runnext`). A waiting party
//! adds one waker clone (a reference count) and its park. A waiting `select!` over *n* channels locks
//! them once in address order to poll and link, and once more each, separately, to unlink.

use std::cell::Cell;
use std::marker::PhantomPinned;
use std::task::Waker;
use std::time::Instant;

use crate::sys::{self, AtomicUsize, Ordering, Slot, WaitReason};

/// Tag of the state word: waiting, nothing decided.
pub(crate) const WAITING: usize = 0;
/// Tag: the owner gave up.
pub(crate) const ABORTED: usize = 1;
/// Tag: a partner owns the case named in the word.
pub(crate) const CLAIMED: usize = 2;
/// Tag: the case named in the word completed.
pub(crate) const DONE: usize = 3;
/// Tag: the case named in the word fired on a closed (or receiverless) channel.
pub(crate) const CLOSED: usize = 4;
/// Tag: the lazy send case named in the word fired and holds a reservation.
pub(crate) const RESERVED: usize = 5;
/// Tag: a promised value was withdrawn; start over.
pub(crate) const RETRY: usize = 6;

const TAG_BITS: u32 = 3;
const TAG_MASK: usize = (1 << TAG_BITS) - 1;

/// A state word: `tag` for case `case`.
#[inline]
pub(crate) const fn word(tag: usize, case: usize) -> usize {
    (case << TAG_BITS) | tag
}

/// The tag of a state word.
#[inline]
pub(crate) const fn tag(s: usize) -> usize {
    s & TAG_MASK
}

/// The case a state word names.
#[inline]
pub(crate) const fn case(s: usize) -> usize {
    s >> TAG_BITS
}

/// Whether a state word ends the wait.
#[inline]
pub(crate) const fn is_final(s: usize) -> bool {
    !matches!(tag(s), WAITING | CLAIMED)
}

/// A waiting party's context: the state word every case races on, and the party's waker.
///
/// Not part of the public API (it is `pub` only because the hidden `select!` plumbing names it).
pub struct Context {
    state: AtomicUsize,
    /// Solo (rule 2): claimed by a plain store under its one channel's lock.
    solo: bool,
    waker: Slot<Option<Waker>>,
    _pin: PhantomPinned,
}

// SAFETY: the state word is atomic; the waker slot is accessed by one party at a time, as the rules
// above order it (the owner before linking or after a final state, the claimer in between).
unsafe impl Sync for Context {}

impl Context {
    pub(crate) fn new() -> Context {
        Context::with_solo(false)
    }

    /// The context of a plain blocking operation (one waiter, in one channel's queue). Without a
    /// deadline it can never be aborted, so it is rule 2's solo context.
    pub(crate) fn for_op(deadline: Option<std::time::Instant>) -> Context {
        Context::with_solo(deadline.is_none())
    }

    fn with_solo(solo: bool) -> Context {
        Context {
            state: AtomicUsize::new(WAITING),
            solo,
            waker: Slot::new(None),
            _pin: PhantomPinned,
        }
    }

    /// Starts a round: back to `WAITING` (after a `RETRY`, or before the first link).
    ///
    /// # Safety
    /// Owner only, with none of its waiters linked (nobody else can reach the context).
    #[inline]
    pub(crate) unsafe fn reset(&self) {
        self.state.store(WAITING, Ordering::Relaxed);
    }

    /// Stores the waker the claimer will wake.
    ///
    /// # Safety
    /// Owner only, with the state not final, and either none of its waiters linked or the lock of
    /// every channel where one is linked held (no claimer can be between claim and publication).
    #[inline]
    pub(crate) unsafe fn set_waker(&self, waker: Waker) {
        // SAFETY: nobody else reaches the waker now (function contract).
        unsafe { self.waker.with_mut(|w| *w = Some(waker)) };
    }

    /// The owner claims case `case` for itself: it is about to link that case's waiter claimed in
    /// place (a receiver binding to a lazy sender's reservation, see the module docs).
    ///
    /// # Safety
    /// Owner only, with none of its waiters linked.
    #[inline]
    pub(crate) unsafe fn claim_self(&self, case: usize) {
        self.state.store(word(CLAIMED, case), Ordering::Relaxed);
    }

    /// The current state (`Acquire`: a final state orders the claimer's writes before the caller).
    #[inline]
    pub(crate) fn load(&self) -> usize {
        self.state.load(Ordering::Acquire)
    }

    /// A partner's claim of case `case` (rule 2). `Err` holds the state that was there instead.
    #[inline]
    pub(crate) fn try_claim(&self, case: usize) -> Result<(), usize> {
        if self.solo {
            // Rule 2, solo: nothing but holders of this channel's lock (which we hold) writes the
            // word before it is final, so a load and a store decide as a CAS would.
            let s = self.state.load(Ordering::Relaxed);
            if s != WAITING {
                return Err(s);
            }
            self.state.store(word(CLAIMED, case), Ordering::Relaxed);
            return Ok(());
        }
        self.state
            .compare_exchange(
                WAITING,
                word(CLAIMED, case),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(drop)
    }

    /// The owner's abort (rule 2). `Err` holds the state that was there instead.
    #[inline]
    pub(crate) fn try_abort(&self) -> Result<(), usize> {
        debug_assert!(!self.solo, "gort: a solo context never aborts");
        self.state
            .compare_exchange(WAITING, ABORTED, Ordering::Acquire, Ordering::Acquire)
            .map(drop)
    }

    /// The claimer takes the waker before publishing.
    ///
    /// # Safety
    /// The caller's claim holds the context (`CLAIMED` by it, rule 3), under the lock of the claimed
    /// waiter's channel.
    #[inline]
    pub(crate) unsafe fn take_waker(&self) -> Option<Waker> {
        // SAFETY: the claim makes this access exclusive (function contract).
        unsafe { self.waker.with_mut(|w| (*w).take()) }
    }

    /// The claimer publishes a final state. Afterwards it must not touch the context or the waiter.
    ///
    /// # Safety
    /// As [`Context::take_waker`].
    #[inline]
    pub(crate) unsafe fn publish(&self, state: usize) {
        debug_assert!(is_final(state));
        self.state.store(state, Ordering::Release);
    }

    /// Installs `waker` unless the stored one would wake the same task (an async owner re-polled).
    /// Returns the waker left over (the displaced one, or `waker` itself), for the caller to drop
    /// once it has released its locks: a waker's drop is foreign code.
    ///
    /// # Safety
    /// Owner only, holding the lock of every channel where one of its waiters is linked, with the
    /// state not final (so no claimer is between its claim and its publication).
    #[must_use = "drop the left-over waker after unlocking"]
    pub(crate) unsafe fn update_waker(&self, waker: Waker) -> Option<Waker> {
        // SAFETY: the locks held exclude every claimer (function contract).
        unsafe {
            self.waker.with_mut(|w| match &*w {
                Some(old) if old.will_wake(&waker) => Some(waker),
                _ => (*w).replace(waker),
            })
        }
    }

    /// Waits for a final state. With a deadline, a still-`WAITING` context is aborted at the deadline;
    /// a `CLAIMED` one is waited out (its claimer is about to publish).
    /// `reason` is what goroutine dumps show meanwhile.
    pub(crate) fn wait(&self, deadline: Option<Instant>, reason: WaitReason) -> usize {
        loop {
            let s = self.load();
            match tag(s) {
                WAITING => match deadline {
                    Some(d) if sys::expired(d) => {
                        if self.try_abort().is_ok() {
                            return ABORTED;
                        }
                    }
                    Some(d) => sys::park_until(d, reason),
                    None => sys::park(reason),
                },
                CLAIMED => sys::park(reason),
                _ => return s,
            }
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // An explicit access, so that loom sees a claimer that touches the waker after publishing
        // (the owner may be gone by then: rule 3).
        drop(self.waker.get_mut().take());
    }
}

/// One case of a waiting party, linked into one channel queue (Go's `sudog`).
pub(crate) struct Waiter<T> {
    prev: Cell<*const Waiter<T>>,
    next: Cell<*const Waiter<T>>,
    /// Whether the waiter is in a queue. Read and written under that queue's channel lock.
    linked: Cell<bool>,
    cx: Cell<*const Context>,
    case: Cell<usize>,
    /// A `select!` send case: no message until the case fires.
    lazy: bool,
    /// The message of a blocked send, or where a receive's value lands.
    pub(crate) slot: Slot<Option<T>>,
    _pin: PhantomPinned,
}

// SAFETY: a waiter's cells are read and written only under its channel's lock or by its owner when
// nobody else can reach it (rules 1, 3 and 4); the raw pointers it holds follow the same rules. Values
// of `T` move through it between threads, hence `T: Send`.
unsafe impl<T: Send> Send for Waiter<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Waiter<T> {}

impl<T> Waiter<T> {
    /// A receive waiter (`None`), a blocked send's waiter (`Some(message)`), or a lazy one.
    pub(crate) fn new(lazy: bool, message: Option<T>) -> Waiter<T> {
        Waiter {
            prev: Cell::new(std::ptr::null()),
            next: Cell::new(std::ptr::null()),
            linked: Cell::new(false),
            cx: Cell::new(std::ptr::null()),
            case: Cell::new(0),
            lazy,
            slot: Slot::new(message),
            _pin: PhantomPinned,
        }
    }

    #[inline]
    pub(crate) fn is_lazy(&self) -> bool {
        self.lazy
    }

    /// Whether the waiter is linked. Only meaningful under its channel's lock (or to the owner after
    /// a final state published by someone else, who unlinked it first).
    #[inline]
    pub(crate) fn is_linked(&self) -> bool {
        self.linked.get()
    }

    /// The waiter's case index.
    #[inline]
    pub(crate) fn case(&self) -> usize {
        self.case.get()
    }

    /// The context of a linked waiter.
    ///
    /// # Safety
    /// The waiter is linked and the caller holds its channel's lock (rule 1), or is its owner.
    #[inline]
    pub(crate) unsafe fn cx(&self) -> &Context {
        // SAFETY: a linked waiter's context outlives the link (rule 5; function contract).
        unsafe { &*self.cx.get() }
    }

    /// Moves `value` into the slot.
    ///
    /// # Safety
    /// The caller owns the slot: the owner before linking, or a claimer (rule 3).
    #[inline]
    pub(crate) unsafe fn put(&self, value: T) {
        // SAFETY: exclusive by the function contract.
        unsafe { self.slot.with_mut(|s| *s = Some(value)) }
    }

    /// Takes the slot's value.
    ///
    /// # Safety
    /// As [`Waiter::put`], or the owner after a final state.
    #[inline]
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: exclusive by the function contract.
        unsafe { self.slot.with_mut(|s| (*s).take()) }
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        // Rule 5: a waiter's memory may only go once no queue can reach it.
        debug_assert!(
            !self.linked.get(),
            "gort: a channel waiter dropped while linked"
        );
        drop(self.slot.get_mut().take());
    }
}

/// An intrusive FIFO of waiters (Go's `waitq`). Lives inside a channel's locked state.
pub(crate) struct Queue<T> {
    head: *const Waiter<T>,
    tail: *const Waiter<T>,
}

impl<T> Queue<T> {
    pub(crate) const fn new() -> Queue<T> {
        Queue {
            head: std::ptr::null(),
            tail: std::ptr::null(),
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The first waiter, or null.
    #[inline]
    pub(crate) fn head(&self) -> *const Waiter<T> {
        self.head
    }

    /// Links `w` at the back for case `case` of the party owning `cx`.
    ///
    /// # Safety
    /// Under the channel lock; `w` is unlinked, and `w` and `cx` stay in place until `w` is unlinked
    /// (rule 5).
    pub(crate) unsafe fn push_back(&mut self, w: &Waiter<T>, cx: &Context, case: usize) {
        debug_assert!(!w.linked.get());
        w.cx.set(cx);
        w.case.set(case);
        w.linked.set(true);
        w.next.set(std::ptr::null());
        w.prev.set(self.tail);
        if self.tail.is_null() {
            self.head = w;
        } else {
            // SAFETY: the tail is a linked waiter of this queue (we hold the lock).
            unsafe { (*self.tail).next.set(w) };
        }
        self.tail = w;
    }

    /// Links `w` at the front (a receiver claimed in place joins the claimed prefix).
    ///
    /// # Safety
    /// As [`Queue::push_back`].
    pub(crate) unsafe fn push_front(&mut self, w: &Waiter<T>, cx: &Context, case: usize) {
        debug_assert!(!w.linked.get());
        w.cx.set(cx);
        w.case.set(case);
        w.linked.set(true);
        w.prev.set(std::ptr::null());
        w.next.set(self.head);
        if self.head.is_null() {
            self.tail = w;
        } else {
            // SAFETY: the head is a linked waiter of this queue (we hold the lock).
            unsafe { (*self.head).prev.set(w) };
        }
        self.head = w;
    }

    /// Unlinks `w`.
    ///
    /// # Safety
    /// Under the channel lock; `w` is linked in this queue.
    pub(crate) unsafe fn remove(&mut self, w: *const Waiter<T>) {
        // SAFETY: `w` and its neighbours are linked waiters of this queue (function contract).
        unsafe {
            let w = &*w;
            debug_assert!(w.linked.get());
            let (prev, next) = (w.prev.get(), w.next.get());
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next.set(next);
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                (*next).prev.set(prev);
            }
            w.prev.set(std::ptr::null());
            w.next.set(std::ptr::null());
            w.linked.set(false);
        }
    }

    /// Claims the first waiter that can still fire (rule 2), unlinking the stale ones met on the way
    /// and skipping those claimed in place. The claimed waiter stays linked; the caller either
    /// [`finish`](Queue::finish)es it or leaves it claimed in place.
    ///
    /// # Safety
    /// Under the channel lock.
    pub(crate) unsafe fn claim(&mut self) -> Option<*const Waiter<T>> {
        let mut w = self.head;
        while !w.is_null() {
            // SAFETY: `w` is linked in this queue and we hold the lock (rule 1).
            let (next, claimed) = unsafe {
                let r = &*w;
                let case = r.case.get();
                match r.cx().try_claim(case) {
                    Ok(()) => return Some(w),
                    Err(s) => (r.next.get(), s == word(CLAIMED, case)),
                }
            };
            if !claimed {
                // SAFETY: as above; the waiter's wait is over and it can never fire here (rule 2).
                unsafe { self.remove(w) };
            }
            w = next;
        }
        None
    }

    /// Completes a claimed waiter: unlinks it, lets `f` move the value, takes the waker, publishes
    /// `tag` for its case (rule 3). Returns the waker, to be woken after unlocking.
    ///
    /// # Safety
    /// Under the channel lock; `w` is linked here and `CLAIMED` for its case by the caller (by a
    /// successful [`Queue::claim`], or in place).
    #[inline]
    pub(crate) unsafe fn finish(
        &mut self,
        w: *const Waiter<T>,
        tag: usize,
        f: impl FnOnce(&Waiter<T>),
    ) -> Option<Waker> {
        // SAFETY: the caller's claim gives it the waiter and the context until the publication; we
        // publish last and keep nothing.
        unsafe {
            self.remove(w);
            let w = &*w;
            f(w);
            let cx = w.cx();
            let waker = cx.take_waker();
            cx.publish(word(tag, w.case.get()));
            waker
        }
    }
}

/// Up to two wakers collected under a lock, woken after it is released.
#[derive(Default)]
#[must_use = "wake the collected wakers once the lock is released"]
pub struct Wakers {
    first: Option<Waker>,
    second: Option<Waker>,
}

impl Wakers {
    pub(crate) fn one(w: Option<Waker>) -> Wakers {
        Wakers {
            first: w,
            second: None,
        }
    }

    pub(crate) fn push(&mut self, w: Option<Waker>) {
        if let Some(w) = w {
            if self.first.is_none() {
                self.first = Some(w);
            } else {
                debug_assert!(self.second.is_none());
                self.second = Some(w);
            }
        }
    }

    /// Wakes them (call with no channel lock held).
    #[inline]
    pub(crate) fn wake(self) {
        if let Some(w) = self.first {
            w.wake();
        }
        if let Some(w) = self.second {
            w.wake();
        }
    }
}
