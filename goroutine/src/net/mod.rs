//! Networking for goroutines and async tasks: TCP, UDP and Unix domain sockets on the runtime's
//! network poller (`netpoll.rs`).
//!
//! The types mirror `std::net` / `std::os::unix::net` — `bind`, `connect`, `accept`, `local_addr`,
//! `peer_addr`, `shutdown`, `set_nodelay`, `try_clone`, `set_read_timeout`, ... — and their
//! `std::io::Read`/`Write` implementations *park the calling goroutine* instead of blocking its
//! thread: the socket is non-blocking underneath, and an operation that would block waits for the
//! poller to report readiness while the thread runs other goroutines. On a plain thread the same
//! calls block the thread. In async tasks (`spawn_async`) use the `futures::io::AsyncRead` /
//! `AsyncWrite` implementations and the `*_async` methods instead, which return `Pending` rather
//! than parking.
//!
//! ```
//! use std::io::{Read, Write};
//! let listener = gort_goroutine::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = gort_goroutine::spawn(move || {
//!     let (mut conn, _) = listener.accept().unwrap();
//!     let mut buf = [0; 5];
//!     conn.read_exact(&mut buf).unwrap();
//!     conn.write_all(&buf).unwrap(); // echo
//! });
//! let client = gort_goroutine::spawn(move || {
//!     let mut conn = gort_goroutine::net::TcpStream::connect(addr).unwrap();
//!     conn.write_all(b"hello").unwrap();
//!     let mut buf = [0; 5];
//!     conn.read_exact(&mut buf).unwrap();
//!     buf
//! });
//! assert_eq!(&client.join().unwrap(), b"hello");
//! server.join().unwrap();
//! ```
//!
//! # Semantics worth knowing
//! * **Timeouts** (`set_read_timeout`, `set_write_timeout`) bound each blocking call; past it the
//!   call fails with `ErrorKind::TimedOut` and the socket stays usable. They apply to the parking
//!   calls; async code composes its own timeouts.
//! * **Handles and closing.** `try_clone` returns another handle to the *same* socket (shared
//!   descriptor, registration and timeouts), so several goroutines can read and write one
//!   connection. [`TcpStream::close`] (and the other types' `close`) closes the socket for every
//!   handle at once, as Go's `Conn.Close`: calls blocked on it in other goroutines return
//!   `ErrorKind::NotConnected` ("gort: use of closed network connection") instead of hanging, and
//!   so do later calls. The descriptor is released when the last handle is dropped.
//! * **Name resolution** (`ToSocketAddrs` on a host name) can block in `getaddrinfo`; it runs inside
//!   [`crate::blocking`], so the processor is handed to another thread meanwhile.
//! * **Errors** keep their `ErrorKind` and name the operation and address (`gort: connect to
//!   127.0.0.1:1: Connection refused ...`). Accept errors such as `EMFILE` are returned as they are:
//!   the listener stays usable, and a server loop should back off and retry (see the examples).

mod pollio;
mod tcp;
mod udp;
mod unix;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// The network poller's state in one line (registered sockets, whether a thread blocks in it, when
/// it was last polled): for hang reports next to `runtime::dump()`.
#[doc(hidden)]
pub fn poller_state() -> String {
    crate::netpoll::debug_state()
}

/// Resolves `addr` as a blocking section (`getaddrinfo` may block on DNS).
fn resolve<A: ToSocketAddrs>(addr: A, what: &str) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = crate::blocking(|| addr.to_socket_addrs())
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("gort: {what}: cannot resolve the address: {e}"),
            )
        })?
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gort: {what}: the address resolved to nothing"),
        ));
    }
    Ok(addrs)
}

/// Tries `f` on each address; the last error (with the address in it) if none works.
fn each_addr<T>(
    addrs: Vec<SocketAddr>,
    what: &str,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addrs {
        match f(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(io::Error::new(e.kind(), format!("gort: {what} {a}: {e}"))),
        }
    }
    Err(last.expect("resolve never returns an empty list"))
}

/// Implements `Read`, `Write`, `AsyncRead`, `AsyncWrite` for a stream type and a shared reference
/// to it, in terms of its `inner: Arc<PollIo<mio type>>`.
macro_rules! stream_io_impls {
    ($ty:ty) => {
        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let len = buf.len();
                self.inner
                    .op_bytes(crate::netpoll::Dir::Read, len, |mut s| {
                        std::io::Read::read(&mut s, buf)
                    })
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.inner.op(crate::netpoll::Dir::Read, |mut s| {
                    std::io::Read::read_vectored(&mut s, bufs)
                })
            }
        }
        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.inner
                    .op_bytes(crate::netpoll::Dir::Write, buf.len(), |mut s| {
                        std::io::Write::write(&mut s, buf)
                    })
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.inner.op(crate::netpoll::Dir::Write, |mut s| {
                    std::io::Write::write_vectored(&mut s, bufs)
                })
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let this: &$ty = self.get_mut();
                std::pin::Pin::new(&mut &*this).poll_read(cx, buf)
            }
        }
        impl futures_io::AsyncRead for &$ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let len = buf.len();
                self.inner
                    .poll_bytes(cx, crate::netpoll::Dir::Read, len, |mut s| {
                        std::io::Read::read(&mut s, buf)
                    })
            }
        }
        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let this: &$ty = self.get_mut();
                std::pin::Pin::new(&mut &*this).poll_write(cx, buf)
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }
        impl futures_io::AsyncWrite for &$ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.inner
                    .poll_bytes(cx, crate::netpoll::Dir::Write, buf.len(), |mut s| {
                        std::io::Write::write(&mut s, buf)
                    })
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.inner.io().as_raw_fd()
            }
        }
    };
}
use stream_io_impls;

/// Timeout accessors shared by every socket type (std's names).
macro_rules! timeout_methods {
    () => {
        /// Bounds each blocking read (and accept / receive): past it the call fails with
        /// `ErrorKind::TimedOut`. `None` removes the bound; a zero duration is an error, as in std.
        /// Shared by every handle of the socket.
        pub fn set_read_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.inner.set_timeout(crate::netpoll::Dir::Read, dur)
        }
        /// Bounds each blocking write (and send): past it the call fails with
        /// `ErrorKind::TimedOut`. `None` removes the bound; a zero duration is an error.
        pub fn set_write_timeout(&self, dur: Option<std::time::Duration>) -> std::io::Result<()> {
            self.inner.set_timeout(crate::netpoll::Dir::Write, dur)
        }
        /// The read timeout, if any.
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.inner.timeout(crate::netpoll::Dir::Read))
        }
        /// The write timeout, if any.
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.inner.timeout(crate::netpoll::Dir::Write))
        }
        /// Closes the socket for every handle (Go's `Close`): calls blocked on it in other
        /// goroutines return `ErrorKind::NotConnected` ("gort: use of closed network connection"),
        /// and so does every later call. The descriptor is released when the last handle drops.
        pub fn close(&self) {
            // Mark it closed first: a reader woken by the shutdown's end-of-file must already
            // see the socket closed.
            self.inner.close();
            self.close_socket();
        }
        /// Whether [`close`](Self::close) was called on any handle of this socket.
        pub fn is_closed(&self) -> bool {
            self.inner.is_closed()
        }
        /// Another handle to the same socket: the descriptor, poller registration and timeouts
        /// are shared (unlike std's, no new descriptor is made). Never fails; the `Result` keeps
        /// std's signature.
        pub fn try_clone(&self) -> std::io::Result<Self> {
            Ok(Self {
                inner: self.inner.clone(),
            })
        }
    };
}
use timeout_methods;
