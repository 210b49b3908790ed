//! UDP: [`UdpSocket`] on the network poller. Receives park the calling goroutine until a datagram
//! arrives; sends park only while the socket buffer is full.

use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::pollio::PollIo;
use super::{each_addr, resolve, timeout_methods};
use crate::netpoll::Dir;

/// A UDP socket.
#[derive(Clone)]
pub struct UdpSocket {
    inner: Arc<PollIo<mio::net::UdpSocket>>,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("addr", &self.local_addr().ok())
            .field("fd", &self.inner.io().as_raw_fd())
            .finish()
    }
}

impl UdpSocket {
    /// Binds to the first address of `addr` that works (port 0: any free port).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let addrs = resolve(addr, "bind")?;
        each_addr(addrs, "bind", |a| {
            Ok(UdpSocket {
                inner: Arc::new(PollIo::new(mio::net::UdpSocket::bind(a)?)?),
            })
        })
    }

    /// Takes over a std socket (made non-blocking here).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            inner: Arc::new(PollIo::new(mio::net::UdpSocket::from_std(socket))?),
        })
    }

    /// Sets the default destination of `send` and the only source `recv` accepts.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let addrs = resolve(addr, "connect to")?;
        each_addr(addrs, "connect to", |a| self.inner.io().connect(a))
    }

    /// Sends to `target` (its first resolved address).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let to = resolve(target, "send_to")?[0];
        self.inner.op(Dir::Write, |s| s.send_to(buf, to))
    }

    /// Receives one datagram and its source (parks until one arrives).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.op(Dir::Read, |s| s.recv_from(buf))
    }

    /// Like `recv_from`, without removing the datagram.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.op(Dir::Read, |s| s.peek_from(buf))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.op(Dir::Write, |s| s.send(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.op(Dir::Read, |s| s.recv(buf))
    }

    /// `recv_from` for async tasks.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.inner.poll_op(cx, Dir::Read, |s| s.recv_from(buf))
    }

    /// `send_to` for async tasks (an address, not a name).
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.inner
            .poll_op(cx, Dir::Write, |s| s.send_to(buf, target))
    }

    /// `recv_from` as a future.
    pub async fn recv_from_async(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// `send_to` as a future.
    pub async fn send_to_async(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send_to(cx, buf, target)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io().peer_addr()
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.io().set_broadcast(on)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.io().set_ttl(ttl)
    }

    /// The pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.io().take_error()
    }

    fn close_socket(&self) {}

    timeout_methods!();
}
