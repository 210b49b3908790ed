//! Adapters that let libraries from other async ecosystems run on gort.
//!
//! * `hyper` (feature `hyper`): hyper 1.x's runtime traits — `hyper::Executor` (spawns
//!   connection tasks with `spawn_async`), `hyper::Timer` (gort's timers), and hyper's
//!   `rt::Read`/`rt::Write` implemented for [`crate::net::TcpStream`] and
//!   [`crate::net::UnixStream`], plus `hyper::HyperIo` for any `futures::io` stream.
//! * `tokio` (feature `tokio-compat`): futures that need tokio's reactor (its sockets, timers, or
//!   a library built on them) run from goroutines; a tokio runtime starts on first use and the
//!   goroutine parks — not its thread — until the future is done.
//!
//! # Plugging in other libraries
//! Runtime-agnostic futures (the `futures` combinators, `async-channel`, `futures::io` users such
//! as `async-tungstenite` over [`crate::net::TcpStream`]) need no adapter: `.await` them in a task
//! from `spawn_async`, or call `block_on` in a goroutine. A library that asks for runtime traits
//! of its own (an executor, a timer, an I/O trait) gets them the way the hyper adapter here does:
//! spawn with [`crate::spawn_async`], sleep with a future built on [`crate::timer`] (a waker fired
//! at a deadline), and do I/O through the `futures::io` traits or `poll_*` methods of `net`.
//! A library that calls `tokio::spawn` or builds tokio sockets internally needs `tokio-compat`.

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio-compat")]
pub mod tokio;
