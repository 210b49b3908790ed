//! The network poller: one `mio::Poll` for the whole process (Go's `netpoll.go` and
//! `netpoll_epoll.go`).
//!
//! This module owns the epoll instance, the table of registered sockets, and the readiness state of
//! each socket (a [`PollDesc`], Go's `pollDesc`). Sockets in [`crate::net`] are non-blocking; an
//! operation that gets `WouldBlock` stores a [`Waker`] in its socket's `PollDesc` and parks through
//! the parking core (`park.rs`). Whoever polls turns readiness events into `Waker::wake` calls, so a
//! parked goroutine is readied onto a run queue, a plain thread is unparked, an async task is
//! rescheduled — the single wake path of the crate.
//!
//! There is one poller per process, shared by every runtime (`Builder` runtimes and the global
//! one): a readiness event wakes a `Waker`, and a goroutine's waker readies it on its own runtime
//! whichever thread polled.
//!
//! # Who polls
//! * **An idle M** (`Sched::stopm`): the last M to go idle while sockets are registered blocks in
//!   `epoll_wait` instead of its futex. While another M still holds a P (and so polls whenever its
//!   queue runs dry), an idle M sleeps on its futex instead: a blocked poller would be woken by
//!   the kernel for every event the busy M is about to find itself, a context switch per event
//!   (in a one-connection echo, per message). If nobody polls for a millisecond while a P is idle
//!   (the busy M runs a long goroutine, or the OS has descheduled it), sysmon wakes an M, which
//!   polls. The poller M blocks with the earliest timer as its timeout (it is
//!   then also the runtime's timer sleeper); a timerfd registered with the poller (`PollTimer`)
//!   ends that poll on time to the microsecond (epoll's own timeout has millisecond granularity),
//!   so the timer sleeper stays in the poller up to its deadline instead of leaving it for a
//!   futex wait in the last 2 ms before each timer. An idle M that finds another M blocked there sleeps
//!   on its futex; one that finds a non-blocking poller there waits a few microseconds for it and,
//!   failing that, sleeps 1 ms and tries again, so the blocking poller is never lost to a race.
//!   `startm` hands Ps to other idle Ms (or a new one) before the poller's; handing it a P, or
//!   adding an earlier timer, breaks the poll through a `mio::Waker` (Go's `netpollBreak`). When the
//!   poll returns with events, the M takes an idle P first, so the goroutines it readies land at
//!   the back of that P's run queue and run on it; whether another M is woken to share them is
//!   decided once for the batch (see `sched.rs`, "Network poll batches").
//! * **A P that runs out of work** (`find_runnable`) polls without blocking before it steals, and
//!   a busy P polls every 61 schedule ticks: the readied goroutines go to its own run queue (Go's
//!   `netpoll(0)` in `findRunnable`; the periodic poll is tokio's `event_interval`) and start a new
//!   time slice.
//! * **sysmon** wakes an M to poll when nobody has for 1 ms while a P is idle (see above), and
//!   polls without blocking itself when nobody has for 10 ms with every P busy, so readiness is
//!   noticed even while every P runs long goroutines; what it readies goes to the global queue.
//!
//! Only one thread polls at a time (`Netpoll::poll` is a mutex; the non-blocking pollers only
//! `try_lock` it, so nobody ever waits for the blocked poller). A goroutine (or a task on an M)
//! parks without waking anyone: its M comes round to the poller itself, polling when its queue
//! runs dry and blocking in the poller when it goes idle with nobody else there. A waiter off the
//! runtime's Ms (a plain thread) that is about to park while nobody blocks in the poller calls
//! `wakep` on its runtime, so an idle M comes round to block in it: no waiter is left without a
//! poller.
//!
//! # Invariants
//! * Readiness is edge-triggered: a [`PollDesc`] keeps a "ready" bit per direction, set by the
//!   poller and cleared by the operation that got `WouldBlock` (or a short read or write) — but
//!   only if no event arrived since that operation read the state (the state word carries an event
//!   counter), so an edge is never lost between the syscall and the clear. Hang-ups and errors set
//!   sticky "closed" bits that nothing clears, so no clear can hide an end-of-file.
//! * A waiter pushes its waker *before* re-checking the ready bit; the poller sets the bit *before*
//!   taking the wakers. So either the waiter sees the bit, or the poller sees the waker. A waiter
//!   pushes its waker again before every re-check: a late poller may take it for an edge whose
//!   readiness the waiter already used up, which wakes it without leaving it ready.
//! * Tokens carry a generation: an event for a socket deregistered (and its slot reused) in the
//!   meantime is dropped, never delivered to the wrong socket.
//! * Wakers are woken after every lock of this module is released.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Token};

use crate::futex::Note;
use crate::park::{current_waker, park_until_with, park_with, WaitReason};
use crate::timer;

/// The token of the poller's own `mio::Waker`.
const WAKE_TOKEN: Token = Token(usize::MAX);
/// The token of the poller's timerfd (see [`PollTimer`]). Socket tokens stay below it: their
/// generation is at most 31 bits.
const TIMER_TOKEN: Token = Token(usize::MAX - 1);
/// sysmon polls when nobody has for this long (Go's 10 ms in `sysmon`).
const SYSMON_POLL_NS: u64 = 10_000_000;
/// Events taken from the kernel per poll.
const EVENTS: usize = 1024;

/// Ready to read (edge-triggered: cleared when a read finds the buffer empty).
const READ: u64 = 1;
/// Ready to write (cleared when a write finds the buffer full).
const WRITE: u64 = 2;
/// `close` was called: every operation fails with "use of closed network connection".
const CLOSING: u64 = 4;
/// The peer closed its write half, or the socket is in error: sticky, never cleared, so a read
/// that cleared `READ` after a short read still goes on to see the end-of-file or the error.
const READ_CLOSED: u64 = 8;
/// The socket can no longer be written (peer gone, or error): sticky like `READ_CLOSED`.
const WRITE_CLOSED: u64 = 16;
/// The event counter lives above the flag bits.
const TICK_ONE: u64 = 1 << 8;
const FLAGS: u64 = TICK_ONE - 1;

/// Which half of a socket an operation waits on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    Read,
    Write,
}

impl Dir {
    fn bit(self) -> u64 {
        match self {
            Dir::Read => READ,
            Dir::Write => WRITE,
        }
    }

    /// The bits that let an operation in this direction proceed.
    fn ready_bits(self) -> u64 {
        match self {
            Dir::Read => READ | READ_CLOSED,
            Dir::Write => WRITE | WRITE_CLOSED,
        }
    }
}

/// One socket's readiness and waiters (Go's `pollDesc`).
pub(crate) struct PollDesc {
    /// Flag bits (`READ`, `WRITE`, `CLOSING`) plus an event counter above them.
    state: AtomicU64,
    readers: Mutex<Vec<Waker>>,
    writers: Mutex<Vec<Waker>>,
}

impl PollDesc {
    fn new() -> PollDesc {
        PollDesc {
            // Optimistic: the first operation tries the syscall before waiting for an event.
            state: AtomicU64::new(READ | WRITE),
            readers: Mutex::new(Vec::new()),
            writers: Mutex::new(Vec::new()),
        }
    }

    fn waiters(&self, dir: Dir) -> &Mutex<Vec<Waker>> {
        match dir {
            Dir::Read => &self.readers,
            Dir::Write => &self.writers,
        }
    }

    /// The state word, for [`PollDesc::clear`] after a `WouldBlock`.
    pub(crate) fn state(&self) -> u64 {
        self.state.load(Ordering::Acquire)
    }

    pub(crate) fn is_ready(state: u64, dir: Dir) -> bool {
        state & dir.ready_bits() != 0
    }

    pub(crate) fn is_closing(state: u64) -> bool {
        state & CLOSING != 0
    }

    /// The operation that read `seen` got `WouldBlock`: clear `dir`'s ready bit unless an event came
    /// in since (then the caller simply retries).
    pub(crate) fn clear(&self, seen: u64, dir: Dir) {
        let _ = self.state.compare_exchange(
            seen,
            seen & !dir.bit(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// Sets `bits` and bumps the event counter; collects the wakers of the directions that became
    /// ready into `out`.
    fn set(&self, bits: u64, out: &mut Vec<Waker>) {
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let next = (cur & !FLAGS).wrapping_add(TICK_ONE) | (cur & FLAGS) | bits;
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(s) => cur = s,
            }
        }
        if bits & (READ | READ_CLOSED | CLOSING) != 0 {
            out.append(&mut crate::lock(&self.readers));
        }
        if bits & (WRITE | WRITE_CLOSED | CLOSING) != 0 {
            out.append(&mut crate::lock(&self.writers));
        }
    }

    /// Marks the socket closed and wakes everybody waiting on it.
    pub(crate) fn close(&self) {
        let mut wakers = Vec::new();
        self.set(CLOSING, &mut wakers);
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Stores `waker` among `dir`'s waiters (once: a waker that would wake the same task is
    /// replaced). For async `poll_*` functions.
    pub(crate) fn register(&self, dir: Dir, waker: &Waker) {
        let mut w = crate::lock(self.waiters(dir));
        match w.iter_mut().find(|o| o.will_wake(waker)) {
            Some(slot) => slot.clone_from(waker),
            None => w.push(waker.clone()),
        }
    }

    /// Parks the calling goroutine (or thread) until `dir` is ready, the socket is closed, or
    /// `deadline` passes (then `Err(TimedOut)`).
    pub(crate) fn wait(&self, dir: Dir, deadline: Option<Instant>) -> io::Result<()> {
        let waker = current_waker();
        let result = loop {
            // (Re-)register on every turn: a wake may have taken our waker out of the list for
            // an event whose readiness is already used up (a stale edge for data we had read),
            // and parking again without a waker in the list would be a lost wake-up.
            self.register(dir, &waker);
            let st = self.state();
            if st & (dir.ready_bits() | CLOSING) != 0 {
                break Ok(());
            }
            ensure_poller();
            match deadline {
                None => park_with(WaitReason::IoWait),
                Some(d) => {
                    if Instant::now() >= d {
                        break Err(timed_out(dir));
                    }
                    park_until_with(d, WaitReason::IoWait);
                }
            }
        };
        crate::lock(self.waiters(dir)).retain(|w| !w.will_wake(&waker));
        result
    }
}

/// The error an operation past its deadline returns.
pub(crate) fn timed_out(dir: Dir) -> io::Error {
    let what = match dir {
        Dir::Read => "gort: i/o timeout (read deadline exceeded)",
        Dir::Write => "gort: i/o timeout (write deadline exceeded)",
    };
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// The error every operation on a closed socket returns (Go's `ErrNetClosing`).
pub(crate) fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "gort: use of closed network connection",
    )
}

/// Registered sockets by token index; a token is `generation << 32 | index`.
struct Slab {
    slots: Vec<(u32, Option<Arc<PollDesc>>)>,
    free: Vec<u32>,
}

struct PollState {
    poll: mio::Poll,
    events: Events,
}

/// The process's poller.
pub(crate) struct Netpoll {
    poll: Mutex<PollState>,
    registry: mio::Registry,
    waker: mio::Waker,
    slab: Mutex<Slab>,
    /// Live registrations. While there are any, idle Ms poll and the deadlock check stays quiet.
    registered: AtomicUsize,
    /// Set while a thread blocks in `epoll_wait` (an idle M).
    blocked: AtomicBool,
    /// When a poll last started or ended (timer clock, ns), for sysmon.
    last_poll: AtomicU64,
    /// Makes a blocking poll's timeout precise (see [`PollTimer`]).
    timer: Option<PollTimer>,
}

/// A timerfd registered with the poller: the blocking poller arms it for the earliest timer, so the
/// poll ends on time to the microsecond rather than at epoll's next millisecond. Without it the
/// timer sleeper would have to leave the poller for its futex in the last stretch before each
/// timer (`Sched::stopm`), and nobody would block in the poller meanwhile.
struct PollTimer {
    fd: std::os::fd::OwnedFd,
}

impl PollTimer {
    fn new(registry: &mio::Registry) -> io::Result<PollTimer> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a new descriptor that
        // nothing else owns.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else (see above).
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            TIMER_TOKEN,
            Interest::READABLE,
        )?;
        Ok(PollTimer { fd })
    }

    /// Arms the timer to fire `d` from now (a zero `d` fires at once: zero would disarm it).
    fn arm(&self, d: Duration) {
        use std::os::fd::AsRawFd;
        let d = d.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec for the duration of the call; the old value is not
        // asked for (null).
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    /// Consumes an expiry, so that the descriptor is not left readable.
    fn drain(&self) {
        use std::os::fd::AsRawFd;
        let mut n = 0u64;
        // SAFETY: reads at most 8 bytes into `n`, which lives for the call; the fd is non-blocking.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut n as *mut u64).cast::<libc::c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

static NETPOLL: OnceLock<Netpoll> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The poller, if any socket was ever registered.
fn get() -> Option<&'static Netpoll> {
    NETPOLL.get()
}

/// The poller, created on first use.
fn netpoll() -> io::Result<&'static Netpoll> {
    if let Some(n) = NETPOLL.get() {
        return Ok(n);
    }
    let _g = crate::lock(&INIT);
    if let Some(n) = NETPOLL.get() {
        return Ok(n);
    }
    let err = |e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("gort: cannot start the network poller: {e}"),
        )
    };
    let poll = mio::Poll::new().map_err(err)?;
    let registry = poll.registry().try_clone().map_err(err)?;
    let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN).map_err(err)?;
    // Without a timerfd the poller still works, with epoll's millisecond timeouts.
    let timer = PollTimer::new(poll.registry()).ok();
    let n = Netpoll {
        timer,
        poll: Mutex::new(PollState {
            poll,
            events: Events::with_capacity(EVENTS),
        }),
        registry,
        waker,
        slab: Mutex::new(Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }),
        registered: AtomicUsize::new(0),
        blocked: AtomicBool::new(false),
        last_poll: AtomicU64::new(timer::clock_ns()),
    };
    let _ = NETPOLL.set(n);
    Ok(NETPOLL.get().expect("just set"))
}

/// A socket's registration with the poller. Deregister with [`Registration::deregister`] before the
/// socket is dropped.
pub(crate) struct Registration {
    desc: Arc<PollDesc>,
    token: usize,
}

impl Registration {
    /// Registers `source` for read and write readiness (edge-triggered).
    pub(crate) fn new(source: &mut impl mio::event::Source) -> io::Result<Registration> {
        let np = netpoll()?;
        let desc = Arc::new(PollDesc::new());
        let token = {
            let mut slab = crate::lock(&np.slab);
            let idx = match slab.free.pop() {
                Some(i) => i,
                None => {
                    let i = u32::try_from(slab.slots.len())
                        .ok()
                        .filter(|&i| i < u32::MAX)
                        .ok_or_else(|| io::Error::other("gort: too many registered sockets"))?;
                    slab.slots.push((0, None));
                    i
                }
            };
            let slot = &mut slab.slots[idx as usize];
            slot.0 = slot.0.wrapping_add(1) & 0x7fff_ffff;
            slot.1 = Some(desc.clone());
            ((slot.0 as usize) << 32) | idx as usize
        };
        if let Err(e) = np.registry.register(
            source,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            np.free_slot(token);
            return Err(e);
        }
        np.registered.fetch_add(1, Ordering::SeqCst);
        Ok(Registration { desc, token })
    }

    pub(crate) fn desc(&self) -> &PollDesc {
        &self.desc
    }

    /// Removes `source` from the poller; wakes anyone still waiting (they see the socket closed).
    pub(crate) fn deregister(&self, source: &mut impl mio::event::Source) {
        let Some(np) = get() else { return };
        let _ = np.registry.deregister(source);
        np.free_slot(self.token);
        np.registered.fetch_sub(1, Ordering::SeqCst);
        self.desc.close();
    }
}

impl Netpoll {
    fn free_slot(&self, token: usize) {
        let mut slab = crate::lock(&self.slab);
        let idx = (token & 0xffff_ffff) as u32;
        if let Some(slot) = slab.slots.get_mut(idx as usize) {
            if slot.0 as usize == token >> 32 {
                slot.1 = None;
                slab.free.push(idx);
            }
        }
    }

    /// Polls once with `timeout` while holding the poll lock in `st`; returns the wakers to wake.
    fn poll_locked(&self, st: &mut PollState, timeout: Option<Duration>) -> Vec<Waker> {
        self.last_poll.store(timer::clock_ns(), Ordering::Relaxed);
        let PollState { poll, events } = st;
        if let Err(e) = poll.poll(events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("gort: netpoll: epoll_wait failed: {e}");
            }
        }
        self.last_poll.store(timer::clock_ns(), Ordering::Relaxed);
        let mut ready: Vec<(Arc<PollDesc>, u64)> = Vec::new();
        {
            let slab = crate::lock(&self.slab);
            for ev in events.iter() {
                let t = ev.token();
                if t == WAKE_TOKEN {
                    continue;
                }
                if t == TIMER_TOKEN {
                    if let Some(timer) = &self.timer {
                        timer.drain();
                    }
                    continue;
                }
                let (gen, idx) = (t.0 >> 32, t.0 & 0xffff_ffff);
                let Some((g, Some(desc))) = slab.slots.get(idx) else {
                    continue;
                };
                if *g as usize != gen {
                    continue;
                }
                let mut bits = 0;
                if ev.is_readable() {
                    bits |= READ;
                }
                if ev.is_read_closed() || ev.is_error() {
                    bits |= READ | READ_CLOSED;
                }
                if ev.is_writable() {
                    bits |= WRITE;
                }
                if ev.is_write_closed() || ev.is_error() {
                    bits |= WRITE | WRITE_CLOSED;
                }
                if bits != 0 {
                    ready.push((desc.clone(), bits));
                }
            }
        }
        let mut wakers = Vec::new();
        for (desc, bits) in ready {
            desc.set(bits, &mut wakers);
        }
        wakers
    }

    /// A non-blocking poll if nobody is polling; returns the wakers to wake.
    fn poll_now(&self) -> Vec<Waker> {
        if self.registered.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        match self.poll.try_lock() {
            Ok(mut st) => self.poll_locked(&mut st, Some(Duration::ZERO)),
            Err(_) => Vec::new(),
        }
    }
}

/// Wakes every waker in `wakers`; returns whether there were any.
fn wake_all(wakers: Vec<Waker>) -> bool {
    let any = !wakers.is_empty();
    wakers.into_iter().for_each(Waker::wake);
    any
}

/// The poller's state in one line, for hang reports (`net::poller_state`).
pub(crate) fn debug_state() -> String {
    match get() {
        None => "netpoll: not started".to_string(),
        Some(n) => {
            let mut out = format!(
                "netpoll: registered={} blocked={} lock_free={} last_poll={:.1}ms ago",
                n.registered.load(Ordering::SeqCst),
                n.blocked.load(Ordering::SeqCst),
                n.poll.try_lock().is_ok(),
                timer::clock_ns().saturating_sub(n.last_poll.load(Ordering::Relaxed)) as f64 / 1e6
            );
            let slab = crate::lock(&n.slab);
            for (i, (g, d)) in slab.slots.iter().enumerate() {
                if let Some(d) = d {
                    let st = d.state();
                    out.push_str(&format!(
                        "\n  socket {i}.{g}: events={} flags={:#x} readers={} writers={}",
                        st >> 8,
                        st & FLAGS,
                        crate::lock(&d.readers).len(),
                        crate::lock(&d.writers).len()
                    ));
                }
            }
            out
        }
    }
}

// ---- the scheduler's side -------------------------------------------------------------------------

/// Whether any socket is registered: goroutines may be waiting for the network, so the program is
/// not deadlocked even with every M asleep.
pub(crate) fn has_waiters() -> bool {
    get().is_some_and(|n| n.registered.load(Ordering::SeqCst) > 0)
}

/// `find_runnable`'s non-blocking poll: the wakers of the goroutines it readies, which the
/// scheduler wakes as one batch onto the calling M's P (`Sched::netpoll_ready`).
pub(crate) fn poll_nonblocking() -> Vec<Waker> {
    match get() {
        Some(n) if !n.blocked.load(Ordering::Relaxed) => n.poll_now(),
        _ => Vec::new(),
    }
}

/// sysmon's poll: only when nobody has polled for 10 ms.
pub(crate) fn sysmon_poll(now: u64) {
    if let Some(n) = get() {
        if !n.blocked.load(Ordering::Relaxed)
            && now.saturating_sub(n.last_poll.load(Ordering::Relaxed)) >= SYSMON_POLL_NS
        {
            wake_all(n.poll_now());
        }
    }
}

/// An idle M's blocking poll (see `Sched::stopm`). `polling` is the M's flag that tells wakers to
/// break the poll (see [`break_poll`]), `note` its wake-up note: a wake left on it before the poll
/// starts cancels the poll. `deadline` is the earliest timer (timer clock), if this M sleeps for
/// timers too.
///
/// Returns the wakers readied, which the caller wakes once it has decided where they should run;
/// or why it did not poll: nothing is registered (the M sleeps on its note as before), or another
/// thread holds the poller (the M retries after [`BUSY_RETRY`]: that thread may be a non-blocking
/// poller about to let go, and somebody must be left blocking in the poller).
pub(crate) fn block(
    polling: &AtomicBool,
    note: &Note,
    deadline: Option<u64>,
) -> Result<Vec<Waker>, NotPolled> {
    let n = get().ok_or(NotPolled::Nothing)?;
    if n.registered.load(Ordering::SeqCst) == 0 {
        return Err(NotPolled::Nothing);
    }
    let mut st = lock_for_blocking(n)?;
    n.blocked.store(true, Ordering::SeqCst);
    polling.store(true, Ordering::SeqCst);
    std::sync::atomic::fence(Ordering::SeqCst);
    // Pairs with `break_poll`'s caller: it wakes the note, then reads `polling`. Either it sees us
    // polling and breaks the poll, or we see its wake here and do not block.
    // A consumed wake is what the caller's futex sleep would have consumed: it re-checks its
    // hand-off slot and the timers next.
    let wakers = if note.sleep_timeout(Duration::ZERO) {
        Vec::new()
    } else {
        let timeout = deadline.map(timer::until);
        if let (Some(t), Some(d)) = (&n.timer, timeout) {
            // epoll's own timeout (rounded up to the millisecond) stays as a backstop.
            t.arm(d);
        }
        n.poll_locked(&mut st, timeout)
    };
    polling.store(false, Ordering::SeqCst);
    n.blocked.store(false, Ordering::SeqCst);
    drop(st);
    Ok(wakers)
}

/// How long an idle M waits for a non-blocking poller to let go of the poller before it gives up
/// for [`BUSY_RETRY`]: a non-blocking `epoll_wait` and its event loop take a few microseconds.
const BUSY_SPIN_NS: u64 = 20_000;

/// The poller's lock for a blocking poll. Another thread's blocking poll is not waited for: that
/// thread is the runtime's poller, and this M may sleep on its note for good (`Held`). A
/// non-blocking poller's hold is: it lets go within microseconds, after which this M should
/// block in the poller (it may be the last idle M), so it tries again for `BUSY_SPIN_NS`
/// before falling back to a timed retry (`Busy`).
fn lock_for_blocking(n: &Netpoll) -> Result<std::sync::MutexGuard<'_, PollState>, NotPolled> {
    let mut start = None;
    loop {
        match n.poll.try_lock() {
            Ok(st) => return Ok(st),
            Err(std::sync::TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        if n.blocked.load(Ordering::SeqCst) {
            return Err(NotPolled::Held);
        }
        let now = timer::clock_ns();
        if now.saturating_sub(*start.get_or_insert(now)) >= BUSY_SPIN_NS {
            return Err(NotPolled::Busy);
        }
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    }
}

/// Why [`block`] did not poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotPolled {
    /// No socket is registered (or the poller does not exist yet), or no P is idle.
    Nothing,
    /// Another thread blocks in the poller, or (`Sched::stopm`'s own decision) an M holding a P
    /// polls it regularly: this M sleeps on its note. sysmon wakes an M if nobody polls for a
    /// while (`sysmon::POLL_STALE_NS`) while a P is idle.
    Held,
    /// A non-blocking poller held the poller for longer than expected: retry shortly.
    Busy,
}

/// Whether sockets are registered and someone blocks in the poller or polled within the last `ns`
/// nanoseconds.
pub(crate) fn polled_within(ns: u64) -> bool {
    get().is_some_and(|n| {
        n.registered.load(Ordering::SeqCst) > 0
            && (n.blocked.load(Ordering::SeqCst)
                || timer::clock_ns().saturating_sub(n.last_poll.load(Ordering::Relaxed)) < ns)
    })
}

/// Whether a blocking poll ends on time to the microsecond (the poller has its timerfd), so the timer
/// sleeper may wait for its timer in the poller right up to the deadline.
pub(crate) fn precise_timeouts() -> bool {
    get().is_some_and(|n| n.timer.is_some())
}

/// Whether sockets are registered, nobody blocks in the poller, and nobody polled for `ns`
/// nanoseconds up to `now`.
pub(crate) fn stale(now: u64, ns: u64) -> bool {
    get().is_some_and(|n| {
        n.registered.load(Ordering::SeqCst) > 0
            && !n.blocked.load(Ordering::SeqCst)
            && now.saturating_sub(n.last_poll.load(Ordering::Relaxed)) >= ns
    })
}

/// Whether sockets are registered and nobody blocks in the poller: an M should come round to it.
pub(crate) fn needs_poller() -> bool {
    get().is_some_and(|n| {
        n.registered.load(Ordering::SeqCst) > 0 && !n.blocked.load(Ordering::SeqCst)
    })
}

/// How long an idle M that found the poller busy sleeps before it tries again.
pub(crate) const BUSY_RETRY: Duration = Duration::from_millis(1);

/// Breaks an idle M's blocking poll (Go's `netpollBreak`). Call after waking the M's note, when its
/// `polling` flag is set.
pub(crate) fn break_poll() {
    if let Some(n) = get() {
        if let Err(e) = n.waker.wake() {
            eprintln!("gort: netpoll: cannot break the poll: {e}");
        }
    }
}

/// Called before a waiter parks: if nobody blocks in the poller, make sure an M comes round to it
/// (an idle P gets an M, which finds no work and blocks in the poller; with every P busy, the
/// running Ms and sysmon poll).
///
/// Only waiters off the runtime's Ms need this (a plain thread, a task polled by another
/// executor): when the waiter is a goroutine or a task on an M, that M itself comes round to the
/// poller — it polls when its run queue runs dry and every 61 ticks while it does not, and it
/// blocks in the poller when it goes idle with nobody else there (Go parks on the network the same
/// way, with no wake-up). Waking an M here for every goroutine that parks while the poller M is
/// out running what it found was the biggest source of futex wake-ups in network servers.
pub(crate) fn ensure_poller() {
    if crate::sched::current_m().is_some() {
        return;
    }
    if let Some(n) = get() {
        if !n.blocked.load(Ordering::SeqCst) {
            crate::runtime::current().wakep();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_stale_clear_keeps_the_new_edge() {
        let d = PollDesc::new();
        let seen = d.state();
        assert!(PollDesc::is_ready(seen, Dir::Read));
        // An event arrives between the operation's look at the state and its clear.
        let mut w = Vec::new();
        d.set(READ, &mut w);
        d.clear(seen, Dir::Read);
        assert!(
            PollDesc::is_ready(d.state(), Dir::Read),
            "the edge was lost"
        );
        // A clear with a fresh snapshot does clear.
        d.clear(d.state(), Dir::Read);
        assert!(!PollDesc::is_ready(d.state(), Dir::Read));
        assert!(PollDesc::is_ready(d.state(), Dir::Write));
    }

    #[test]
    fn closed_bits_survive_clears() {
        let d = PollDesc::new();
        let mut w = Vec::new();
        d.set(READ | READ_CLOSED, &mut w);
        d.clear(d.state(), Dir::Read);
        assert!(
            PollDesc::is_ready(d.state(), Dir::Read),
            "end-of-file hidden"
        );
    }

    #[test]
    fn set_wakes_the_waiters_of_its_direction_and_close_wakes_all() {
        let d = PollDesc::new();
        let hits = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let waker = Waker::from(Arc::new(Count(hits.clone())));
        let other = Waker::from(Arc::new(Count(hits.clone())));
        d.register(Dir::Read, &waker);
        d.register(Dir::Read, &waker); // the same waker is stored once
        d.register(Dir::Write, &other);
        let mut w = Vec::new();
        d.set(WRITE, &mut w);
        assert_eq!(w.len(), 1);
        wake_all(w);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        d.close();
        assert_eq!(hits.load(Ordering::SeqCst), 2, "close woke the reader");
        assert!(PollDesc::is_closing(d.state()));
    }
}
