//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and [`UnixDatagram`] on the network poller, with the
//! same parking `Read`/`Write`, async traits, timeouts and `close` as TCP.

use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::pollio::PollIo;
use super::{stream_io_impls, timeout_methods};
use crate::netpoll::Dir;

/// A Unix domain socket server.
#[derive(Clone)]
pub struct UnixListener {
    inner: Arc<PollIo<mio::net::UnixListener>>,
}

impl std::fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.inner.io().as_raw_fd())
            .finish()
    }
}

impl UnixListener {
    /// Binds to the filesystem path `path` (which must not exist yet).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let l = mio::net::UnixListener::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("gort: bind {}: {e}", path.display())))?;
        Ok(UnixListener {
            inner: Arc::new(PollIo::new(l)?),
        })
    }

    /// Takes over a std listener (made non-blocking here).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            inner: Arc::new(PollIo::new(mio::net::UnixListener::from_std(listener))?),
        })
    }

    /// Waits for a connection (parks the goroutine; bounded by the read timeout).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.inner.op(Dir::Read, |l| l.accept())?;
        Ok((UnixStream::from_mio(s)?, addr))
    }

    /// `accept` for async tasks.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        match self.inner.poll_op(cx, Dir::Read, |l| l.accept()) {
            Poll::Ready(Ok((s, addr))) => Poll::Ready(UnixStream::from_mio(s).map(|s| (s, addr))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// `accept` as a future, for async tasks.
    pub async fn accept_async(&self) -> io::Result<(UnixStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    fn close_socket(&self) {
        // SAFETY: `shutdown` takes a descriptor we own (kept open by `inner`) and no memory.
        unsafe { libc::shutdown(self.inner.io().as_raw_fd(), libc::SHUT_RDWR) };
    }

    timeout_methods!();
}

/// A Unix domain stream connection.
#[derive(Clone)]
pub struct UnixStream {
    pub(crate) inner: Arc<PollIo<mio::net::UnixStream>>,
}

impl std::fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.inner.io().as_raw_fd())
            .finish()
    }
}

impl UnixStream {
    /// Connects to the socket at `path` (parks while the server's backlog is full).
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let named = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("gort: connect to {}: {e}", path.display()),
            )
        };
        let s = UnixStream::from_mio(mio::net::UnixStream::connect(path).map_err(named)?)?;
        s.inner.op(Dir::Write, connected).map_err(named)?;
        Ok(s)
    }

    /// A connected pair of sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a)?, UnixStream::from_mio(b)?))
    }

    /// Takes over a connected std stream (made non-blocking here).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        UnixStream::from_mio(mio::net::UnixStream::from_std(stream))
    }

    fn from_mio(s: mio::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
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

    /// The pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.io().take_error()
    }

    fn close_socket(&self) {
        let _ = self.inner.io().shutdown(Shutdown::Both);
    }

    timeout_methods!();
}

fn connected(s: &mio::net::UnixStream) -> io::Result<()> {
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    match s.peer_addr() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}

stream_io_impls!(UnixStream);

/// A Unix domain datagram socket.
#[derive(Clone)]
pub struct UnixDatagram {
    inner: Arc<PollIo<mio::net::UnixDatagram>>,
}

impl std::fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("fd", &self.inner.io().as_raw_fd())
            .finish()
    }
}

impl UnixDatagram {
    /// Binds to the filesystem path `path` (which must not exist yet).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let s = mio::net::UnixDatagram::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("gort: bind {}: {e}", path.display())))?;
        UnixDatagram::from_mio(s)
    }

    /// A socket bound to no address (it can still send, and receive once connected).
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_mio(mio::net::UnixDatagram::unbound()?)
    }

    /// A connected pair of sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = mio::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_mio(a)?, UnixDatagram::from_mio(b)?))
    }

    fn from_mio(s: mio::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            inner: Arc::new(PollIo::new(s)?),
        })
    }

    /// Sets the default destination of `send` and the only source `recv` accepts.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        let path = path.as_ref();
        self.inner.io().connect(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("gort: connect to {}: {e}", path.display()),
            )
        })
    }

    /// Sends one datagram to the socket at `path` (parks while the peer's queue is full).
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.inner.op(Dir::Write, |s| s.send_to(buf, path))
    }

    /// Sends one datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.op(Dir::Write, |s| s.send(buf))
    }

    /// Receives one datagram and its source (parks until one arrives).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.op(Dir::Read, |s| s.recv_from(buf))
    }

    /// Receives one datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.op(Dir::Read, |s| s.recv(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().peer_addr()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.io().shutdown(how)
    }

    fn close_socket(&self) {
        let _ = self.inner.io().shutdown(Shutdown::Both);
    }

    timeout_methods!();
}
