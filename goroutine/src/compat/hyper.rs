//! hyper 1.x on gort: the runtime traits hyper asks its embedder for (hyper-util's `rt::tokio`
//! plays the same part for tokio).
//!
//! * [`Executor`]: hyper's background work (HTTP/2 streams, client connection tasks) runs as gort
//!   async tasks (`spawn_async`), on the same processors as the goroutines.
//! * [`Timer`]: hyper's timeouts (`header_read_timeout`, keep-alive) are gort timers; a [`Sleep`]
//!   is a deadline plus a runtime timer that wakes the task.
//! * I/O: hyper's `rt::Read`/`rt::Write` are implemented directly for [`crate::net::TcpStream`] and
//!   [`crate::net::UnixStream`] (reads go straight into hyper's uninitialized buffer), and
//!   [`HyperIo`] wraps any `futures::io` stream (it zero-fills the read buffer first).
//!
//! A server: accept in a goroutine, serve each connection in an async task:
//!
//! ```no_run
//! use gort_goroutine::compat::hyper::Timer;
//! use hyper::{body::Incoming, Request, Response};
//!
//! async fn hello(_: Request<Incoming>) -> Result<Response<String>, std::convert::Infallible> {
//!     Ok(Response::new("hello\n".to_string()))
//! }
//!
//! let listener = gort_goroutine::net::TcpListener::bind("127.0.0.1:8080").unwrap();
//! loop {
//!     let (stream, _) = listener.accept().unwrap();
//!     gort_goroutine::spawn_async(async move {
//!         let _ = hyper::server::conn::http1::Builder::new()
//!             .timer(Timer)
//!             .serve_connection(stream, hyper::service::service_fn(hello))
//!             .await;
//!     });
//! }
//! ```
//!
//! [`Executor`] is what hyper's HTTP/2 builders and its client connection pools take.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{ReadBufCursor, Sleep as HyperSleep};

use crate::net::{TcpStream, UnixStream};
use crate::netpoll::Dir;
use crate::timer::TimerHandle;

/// hyper's executor on gort: every future becomes a gort async task (detached).
#[derive(Clone, Copy, Debug, Default)]
pub struct Executor;

impl<F> hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        drop(crate::spawn_async(fut));
    }
}

/// hyper's timer on gort's runtime timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer;

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn HyperSleep>> {
        let deadline = Instant::now()
            .checked_add(duration)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 30));
        Box::pin(Sleep::until(deadline))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn HyperSleep>> {
        Box::pin(Sleep::until(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn HyperSleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Sleep>() {
            Some(s) => s.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A future that completes at a deadline, on a gort runtime timer. Also usable on its own in async
/// tasks (`Sleep::until(t).await`).
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
    timer: Option<TimerHandle>,
}

impl Sleep {
    /// A sleep until `deadline`.
    pub fn until(deadline: Instant) -> Sleep {
        Sleep {
            deadline,
            timer: None,
        }
    }

    /// Moves the deadline.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(t) = self.timer.take() {
            t.cancel();
        }
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            if let Some(t) = this.timer.take() {
                t.cancel();
            }
            return Poll::Ready(());
        }
        // One timer per poll that needs one: a fired timer or a new waker gets a fresh one.
        if let Some(t) = this.timer.take() {
            t.cancel();
        }
        this.timer = Some(crate::timer::add(this.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            t.cancel();
        }
    }
}

impl HyperSleep for Sleep {}

/// Reads from the non-blocking descriptor `fd` into hyper's cursor.
fn read_into(fd: std::os::fd::RawFd, buf: &mut ReadBufCursor<'_>) -> io::Result<usize> {
    // SAFETY: we only write into the slice (through `read(2)`), never read it, and tell hyper how
    // many bytes were initialized only after the kernel wrote them.
    let dst: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
    // SAFETY: `dst` is valid for writes of `dst.len()` bytes; `read` writes at most that many.
    let n = unsafe { libc::read(fd, dst.as_mut_ptr().cast(), dst.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialized the first `n` bytes of the cursor.
    unsafe { buf.advance(n) };
    Ok(n)
}

macro_rules! hyper_io {
    ($ty:ty) => {
        impl hyper::rt::Read for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                mut buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                let fd = self.as_raw_fd();
                let len = buf.remaining();
                self.inner
                    .poll_bytes(cx, Dir::Read, len, |_| read_into(fd, &mut buf))
                    .map_ok(|_| ())
            }
        }

        impl hyper::rt::Write for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                futures_io::AsyncWrite::poll_write(self, cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_op(cx, Dir::Write, |mut s| {
                    std::io::Write::write_vectored(&mut s, bufs)
                })
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }
    };
}

hyper_io!(TcpStream);
hyper_io!(UnixStream);

/// Adapts any `futures::io` stream (a TLS stream, a wrapper of your own) to hyper's I/O traits.
/// Reads zero-fill hyper's buffer before handing it to `poll_read`; `gort::net`'s streams need no
/// wrapper.
#[derive(Debug)]
pub struct HyperIo<T>(pub T);

impl<T: futures_io::AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut tmp = hyper::rt::ReadBuf::uninit(
            // SAFETY: only written through `initialize_unfilled` below before any read.
            unsafe { buf.as_mut() },
        );
        let mut cursor = tmp.unfilled();
        let dst = cursor.initialize_unfilled();
        match Pin::new(&mut this.0).poll_read(cx, dst) {
            Poll::Ready(Ok(n)) => {
                // SAFETY: `initialize_unfilled` zeroed the whole cursor and the reader filled the
                // first `n` bytes, so they are initialized.
                unsafe { buf.advance(n) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: futures_io::AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_close(cx)
    }
}
