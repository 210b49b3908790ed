//! gort's runtime core: stackful goroutines on Go's G/M/P scheduler.
//!
//! This crate owns everything that decides *where and when code runs*: goroutine stacks and the
//! context switch (`stack`, `g`), the scheduler with its per-P run queues, spinning Ms and global queue
//! (`sched`, `runq`, `futex`), the parking core every blocking operation waits through (`park`),
//! goroutine creation and join (`spawn`, `join`), panic reporting (`panic`), the user-facing runtime
//! API (`runtime`), goroutine-aware synchronization (`sync`), the network poller (`netpoll`: one
//! `mio::Poll` that idle Ms block in, polled by the scheduler and sysmon too; `cpuload`: whether
//! the machine has a CPU to spare for sharing what a poll readies), the sockets built on
//! it (`net`: TCP, UDP, Unix, parking `Read`/`Write` and `futures::io` traits) and adapters for
//! other async ecosystems (`compat`: hyper behind feature `hyper`, tokio-reactor futures behind
//! `tokio-compat`). Users normally reach it through the `gort` facade crate.
//!
//! # Invariants kept across the crate
//! * A goroutine is resumed by at most one M at a time: the G's *scheduling reference* moves from run
//!   queue to M to park and back, and only its holder touches the coroutine (`g.rs`).
//! * Every wait goes through [`park::park`] with a [`std::task::Waker`] from [`park::current_waker`];
//!   there is no other wake path (`park.rs`).
//! * `unsafe` lives in `stack` (memory mapping, guard pages, the overflow signal handler), `g` and
//!   `sched` (the scheduling reference, P-local state, the coroutine), `erased` (a G's type-erased
//!   closure and result), `join` (the result hand-over), `local` (goroutine-local values), `park`
//!   (waker vtables), `spawn` (pinning), `futex` and `fence` (the futex and membarrier syscalls),
//!   `net` (`shutdown` on a listening socket) and `compat::hyper` (reads into hyper's uninitialized
//!   buffers); `runq` is lock-free without any. Each block states its invariant in a `SAFETY:`
//!   comment.
//!
//! # Thread-locals and goroutines
//! A goroutine may be resumed on a different OS thread after any blocking call (a park, a yield, a
//! join). Two consequences for user code:
//! * A `thread_local!` value read in a goroutine belongs to whichever thread runs it *now*; do not keep a
//!   reference into one across a blocking call (`LOCAL.with(|v| { ch.recv(); v.use() })` may touch
//!   another thread's value, or a dead thread's). Read it again after the call.
//! * Thread-affine resources (a lock that must be released on the thread that took it, an OpenGL
//!   context, a `!Send` handle from a C library that checks its thread) must not be held across a
//!   blocking call.
//!
//! For per-goroutine state (a request id, a tracing span) use [`goroutine_local!`] instead: its
//! values follow the goroutine across threads and are dropped when it finishes.
//!
//! The runtime itself follows the same rule: it reads its per-thread state only through
//! `#[inline(never)]` accessors after each switch, so the compiler cannot reuse a thread-local address
//! computed on the previous thread.

#![warn(missing_docs)]

pub mod compat;
mod cpuload;
mod erased;
mod fence;
pub mod futex;
mod g;
mod join;
pub mod local;
pub mod net;
mod netpoll;
mod panic;
pub mod park;
mod runq;
pub mod runtime;
mod sched;
mod spawn;
mod stack;
pub mod sync;
mod sysmon;
pub mod time;
pub mod timer;

/// Locks a runtime-internal mutex, ignoring poisoning: the runtime never holds its locks across user
/// code, so a poisoned lock can only follow a runtime bug, and the data it guards is still
/// consistent. One place for the policy every internal lock follows.
pub(crate) fn lock<T: ?Sized>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The runtime's running averages (timer lateness, an M's goroutine run time, the machine's
/// runnable threads): `avg` moved an eighth of the way to `sample`, so about the last eight
/// samples count. Integer arithmetic: callers scale small quantities up first.
pub(crate) fn smooth(avg: u64, sample: u64) -> u64 {
    avg - avg / 8 + sample / 8
}

pub use g::GoroutineId;
pub use join::{JoinError, JoinHandle};
pub use park::block_on;
pub use runtime::{spawn, spawn_async};
pub use spawn::yield_now;
pub use sysmon::blocking;
