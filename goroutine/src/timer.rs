//! Timers: per-P heaps that the scheduler runs and idle Ms sleep on (no timer thread).
//!
//! Every P owns a `TimerHeap`: a min-heap of `(deadline, waker)` entries under a small lock, plus
//! the earliest deadline mirrored in an atomic so that the scheduler can ask "is anything due?"
//! without locking. A timer is added to the heap of the P that creates it (from a plain thread: a P
//! picked round-robin). Firing a timer means waking its `Waker`: a sleeping goroutine is readied,
//! an `after` channel gets its value — the same single wake path as everything else.
//!
//! # Who runs timers
//! * An M holding a P runs that P's due timers each time it looks for work (`find_runnable`), and the
//!   due timers of every P it tries to steal from, so the timers of idle Ps are not forgotten.
//! * An M about to sleep for lack of work computes the earliest deadline over all Ps and, if it is
//!   the earliest sleeper, becomes the runtime's *timer sleeper*: it sleeps on its futex with that
//!   timeout (Go's M blocked in `netpoll(delay)`). Other idle Ms sleep without a timeout. Since
//!   the kernel ends a timed wait 20-30 µs late on virtual machines, the sleeper wakes that much
//!   early (a running average of the lateness it saw, at most 50 µs) and spins to the deadline:
//!   a 50 µs `sleep` takes about 55 µs instead of 80.
//! * Adding a timer earlier than the timer sleeper's deadline pokes the sleeper (or, with no
//!   sleeper and an idle P, starts an M), so it re-computes its timeout. Go's `wakeNetPoller`.
//!
//! A P that runs one goroutine for a long time without entering the scheduler does not run its
//! timers meanwhile; idle Ps steal them. (Preempting such goroutines is sysmon's job.)
//!
//! # Cancellation
//! `TimerHandle::cancel` flips the entry's state from `PENDING` to `CANCELLED`; the heap drops
//! cancelled entries lazily when they reach the top, and rebuilds itself when more than half of it is
//! cancelled, so a loop of `recv_timeout`s that always succeed does not grow the heap without bound.
//! The state word also guarantees that a timer fires at most once and that `cancel` tells the
//! truth: `true` means the waker was not and will not be woken by this timer.
//!
//! Deadlines are nanoseconds since a process-wide epoch (`clock_ns`), so they fit in a `u64` and
//! an atomic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

/// "No timer": the value of an empty heap's `next`.
pub(crate) const NEVER: u64 = u64::MAX;

const PENDING: u8 = 0;
const FIRED: u8 = 1;
const CANCELLED: u8 = 2;

/// Heaps smaller than this are never rebuilt to drop cancelled entries.
const REBUILD_MIN: usize = 64;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the process-wide timer epoch.
pub(crate) fn clock_ns() -> u64 {
    instant_ns(Instant::now())
}

/// The time left until `deadline_ns` (zero if it has passed).
pub(crate) fn until(deadline_ns: u64) -> Duration {
    Duration::from_nanos(deadline_ns.saturating_sub(clock_ns()))
}

/// `t` as nanoseconds since the timer epoch (saturating at 0 before it).
pub(crate) fn instant_ns(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(NEVER - 1)
}

/// The part of a timer its handle and its heap entry share.
struct TimerState {
    state: AtomicU8,
    heap: &'static TimerHeap,
}

struct Entry {
    when: u64,
    seq: u64,
    state: Arc<TimerState>,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.when, self.seq) == (other.when, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.when, self.seq).cmp(&(other.when, other.seq))
    }
}

struct Heap {
    entries: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

/// One P's timers (see the module docs).
pub(crate) struct TimerHeap {
    heap: Mutex<Heap>,
    /// The earliest deadline in the heap (cancelled entries included), or [`NEVER`].
    next: AtomicU64,
    /// Entries cancelled but still in the heap.
    cancelled: AtomicUsize,
}

impl TimerHeap {
    pub(crate) fn new() -> TimerHeap {
        TimerHeap {
            heap: Mutex::new(Heap {
                entries: BinaryHeap::new(),
                seq: 0,
            }),
            next: AtomicU64::new(NEVER),
            cancelled: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Heap> {
        // Never held across user code (wakers are woken after unlocking), so a poisoned lock can only
        // come from a bug in this module; the heap is still consistent.
        crate::lock(&self.heap)
    }

    /// Lowers the cancelled count by `n` entries that left the heap. The count is a heuristic for
    /// when to rebuild, and a cancel may flip an entry's state a moment before it counts it, so the
    /// count saturates at zero rather than wrapping.
    fn forget_cancelled(&self, n: usize) {
        let _ = self
            .cancelled
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(n))
            });
    }

    /// The earliest deadline in this heap, or [`NEVER`]. Lock-free.
    pub(crate) fn next_deadline(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Adds a timer firing `waker` at `when`. Returns the handle and whether it became the earliest
    /// timer of this heap.
    pub(crate) fn push(&'static self, when: u64, waker: Waker) -> (TimerHandle, bool) {
        let state = Arc::new(TimerState {
            state: AtomicU8::new(PENDING),
            heap: self,
        });
        let mut h = self.lock();
        let cancelled = self.cancelled.load(Ordering::Relaxed);
        if h.entries.len() >= REBUILD_MIN && cancelled * 2 > h.entries.len() {
            let before = h.entries.len();
            let live: Vec<_> = h
                .entries
                .drain()
                .filter(|Reverse(e)| e.state.state.load(Ordering::Acquire) == PENDING)
                .collect();
            self.forget_cancelled(before - live.len());
            h.entries.extend(live);
        }
        h.seq += 1;
        let seq = h.seq;
        h.entries.push(Reverse(Entry {
            when,
            seq,
            state: state.clone(),
            waker,
        }));
        let head = h.entries.peek().map_or(NEVER, |Reverse(e)| e.when);
        self.next.store(head, Ordering::SeqCst);
        drop(h);
        (TimerHandle { state }, head == when)
    }

    /// Fires every timer due at `now`. Returns how many were woken.
    pub(crate) fn run(&self, now: u64) -> usize {
        if self.next_deadline() > now {
            return 0;
        }
        let mut due = Vec::new();
        {
            let mut h = self.lock();
            while let Some(Reverse(top)) = h.entries.peek() {
                if top.when > now {
                    break;
                }
                let Reverse(e) = h.entries.pop().expect("peeked");
                match e.state.state.compare_exchange(
                    PENDING,
                    FIRED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => due.push(e.waker),
                    Err(_) => self.forget_cancelled(1),
                }
            }
            let head = h.entries.peek().map_or(NEVER, |Reverse(e)| e.when);
            self.next.store(head, Ordering::SeqCst);
        }
        let n = due.len();
        for w in due {
            w.wake();
        }
        n
    }
}

/// A registered timer (see [`add`]). Dropping the handle does not cancel the timer.
#[derive(Clone)]
pub struct TimerHandle {
    state: Arc<TimerState>,
}

impl TimerHandle {
    /// Cancels the timer. Returns `true` if it had not fired: its waker will not be woken by it.
    pub fn cancel(&self) -> bool {
        let won = self
            .state
            .state
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.state.heap.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        won
    }

    /// Whether the timer has fired (its waker was woken).
    pub fn has_fired(&self) -> bool {
        self.state.state.load(Ordering::Acquire) == FIRED
    }
}

impl std::fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state.state.load(Ordering::Acquire) {
            PENDING => "pending",
            FIRED => "fired",
            _ => "cancelled",
        };
        f.debug_struct("TimerHandle")
            .field("state", &state)
            .finish()
    }
}

/// Registers a timer on the current runtime that wakes `waker` at `deadline` (at once if it has
/// passed). This is the primitive under `sleep`, `park_until`, `after`, `tick` and the channel
/// timeouts; it allocates one small shared record per timer.
pub fn add(deadline: Instant, waker: Waker) -> TimerHandle {
    crate::runtime::current().add_timer(instant_ns(deadline), waker)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn heap() -> &'static TimerHeap {
        Box::leak(Box::new(TimerHeap::new()))
    }

    #[test]
    fn fires_in_deadline_order_once() {
        let h = heap();
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let (t1, first) = h.push(100, Waker::from(c.clone()));
        assert!(first);
        let (t2, first) = h.push(50, Waker::from(c.clone()));
        assert!(first);
        let (_t3, first) = h.push(200, Waker::from(c.clone()));
        assert!(!first);
        assert_eq!(h.next_deadline(), 50);
        assert_eq!(h.run(49), 0);
        assert_eq!(h.run(100), 2);
        assert!(t1.has_fired() && t2.has_fired());
        assert!(!t1.cancel(), "a fired timer cannot be cancelled");
        assert_eq!(c.0.load(Ordering::SeqCst), 2);
        assert_eq!(h.next_deadline(), 200);
    }

    #[test]
    fn cancelled_timers_do_not_fire_and_are_swept() {
        let h = heap();
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let handles: Vec<_> = (0..1000)
            .map(|i| h.push(10 + i, Waker::from(c.clone())).0)
            .collect();
        for t in &handles[..900] {
            assert!(t.cancel());
            assert!(!t.cancel());
        }
        // A push after mass cancellation rebuilds the heap without the cancelled entries.
        let _ = h.push(5000, Waker::from(c.clone()));
        assert!(h.lock().entries.len() <= 101);
        assert_eq!(h.run(NEVER - 1), 101);
        assert_eq!(c.0.load(Ordering::SeqCst), 101);
        assert_eq!(h.next_deadline(), NEVER);
    }
}
