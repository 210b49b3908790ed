//! `PollIo`: a non-blocking mio socket plus its poller registration and deadlines — the one place
//! where "try the syscall, wait for readiness on `WouldBlock`" is written, for goroutines
//! ([`PollIo::op`]) and for async tasks ([`PollIo::poll_op`]). Every socket type in `net` is a thin
//! handle over an `Arc<PollIo<_>>`.
//!
//! Invariants: the socket is registered for its whole life and deregistered exactly once, in
//! `Drop`, before mio closes the descriptor; after `close` every operation fails with
//! "use of closed network connection" and nobody stays parked on the socket.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::netpoll::{closed_error, Dir, PollDesc, Registration};

pub(crate) struct PollIo<S: mio::event::Source> {
    io: S,
    reg: Registration,
    /// Read / write timeouts in ns (0: none).
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
}

impl<S: mio::event::Source> PollIo<S> {
    pub(crate) fn new(mut io: S) -> io::Result<PollIo<S>> {
        let reg = Registration::new(&mut io)?;
        Ok(PollIo {
            io,
            reg,
            read_timeout: AtomicU64::new(0),
            write_timeout: AtomicU64::new(0),
        })
    }

    pub(crate) fn io(&self) -> &S {
        &self.io
    }

    fn timeout_slot(&self, dir: Dir) -> &AtomicU64 {
        match dir {
            Dir::Read => &self.read_timeout,
            Dir::Write => &self.write_timeout,
        }
    }

    /// std's `set_read_timeout`/`set_write_timeout` contract: `None` clears, zero is an error.
    pub(crate) fn set_timeout(&self, dir: Dir, t: Option<Duration>) -> io::Result<()> {
        let ns = match t {
            None => 0,
            Some(d) if d.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "gort: a zero timeout is invalid (use None for no timeout)",
                ))
            }
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
        };
        self.timeout_slot(dir).store(ns, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn timeout(&self, dir: Dir) -> Option<Duration> {
        match self.timeout_slot(dir).load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// The deadline of an operation starting now.
    fn deadline(&self, dir: Dir) -> Option<Instant> {
        self.timeout(dir)
            .and_then(|t| Instant::now().checked_add(t))
    }

    /// Runs `f` until it does not return `WouldBlock`, parking the calling goroutine (or thread)
    /// until the socket is ready in between. Fails with `TimedOut` past the direction's timeout.
    pub(crate) fn op<R>(&self, dir: Dir, f: impl FnMut(&S) -> io::Result<R>) -> io::Result<R> {
        let deadline = self.deadline(dir);
        self.op_until(dir, deadline, f)
    }

    /// [`PollIo::op`] for a read or write of `len` bytes: a short transfer means the socket
    /// buffer was drained (or filled), so the ready bit is cleared at once and the next call waits
    /// for an edge instead of spending a syscall on `WouldBlock` (tokio does the same).
    pub(crate) fn op_bytes(
        &self,
        dir: Dir,
        len: usize,
        mut f: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let desc = self.reg.desc();
        self.op(dir, |s| {
            let seen = desc.state();
            let r = f(s);
            if let Ok(n) = r {
                if n > 0 && n < len {
                    desc.clear(seen, dir);
                }
            }
            r
        })
    }

    /// The async twin of [`PollIo::op_bytes`].
    pub(crate) fn poll_bytes(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
        len: usize,
        mut f: impl FnMut(&S) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let desc = self.reg.desc();
        self.poll_op(cx, dir, |s| {
            let seen = desc.state();
            let r = f(s);
            if let Ok(n) = r {
                if n > 0 && n < len {
                    desc.clear(seen, dir);
                }
            }
            r
        })
    }

    pub(crate) fn op_until<R>(
        &self,
        dir: Dir,
        deadline: Option<Instant>,
        mut f: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        crate::runtime::safe_point();
        let desc = self.reg.desc();
        loop {
            let st = desc.state();
            if PollDesc::is_closing(st) {
                return Err(closed_error());
            }
            if PollDesc::is_ready(st, dir) {
                match f(&self.io) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => desc.clear(st, dir),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => return r,
                }
                continue;
            }
            desc.wait(dir, deadline)?;
        }
    }

    /// The async twin of [`PollIo::op`]: on `WouldBlock`, stores the task's waker and returns
    /// `Pending`. (Timeouts apply to the blocking calls only; async code composes its own.)
    pub(crate) fn poll_op<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Dir,
        mut f: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let desc = self.reg.desc();
        let mut registered = false;
        loop {
            let st = desc.state();
            if PollDesc::is_closing(st) {
                return Poll::Ready(Err(closed_error()));
            }
            if PollDesc::is_ready(st, dir) {
                match f(&self.io) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => desc.clear(st, dir),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => return Poll::Ready(r),
                }
                continue;
            }
            if registered {
                crate::netpoll::ensure_poller();
                return Poll::Pending;
            }
            // Register, then look at the state once more (see `netpoll.rs`'s invariants).
            desc.register(dir, cx.waker());
            registered = true;
        }
    }

    /// Marks the socket closed for every handle and wakes everything parked on it.
    pub(crate) fn close(&self) {
        self.reg.desc().close();
    }

    pub(crate) fn is_closed(&self) -> bool {
        PollDesc::is_closing(self.reg.desc().state())
    }
}

impl<S: mio::event::Source> Drop for PollIo<S> {
    fn drop(&mut self) {
        self.reg.deregister(&mut self.io);
    }
}
