//! Futures tied to tokio's reactor, run from goroutines (feature `tokio-compat`).
//!
//! Libraries built on tokio (database drivers, HTTP clients, anything holding a `tokio::net`
//! socket or a `tokio::time::Sleep`) need a tokio runtime's I/O and timer drivers to make progress,
//! and a tokio context when they create resources. This module starts one multi-threaded tokio
//! runtime on first use (2 worker threads, named `gort-tokio`; it drives those reactors and never
//! runs goroutines) and offers:
//!
//! * [`block_on`]: runs a future from a goroutine, polling it *on the goroutine* inside the tokio
//!   runtime's context; while it is pending only the goroutine parks (not its thread), and tokio's
//!   drivers wake it through the goroutine's waker. The future need not be `Send`.
//! * [`Compat`]: the same context-entering wrapper, to `.await` in gort async tasks.
//! * [`spawn`]: runs a future *on* the tokio runtime (for code that calls `tokio::spawn`
//!   internally and expects to be on a tokio worker); its `JoinHandle` is a future gort can await.
//! * [`handle`]: the runtime's handle.
//!
//! The context is entered for the duration of each `poll` only, never across a park: a goroutine
//! may resume on another thread, and tokio's context is thread-local.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The tokio runtime gort drives tokio-bound futures with, started on first use.
///
/// # Panics
/// If the runtime cannot be built (no threads can be started): `gort: tokio-compat: ...`.
pub fn handle() -> &'static tokio::runtime::Handle {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("gort-tokio")
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("gort: tokio-compat: cannot start a tokio runtime: {e}"))
        })
        .handle()
}

/// Polls the inner future inside the tokio runtime's context (see the module docs).
#[derive(Debug)]
pub struct Compat<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Compat<F> {
    /// Wraps `fut`.
    pub fn new(fut: F) -> Compat<F> {
        Compat {
            inner: Box::pin(fut),
        }
    }
}

impl<F: Future> Future for Compat<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _ctx = handle().enter();
        self.inner.as_mut().poll(cx)
    }
}

/// Runs `fut` to completion from a goroutine, with tokio's reactor behind it: the goroutine parks
/// while the future is pending. The closure form lets the future be *created* inside the context
/// too (tokio constructors such as `TcpListener::bind` need it).
///
/// ```
/// let n = gort_goroutine::spawn(|| {
///     gort_goroutine::compat::tokio::block_on(async {
///         tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///         7
///     })
/// });
/// assert_eq!(n.join().unwrap(), 7);
/// ```
pub fn block_on<F: Future>(fut: F) -> F::Output {
    crate::block_on(Compat::new(fut))
}

/// Runs `fut` on the tokio runtime itself; await or `block_on` the handle for its output.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(fut)
}
