//! TCP: [`TcpListener`] and [`TcpStream`] on the network poller. Each is a handle to an
//! `Arc<PollIo<mio socket>>`; see the module docs of `net` for the shared semantics.

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::pollio::PollIo;
use super::{each_addr, resolve, stream_io_impls, timeout_methods};
use crate::netpoll::Dir;

/// A TCP server socket. `accept` parks the calling goroutine until a connection arrives.
#[derive(Clone)]
pub struct TcpListener {
    inner: Arc<PollIo<mio::net::TcpListener>>,
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.inner.io().as_raw_fd())
            .finish()
    }
}

impl TcpListener {
    /// Binds a listening socket (with `SO_REUSEADDR`, backlog 1024) to the first address of `addr`
    /// that works. Port 0 picks a free port; see [`TcpListener::local_addr`].
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let addrs = resolve(addr, "bind")?;
        each_addr(addrs, "bind", |a| {
            TcpListener::from_mio(mio::net::TcpListener::bind(a)?)
        })
    }

    /// Takes over a std listener (made non-blocking here).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::from_mio(mio::net::TcpListener::from_std(listener))
    }

    fn from_mio(l: mio::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: Arc::new(PollIo::new(l)?),
        })
    }

    /// Waits for a connection (parks the goroutine; bounded by the read timeout). Errors such as
    /// `EMFILE` (out of descriptors) are returned as they are; the listener stays usable.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, addr) = self.inner.op(Dir::Read, |l| l.accept())?;
        Ok((TcpStream::from_mio(s)?, addr))
    }

    /// `accept` for async tasks: returns `Pending` instead of parking.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self.inner.poll_op(cx, Dir::Read, |l| l.accept()) {
            Poll::Ready(Ok((s, addr))) => Poll::Ready(TcpStream::from_mio(s).map(|s| (s, addr))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// `accept` as a future, for async tasks.
    pub async fn accept_async(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// An endless iterator of `accept` results.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.io().set_ttl(ttl)
    }

    /// The pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.io().take_error()
    }

    fn close_socket(&self) {
        // Stops listening now, so no more connections queue up for a socket nobody accepts on.
        // SAFETY: `shutdown` takes a descriptor we own (kept open by `inner`) and no memory.
        unsafe { libc::shutdown(self.inner.io().as_raw_fd(), libc::SHUT_RDWR) };
    }

    timeout_methods!();
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection. `Read`/`Write` (also on `&TcpStream`) park the calling goroutine while the
/// socket is not ready; `futures::io::AsyncRead`/`AsyncWrite` serve async tasks.
#[derive(Clone)]
pub struct TcpStream {
    pub(crate) inner: Arc<PollIo<mio::net::TcpStream>>,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.inner.io().as_raw_fd())
            .finish()
    }
}

impl TcpStream {
    /// Connects to the first address of `addr` that accepts (parks the goroutine meanwhile).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let addrs = resolve(addr, "connect to")?;
        each_addr(addrs, "connect to", |a| TcpStream::connect_until(a, None))
    }

    /// Connects to `addr`, giving up with `ErrorKind::TimedOut` after `timeout`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "gort: connect_timeout: a zero timeout is invalid",
            ));
        }
        TcpStream::connect_until(*addr, Instant::now().checked_add(timeout))
            .map_err(|e| io::Error::new(e.kind(), format!("gort: connect to {addr}: {e}")))
    }

    /// `connect` for async tasks (an address, not a name: resolve names in a goroutine).
    pub async fn connect_async(addr: SocketAddr) -> io::Result<TcpStream> {
        let s = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?)?;
        poll_fn(|cx| s.inner.poll_op(cx, Dir::Write, connected))
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("gort: connect to {addr}: {e}")))?;
        Ok(s)
    }

    fn connect_until(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let s = TcpStream::from_mio(mio::net::TcpStream::connect(addr)?)?;
        s.inner.op_until(Dir::Write, deadline, connected)?;
        Ok(s)
    }

    /// Takes over a connected std stream (made non-blocking here).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_mio(mio::net::TcpStream::from_std(stream))
    }

    pub(crate) fn from_mio(s: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Arc::new(PollIo::new(s)?),
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    /// Shuts down the read half, the write half (the peer reads end-of-file), or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.io().shutdown(how)
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.io().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.io().nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.io().set_ttl(ttl)
    }

    /// Reads without consuming (parks like `read`).
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.op(Dir::Read, |s| s.peek(buf))
    }

    /// The pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.io().take_error()
    }

    fn close_socket(&self) {
        let _ = self.inner.io().shutdown(Shutdown::Both);
    }

    timeout_methods!();
}

/// The readiness check of a non-blocking connect: writable and no `SO_ERROR` means connected.
fn connected(s: &mio::net::TcpStream) -> io::Result<()> {
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    match s.peer_addr() {
        Ok(_) => Ok(()),
        // Still in progress: wait for the next writability edge.
        Err(e)
            if e.kind() == io::ErrorKind::NotConnected
                || e.raw_os_error() == Some(libc::EINPROGRESS) =>
        {
            Err(io::ErrorKind::WouldBlock.into())
        }
        Err(e) => Err(e),
    }
}

stream_io_impls!(TcpStream);

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<TcpStream>();
    send_sync::<TcpListener>();
};
