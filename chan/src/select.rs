//! The `select!` engine: the cases the macros build, the blocking [`select`] run, and the async
//! [`SelectFuture`]. Hidden plumbing: users write [`select!`](crate::select!) and
//! [`select_async!`](crate::select_async!).
//!
//! A run is Go's `selectgo` under the commit protocol of `protocol.rs`:
//!
//! 1. Shuffle the cases (the *poll order*; uniform, so among ready cases each fires with equal
//!    chance).
//! 2. First, try each case in poll order with only its own channel locked (`Case::try_alone`, one
//!    dynamic call per case): the first ready one fires (see 3 for what firing does). Nothing
//!    ready: sort the enabled cases by channel address (the *lock order*; duplicates locked once)
//!    and go on to the full round.
//! 3. Lock every channel in lock order; try each case in poll order. The first ready one fires: a
//!    receive takes its value, a send takes a reservation (its message is evaluated by the caller
//!    after the run returns). A receive that meets a waiting lazy sender binds to it and waits for
//!    the value with the locks released.
//! 4. Nothing ready: with `default`, unlock and report it (the locked round makes `default` exact:
//!    at one instant, no case was ready). Otherwise link one waiter per case (all on this stack
//!    frame, or inside the pinned future), unlock, and park until the context's state is final, or
//!    the deadline passes and the abort wins.
//! 5. Lock each other channel in turn and unlink what is still linked; the final state names the
//!    case that fired (`RETRY`: start over at 3).
//!
//! A blocking run allocates nothing: the context, the waiters, the orders are all on its stack.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::chan::{Chan, LazyStep, RecvStep};
use crate::channel::{wait_guarded, Receiver, Sender};
use crate::error::{RecvError, SendError};
use crate::protocol::{self, Context, Waiter, Wakers, ABORTED, CLOSED, DONE, RESERVED, RETRY};
use crate::sys::{self, WaitReason};

mod sealed {
    pub trait Sealed {}
}

/// What trying a case found (hidden plumbing).
#[doc(hidden)]
pub enum Fire {
    /// Not ready.
    No,
    /// The case fired; wake these after unlocking.
    Now(Wakers),
    /// A receive bound itself to a lazy sender's reservation: the context is `CLAIMED` for it and
    /// its waiter is linked in place; wake these after unlocking, then wait.
    Bound(Wakers),
}

/// One case of a `select!`, type-erased (hidden plumbing; sealed).
///
/// Every method but `id` requires the engine's discipline, hence `unsafe`.
#[doc(hidden)]
pub trait Case: sealed::Sealed {
    /// The channel's address, the lock order key; 0 for a disabled case.
    fn id(&self) -> usize;
    /// Locks the case's channel.
    ///
    /// # Safety
    /// Paired with one `unlock` by the caller, in the engine's lock order.
    unsafe fn lock(&self);
    /// Unlocks the case's channel.
    ///
    /// # Safety
    /// The caller took the lock with `lock`.
    unsafe fn unlock(&self);
    /// Tries the case now, for case index `index` of the party owning `cx`.
    ///
    /// # Safety
    /// Under the channel lock; nothing of `cx`'s owner is linked; `self` and `cx` stay in place until
    /// a waiter linked here is unlinked.
    unsafe fn fire(&self, cx: &Context, index: usize) -> Fire;
    /// Links the case's waiter.
    ///
    /// # Safety
    /// As `fire`, with `cx` armed `WAITING` and its waker set.
    unsafe fn link(&self, cx: &Context, index: usize);
    /// Unlinks the case's waiter if it is still linked; `state` is the context's current state.
    ///
    /// # Safety
    /// Under the channel lock, by the owner.
    unsafe fn unlink(&self, state: usize);
    /// Records the final `state` naming this case, once its waiter is off every queue.
    ///
    /// # Safety
    /// Owner only.
    unsafe fn accept(&self, state: usize);

    /// The fast path's try of the case, with only its own channel locked: locks, fires if ready,
    /// unlocks and wakes the partners. A receive bound to a lazy sender (`Alone::Bound`) has its
    /// waiter linked claimed in place and a waker stored in `cx` (taken from `waker`, a task's waker
    /// cloned before locking; `None`: the current goroutine's or thread's); the caller waits for the
    /// value.
    ///
    /// One dynamic call per case, and `fire`'s result never leaves this frame (it is inlined here
    /// for each case type): the fast path of a select over ready channels is a few branches around
    /// one lock.
    ///
    /// # Safety
    /// As `fire`, with no lock held by the caller.
    #[inline]
    unsafe fn try_alone(&self, cx: &Context, index: usize, waker: &mut Option<Waker>) -> Alone {
        // SAFETY: one lock, released on every path below (by `settle` unless nothing fired); the
        // rest per this method's contract.
        unsafe {
            self.lock();
            let done = settle(self.fire(cx, index), cx, waker, || self.unlock());
            if done == Alone::No {
                self.unlock();
            }
            done
        }
    }
}

/// What trying a case did ([`Case::try_alone`], or a locked round's try; hidden plumbing).
#[doc(hidden)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Alone {
    /// Not ready (or disabled): nothing done.
    No,
    /// The case fired, its partners are woken.
    Fired,
    /// A receive bound itself to a lazy sender's reservation: wait for the value.
    Bound,
}

/// Converts `recv(...)`'s argument into the receiver it names (`None` disables the case, like
/// Go's nil channel).
#[diagnostic::on_unimplemented(
    message = "gort: `recv(...)` in `select!` takes a `Receiver<T>`, a reference to one, or an \
               `Option` of one (None disables the case); `{Self}` is none of these",
    label = "not a receiver"
)]
pub trait RecvTarget<T> {
    /// The receiver, if the case is enabled.
    fn receiver(&self) -> Option<&Receiver<T>>;
}

impl<T> RecvTarget<T> for Receiver<T> {
    fn receiver(&self) -> Option<&Receiver<T>> {
        Some(self)
    }
}

impl<T> RecvTarget<T> for Option<Receiver<T>> {
    fn receiver(&self) -> Option<&Receiver<T>> {
        self.as_ref()
    }
}

impl<T> RecvTarget<T> for Option<&Receiver<T>> {
    fn receiver(&self) -> Option<&Receiver<T>> {
        *self
    }
}

impl<T, R: RecvTarget<T> + ?Sized> RecvTarget<T> for &R {
    fn receiver(&self) -> Option<&Receiver<T>> {
        (**self).receiver()
    }
}

impl<T, R: RecvTarget<T> + ?Sized> RecvTarget<T> for &mut R {
    fn receiver(&self) -> Option<&Receiver<T>> {
        (**self).receiver()
    }
}

/// Converts `send(...)`'s first argument into the sender it names (`None` disables the case, like
/// Go's nil channel).
#[diagnostic::on_unimplemented(
    message = "gort: `send(...)` in `select!` takes a `Sender<T>`, a reference to one, or an \
               `Option` of one (None disables the case); `{Self}` is none of these",
    label = "not a sender"
)]
pub trait SendTarget<T> {
    /// The sender, if the case is enabled.
    fn sender(&self) -> Option<&Sender<T>>;
}

impl<T> SendTarget<T> for Sender<T> {
    fn sender(&self) -> Option<&Sender<T>> {
        Some(self)
    }
}

impl<T> SendTarget<T> for Option<Sender<T>> {
    fn sender(&self) -> Option<&Sender<T>> {
        self.as_ref()
    }
}

impl<T> SendTarget<T> for Option<&Sender<T>> {
    fn sender(&self) -> Option<&Sender<T>> {
        *self
    }
}

impl<T, S: SendTarget<T> + ?Sized> SendTarget<T> for &S {
    fn sender(&self) -> Option<&Sender<T>> {
        (**self).sender()
    }
}

impl<T, S: SendTarget<T> + ?Sized> SendTarget<T> for &mut S {
    fn sender(&self) -> Option<&Sender<T>> {
        (**self).sender()
    }
}

/// The receiver a `recv(...)` argument names (hidden plumbing; the bound is checked here, on the
/// user's expression, for a clear error).
#[inline]
pub fn receiver_of<T, R: RecvTarget<T> + ?Sized>(target: &R) -> Option<&Receiver<T>> {
    target.receiver()
}

/// The sender a `send(...)` argument names (hidden plumbing, see [`receiver_of`]).
#[inline]
pub fn sender_of<T, S: SendTarget<T> + ?Sized>(target: &S) -> Option<&Sender<T>> {
    target.sender()
}

const PENDING: u8 = 0;
const VALUE: u8 = 1;
const SHUT: u8 = 2;
const HELD: u8 = 3;

/// A `recv(r) -> res` case (hidden plumbing).
#[doc(hidden)]
pub struct RecvCase<'a, T> {
    chan: Option<&'a Chan<T>>,
    w: Waiter<T>,
    outcome: Cell<u8>,
}

// SAFETY: `outcome` is touched only by the owner (through the unsafe `Case` methods and the by-value
// `into_result`); the waiter follows the protocol.
unsafe impl<T: Send> Sync for RecvCase<'_, T> {}

impl<'a, T> RecvCase<'a, T> {
    /// A case receiving from `receiver` (disabled if `None`).
    #[inline]
    pub fn new(receiver: Option<&'a Receiver<T>>) -> RecvCase<'a, T> {
        RecvCase {
            chan: receiver.map(|r| &*r.chan),
            w: Waiter::new(false, None),
            outcome: Cell::new(PENDING),
        }
    }

    /// The fired case's result.
    #[inline]
    pub fn into_result(self) -> Result<T, RecvError> {
        match self.outcome.get() {
            // SAFETY: the case fired and its waiter is off every queue: the slot is ours.
            VALUE => {
                self.outcome.set(PENDING); // taken here: nothing for `drop` to put back
                Ok(unsafe { self.w.take() }.expect("gort: a fired select case lost its value"))
            }
            SHUT => Err(RecvError),
            o => unreachable!("gort: a select! receive case read in state {o}"),
        }
    }
}

impl<T> sealed::Sealed for RecvCase<'_, T> {}

impl<T> Case for RecvCase<'_, T> {
    #[inline]
    fn id(&self) -> usize {
        self.chan.map_or(0, |c| c as *const Chan<T> as usize)
    }

    #[inline]
    unsafe fn lock(&self) {
        if let Some(c) = self.chan {
            c.lock();
        }
    }

    #[inline]
    unsafe fn unlock(&self) {
        if let Some(c) = self.chan {
            c.unlock();
        }
    }

    #[inline(always)] // into `try_alone`: its result then stays in registers
    unsafe fn fire(&self, cx: &Context, index: usize) -> Fire {
        let Some(chan) = self.chan else {
            return Fire::No;
        };
        // SAFETY: under the lock, per the trait contract; the waiter is ours and unlinked.
        unsafe {
            let st = chan.state();
            let mut wakers = Wakers::default();
            match st.recv_step(&mut wakers) {
                RecvStep::Got(v) => {
                    self.w.put(v);
                    self.outcome.set(VALUE);
                    Fire::Now(wakers)
                }
                RecvStep::Closed => {
                    self.outcome.set(SHUT);
                    Fire::Now(Wakers::default())
                }
                RecvStep::Bind => {
                    cx.claim_self(index);
                    st.recvq.push_front(&self.w, cx, index);
                    Fire::Bound(wakers)
                }
                RecvStep::Empty => Fire::No,
            }
        }
    }

    unsafe fn link(&self, cx: &Context, index: usize) {
        if let Some(chan) = self.chan {
            // SAFETY: per the trait contract.
            unsafe { chan.state().recvq.push_back(&self.w, cx, index) };
        }
    }

    unsafe fn unlink(&self, state: usize) {
        if let Some(chan) = self.chan {
            // SAFETY: per the trait contract.
            unsafe { chan.state().unlink_receiver(&self.w, state) };
        }
    }

    unsafe fn accept(&self, state: usize) {
        match protocol::tag(state) {
            DONE => self.outcome.set(VALUE),
            CLOSED => self.outcome.set(SHUT),
            t => unreachable!("gort: a select! receive case fired with tag {t}"),
        }
    }
}

impl<T> Drop for RecvCase<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.outcome.get() != VALUE {
            return;
        }
        self.put_back();
    }
}

impl<T> RecvCase<'_, T> {
    #[cold]
    fn put_back(&self) {
        // A value received for a select that was dropped before it returned (async cancellation):
        // put it back at the front of its channel.
        // SAFETY: the case fired and its waiter is off every queue: the slot is ours.
        let Some(v) = (unsafe { self.w.take() }) else {
            return;
        };
        let chan = self.chan.expect("gort: a disabled select case fired");
        chan.lock();
        // SAFETY: under the lock.
        let r = unsafe { chan.state().put_back(v) };
        chan.unlock();
        if let Ok(w) = r {
            w.wake();
        }
    }
}

/// A `send(s, v) -> res` case (hidden plumbing). Its message is given only to [`SendCase::complete`],
/// after the case fired.
#[doc(hidden)]
pub struct SendCase<'a, T> {
    chan: Option<&'a Chan<T>>,
    w: Waiter<T>,
    outcome: Cell<u8>,
}

// SAFETY: as for `RecvCase`.
unsafe impl<T: Send> Sync for SendCase<'_, T> {}

impl<'a, T> SendCase<'a, T> {
    /// A case sending on `sender` (disabled if `None`).
    #[inline]
    pub fn new(sender: Option<&'a Sender<T>>) -> SendCase<'a, T> {
        SendCase {
            chan: sender.map(|s| &*s.chan),
            w: Waiter::new(true, None),
            outcome: Cell::new(PENDING),
        }
    }

    /// Completes the fired case with its message: delivers it through the reservation the case
    /// holds, or gives it back if the channel was closed (or lost its receivers meanwhile).
    #[inline]
    pub fn complete(self, value: T) -> Result<(), SendError<T>> {
        match self.outcome.get() {
            HELD => {
                self.outcome.set(PENDING);
                let chan = self.chan.expect("gort: a disabled select case fired");
                chan.lock();
                // SAFETY: under the lock; the case holds one reservation, consumed here.
                let r = unsafe { chan.state().complete_reservation(value) };
                chan.unlock_after_reservation();
                match r {
                    Ok(w) => {
                        w.wake();
                        Ok(())
                    }
                    Err(v) => Err(SendError(v)),
                }
            }
            SHUT => Err(SendError(value)),
            o => unreachable!("gort: a select! send case completed in state {o}"),
        }
    }
}

impl<T> sealed::Sealed for SendCase<'_, T> {}

impl<T> Case for SendCase<'_, T> {
    #[inline]
    fn id(&self) -> usize {
        self.chan.map_or(0, |c| c as *const Chan<T> as usize)
    }

    #[inline]
    unsafe fn lock(&self) {
        if let Some(c) = self.chan {
            c.lock();
        }
    }

    #[inline]
    unsafe fn unlock(&self) {
        if let Some(c) = self.chan {
            c.unlock();
        }
    }

    #[inline(always)] // as `RecvCase::fire`
    unsafe fn fire(&self, _cx: &Context, _index: usize) -> Fire {
        let Some(chan) = self.chan else {
            return Fire::No;
        };
        // SAFETY: under the lock, per the trait contract.
        match unsafe { chan.state().lazy_send_step() } {
            LazyStep::Reserved => {
                self.outcome.set(HELD);
                Fire::Now(Wakers::default())
            }
            LazyStep::Closed => {
                self.outcome.set(SHUT);
                Fire::Now(Wakers::default())
            }
            LazyStep::Full => Fire::No,
        }
    }

    unsafe fn link(&self, cx: &Context, index: usize) {
        if let Some(chan) = self.chan {
            // SAFETY: per the trait contract.
            unsafe { chan.state().sendq.push_back(&self.w, cx, index) };
        }
    }

    unsafe fn unlink(&self, _state: usize) {
        if let Some(chan) = self.chan {
            // SAFETY: per the trait contract.
            unsafe { chan.state().unlink_sender(&self.w) };
        }
    }

    unsafe fn accept(&self, state: usize) {
        match protocol::tag(state) {
            RESERVED => self.outcome.set(HELD),
            CLOSED => self.outcome.set(SHUT),
            t => unreachable!("gort: a select! send case fired with tag {t}"),
        }
    }
}

impl<T> Drop for SendCase<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.outcome.get() != HELD {
            return;
        }
        self.give_back();
    }
}

impl<T> SendCase<'_, T> {
    #[cold]
    fn give_back(&self) {
        // The case fired but its message never came (the expression panicked, or an async select was
        // dropped): give the reservation back.
        let chan = self.chan.expect("gort: a disabled select case fired");
        chan.lock();
        // SAFETY: under the lock; the case holds one reservation, consumed here.
        let w = unsafe { chan.state().abandon_reservation() };
        chan.unlock_after_reservation();
        w.wake();
    }
}

/// How long a select may wait (hidden plumbing).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// No `default`: wait for a case.
    Block,
    /// `default`: do not wait.
    NonBlock,
    /// `default(timeout)`: wait until this instant.
    Until(Instant),
}

impl Mode {
    /// `default(timeout)`'s mode.
    #[inline]
    pub fn timeout(timeout: Duration) -> Mode {
        match Instant::now().checked_add(timeout) {
            Some(d) => Mode::Until(d),
            None => Mode::Block,
        }
    }
}

/// The poll and lock orders of a run over `N` cases.
struct Orders<const N: usize> {
    poll: [usize; N],
    lock: [usize; N],
    /// Each case's channel address (`Case::id`), read once.
    ids: [usize; N],
    /// Enabled cases: `lock[..enabled]`.
    enabled: usize,
}

/// A uniformly random poll order over `N` cases (inside-out Fisher-Yates).
#[inline]
fn shuffled<const N: usize>() -> [usize; N] {
    let mut dice = sys::Dice::new();
    let mut poll = [0; N];
    if N <= 16 {
        // The permutation as 4-bit entries of one register: each step's read of entry `j` then
        // depends on the previous step through a register, not through a store to the stack and a
        // load of it (a chain of store-to-load forwards that cost most of a small select's shuffle).
        let mut packed = 0u64;
        for i in 0..N {
            let j = dice.below(i + 1);
            let moved = (packed >> (4 * j)) & 0xf;
            packed = (packed & !(0xf << (4 * i))) | (moved << (4 * i));
            packed = (packed & !(0xf << (4 * j))) | ((i as u64) << (4 * j));
        }
        for (i, p) in poll.iter_mut().enumerate() {
            *p = ((packed >> (4 * i)) & 0xf) as usize;
        }
    } else {
        for i in 0..N {
            let j = dice.below(i + 1);
            poll[i] = poll[j];
            poll[j] = i;
        }
    }
    poll
}

impl<const N: usize> Orders<N> {
    /// The orders of a run polling `cases` in `poll` order (see [`shuffled`]).
    fn new<C: Case + ?Sized>(cases: &[&C; N], poll: [usize; N]) -> Orders<N> {
        let mut ids = [0; N];
        for (id, case) in ids.iter_mut().zip(cases) {
            *id = case.id();
        }
        let mut lock = [0; N];
        let mut enabled = 0;
        for (i, &id) in ids.iter().enumerate() {
            if id != 0 {
                // Insertion sort by address (N is small).
                let mut k = enabled;
                while k > 0 && ids[lock[k - 1]] > id {
                    lock[k] = lock[k - 1];
                    k -= 1;
                }
                lock[k] = i;
                enabled += 1;
            }
        }
        Orders {
            poll,
            lock,
            ids,
            enabled,
        }
    }

    fn locked(&self) -> &[usize] {
        &self.lock[..self.enabled]
    }

    /// Locks every enabled case's channel once, in address order.
    ///
    /// # Safety
    /// Paired with `unlock_all` by the caller.
    unsafe fn lock_all<C: Case + ?Sized>(&self, cases: &[&C; N]) {
        let mut prev = 0;
        for &i in self.locked() {
            let id = self.ids[i];
            if id != prev {
                // SAFETY: paired with `unlock_all` (function contract); address order.
                unsafe { cases[i].lock() };
                prev = id;
            }
        }
    }

    /// Unlocks what `lock_all` locked.
    ///
    /// # Safety
    /// After `lock_all`.
    unsafe fn unlock_all<C: Case + ?Sized>(&self, cases: &[&C; N]) {
        let mut prev = 0;
        for &i in self.locked() {
            let id = self.ids[i];
            if id != prev {
                // SAFETY: locked by `lock_all` (function contract).
                unsafe { cases[i].unlock() };
                prev = id;
            }
        }
    }

    /// Unlinks every case's waiter except `winner`'s, locking each channel in turn.
    ///
    /// # Safety
    /// Owner only, with no lock held, after the state became final.
    unsafe fn unlink_others<C: Case + ?Sized>(&self, cases: &[&C; N], state: usize, winner: usize) {
        for &i in self.locked() {
            if i != winner {
                // SAFETY: owner, one lock at a time, each held around its unlink.
                unsafe {
                    cases[i].lock();
                    cases[i].unlink(state);
                    cases[i].unlock();
                }
            }
        }
    }
}

/// How a blocking select's bound receive ended.
enum Settled {
    /// Case `i` fired: the select returns it.
    Fired(usize),
    /// A bound receive's sender gave up: start a locked round over.
    Retry,
}

/// Finishes what trying a case found: when it fired or bound, `unlock` releases the locks held
/// and the partners are woken; a receive bound to a lazy sender first stores the waker its claimer
/// will wake (taken from `waker`, a task's waker cloned before locking; `None`: the current
/// goroutine's or thread's). Nothing is done when nothing fired (the locks stay held).
///
/// # Safety
/// Called under the locks `unlock` releases, with `fire` just returned by a case's `fire(cx, _)`.
#[inline(always)] // into `try_alone`: `fire`'s result then stays in registers
unsafe fn settle(
    fire: Fire,
    cx: &Context,
    waker: &mut Option<Waker>,
    unlock: impl FnOnce(),
) -> Alone {
    match fire {
        Fire::No => Alone::No,
        Fire::Now(wakers) => {
            unlock();
            wakers.wake();
            Alone::Fired
        }
        Fire::Bound(wakers) => {
            // SAFETY: the state is not final and the case's lock is held (function contract).
            unsafe { cx.set_waker(waker.take().unwrap_or_else(sys::current_waker)) };
            unlock();
            wakers.wake();
            Alone::Bound
        }
    }
}

/// Waits for the value promised to receive case `i`, bound to a lazy sender's reservation.
///
/// # Safety
/// The case's waiter is linked claimed in place for `cx`, whose waker is set; no lock is held.
unsafe fn wait_bound<C: Case + ?Sized>(case: &C, i: usize, cx: &Context) -> Settled {
    let s = wait_guarded(cx, None, WaitReason::Select);
    match protocol::tag(s) {
        DONE => {
            // SAFETY: `DONE` was published by the claimer, which unlinked our waiter.
            unsafe { case.accept(s) };
            Settled::Fired(i)
        }
        RETRY => Settled::Retry,
        _ => unreachable!("gort: a bound select woke in state {s:#x}"),
    }
}

/// Runs a blocking `select!` over `cases`: returns the index of the case that fired, or `N` for
/// `default` (hidden plumbing).
pub fn select<const N: usize>(cases: [&dyn Case; N], mode: Mode) -> usize {
    let poll = shuffled::<N>();
    let cx = Context::new();
    // The fast path (crossbeam's `try_select`): one channel locked at a time, in poll order. A case
    // found ready this way was ready when tried, and the first ready one in a uniform order is a
    // uniform choice among the ready ones, so nothing Go promises changes; but a select over
    // busy channels (the common case in a pipeline) no longer locks them all, and the lock order
    // is worked out only when the locked round needs it.
    for &i in &poll {
        // SAFETY: no lock held; nothing of `cx` is linked yet, and a waiter bound here lives in the
        // case, in place until unlinked by its claimer.
        match unsafe { cases[i].try_alone(&cx, i, &mut None) } {
            Alone::No => {}
            Alone::Fired => {
                sys::safe_point();
                return i;
            }
            // SAFETY: bound just now by `try_alone`, which released its lock.
            Alone::Bound => match unsafe { wait_bound(cases[i], i, &cx) } {
                Settled::Fired(i) => return i,
                Settled::Retry => break,
            },
        }
    }
    let orders = Orders::new(&cases, poll);
    if orders.enabled == 0 {
        return idle(mode, N);
    }
    'round: loop {
        // SAFETY (whole round): locks are paired and taken in address order; `cx` and the cases'
        // waiters live on this frame or the caller's and stay in place until unlinked, which every
        // path below ensures before returning (the claimer unlinks what it publishes; we unlink
        // the rest).
        unsafe {
            orders.lock_all(&cases);
            for &i in &orders.poll {
                // `settle` unlocks what `lock_all` took.
                match settle(cases[i].fire(&cx, i), &cx, &mut None, || {
                    orders.unlock_all(&cases)
                }) {
                    Alone::No => {}
                    Alone::Fired => {
                        sys::safe_point();
                        return i;
                    }
                    Alone::Bound => match wait_bound(cases[i], i, &cx) {
                        Settled::Fired(i) => return i,
                        Settled::Retry => continue 'round,
                    },
                }
            }
            let deadline = match mode {
                Mode::NonBlock => {
                    orders.unlock_all(&cases);
                    sys::safe_point();
                    return N;
                }
                Mode::Block => None,
                Mode::Until(d) => Some(d),
            };
            cx.reset();
            cx.set_waker(sys::current_waker());
            // Link in poll order: cases on the same channel then queue up in random order, so a
            // partner does not always find the same one first (Go builds its lock order from the
            // shuffled poll order for the same reason).
            for &i in &orders.poll {
                cases[i].link(&cx, i);
            }
            orders.unlock_all(&cases);
            let s = wait_guarded(&cx, deadline, WaitReason::Select);
            let winner = match protocol::tag(s) {
                ABORTED => usize::MAX,
                _ => protocol::case(s),
            };
            orders.unlink_others(&cases, s, winner);
            match protocol::tag(s) {
                ABORTED => return N,
                RETRY => continue 'round,
                _ => {
                    cases[winner].accept(s);
                    return winner;
                }
            }
        }
    }
}

/// A select with no enabled case: Go's `select {}` (or only nil channels) blocks forever.
fn idle(mode: Mode, n: usize) -> usize {
    match mode {
        Mode::NonBlock => {
            sys::safe_point();
            n
        }
        Mode::Until(d) => {
            while !sys::expired(d) {
                sys::park_until(d, WaitReason::Select);
            }
            n
        }
        Mode::Block => loop {
            // Nothing can ever wake us; park returns only spuriously.
            sys::park(WaitReason::SelectNoCases);
        },
    }
}

const IDLE: u8 = 0;
const LINKED: u8 = 1;
const FINISHED: u8 = 2;

/// The future behind `select_async!` (hidden plumbing): resolves to the index of the case that
/// fired, or `N` for `default`.
#[doc(hidden)]
#[must_use = "futures do nothing unless polled"]
pub struct SelectFuture<'a, const N: usize> {
    cases: [&'a (dyn Case + Sync); N],
    orders: Orders<N>,
    nonblocking: bool,
    cx: Context,
    phase: Cell<u8>,
    _pin: PhantomPinned,
}

// SAFETY: `phase` is only used by `poll` (exclusive through the pin) and `drop`; the context follows
// the protocol; the cases are `Sync`.
unsafe impl<const N: usize> Send for SelectFuture<'_, N> {}
// SAFETY: no method takes `&self`.
unsafe impl<const N: usize> Sync for SelectFuture<'_, N> {}

impl<'a, const N: usize> SelectFuture<'a, N> {
    /// A select over `cases`; with `nonblocking` (a `default` case) it resolves at the first poll.
    pub fn new(cases: [&'a (dyn Case + Sync); N], nonblocking: bool) -> SelectFuture<'a, N> {
        SelectFuture {
            orders: Orders::new(&cases, shuffled()),
            cases,
            nonblocking,
            cx: Context::new(),
            phase: Cell::new(IDLE),
            _pin: PhantomPinned,
        }
    }
}

impl<const N: usize> Future for SelectFuture<'_, N> {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, task: &mut std::task::Context<'_>) -> Poll<usize> {
        let this = self.into_ref().get_ref();
        let (cases, orders, cx) = (&this.cases, &this.orders, &this.cx);
        if orders.enabled == 0 {
            return if this.nonblocking {
                this.phase.set(FINISHED);
                Poll::Ready(N)
            } else {
                Poll::Pending // Go's `select {}`: never
            };
        }
        loop {
            match this.phase.get() {
                FINISHED => panic!("gort: a select_async! future polled after it completed"),
                LINKED => {
                    let mut s = cx.load();
                    if !protocol::is_final(s) {
                        // Foreign code: cloned before locking.
                        let waker = task.waker().clone();
                        // SAFETY: paired locks; holding them all excludes every claimer, so the
                        // waker can be swapped while the state is not final.
                        unsafe {
                            orders.lock_all(cases);
                            s = cx.load();
                            if !protocol::is_final(s) {
                                let spare = cx.update_waker(waker);
                                orders.unlock_all(cases);
                                drop(spare);
                                return Poll::Pending;
                            }
                            orders.unlock_all(cases);
                        }
                    }
                    let winner = protocol::case(s);
                    // SAFETY: final; we are the owner and hold no lock.
                    unsafe { orders.unlink_others(cases, s, winner) };
                    this.phase.set(IDLE);
                    match protocol::tag(s) {
                        RETRY => continue,
                        DONE | CLOSED | RESERVED => {
                            // SAFETY: owner; the winner's waiter was unlinked by its claimer.
                            unsafe { cases[winner].accept(s) };
                            this.phase.set(FINISHED);
                            return Poll::Ready(winner);
                        }
                        _ => unreachable!("gort: an async select woke in state {s:#x}"),
                    }
                }
                _ => {
                    // Foreign code: cloned before locking.
                    let mut waker = Some(task.waker().clone());
                    // The fast path, as in `select`.
                    for &i in &orders.poll {
                        // SAFETY: no lock held; nothing of `cx` is linked; the future is pinned, so
                        // `cx` and the cases stay in place until a waiter bound here is unlinked
                        // (by its claimer, or by the drop).
                        let alone = unsafe { cases[i].try_alone(cx, i, &mut waker) };
                        if let Some(done) = settled_poll(&this.phase, alone, i) {
                            return done;
                        }
                    }
                    // SAFETY: as in `select`; the future is pinned, so `cx` and the cases (borrowed
                    // for its whole life) stay in place until its drop unlinks everything.
                    unsafe {
                        orders.lock_all(cases);
                        for &i in &orders.poll {
                            // `settle` unlocks what `lock_all` took.
                            let alone = settle(cases[i].fire(cx, i), cx, &mut waker, || {
                                orders.unlock_all(cases)
                            });
                            if let Some(done) = settled_poll(&this.phase, alone, i) {
                                return done;
                            }
                        }
                        let waker = waker.expect("gort: nothing fired, so the waker is unused");
                        if this.nonblocking {
                            orders.unlock_all(cases);
                            this.phase.set(FINISHED);
                            return Poll::Ready(N);
                        }
                        cx.reset();
                        cx.set_waker(waker);
                        for &i in &orders.poll {
                            cases[i].link(cx, i); // in poll order, as in `select`
                        }
                        this.phase.set(LINKED);
                        orders.unlock_all(cases);
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// What an async select's poll returns once case `i` has settled as `alone` says (`None`: it did
/// nothing, try the next case), with the future's phase moved to match.
fn settled_poll(phase: &Cell<u8>, alone: Alone, i: usize) -> Option<Poll<usize>> {
    match alone {
        Alone::No => None,
        Alone::Fired => {
            phase.set(FINISHED);
            Some(Poll::Ready(i))
        }
        Alone::Bound => {
            phase.set(LINKED);
            Some(Poll::Pending)
        }
    }
}

impl<const N: usize> Drop for SelectFuture<'_, N> {
    fn drop(&mut self) {
        if self.phase.get() != LINKED {
            return;
        }
        let (cases, orders, cx) = (&self.cases, &self.orders, &self.cx);
        // SAFETY: holding every lock excludes every claimer: the state is WAITING (abort it),
        // claimed in place (unlinking releases the claim), or final (the winner is unlinked).
        unsafe {
            orders.lock_all(cases);
            let mut s = cx.load();
            if protocol::tag(s) == protocol::WAITING && cx.try_abort().is_ok() {
                s = ABORTED;
            }
            for &i in orders.locked() {
                cases[i].unlink(s);
            }
            orders.unlock_all(cases);
            if matches!(protocol::tag(s), DONE | CLOSED | RESERVED) {
                // The case fired but the select never returned: its own drop puts a received value
                // back, or gives a reservation back.
                cases[protocol::case(s)].accept(s);
            }
        }
    }
}

impl<const N: usize> fmt::Debug for SelectFuture<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectFuture").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::shuffled;
    use std::collections::HashMap;

    #[test]
    fn packed_shuffle_is_uniform() {
        // Each of the 24 orders of 4 cases should come up about 1/24 of the time (this also checks
        // `sys::Dice`'s batched draws, which the shuffle takes its randomness from).
        let runs = 240_000;
        let mut counts: HashMap<[usize; 4], u32> = HashMap::new();
        for _ in 0..runs {
            *counts.entry(shuffled::<4>()).or_default() += 1;
        }
        assert_eq!(counts.len(), 24, "some orders never came up: {counts:?}");
        let expected = f64::from(runs) / 24.0;
        for (order, &c) in &counts {
            // 10,000 expected per order, standard deviation ~98: 6% is over 6 sigma.
            assert!(
                (f64::from(c) - expected).abs() < expected * 0.06,
                "order {order:?} came up {c} times, expected about {expected}"
            );
        }
    }

    #[test]
    fn shuffles_are_permutations_at_every_size() {
        fn check<const N: usize>() {
            let mut first = [0usize; N];
            for _ in 0..2_000 {
                let mut order = shuffled::<N>();
                for (k, &i) in order.iter().enumerate() {
                    if i == 0 {
                        first[k] += 1;
                    }
                }
                order.sort_unstable();
                assert!(
                    order.iter().enumerate().all(|(k, &i)| k == i),
                    "not a permutation of {N} cases: {order:?}"
                );
            }
            // Case 0 lands in every position (the packed path's last entries included).
            assert!(first.iter().all(|&c| c > 0), "N = {N}: {first:?}");
        }
        check::<1>();
        check::<2>();
        check::<15>();
        check::<16>();
        check::<17>();
        check::<40>();
    }
}
