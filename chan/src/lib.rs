//! Go's channels and `select`, for gort's goroutines, plain threads and async code.
//!
//! This crate owns gort's channels (`gort::chan`) and the [`select!`] / [`select_async!`] macros
//! (re-exported as `gort::select!` and `gort::select_async!`). Users normally reach it through the
//! `gort` facade.
//!
//! ```
//! let (tx, rx) = gort_chan::bounded(0); // Go's make(chan i32): unbuffered
//! let worker = gort_goroutine::spawn(move || {
//!     for v in &rx {
//!         println!("got {v}");
//!     }
//! });
//! for v in 0..3 {
//!     tx.send(v).unwrap(); // waits until the worker takes it
//! }
//! drop(tx); // closes the channel: the worker's loop ends
//! worker.join().unwrap();
//! ```
//!
//! # Channels
//! [`bounded`]`(cap)` is `make(chan T, cap)` (`cap == 0`: unbuffered, every send meets its receiver),
//! [`unbounded`]`()` a channel whose sends never wait. Both ends clone (multi-producer,
//! multi-consumer) and are `Send + Sync` for `T: Send`. They work the same from a goroutine (only the
//! goroutine waits), a plain thread (the thread blocks) and async code ([`Sender::send_async`],
//! [`Receiver::recv_async`], and `Receiver` is a `futures::Stream`).
//!
//! Go's semantics, exactly, with Rust's ownership where Go would panic:
//! * Values arrive in the order they were sent (FIFO), each to exactly one receiver.
//! * A sender that finds a receiver waiting hands the value over directly, and wakes it; so does a
//!   receiver that finds a sender waiting. A woken goroutine runs next on the waker's processor.
//! * [`Sender::close`] (Go's `close`) wakes every waiter; receivers drain the buffered values, then
//!   get [`RecvError`]. A send after close returns the value in [`SendError`] (Go panics).
//! * Dropping every `Sender` closes the channel. Dropping every `Receiver` makes sends fail (with
//!   the value back) instead of blocking forever.
//!
//! # `select!`
//! [`select!`] waits on several operations and runs exactly one, chosen uniformly at random among the
//! ready ones; with `default` it does not wait. See its docs for the syntax (crossbeam-channel's) and
//! the one deliberate difference from Go: a send case's value is evaluated only if that case fires.
//! [`select_async!`] is the same for async code.
//!
//! # Design
//! Go's algorithm (`runtime/chan.go`, `select.go`): a lock per channel, a ring buffer, queues of
//! waiting senders and receivers, direct hand-off, and a `select` that locks its channels in address
//! order, polls its cases in random order, enqueues a waiter on each, and lets a single atomic word
//! per waiting party decide which case fired. The commit protocol, with its invariants and the
//! argument that no value is lost or duplicated, is written down once, in the `protocol` module's
//! source docs. Waiting allocates nothing: waiters and their context live on the stack of the blocked
//! goroutine or thread, or inside the pinned future.
//!
//! # Invariants kept across the crate
//! * A channel's buffer, queues and counters change only under its lock; no foreign code (the `Drop`
//!   of a value, a waker's clone, wake or drop, a message expression) runs with a channel lock held.
//! * A waiter is reachable by other parties only while it is linked in a queue, and its owner
//!   unlinks it before its memory goes away.
//! * `unsafe` lives in `protocol` (the waiter queue and the context), `chan` (the locked state),
//!   `lock` (the futex), `channel`, `future` and `select` (owning waiters in place); each block
//!   states its reason in a `SAFETY:` comment.
//!
//! # Direction
//! Go's `chan<-`/`<-chan` types are [`Sender`] and [`Receiver`]: the direction is in the type, so a
//! receive on a send-only handle does not compile (nor does a send on a receive-only one, or a close
//! from the receiving side):
//!
//! ```compile_fail
//! let (tx, _rx) = gort_chan::bounded::<i32>(1);
//! let _ = tx.recv(); // a Sender cannot receive
//! ```
//!
//! ```compile_fail
//! let (_tx, rx) = gort_chan::bounded::<i32>(1);
//! let _ = rx.send(1); // a Receiver cannot send
//! ```
//!
//! ```compile_fail
//! let (_tx, rx) = gort_chan::bounded::<i32>(1);
//! rx.close(); // only senders close, as in Go
//! ```
//!
//! ```compile_fail
//! let (tx, _rx) = gort_chan::bounded::<i32>(1);
//! gort_chan::select! { recv(tx) -> _v => {} } // recv needs a Receiver
//! ```
//!
//! ```compile_fail
//! let (_tx, rx) = gort_chan::bounded::<i32>(1);
//! gort_chan::select! { send(rx, 1) -> _r => {} } // send needs a Sender
//! ```
//!
//! ```compile_fail
//! let (tx, _rx) = gort_chan::bounded::<i32>(1);
//! for _v in &tx {} // ranging over a channel receives
//! ```
//!
//! ```compile_fail
//! let (tx, rx) = gort_chan::bounded::<i32>(1);
//! let _both: gort_chan::Sender<i32> = rx; // directions do not convert
//! # drop(tx);
//! ```

#![warn(missing_docs)]

mod chan;
mod channel;
mod error;
mod future;
mod lock;
mod protocol;
mod select;
mod sys;
pub mod time;

#[cfg(all(loom, test))]
mod loom_tests;

pub use channel::{bounded, unbounded, IntoIter, Iter, Receiver, Sender, TryIter};
pub use error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use future::{RecvFuture, SendFuture};
pub use select::{RecvTarget, SendTarget};

/// What the macros expand to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::select::{
        receiver_of, select, sender_of, Case, Mode, RecvCase, SelectFuture, SendCase,
    };
    pub use gort_macros::select_impl;
}

/// Waits on several channel operations and runs exactly one: Go's `select`.
///
/// ```
/// use std::time::Duration;
/// use gort_chan::{bounded, select};
///
/// let (tx1, rx1) = bounded::<&str>(1);
/// let (tx2, rx2) = bounded::<i32>(1);
/// tx2.send(7).unwrap();
/// let got = select! {
///     recv(rx1) -> msg => format!("rx1: {msg:?}"),
///     recv(rx2) -> n => format!("rx2: {}", n.unwrap()),
///     send(tx1, "hello") -> res => { res.unwrap(); String::from("sent") },
///     default(Duration::from_secs(1)) => String::from("timed out"),
/// };
/// assert!(got == "rx2: 7" || got == "sent"); // both were ready: either may fire
/// ```
///
/// # Cases
/// The syntax is crossbeam-channel's:
///
/// * `recv(r) -> res => body`: receives from `r` (a [`Receiver`], a reference to one, or an `Option`
///   of one; `None` disables the case, as a nil channel does in Go). `res` is a pattern (irrefutable)
///   bound to `Result<T, RecvError>`: `Err` once the channel is closed and drained.
/// * `send(s, v) -> res => body`: sends `v` on `s` (a [`Sender`], a reference, or an `Option`). `res`
///   is bound to `Result<(), SendError<T>>`: `Err(SendError(v))` if the channel is closed or has no
///   receivers.
/// * `default => body`: runs when no case is ready now; the select does not wait.
/// * `default(timeout) => body`: waits up to `timeout` (a `Duration`), then runs `body`.
///
/// A body is an expression followed by a comma, or a block (the comma is then optional). `select!`
/// is an expression: its value is the value of the body that ran; bodies may `break`, `continue`,
/// `return` or use `?` as in any `match` arm.
///
/// # Semantics
/// * The channel expressions are evaluated once, in order, when the select starts.
/// * If some cases are ready, one of them is chosen uniformly at random and runs; otherwise, without
///   `default`, the select waits until one is, and exactly one fires. A select with no enabled case
///   and no `default` waits forever, as Go's `select {}` does.
/// * **A send case's value is evaluated only if that case fires** (crossbeam's rule; Go evaluates
///   every send expression up front). A send case that does not fire sends nothing, and does not even
///   move `v`. Once a send case is chosen, its channel holds a place for the value (a receiver
///   waiting for it, or room in the buffer) until `v` is evaluated and delivered, so keep `v` quick:
///   a receiver may be waiting on it. If evaluating `v` panics, the place is given back and nothing
///   is sent.
/// * Works in goroutines (only the goroutine waits) and on plain threads. A waiting select allocates
///   nothing.
///
/// ```
/// use gort_chan::{bounded, select};
///
/// let (tx, rx) = bounded::<Vec<u8>>(0);
/// let data = vec![1, 2, 3];
/// let kept = select! {
///     send(tx, data) -> _res => None, // no receiver: this case is not ready...
///     default => Some(data),          // ...so `data` was not moved, and is still ours here
/// };
/// assert_eq!(kept, Some(vec![1, 2, 3]));
/// # drop(rx);
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__private::select_impl! { $crate, sync, $($tokens)* }
    };
}

/// [`select!`] for async code: the same cases, awaited instead of blocking.
///
/// Use it inside an `async` block or function; it expands to an `.await`, and bodies may `.await`
/// too. `default` makes it resolve at once when nothing is ready; `default(timeout)` is not
/// available (race against a timer channel instead, with one more `recv` case).
///
/// It is cancel-safe: if the enclosing future is dropped while the select waits, no case fires. If a
/// receive case had already been handed a value, the value goes back to the front of its channel; if
/// a send case had been chosen, its place is given back and nothing is sent.
///
/// ```
/// use gort_chan::{bounded, select_async};
///
/// let (tx, rx) = bounded::<u32>(1);
/// let (_done_tx, done_rx) = bounded::<()>(0);
/// let got = gort_goroutine::block_on(async {
///     tx.send_async(5).await.unwrap();
///     select_async! {
///         recv(rx) -> v => v.unwrap(),
///         recv(done_rx) -> _ => 0,
///     }
/// });
/// assert_eq!(got, 5);
/// ```
#[macro_export]
macro_rules! select_async {
    ($($tokens:tt)*) => {
        $crate::__private::select_impl! { $crate, async, $($tokens)* }
    };
}
