//! # gort: Go's runtime model, as a Rust crate
//!
//! gort runs **stackful goroutines** on a Go-style **G/M/P scheduler**. A goroutine is an ordinary
//! closure that may block — join another goroutine, wait on a [`sync::WaitGroup`], call
//! [`block_on`] on a future — without `async`: only the goroutine waits, and its thread runs other
//! goroutines meanwhile. Millions of them fit in memory (each stack is committed page by page).
//!
//! ```
//! #[gort::main]
//! fn main() {
//!     let h = gort::go!(move || 6 * 7); // a stackful goroutine
//!     assert_eq!(h.join().unwrap(), 42);
//! }
//! ```
//!
//! ## Spawning
//! * [`go!`] in three forms: `go!(move || expr)`, `go!({ stmts })`, and `go!(f(a, b))` /
//!   `go!(obj.method(a))`, where — as in Go — the function value, the receiver and the arguments are
//!   evaluated in the *calling* goroutine before `go!` returns, and only the call runs in the new one.
//! * [`spawn`] (the function behind `go!`), [`spawn_async`] for futures on the same processors.
//! * [`JoinHandle`]: `join()` parks the caller until the goroutine ends and returns its value or its
//!   panic ([`JoinError`]); it is also a `Future`. Dropping it detaches the goroutine.
//! * A panic in a goroutine is caught, reported once as `goroutine N panicked at ...`, and handed to
//!   `join`; it never takes the runtime down.
//!
//! ## The runtime
//! `#[gort::main]` runs `main` as the main goroutine; when it returns, the process exits without
//! waiting for other goroutines, as in Go. `#[gort::test]` does the same for a test. Without them, the
//! first use of gort from any thread starts the global runtime. [`runtime`] has Go's knobs and
//! gauges: [`runtime::num_goroutine`], [`runtime::max_procs`], [`runtime::set_max_procs`] (env
//! `GORT_MAXPROCS`), [`runtime::current_id`], [`runtime::stats`], and [`runtime::Builder`] for an
//! explicit runtime. Goroutine stacks are 256 KiB of address space by default (env `GORT_STACK_SIZE`);
//! a stack overflow prints `goroutine N stack overflow` and aborts, never corrupting memory.
//!
//! ## The main goroutine
//! `#[gort::main]` works on `fn main()` and `async fn main()`, with or without a return type; when main
//! returns, the process exits, even if other goroutines are still blocked:
//!
//! ```
//! #[gort::main]
//! async fn main() {
//!     let forever = gort::sync::WaitGroup::new();
//!     forever.add(1);
//!     gort::go!(move || forever.wait()); // never finishes; main does not wait for it
//!     let h = gort::spawn_async(async { 1 + 1 });
//!     assert_eq!(h.await.unwrap(), 2);
//! }
//! ```
//!
//! A panic in the main goroutine is reported like any goroutine's and the process exits with status
//! 101, as a panicking Rust `main` does:
//!
//! ```should_panic
//! #[gort::main]
//! fn main() {
//!     panic!("main goroutine gives up");
//! }
//! ```
//!
//! `go!(f(a, b))` evaluates `f`, `a` and `b` before it returns, in the caller:
//!
//! ```
//! # #[gort::main]
//! # fn main() {
//! fn area(w: u32, h: u32) -> u32 { w * h }
//! let mut w = 6;
//! let h = gort::go!(area(w, 7)); // `w` is read now...
//! w = 100; // ...so this does not affect the goroutine
//! assert_eq!(h.join().unwrap(), 42);
//! # let _ = w;
//! # }
//! ```
//!
//! ## Channels and select
//! [`chan`] has Go's channels: [`chan::bounded`]`(cap)` (`0` is unbuffered) and [`chan::unbounded`],
//! multi-producer multi-consumer, usable from goroutines, threads and async code. [`select!`] waits
//! on several of them and runs exactly one ready case, chosen at random; [`select_async!`] is its
//! async twin.
//!
//! ```
//! use std::time::Duration;
//!
//! #[gort::main]
//! fn main() {
//!     let (jobs, inbox) = gort::chan::bounded::<u32>(0);
//!     let (results, outbox) = gort::chan::bounded::<u32>(8);
//!     gort::go!(move || {
//!         for n in inbox {
//!             results.send(n * n).unwrap();
//!         } // the last sender goes: `outbox` closes
//!     });
//!     for n in 1..=3 {
//!         jobs.send(n).unwrap(); // unbuffered: waits for the worker
//!     }
//!     drop(jobs);
//!     let mut sum = 0;
//!     loop {
//!         gort::select! {
//!             recv(outbox) -> r => match r {
//!                 Ok(sq) => sum += sq,
//!                 Err(_) => break, // closed and drained
//!             },
//!             default(Duration::from_secs(5)) => panic!("worker stalled"),
//!         }
//!     }
//!     assert_eq!(sum, 14);
//! }
//! ```
//!
//! ## Garbage-collected heap
//! [`gc::Gc<T>`](gc::Gc) is Go's pointer: a handle to a value in a traced heap, freed by a
//! concurrent mark-sweep collector once unreachable, cycles included. Derive [`Trace`] for the
//! types you store (`#[gc(skip)]` for fields without handles) and use [`gc::GcCell`] for the parts
//! that change. Reads, clones, drops and allocation never wait for the collector; `gc::collect()`
//! runs a full cycle, `gc::stats()` reports it, `gc::set_percent` (env `GORT_GC`) is Go's `GOGC`.
//!
//! ```
//! #[derive(gort::Trace)]
//! struct Node { next: gort::gc::GcCell<Option<gort::gc::Gc<Node>>> }
//!
//! #[gort::main]
//! fn main() {
//!     let a = gort::gc::Gc::new(Node { next: Default::default() });
//!     let b = gort::gc::Gc::new(Node { next: gort::gc::GcCell::new(Some(a.clone())) });
//!     *a.next.borrow_mut() = Some(b); // a cycle
//!     drop(a);
//!     gort::gc::collect(); // frees both
//! }
//! ```
//!
//! ## Networking
//! [`net`] has `TcpListener`, `TcpStream`, `UdpSocket` and Unix domain sockets with std's
//! constructors; their `std::io::Read`/`Write` park only the calling goroutine, on one `mio` poller
//! that idle scheduler threads block in. Async tasks use their `futures::io::AsyncRead`/`AsyncWrite`
//! impls. [`compat`] runs hyper 1.x on gort (feature `hyper`) and tokio-reactor-bound futures from
//! goroutines (feature `tokio-compat`).
//!
//! ## Thread-locals
//! A goroutine may resume on another OS thread after any blocking call. Do not keep a reference into a
//! `thread_local!` across a blocking call, and do not hold thread-affine resources (locks that must be
//! released on the thread that took them, `!Send` handles from C libraries) across one. Read the
//! thread-local again after the call instead. For state that belongs to a goroutine (a request id,
//! a tracing span), declare it with [`goroutine_local!`]: each goroutine gets its own value, which
//! follows it across threads and is dropped when it finishes. Code that really needs one thread (a
//! C library with thread-local state, per-thread OS settings) takes [`runtime::lock_os_thread`]:
//! until its guard drops, the goroutine always resumes on the same thread, which runs nothing else.

#![warn(missing_docs)]

// Lets the macros' `::gort::...` paths resolve inside this crate's own docs and tests.
extern crate self as gort;

pub use gort_goroutine::local::GoroutineLocal;
pub use gort_goroutine::{
    block_on, blocking, spawn, spawn_async, yield_now, GoroutineId, JoinError, JoinHandle,
};
pub use gort_goroutine::{compat, goroutine_local, net, runtime, sync};

/// Go's channels: `bounded`, `unbounded`, `Sender`, `Receiver` and their errors (the `gort-chan`
/// crate). See [`select!`] and [`select_async!`] for waiting on several at once.
pub use gort_chan as chan;
pub use gort_chan::{select, select_async};

/// Time, Go's `time` package for goroutines: [`time::sleep`] parks only the calling goroutine, on
/// the runtime's per-P timer heaps (no timer thread), and a 50 µs sleep really lasts about that
/// long; [`time::after`], [`time::tick`], [`time::Timer`] and [`time::Ticker`] deliver the time on
/// channels, for `select!` timeouts and periodic work.
pub mod time {
    pub use gort_chan::time::{after, tick, Ticker, Timer};
    pub use gort_goroutine::time::{sleep, sleep_until};
}
pub use gort_macros::{go, main, test};

/// The traced heap (the `gort-gc` crate): [`gc::Gc`], [`gc::GcCell`], [`gc::Weak`], [`gc::collect`],
/// [`gc::stats`], [`gc::set_percent`].
pub use gort_gc as gc;
/// `Trace`, the trait of values that can live in the traced heap, and its derive
/// (`#[derive(gort::Trace)]`).
pub use gort_gc::Trace;
pub use gort_macros::Trace;

/// Items the macros expand to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use gort_goroutine::runtime::{run_main, run_test};
}
