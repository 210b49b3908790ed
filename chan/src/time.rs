//! Channel timers: Go's `time.After`, `time.Tick`, `time.Timer` and `time.Ticker`.
//!
//! Each is a channel of capacity 1 fed by a runtime timer (`gort_goroutine::timer`: per-P heaps, no
//! timer thread). The timer's waker does the sending, on whichever runtime thread runs due timers;
//! like Go's, a tick that finds the channel still full is dropped rather than queued, so a slow
//! reader sees the latest ticks, not a backlog.
//!
//! Invariants: a [`Timer`] or [`Ticker`] owns at most one pending runtime timer at a time (the
//! `armed` handle, replaced under its lock by `reset` and by a ticker's own re-arming); `stop`
//! cancels it, and a stopped ticker never re-arms because the re-arming waker checks the `stopped`
//! flag under the same lock. Dropping a `Timer` or `Ticker` stops it; the free functions [`after`]
//! and [`tick`] have no handle, and a `tick` stops re-arming once its receiver is gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use gort_goroutine::timer::{self, TimerHandle};

use crate::{bounded, Receiver, Sender, TrySendError};

/// What a runtime timer does when it fires: send the time, and (for tickers) arm the next one.
struct Fire {
    tx: Sender<Instant>,
    state: Mutex<Armed>,
    stopped: AtomicBool,
}

struct Armed {
    /// The pending runtime timer, if any.
    handle: Option<TimerHandle>,
    /// Its deadline (the next tick's, for tickers).
    deadline: Instant,
    /// `Some(period)` for tickers.
    period: Option<Duration>,
}

impl Fire {
    /// A channel and its armed timer: firing at `deadline`, then every `period` if given.
    fn start(deadline: Instant, period: Option<Duration>) -> (Arc<Fire>, Receiver<Instant>) {
        let (tx, rx) = bounded(1);
        let fire = Arc::new(Fire {
            tx,
            state: Mutex::new(Armed {
                handle: None,
                deadline,
                period,
            }),
            stopped: AtomicBool::new(false),
        });
        fire.arm(deadline, period);
        (fire, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Armed> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms the runtime timer for `deadline` (cancelling any pending one). Returns whether a pending
    /// timer was cancelled before it fired.
    fn arm(self: &Arc<Self>, deadline: Instant, period: Option<Duration>) -> bool {
        let mut st = self.lock();
        let was_pending = st.handle.take().is_some_and(|h| h.cancel());
        self.stopped.store(false, Ordering::Release);
        st.deadline = deadline;
        st.period = period;
        st.handle = Some(timer::add(deadline, Waker::from(self.clone())));
        was_pending
    }

    /// Cancels the pending timer. Returns whether it had not fired yet.
    fn stop(&self) -> bool {
        let mut st = self.lock();
        self.stopped.store(true, Ordering::Release);
        st.handle.take().is_some_and(|h| h.cancel())
    }
}

impl Wake for Fire {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let now = Instant::now();
        let receiver_gone = matches!(self.tx.try_send(now), Err(TrySendError::Disconnected(_)));
        let mut st = self.lock();
        let Some(period) = st.period else {
            st.handle = None;
            return;
        };
        if self.stopped.load(Ordering::Acquire) || receiver_gone {
            st.handle = None;
            return;
        }
        // Next tick on the original grid; ticks missed while the runtime was busy are skipped.
        let mut next = st.deadline + period;
        if next <= now {
            let behind = now.duration_since(next).as_nanos() / period.as_nanos().max(1);
            next += period * u32::try_from(behind + 1).unwrap_or(u32::MAX);
        }
        st.deadline = next;
        st.handle = Some(timer::add(next, Waker::from(self.clone())));
    }
}

/// A channel that receives the current time once, after `d` (Go's `time.After`).
///
/// ```
/// let timeout = gort_chan::time::after(std::time::Duration::from_millis(5));
/// let fired_at = timeout.recv().unwrap();
/// assert!(fired_at.elapsed() < std::time::Duration::from_secs(5));
/// ```
pub fn after(d: Duration) -> Receiver<Instant> {
    Fire::start(Instant::now() + d, None).1
}

/// A channel that receives the current time every `period` (Go's `time.Tick`). It has no way to be
/// stopped except dropping the receiver; use a [`Ticker`] to stop or reset it.
///
/// # Panics
/// If `period` is zero.
pub fn tick(period: Duration) -> Receiver<Instant> {
    assert!(
        !period.is_zero(),
        "gort: time::tick needs a non-zero period"
    );
    Fire::start(Instant::now() + period, Some(period)).1
}

/// A single event in the future, delivered on a channel (Go's `time.Timer`). Dropping the `Timer`
/// stops it.
pub struct Timer {
    fire: Arc<Fire>,
    rx: Receiver<Instant>,
}

impl Timer {
    /// A timer that sends the current time on its channel after `d`.
    pub fn new(d: Duration) -> Timer {
        let (fire, rx) = Fire::start(Instant::now() + d, None);
        Timer { fire, rx }
    }

    /// The channel the time is delivered on (Go's `Timer.C`).
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Prevents the timer from firing. Returns `true` if this stopped it, `false` if it had already
    /// fired or been stopped (as Go's `Stop`; the value may then be waiting in the channel).
    pub fn stop(&self) -> bool {
        self.fire.stop()
    }

    /// Makes the timer fire after `d` from now instead. Returns whether it was still pending (as Go's
    /// `Reset`). A value from an earlier firing still in the channel stays there: drain it first
    /// (`try_recv`) if that matters.
    pub fn reset(&self, d: Duration) -> bool {
        self.fire.arm(Instant::now() + d, None)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.fire.stop();
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("deadline", &self.fire.lock().deadline)
            .finish()
    }
}

/// Delivers the current time on a channel every period (Go's `time.Ticker`). Dropping the `Ticker`
/// stops it.
pub struct Ticker {
    fire: Arc<Fire>,
    rx: Receiver<Instant>,
}

impl Ticker {
    /// A ticker with the given period.
    ///
    /// # Panics
    /// If `period` is zero.
    pub fn new(period: Duration) -> Ticker {
        assert!(
            !period.is_zero(),
            "gort: Ticker::new needs a non-zero period"
        );
        let (fire, rx) = Fire::start(Instant::now() + period, Some(period));
        Ticker { fire, rx }
    }

    /// The channel the ticks are delivered on (Go's `Ticker.C`).
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Stops the ticker: no more ticks are sent (one may already be waiting in the channel).
    pub fn stop(&self) {
        self.fire.stop();
    }

    /// Restarts the ticker with a new period, the next tick `period` from now.
    ///
    /// # Panics
    /// If `period` is zero.
    pub fn reset(&self, period: Duration) {
        assert!(
            !period.is_zero(),
            "gort: Ticker::reset needs a non-zero period"
        );
        self.fire.arm(Instant::now() + period, Some(period));
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.fire.stop();
    }
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker")
            .field("period", &self.fire.lock().period)
            .finish()
    }
}
