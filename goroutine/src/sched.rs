//! The scheduler: Go's G/M/P model (runtime/proc.go), in Rust.
//!
//! * **G** — a goroutine ([`crate::g::G`]) or an async task (an `async_task::Runnable`); both travel
//!   through the run queues as a [`RunItem`].
//! * **M** — an OS thread. It runs the scheduler loop on its own thread stack (Go's `g0`) and resumes
//!   goroutines from there. Ms are started on demand and never exit; an M with nothing to do sleeps on
//!   a futex [`Note`] in the idle list (`stopm`), so an idle runtime burns no CPU.
//! * **P** — a processor: the right to run Go code. There are `max_procs` of them. Each owns a 256-slot
//!   local run queue plus a `runnext` slot ([`LocalQueue`]), a cache of warm stacks, and counters.
//!   An M must hold a P to run goroutines.
//!
//! # Finding work (`find_runnable`)
//! 1. Every 61st schedule tick, one item from the global queue (fairness: a busy P still drains it).
//! 2. The local queue, `runnext` first. A G taken from `runnext` inherits the time slice: a pair of
//!    goroutines that communicate and wait run back to back on one P.
//! 3. A batch from the global queue; then the network: a non-blocking poll
//!    (`netpoll::poll_nonblocking`) whose readied goroutines land in this P's queue.
//! 4. Stealing: up to 4 passes over the other Ps from a random start, taking half of a victim's queue
//!    (its `runnext` too on the last pass). Only a *spinning* M steals, and at most half of the busy Ps
//!    may have spinning Ms, so idle CPUs do not all hammer the queues.
//! 5. Nothing: the M puts its P on the idle list and, if it was spinning, looks at every run queue once
//!    more after leaving the spinning state; then it sleeps (`stopm`). While sockets are
//!    registered, the last M to go idle blocks in the network poller instead of its futex (`wake_m`
//!    breaks that poll; see `netpoll.rs`); while another M holds a P, that M polls as it runs dry
//!    and the idle ones sleep, sysmon waking one if the network goes unpolled for 1 ms.
//!
//! # Waking Ms (`wakep`)
//! Readying or spawning a G puts it in the current P's `runnext` (or, off the runtime's threads, on
//! the global queue) and calls `wakep`: if a P is idle and no M is spinning, start one spinning M on
//! it. A spinning M that finds work stops spinning and, if it was the last spinner, wakes another
//! (`reset_spinning`). This chain keeps just enough Ms looking for work.
//!
//! **A readied G does not wake an M** (tokio's LIFO-slot rule): `ready` on an M skips `wakep` when
//! the G went into an empty `runnext` and nothing was kicked into the ring. The readying G almost
//! always parks or yields next (a channel hand-off, a mutex unlock), and this M then runs the
//! readied one at once; a woken M would only spin, find nothing it may take, and sleep again — a
//! futex wake and a context switch per hand-off. A second readied G kicks the first into the ring,
//! which does call `wakep`, so a batch still gets parallelism (a network poll's batch is queued
//! and decided on differently, below). If the readying G runs on instead, the readied one is not
//! stranded. The wake is only put off
//! (`MLocal::deferred_wake`): the readying operation's own safe point (a send that woke its
//! receiver ends with one) passes, but the next safe point of a goroutine that went on running (a
//! producer's next send) calls `wakep`, and the spinning M may take `runnext` from the P
//! (`steal_into_if`). For code that makes no runtime call, sysmon wakes an M for a P whose queue
//! holds work while it has switched to nothing else for a round (`retake`). Spawning (`newproc`) still always calls
//! `wakep`: a parent usually goes on running, and Go programs expect the child to run in parallel.
//!
//! **Network poll batches** (`netpoll_ready`). The goroutines one poll readies are queued on the
//! polling M's P as a batch: at the back of its queue, in the order the poll found them (Go's
//! `injectglist`; not `runnext`, where each would push the one before it, the next due, to the
//! back and stretch the tail latency), with no `wakep` per goroutine. The M then decides once
//! whether to wake another. Only a queue of more than one goroutine can be shared, and it is:
//! * while the machine has a CPU to spare (`cpuload::spare_cpu`): the woken M runs on it, and the
//!   work finishes sooner (Go and tokio always share);
//! * otherwise only when the work is worth parallelism however busy the machine is: this M's
//!   goroutines run long on average (`SHARE_RUN_NS`), or the queue holds a lot of work
//!   (`SHARE_BATCH_NS`).
//!
//! Why: on a machine whose CPUs are all busy (a load client beside the server, other programs), a
//! woken M has nowhere to run. The two Ms take turns being descheduled, and the goroutines queued
//! on whichever is off its CPU wait out a kernel time slice: that, not the work, made the tail
//! latency of the network benchmarks. The average run is measured per M for free
//! (`RunCostMeter`): the time between two of its polls over the goroutines it ran meanwhile.
//!
//! **Which M.** `startm` leaves the M blocked in the network poller there while another idle M or a
//! new thread can take the P (`mget`); an M that gets a P wakes sysmon if it deep-sleeps (`got_p`),
//! so the thread that readies work pays for one futex wake at most.
//!
//! # Invariants
//! * `locked` (Go's `sched.lock`) guards the global queue, the idle P list and the idle M list; the
//!   counters `npidle` and `global_len` only change under it, so a thread that pushes onto the global
//!   queue and then reads `npidle` cannot miss an M that is going idle.
//! * A P's `local` state is touched only by the M that holds the P, and only while that M is in
//!   runtime code (its `in_user` flag clear, the P's word `pword(m, P_HELD)` confirmed after
//!   clearing it).
//! * Work pushed to a *local* queue is never lost even if `wakep` misses an idle M: the P that pushed
//!   it runs it. Only parallelism may be delayed, which the spinning protocol keeps rare.
//!
//! # Taking a P from user code
//! sysmon may take a P from an M whose goroutine runs too long or blocks without `blocking` — but
//! never while that M is in runtime code using the P's local state. An M switches between the two
//! on every goroutine switch, so the handshake must cost next to nothing there:
//! * the M owns a flag, `M::in_user`, that only it writes: set (Release) just before it resumes
//!   user code, cleared just after. After clearing it, the M issues the light side of an
//!   asymmetric fence ([`crate::fence`]) and reads its P's word: `pword(me, P_HELD)` means the P
//!   is still its own (and stays so until it sets the flag again); `P_RETAKING` means sysmon is
//!   deciding, and the M waits for the outcome; anything else means the P is gone.
//! * sysmon CASes the word `pword(m, P_HELD) -> pword(m, P_RETAKING)`, issues the heavy side of the
//!   fence, and reads M's flag. Set: M is in user code and will see the claim when it leaves, so
//!   the P is sysmon's (`pword(SYSMON_M, P_HELD)`, then `handoffp`); the Acquire read of the flag
//!   makes the M's last writes to the P's local state visible to the next owner. Clear: M is in
//!   (or entering) runtime code; sysmon puts `pword(m, P_HELD)` back.
//!
//! The fence pairing guarantees the M's read of the word and sysmon's read of the flag cannot
//! both miss the other side's write, so a P is never used by two Ms at once; the M's fast path
//! is two plain stores and a load, with no locked instruction.
//!
//! # Goroutines locked to their thread (`lock_os_thread`)
//! Go's `LockOSThread`: a locked G runs only on its M (`G::locked_m`), and that M runs nothing
//! else. The G still travels through the run queues like any other, so P accounting and fairness
//! do not change; the difference is who runs it:
//! * When the locked G switches out (parks, yields, is preempted, loses its P), its M hands its P
//!   on (`handoffp`) and sleeps on its note, counted idle (`stoplockedm`).
//! * An M that takes a G locked to another M from a run queue does not run it: it hands the G and
//!   its own P to that M through `M::next_g`/`M::next_p`, wakes it, and goes looking for a P again
//!   (`startlockedm`). The locked M resumes with both and runs the G (`MLocal::handed`).
//!
//! Each hand-over costs a futex wake-up and a sleep: locking a thread is for code that needs one
//! (thread-local state of C libraries, per-thread OS settings), not for speed.

use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use corosensei::CoroutineResult;

use crate::futex::Note;
use crate::g::{self, GoroutineId, Suspend, G};
use crate::runq::{LocalQueue, LOCAL_QUEUE_CAPACITY};
use crate::stack::{self, Stack, StackAllocator};
use crate::sysmon::{PRecord, Sysmon, FORCE_PREEMPT_NS, PREEMPT_GRACE_NS};
use crate::timer::{self, TimerHandle, TimerHeap, NEVER};

/// Goroutines that run this long on average (on the polling M) are worth another M even on a busy
/// machine: a poll that readies more than one of them wakes one (see "Network poll batches").
const SHARE_RUN_NS: u64 = 30_000;
/// A network poll whose goroutines queue at least this much work on the polling M's P (its queue's
/// length, `runnext` included, times the M's average goroutine run) wakes another M however short
/// they are and however busy the machine is. Below it, on a busy machine, the queue waits for this
/// M: 1 ms is about the p99 latency the benchmark servers reach, and lower values (0.1 and 0.3 ms
/// were measured) woke the second M often enough to double it.
const SHARE_BATCH_NS: u64 = 1_000_000;
/// Cap on one sample of an M's average goroutine run. The time between two of its polls also
/// counts any time the OS kept the M off its CPU, often milliseconds on a busy machine; uncapped,
/// one such interval would lift the average past `SHARE_RUN_NS` for a dozen polls and wake an M at
/// each, on exactly the machine with no CPU to give it. Goroutines that really run longer still
/// average above `SHARE_RUN_NS`.
const RUN_COST_CAP_NS: u64 = 4 * SHARE_RUN_NS;

/// The most Ps a runtime can have.
pub const MAX_PROCS: usize = 256;
/// Go's fairness constant: the global queue is polled every 61 schedule ticks.
const GLOBAL_QUEUE_TICK: u32 = 61;
/// Stealing passes over the other Ps before giving up (Go's `stealTries`).
const STEAL_TRIES: usize = 4;
/// Warm stacks a P keeps; past this, half go back to the runtime's allocator.
const P_STACK_CACHE: usize = 128;
/// Goroutine ids a P takes from the runtime's counter at a time (Go's `_GoidCacheBatch`).
const GOID_BATCH: u64 = 16;
/// Finished Gs a P keeps for reuse; past this, a batch moves to the runtime's shared list, from
/// which a P that spawns more than it finishes refills (Go's `gfput`/`gfget`).
const P_GFREE_CACHE: usize = 64;
const GFREE_BATCH: usize = 32;
/// The longest the timer sleeper spins before a timer's deadline, making up for late wakes.
const TIMER_SPIN_MAX_NS: u64 = 50_000;
/// How close to its deadline a timer is waited for on the futex rather than in the poller, when the
/// poller has no timerfd to end its poll on time (see `netpoll.rs`).
const PRECISE_TIMER_NS: u64 = 2_000_000;
/// Finished Gs the runtime keeps in its shared list at most.
const GLOBAL_GFREE_CAP: usize = 1 << 16;

const NO_P: usize = usize::MAX;

// A P's status word: the owning M's id in the high 32 bits, the state in the low 8 (see `P::owner`).
/// In the idle list, or never used.
const P_IDLE: u64 = 0;
/// Held by the M in the word (or by sysmon, `SYSMON_M`, while it hands the P on). Whether the
/// holder is in user code, and so whether sysmon may retake the P, is the holder's `M::in_user`.
const P_HELD: u64 = 1;
/// sysmon is deciding whether it may take the P from its M (see "Taking a P from user code").
const P_RETAKING: u64 = 2;
/// Owned by an M whose goroutine is in a blocking section (`blocking`): anyone may retake it.
const P_SYSCALL: u64 = 3;
/// Past `max_procs` after a `set_max_procs` shrink; may come back when it grows again.
const P_DEAD: u64 = 4;
const P_STATE_MASK: u64 = 0xff;
/// The owner id sysmon uses while it hands a retaken P on.
pub(crate) const SYSMON_M: u32 = u32::MAX;
/// Go's limit on OS threads (`debug.SetMaxThreads` default).
pub(crate) const DEFAULT_MAX_THREADS: usize = 10_000;

/// A P status word: `state` owned by M `m`.
const fn pword(m: u32, state: u64) -> u64 {
    ((m as u64) << 32) | state
}

/// Something runnable, as stored in run queues: a tagged pointer.
///
/// Bit 0 clear: an `Arc<G>` scheduling reference (`Arc::into_raw`). Bit 0 set: an
/// `async_task::Runnable<u64>` (`Runnable::into_raw`). Both point at allocations aligned to at
/// least 8, so the tag bit is free. A `RunItem` owns what it points at until it is taken apart with
/// [`RunItem::into_work`] or dropped by the queue's owner.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct RunItem(usize);

pub(crate) enum Work {
    G(Arc<G>),
    Task(async_task::Runnable<u64>),
}

impl RunItem {
    pub(crate) fn from_g(g: Arc<G>) -> RunItem {
        RunItem(Arc::into_raw(g) as usize)
    }

    /// From the scheduling reference a parked G leaked (see `g.rs`).
    pub(crate) fn from_g_raw(g: *const G) -> RunItem {
        RunItem(g as usize)
    }

    pub(crate) fn from_task(r: async_task::Runnable<u64>) -> RunItem {
        RunItem(r.into_raw().as_ptr() as usize | 1)
    }

    /// Takes ownership back from the token.
    ///
    /// # Safety
    /// `self` must have come from one of the constructors and not been converted before.
    pub(crate) unsafe fn into_work(self) -> Work {
        if self.0 & 1 == 0 {
            // SAFETY: bit 0 clear means the token is an `Arc<G>` strong reference (caller's contract).
            Work::G(unsafe { Arc::from_raw(self.0 as *const G) })
        } else {
            let ptr =
                std::ptr::NonNull::new((self.0 & !1) as *mut ()).expect("gort: null run item");
            // SAFETY: bit 0 set means the token came from `Runnable::into_raw` (caller's contract).
            Work::Task(unsafe { async_task::Runnable::from_raw(ptr) })
        }
    }
}

/// Hands `newproc`'s builder a G for the new goroutine: a recycled one from the P's free list when
/// there is one (Go's `gfget`), else a new allocation.
pub(crate) struct NewG<'a> {
    sched: &'static Sched,
    id: GoroutineId,
    gfree: Option<&'a mut Vec<Arc<G>>>,
}

impl NewG<'_> {
    /// The G for the new goroutine, running `f`, spawned at `at`.
    pub(crate) fn with_entry<F, T>(self, f: F, at: &'static std::panic::Location<'static>) -> Arc<G>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let recycled = self.gfree.and_then(|local| {
            if local.is_empty() {
                let mut shared = crate::lock(&self.sched.gfree);
                let at = shared.len().saturating_sub(GFREE_BATCH);
                local.extend(shared.drain(at..));
            }
            local.pop()
        });
        if let Some(mut g) = recycled {
            if let Some(fresh) = Arc::get_mut(&mut g) {
                fresh.reinit(self.id);
                fresh.set_entry(f);
                fresh.set_created_at(at);
                return g;
            }
        }
        let mut g = G::new(self.id, self.sched);
        g.set_entry(f);
        g.set_created_at(at);
        let g = Arc::new(g);
        self.sched.register_g(&g);
        g
    }
}

/// The `GORT_DEBUG` settings (comma-separated `key=value`, as Go's `GODEBUG`).
#[derive(Default)]
struct DebugSettings {
    /// `schedtrace=MS`: sysmon prints a scheduler line every MS ms.
    schedtrace: Option<std::time::Duration>,
    /// `waitstacks=1`: every park records its stack, and goroutine dumps print it.
    wait_stacks: bool,
}

/// Reads `GORT_DEBUG`. Anything malformed is reported once on stderr and ignored.
fn debug_settings_from_env() -> DebugSettings {
    let mut settings = DebugSettings::default();
    let Ok(v) = std::env::var("GORT_DEBUG") else {
        return settings;
    };
    for item in v.split(',').filter(|s| !s.trim().is_empty()) {
        match item.trim().split_once('=') {
            Some(("schedtrace", ms)) => match ms.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => {
                    settings.schedtrace = Some(std::time::Duration::from_millis(ms));
                }
                _ => eprintln!(
                    "gort: GORT_DEBUG: schedtrace wants a number of milliseconds, got {ms:?}"
                ),
            },
            Some(("waitstacks", on)) => match on.trim() {
                "0" => settings.wait_stacks = false,
                "1" => settings.wait_stacks = true,
                _ => eprintln!("gort: GORT_DEBUG: waitstacks wants 0 or 1, got {on:?}"),
            },
            _ => eprintln!(
                "gort: GORT_DEBUG: unknown setting {item:?} (known: schedtrace=MS, waitstacks=1)"
            ),
        }
    }
    settings
}

/// A wait duration as dumps print it.
fn fmt_wait(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{} minutes", s / 60)
    } else if s >= 1 {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// An M's hold on its P for a short runtime operation (see `Sched::current_p`).
pub(crate) struct PRef {
    pub(crate) ml: &'static MLocal,
    pub(crate) p: &'static P,
    /// Whether dropping this returns the M to user code (it was taken from a goroutine).
    release: bool,
}

impl Drop for PRef {
    fn drop(&mut self) {
        if self.release {
            self.ml.m.in_user.store(true, Ordering::Release);
        }
    }
}

/// A processor (Go's `p`).
pub(crate) struct P {
    pub(crate) runq: LocalQueue,
    /// This P's timers; any M may run the due ones (see `timer.rs`).
    pub(crate) timers: TimerHeap,
    /// Who owns the P and what its owner is doing: `pword(m, state)`. Ownership moves only by
    /// storing a new word under `Sched::locked` (idle list), by the owner itself, by sysmon's
    /// retake (see "Taking a P from user code"), or by a CAS from `P_SYSCALL` (a blocking
    /// section's hand-off).
    pub(crate) owner: AtomicU64,
    /// Bumped by the owner every time it schedules a new goroutine; sysmon compares snapshots to
    /// find goroutines that run too long.
    pub(crate) schedtick: AtomicU32,
    /// Bumped by the owner every time it runs a goroutine or task, time slice inherited or not:
    /// a thief that sees it move knows the P is not stuck behind one goroutine.
    pub(crate) nswitch: AtomicU32,
    /// Bumped by the owner every time a goroutine enters a blocking section.
    pub(crate) syscalltick: AtomicU32,
    /// Set by sysmon: the running goroutine should yield at its next safe point.
    pub(crate) preempt: AtomicBool,
    /// Goroutines and tasks created / finished on this P; written only by the owner.
    created: AtomicU64,
    exited: AtomicU64,
    local: UnsafeCell<PLocal>,
}

/// State only the M holding the P touches.
struct PLocal {
    stacks: Vec<Stack>,
    /// Finished Gs kept for reuse (Go's `gFree`), so spawning rarely calls the allocator.
    gfree: Vec<Arc<G>>,
    goid_next: u64,
    goid_end: u64,
}

// SAFETY: `local` is only accessed by the M that holds the P while that M is in runtime code (the
// scheduler loop, or a `PRef` from `current_p`), which sysmon's retake handshake never interrupts;
// ownership moves between Ms through `owner` and `M::in_user` (Release/Acquire), under
// `Sched::locked` or through an M's note.
// Everything else is atomic or immutable.
unsafe impl Sync for P {}

impl P {
    fn new() -> P {
        P {
            runq: LocalQueue::new(),
            timers: TimerHeap::new(),
            owner: AtomicU64::new(pword(0, P_IDLE)),
            schedtick: AtomicU32::new(0),
            syscalltick: AtomicU32::new(0),
            nswitch: AtomicU32::new(0),
            preempt: AtomicBool::new(false),
            created: AtomicU64::new(0),
            exited: AtomicU64::new(0),
            local: UnsafeCell::new(PLocal {
                stacks: Vec::new(),
                gfree: Vec::new(),
                goid_next: 0,
                goid_end: 0,
            }),
        }
    }

    /// # Safety
    /// The caller is the M that holds this P, and does not keep two of these borrows alive at once.
    #[allow(clippy::mut_from_ref)]
    unsafe fn local(&self) -> &mut PLocal {
        // SAFETY: see the function contract.
        unsafe { &mut *self.local.get() }
    }

    fn state(&self) -> u64 {
        self.owner.load(Ordering::Acquire) & P_STATE_MASK
    }

    fn bump(counter: &AtomicU64) {
        // Single writer (the owner): a plain load/store pair avoids a locked instruction.
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// An M's shared half: what other threads use to hand it a P and wake it.
pub(crate) struct M {
    /// This M's id within its runtime (from 1), as recorded in the status word of the P it owns.
    pub(crate) id: u32,
    note: Note,
    /// P index + 1 handed over by `startm` (0: none).
    next_p: AtomicUsize,
    next_spinning: std::sync::atomic::AtomicBool,
    /// Set while this M runs user code (a goroutine or a task's poll); written only by this M.
    /// sysmon may retake the M's P only while it is set (see "Taking a P from user code").
    in_user: AtomicBool,
    /// Set by sysmon: the goroutine this M runs should yield at its next safe point (it ran too
    /// long, or its P was taken). Kept on the M, not the P, so that a safe point costs one load.
    preempt: AtomicBool,
    /// Set while this M blocks in the network poller instead of on `note` (see `wake_m`).
    polling: AtomicBool,
    /// The G locked to this M, handed over by `startlockedm` with a P in `next_p` (its
    /// scheduling reference, `Arc::into_raw`; null: none).
    next_g: AtomicPtr<G>,
}

/// An M's private half, living on its thread's stack for the life of the thread.
pub(crate) struct MLocal {
    pub(crate) sched: &'static Sched,
    m: Arc<M>,
    p: Cell<usize>,
    spinning: Cell<bool>,
    rng: Cell<u32>,
    /// The G this M is running right now (null in the scheduler loop and in task polls): what
    /// `g::current_g` returns, kept here so that it costs no thread-local of its own.
    pub(crate) curg: Cell<*const G>,
    /// The locked G that `stoplockedm` was handed, for the scheduler loop to run next.
    handed: Cell<Option<RunItem>>,
    /// A `wakep` that `ready` put off (see "A readied G does not wake an M"): `DEFER_ARMED` after
    /// the ready, `DEFER_DUE` once the readying goroutine passed one safe point without parking; the
    /// next safe point wakes an M. Cleared whenever the running goroutine switches out.
    deferred_wake: Cell<u8>,
    /// Set while this M readies the goroutines of a network poll (`netpoll_ready`).
    in_poll_batch: Cell<bool>,
    /// How many goroutines and tasks the current poll batch queued on this M's P.
    batch_len: Cell<u32>,
    /// How long this M's goroutines run, on average (see "Network poll batches").
    run_cost: RunCostMeter,
}

const DEFER_NONE: u8 = 0;
const DEFER_ARMED: u8 = 1;
const DEFER_DUE: u8 = 2;

/// An M's estimate of how long one goroutine run takes on it, sampled at its network polls for
/// free: the time since its previous poll over the goroutines its P switched to meanwhile (the
/// P's `nswitch`), averaged over about eight polls (`crate::smooth`). Time the M spent idle does not count: going
/// idle pauses the meter, and a poll after a change of P only restarts the interval.
#[derive(Default)]
struct RunCostMeter {
    /// The previous poll: the P the M held, that P's `nswitch`, and the time.
    last: Cell<Option<(usize, u32, u64)>>,
    avg_ns: Cell<u64>,
}

impl RunCostMeter {
    /// Takes a sample at a poll by an M that holds P `pid`, which has switched `nswitch` times;
    /// returns the average.
    fn sample(&self, pid: usize, nswitch: u32) -> u64 {
        let now = timer::clock_ns();
        if let Some((last_p, last_switch, at)) = self.last.get() {
            let ran = nswitch.wrapping_sub(last_switch);
            if last_p == pid && ran > 0 {
                let per = (now.saturating_sub(at) / u64::from(ran)).min(RUN_COST_CAP_NS);
                self.avg_ns.set(crate::smooth(self.avg_ns.get(), per));
            }
        }
        self.last.set(Some((pid, nswitch, now)));
        self.avg_ns.get()
    }

    /// The M goes idle: the next interval starts at its next poll.
    fn pause(&self) {
        self.last.set(None);
    }
}

impl MLocal {
    /// This M's id (what `G::locked_m` records).
    pub(crate) fn id(&self) -> u32 {
        self.m.id
    }
}

thread_local! {
    static CURRENT_M: Cell<*const MLocal> = const { Cell::new(std::ptr::null()) };
}

/// The M this thread is, if it is one. Never inlined (thread-locals and migration, see `g.rs`).
#[inline(never)]
pub(crate) fn current_m() -> Option<&'static MLocal> {
    let p = CURRENT_M.with(|c| c.get());
    // SAFETY: the pointer is set by `mstart` to an MLocal that lives on the M thread's stack until
    // the thread exits, and is only read on that same thread.
    unsafe { p.as_ref() }
}

/// The id of the goroutine or async task running on this thread, if any.
#[inline(never)]
pub(crate) fn current_id() -> Option<GoroutineId> {
    std::num::NonZeroU64::new(stack::running_goroutine()).map(GoroutineId)
}

struct Locked {
    global: VecDeque<RunItem>,
    pidle: Vec<usize>,
    midle: Vec<Arc<M>>,
}

/// One runtime: its Ps, its idle lists and its global queue (Go's `schedt`). Runtimes are leaked:
/// they live until the process exits, so a `&'static Sched` is handed around freely.
pub(crate) struct Sched {
    allp: Box<[OnceLock<Box<P>>]>,
    gomaxprocs: AtomicUsize,
    npidle: AtomicUsize,
    nmspinning: AtomicUsize,
    global_len: AtomicUsize,
    locked: Mutex<Locked>,
    pub(crate) stacks: StackAllocator,
    goid_gen: AtomicU64,
    threads: AtomicUsize,
    idle_threads: AtomicUsize,
    /// Every M ever started (Ms never exit), for sysmon to find a P's owner.
    allm: Mutex<Vec<Arc<M>>>,
    /// The idle M sleeping until the earliest timer, and that deadline (see `timer.rs`).
    timer_sleeper: Mutex<Option<(Arc<M>, u64)>>,
    /// Mirror of `timer_sleeper`'s deadline ([`NEVER`] when there is none), read without the lock.
    timer_sleep_until: AtomicU64,
    /// How late (ns, running average) the kernel has been ending the timer sleeper's timed waits.
    timer_lateness: AtomicU64,
    /// Round-robin choice of a P heap for timers added off the runtime's threads.
    offp_timer_rr: AtomicUsize,
    /// Finished Gs shared between Ps (see `gfput`).
    gfree: Mutex<Vec<Arc<G>>>,
    /// Goroutines created off the runtime's threads (no P to count them on), and goroutines that
    /// finished on an M whose P had been retaken.
    offp_created: AtomicU64,
    offp_exited: AtomicU64,
    sysmon: Sysmon,
    /// Every G allocation of this runtime (Go's `allgs`), by address, for dumps and the deadlock
    /// check. Gs are added when allocated and removed by their `Drop`, under this lock, so a dump
    /// holding it may read any G listed.
    allgs: Mutex<std::collections::HashSet<usize>>,
    /// Coarse clock (ns since the timer epoch), advanced by sysmon each round: cheap timestamps
    /// for `wait_since`.
    coarse_now: AtomicU64,
    /// Set while `run_main`'s main goroutine runs: enables the deadlock check.
    pub(crate) main_running: AtomicBool,
    /// The most OS threads (Ms) this runtime may start (Go's `debug.SetMaxThreads`).
    max_threads: usize,
    /// `GORT_DEBUG=schedtrace=MS`: sysmon prints a scheduler line every MS ms.
    schedtrace: Option<std::time::Duration>,
    /// `GORT_DEBUG=waitstacks=1`: parks record their stacks for dumps (see `G::set_wait_reason`).
    pub(crate) wait_stacks: bool,
    name: String,
}

impl Sched {
    /// Creates a runtime with `procs` Ps and stacks of `stack_size` bytes. No M starts until there is
    /// work.
    pub(crate) fn new(
        procs: usize,
        stack_size: usize,
        max_threads: usize,
        name: String,
    ) -> &'static Sched {
        assert!(
            (1..=MAX_PROCS).contains(&procs),
            "gort: a runtime needs between 1 and {MAX_PROCS} procs, got {procs}"
        );
        stack::install_overflow_handler();
        crate::panic::install_hook();
        crate::fence::init();
        let allp: Box<[OnceLock<Box<P>>]> = (0..MAX_PROCS).map(|_| OnceLock::new()).collect();
        let debug = debug_settings_from_env();
        let sched = Box::leak(Box::new(Sched {
            allp,
            gomaxprocs: AtomicUsize::new(procs),
            npidle: AtomicUsize::new(0),
            nmspinning: AtomicUsize::new(0),
            global_len: AtomicUsize::new(0),
            locked: Mutex::new(Locked {
                global: VecDeque::new(),
                pidle: Vec::new(),
                midle: Vec::new(),
            }),
            stacks: StackAllocator::new(stack_size),
            goid_gen: AtomicU64::new(1),
            threads: AtomicUsize::new(0),
            idle_threads: AtomicUsize::new(0),
            allm: Mutex::new(Vec::new()),
            timer_sleeper: Mutex::new(None),
            timer_sleep_until: AtomicU64::new(NEVER),
            timer_lateness: AtomicU64::new(0),
            offp_timer_rr: AtomicUsize::new(0),
            gfree: Mutex::new(Vec::new()),
            offp_created: AtomicU64::new(0),
            offp_exited: AtomicU64::new(0),
            sysmon: Sysmon::new(),
            allgs: Mutex::new(std::collections::HashSet::new()),
            coarse_now: AtomicU64::new(0),
            main_running: AtomicBool::new(false),
            schedtrace: debug.schedtrace,
            wait_stacks: debug.wait_stacks,
            max_threads,
            name,
        }));
        let mut l = sched.lock();
        for id in (0..procs).rev() {
            sched.p_or_create(id);
            sched.pidleput(&mut l, id);
        }
        drop(l);
        sched.start_tracing();
        sched
    }

    fn lock(&self) -> MutexGuard<'_, Locked> {
        // The lock is never held across user code, so poisoning can only come from a runtime bug.
        crate::lock(&self.locked)
    }

    fn p(&self, id: usize) -> &P {
        self.allp[id].get().expect("gort: P used before creation")
    }

    fn p_or_create(&self, id: usize) -> &P {
        self.allp[id].get_or_init(|| Box::new(P::new()))
    }

    pub(crate) fn max_procs(&self) -> usize {
        self.gomaxprocs.load(Ordering::Relaxed)
    }

    /// The calling thread's M and its P, held for a short runtime operation, if this is an M of
    /// this runtime that still owns a P. From the scheduler loop this costs a load; from a
    /// goroutine, the M leaves user code for the duration (two plain stores and a load, see
    /// "Taking a P from user code"). `None` when the P was retaken while the goroutine ran:
    /// callers then take their off-P path (the global queue), and the goroutine gives its M back
    /// at its next safe point.
    fn current_p(&'static self) -> Option<PRef> {
        let ml = current_m()?;
        if !std::ptr::eq(ml.sched, self) || ml.p.get() == NO_P {
            return None;
        }
        let from_user = ml.m.in_user.load(Ordering::Relaxed);
        let held = if from_user {
            // Inside `blocking(f)` the P is on offer to other Ms: `f`'s runtime calls take the
            // off-P paths, and `exitsyscall` takes the P back if nobody did.
            self.leave_user(ml, true)
        } else {
            // In runtime code the P cannot be taken away: the word is ours.
            true
        };
        if !held {
            if from_user {
                ml.m.in_user.store(true, Ordering::Release);
            }
            return None;
        }
        Some(PRef {
            ml,
            p: self.p(ml.p.get()),
            release: from_user,
        })
    }

    /// Runs `f` with the calling M's P locked (see `runtime::with_current_proc`).
    pub(crate) fn with_current_proc<R>(&'static self, f: impl FnOnce(Option<usize>) -> R) -> R {
        let here = self.current_p();
        let pid = here.as_ref().map(|r| r.ml.p.get());
        let r = f(pid);
        drop(here);
        r
    }

    /// The index of the calling M's P, without locking it (for choosing a timer heap, which has its
    /// own lock).
    fn current_p_index(&'static self) -> Option<usize> {
        let ml = current_m()?;
        (std::ptr::eq(ml.sched, self) && ml.p.get() != NO_P).then(|| ml.p.get())
    }

    // ---- creating goroutines -------------------------------------------------------------------

    /// Go's `newproc`: gives `make` a fresh goroutine id, counts the goroutine (or task) it builds,
    /// and makes it runnable in the current P's `runnext` (from a plain thread: the global queue).
    /// Ids come from the P's batch, so spawning touches no shared cache line.
    pub(crate) fn newproc(
        &'static self,
        make: impl FnOnce(GoroutineId, NewG<'_>) -> RunItem,
    ) -> GoroutineId {
        let here = self.current_p();
        let raw = match &here {
            Some(PRef { p, .. }) => {
                // SAFETY: we are the M holding `p`.
                let l = unsafe { p.local() };
                if l.goid_next == l.goid_end {
                    l.goid_next = self.goid_gen.fetch_add(GOID_BATCH, Ordering::Relaxed);
                    l.goid_end = l.goid_next + GOID_BATCH;
                }
                l.goid_next += 1;
                l.goid_next - 1
            }
            None => self.goid_gen.fetch_add(1, Ordering::Relaxed),
        };
        let id = GoroutineId(std::num::NonZeroU64::new(raw).expect("gort: goroutine id overflow"));
        // SAFETY: we are the M holding the P; `make` only allocates and touches no other P state.
        let gfree = here.as_ref().map(|r| unsafe { &mut r.p.local().gfree });
        let item = make(
            id,
            NewG {
                sched: self,
                id,
                gfree,
            },
        );
        match &here {
            Some(PRef { p, .. }) => {
                P::bump(&p.created);
                // Spawning always looks for an idle P (Go's `newproc`): the parent usually goes on
                // running, and the child should run in parallel at once.
                let _ = self.runqput(p, item, true);
            }
            None => {
                self.offp_created.fetch_add(1, Ordering::Relaxed);
                self.global_push(item);
            }
        }
        drop(here);
        self.wakep();
        id
    }

    /// Keeps a finished G for reuse if nothing else refers to it any more (neither a waker nor its
    /// `JoinHandle`; whichever lets go last calls this). Off this runtime's Ms the G is just freed.
    pub(crate) fn gfput(&'static self, mut g: Arc<G>) {
        if Arc::get_mut(&mut g).is_none() {
            return; // someone still holds it; it comes back here when they let go
        }
        let Some(here) = self.current_p() else {
            return;
        };
        self.gfput_on(here.p, g);
    }

    /// `gfput` onto P `p`, held by the caller's M in runtime code.
    fn gfput_on(&self, p: &P, mut g: Arc<G>) {
        if Arc::get_mut(&mut g).is_none() {
            return;
        }
        // SAFETY: the caller holds `p` (function contract).
        let l = unsafe { p.local() };
        l.gfree.push(g);
        if l.gfree.len() > P_GFREE_CACHE {
            let mut shared = crate::lock(&self.gfree);
            let keep = GLOBAL_GFREE_CAP
                .saturating_sub(shared.len())
                .min(GFREE_BATCH);
            let at = l.gfree.len() - GFREE_BATCH;
            shared.extend(l.gfree.drain(at..).take(keep));
        }
    }

    /// Counts a goroutine or task as finished. Called on an M holding a P of this runtime.
    pub(crate) fn note_exited(&'static self) {
        match self.current_p() {
            Some(here) => P::bump(&here.p.exited),
            None => {
                self.offp_exited.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    // ---- making things runnable ----------------------------------------------------------------

    /// Go's `ready`: makes `item` runnable. On an M of this runtime it goes to the current P's
    /// `runnext`; from anywhere else, to the global queue. Then an idle P gets an M if none is
    /// looking for work.
    pub(crate) fn ready(&'static self, item: RunItem) {
        self.ready_with(item, true)
    }

    fn ready_with(&'static self, item: RunItem, next: bool) {
        let alone = match self.current_p() {
            // A network poll's goroutine: `netpoll_ready` decides about waking an M once the
            // whole batch is queued. It goes to the back of the queue, in the order the poll
            // found it ready: none of a batch is about to be handed anything by a running
            // goroutine, so none should overtake work already waiting (or, through `runnext`,
            // push the next goroutine due to the back).
            Some(here) if here.ml.in_poll_batch.get() => {
                self.runqput(here.p, item, false);
                here.ml.batch_len.set(here.ml.batch_len.get() + 1);
                return;
            }
            Some(here) => {
                let alone = self.runqput(here.p, item, next);
                if alone {
                    here.ml.deferred_wake.set(DEFER_ARMED);
                }
                alone
            }
            None => {
                self.global_push(item);
                false
            }
        };
        // "A readied G does not wake an M" (see the module docs): a G that went into an empty
        // `runnext` is run by this M as soon as the current G parks or yields, which is what a
        // readying G usually does next; waking another M for it would cost a futex wake and the
        // woken M's spin, only for it to find nothing to take. The wake is put off instead.
        if !alone {
            self.wakep();
        }
    }

    /// Netpoll hook: readies the goroutines of one network poll (`wakers`) onto this M's P as a
    /// batch, with no `wakep` per goroutine, then decides once whether another M should share
    /// them (see "Network poll batches"). Returns whether there were any.
    fn netpoll_ready(&'static self, ml: &MLocal, wakers: Vec<std::task::Waker>) -> bool {
        if wakers.is_empty() {
            return false;
        }
        let pid = ml.p.get();
        if pid == NO_P {
            // No P to keep them on (the poll in `stopm` found none idle): they go to the global
            // queue, each with its `wakep`.
            wakers.into_iter().for_each(std::task::Waker::wake);
            return true;
        }
        let p = self.p(pid);
        let cost = ml.run_cost.sample(pid, p.nswitch.load(Ordering::Relaxed));
        ml.in_poll_batch.set(true);
        wakers.into_iter().for_each(std::task::Waker::wake);
        ml.in_poll_batch.set(false);
        // Something to share: more than the one goroutine this M runs next.
        let queued = p.runq.len() as u64;
        if ml.batch_len.replace(0) > 0
            && queued > 1
            && (crate::cpuload::spare_cpu()
                || cost >= SHARE_RUN_NS
                || queued * cost >= SHARE_BATCH_NS)
        {
            self.wakep();
        }
        true
    }

    /// The safe point's half of a put-off `wakep` (see `MLocal::deferred_wake`): the first safe
    /// point after the ready is usually the readying operation's own (a channel send that woke its
    /// receiver), so it only marks the wake due; a second one means the goroutine went on running
    /// instead of parking, and the readied G should not wait for it: wake an M to take it.
    pub(crate) fn deferred_wake(&'static self, ml: &MLocal) {
        match ml.deferred_wake.get() {
            DEFER_NONE => {}
            DEFER_ARMED => ml.deferred_wake.set(DEFER_DUE),
            _ => {
                ml.deferred_wake.set(DEFER_NONE);
                self.wakep();
            }
        }
    }

    /// Schedules an async task's `Runnable` (async-task's schedule function). A task that woke itself
    /// while running (it yielded) goes to the back of the queue, like `yield_now`.
    pub(crate) fn schedule_task(
        &'static self,
        r: async_task::Runnable<u64>,
        info: async_task::ScheduleInfo,
    ) {
        self.ready_with(RunItem::from_task(r), !info.woken_while_running);
    }

    /// Puts `item` on `p`'s local queue (`runnext` with `next`). Returns true when it went into an
    /// empty `runnext` and nothing else moved (see `LocalQueue::push`).
    fn runqput(&self, p: &P, item: RunItem, next: bool) -> bool {
        p.runq.push(item.0, next, &mut |batch: &mut dyn Iterator<
            Item = usize,
        >| {
            let mut l = self.lock();
            let before = l.global.len();
            l.global.extend(batch.map(RunItem));
            self.global_len.store(l.global.len(), Ordering::Relaxed);
            debug_assert!(l.global.len() > before);
        })
    }

    fn global_push(&self, item: RunItem) {
        let mut l = self.lock();
        l.global.push_back(item);
        self.global_len.store(l.global.len(), Ordering::SeqCst);
        drop(l);
        // Pairs with the spinning M's decrement-then-check in `find_runnable`: either it sees this
        // item, or the `wakep` that follows sees it no longer spinning.
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Go's `globrunqget`: takes a fair share of the global queue, runs the first item, and puts the
    /// rest on `p`'s local queue. `max == 1` takes a single item.
    fn global_get(&self, mut l: MutexGuard<'_, Locked>, p: &P, max: usize) -> Option<RunItem> {
        let len = l.global.len();
        if len == 0 {
            return None;
        }
        let procs = self.max_procs().max(1);
        let n = len
            .min(len / procs + 1)
            .min(max)
            .min(LOCAL_QUEUE_CAPACITY / 2);
        let first = l.global.pop_front();
        let mut batch = [RunItem(0); LOCAL_QUEUE_CAPACITY / 2];
        let mut taken = 0;
        for slot in batch.iter_mut().take(n - 1) {
            match l.global.pop_front() {
                Some(it) => {
                    *slot = it;
                    taken += 1;
                }
                None => break,
            }
        }
        self.global_len.store(l.global.len(), Ordering::Relaxed);
        drop(l);
        for it in &batch[..taken] {
            let _ = self.runqput(p, *it, false);
        }
        first
    }

    // ---- Ms and Ps -------------------------------------------------------------------------------

    fn pidleput(&self, l: &mut Locked, id: usize) {
        self.p(id).owner.store(pword(0, P_IDLE), Ordering::Release);
        l.pidle.push(id);
        self.npidle.fetch_add(1, Ordering::SeqCst);
    }

    /// Takes an idle P for M `m`.
    fn pidleget(&self, l: &mut Locked, m: u32) -> Option<usize> {
        let id = l.pidle.pop()?;
        self.npidle.fetch_sub(1, Ordering::SeqCst);
        self.p(id).owner.store(pword(m, P_HELD), Ordering::Release);
        Some(id)
    }

    /// A new M id, within Go's thread limit.
    fn next_m_id(&self) -> u32 {
        let n = self.threads.fetch_add(1, Ordering::Relaxed);
        let max = self.max_threads;
        if n >= max {
            // As Go's "thread exhaustion": something blocks thousands of threads at once (usually
            // blocking calls that never return); the process cannot make progress safely.
            eprintln!(
                "gort: program exceeds the {max}-thread limit (threads blocked in system calls or \
                 hogging goroutines); aborting"
            );
            std::process::abort();
        }
        u32::try_from(n + 1).expect("gort: M id overflow")
    }

    /// Go's `wakep`: if a P is idle and no M is spinning, start a spinning M on it.
    pub(crate) fn wakep(&'static self) {
        if self.npidle.load(Ordering::SeqCst) == 0 {
            return;
        }
        if self.nmspinning.load(Ordering::SeqCst) != 0
            || self
                .nmspinning
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        self.startm(true);
    }

    /// Go's `startm`: gives an idle P to an idle M (or a new one). With `spinning`, the caller has
    /// already counted the M in `nmspinning`.
    fn startm(&'static self, spinning: bool) {
        let mut l = self.lock();
        if l.pidle.is_empty() {
            drop(l);
            if spinning {
                self.nmspinning.fetch_sub(1, Ordering::SeqCst);
            }
            return;
        }
        let m = self.mget(&mut l);
        let m_id = m.as_ref().map_or_else(|| self.next_m_id(), |m| m.id);
        let pid = self
            .pidleget(&mut l, m_id)
            .expect("checked non-empty under the lock");
        drop(l);
        self.hand_p(m, m_id, pid, spinning);
    }

    /// Go's `mget`: the idle M to hand a P to, or `None` for a new one. The M blocked in the network
    /// poller is left there while another M can take the P — one sleeping on its note, or a new
    /// thread: breaking its poll would cost an eventfd write and read and an extra `epoll_wait`,
    /// and leave nobody polling until some M goes idle again (Go's poller M is not in the idle
    /// list either). Only at the thread limit is the poller's M taken.
    fn mget(&self, l: &mut Locked) -> Option<Arc<M>> {
        match l
            .midle
            .iter()
            .rposition(|m| !m.polling.load(Ordering::SeqCst))
        {
            Some(i) => Some(l.midle.remove(i)),
            None if self.threads.load(Ordering::Relaxed) < self.max_threads => None,
            None => l.midle.pop(),
        }
    }

    /// Gives P `pid` (already `P_HELD` in M `m_id`'s name) to the idle M `m`, or to a new M.
    fn hand_p(&'static self, m: Option<Arc<M>>, m_id: u32, pid: usize, spinning: bool) {
        match m {
            Some(m) => {
                self.idle_threads.fetch_sub(1, Ordering::Relaxed);
                m.next_p.store(pid + 1, Ordering::Release);
                m.next_spinning.store(spinning, Ordering::Relaxed);
                Self::wake_m(&m);
            }
            None => self.newm(m_id, pid, spinning),
        }
        // sysmon is woken by the M that receives the P (`got_p`), not here: this is the path of
        // whoever readies work, and it should cost one futex wake at most.
    }

    /// The calling M just got a P, busy from now on: sysmon must be watching (it deep-sleeps
    /// only once every P has been idle for a while; see `sysmon.rs`). One load when it is awake.
    fn got_p(&'static self) {
        crate::sysmon::wake(self);
    }

    /// Go's `handoffp`: P `pid`, taken from an M stuck in a blocking section or a long-running
    /// goroutine (its status word already names `SYSMON_M`), goes to another M if there is work for
    /// it, else to the idle list.
    pub(crate) fn handoffp(&'static self, pid: usize) {
        let p = self.p(pid);
        let mut l = self.lock();
        let has_work =
            !p.runq.is_empty() || !l.global.is_empty() || p.timers.next_deadline() != NEVER;
        // The last P to go idle while nobody blocks in the poller goes to an M that will (Go's
        // `handoffp`): the idle Ms may all be asleep on their notes, having left the poller to
        // the M this P is taken from (see `stopm`).
        let last_poller = self.npidle.load(Ordering::SeqCst) + 1 == self.max_procs()
            && crate::netpoll::needs_poller();
        if has_work
            || last_poller
            || self.nmspinning.load(Ordering::SeqCst) + self.npidle.load(Ordering::SeqCst) == 0
        {
            let m = self.mget(&mut l);
            let m_id = m.as_ref().map_or_else(|| self.next_m_id(), |m| m.id);
            p.owner.store(pword(m_id, P_HELD), Ordering::Release);
            drop(l);
            self.hand_p(m, m_id, pid, false);
        } else {
            self.pidleput(&mut l, pid);
        }
    }

    fn newm(&'static self, id: u32, pid: usize, spinning: bool) {
        let n = id;
        let m = Arc::new(M {
            id,
            note: Note::new(),
            next_p: AtomicUsize::new(0),
            next_spinning: std::sync::atomic::AtomicBool::new(false),
            in_user: AtomicBool::new(false),
            preempt: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            next_g: AtomicPtr::new(std::ptr::null_mut()),
        });
        crate::lock(&self.allm).push(m.clone());
        let sched: &'static Sched = self;
        let spawned = std::thread::Builder::new()
            .name(format!("{}-m{n}", self.name))
            .spawn(move || sched.mstart(m, pid, spinning));
        if let Err(e) = spawned {
            panic!("gort: cannot start an OS thread for the scheduler: {e}");
        }
    }

    /// The body of every M thread.
    fn mstart(&'static self, m: Arc<M>, pid: usize, spinning: bool) {
        stack::install_thread_signal_stack();
        // Timer wake-ups of idle Ms should be as precise as the kernel can make them (the default
        // 50 µs slack would double a 50 µs sleep).
        // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack; no memory is passed.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        let seed = (pid as u32).wrapping_mul(0x9E37_79B9)
            ^ (self.threads.load(Ordering::Relaxed) as u32)
            | 1;
        let ml = MLocal {
            sched: self,
            m,
            p: Cell::new(pid),
            spinning: Cell::new(spinning),
            rng: Cell::new(seed),
            curg: Cell::new(std::ptr::null()),
            handed: Cell::new(None),
            deferred_wake: Cell::new(DEFER_NONE),
            in_poll_batch: Cell::new(false),
            batch_len: Cell::new(0),
            run_cost: RunCostMeter::default(),
        };
        CURRENT_M.with(|c| c.set(&ml));
        self.got_p();
        loop {
            let (item, inherit) = match ml.handed.take() {
                Some(item) => (item, false),
                None => self.find_runnable(&ml),
            };
            if ml.spinning.get() {
                self.reset_spinning(&ml);
            }
            self.run(&ml, item, inherit);
        }
    }

    /// A spinning M found work: it stops spinning and, if it was the last spinner, wakes another M
    /// so that any further work is picked up too.
    fn reset_spinning(&'static self, ml: &MLocal) {
        ml.spinning.set(false);
        if self.nmspinning.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.wakep();
        }
    }

    /// Wakes an idle M: its note, and the network poller if it blocks there instead (netpoll hook,
    /// Go's `netpollBreak`; the fences pair with `netpoll::block`).
    fn wake_m(m: &M) {
        m.note.wake();
        std::sync::atomic::fence(Ordering::SeqCst);
        if m.polling.load(Ordering::SeqCst) {
            crate::netpoll::break_poll();
        }
    }

    /// Go's `stopm`: sleeps in the idle list until `startm` hands this M a P, or until the earliest
    /// timer is due if this M is the runtime's timer sleeper. Returns with a P from `startm`, or with
    /// none after a timer wake-up (the caller then looks for an idle P).
    fn stopm(&'static self, ml: &MLocal) {
        debug_assert_eq!(ml.p.get(), NO_P);
        ml.run_cost.pause();
        self.lock().midle.push(ml.m.clone());
        self.count_idle_m();
        loop {
            // Only an M that will find an idle P on waking sleeps until the timer: when every P is
            // busy, their Ms run the timers as they schedule, and a timed wake-up could only
            // spin here.
            let next = self.earliest_timer();
            let timed = next != NEVER
                && self.npidle.load(Ordering::SeqCst) > 0
                && self.become_timer_sleeper(ml, next);
            // Without its timerfd the poller's timeout has millisecond granularity (epoll): the last
            // stretch before a timer is then waited on the futex instead, to the microsecond
            // (`sleep_until_timer`), while sockets are polled by busy Ps, sysmon and any other idle
            // M. With it, the poll itself ends on time and the M stays in the poller.
            let poll_precise = crate::netpoll::precise_timeouts();
            let precise =
                timed && !poll_precise && next.saturating_sub(timer::clock_ns()) < PRECISE_TIMER_NS;
            // When a timed poll should end: with the timerfd, early by the lateness the kernel has
            // been showing, the rest being spun out as in `sleep_until_timer`.
            let timer_wake = if poll_precise {
                next.saturating_sub(self.timer_early())
            } else {
                next.saturating_sub(PRECISE_TIMER_NS)
            };
            // Netpoll hook: while sockets are registered and a P is idle, one idle M blocks in
            // the poller instead of its note, with the same timeout (see `netpoll.rs`). With every
            // P busy it does not: what it readied could only go to the global queue, which busy Ps
            // drain one item per 61 ticks, while their own polls feed their local queues.
            //
            // But not while another M holds a P and keeps polling (it polls whenever its queue runs
            // dry): a blocked poller would be woken by the kernel for readiness that M is about to
            // find itself, and the two would hand every event back and forth with a context switch
            // each (tokio's workers converge the same way: one that parks while another holds the
            // driver sleeps on its condvar). Such an M sleeps on its note. If the busy Ms stop
            // polling (a long goroutine, a descheduled thread), sysmon notices within
            // `POLL_STALE_NS` and wakes an M to take the poller (see `sysmon.rs`). The last M to
            // go idle always blocks in the poller, and `handoffp` gives the last P to go idle
            // otherwise an M that will.
            let idle_ps = self.npidle.load(Ordering::SeqCst);
            let polled = if !precise && idle_ps > 0 {
                if idle_ps < self.max_procs()
                    && crate::netpoll::polled_within(crate::sysmon::POLL_STALE_NS)
                {
                    Err(crate::netpoll::NotPolled::Held)
                } else {
                    let wake_at = timed.then_some(timer_wake);
                    crate::netpoll::block(&ml.m.polling, &ml.m.note, wake_at)
                }
            } else {
                Err(crate::netpoll::NotPolled::Nothing)
            };
            match &polled {
                Ok(ready) => {
                    // Consume a hand-off's or a timer poke's note wake: both are checked below.
                    let woken = ml.m.note.sleep_timeout(std::time::Duration::ZERO);
                    if timed && poll_precise && !woken && ready.is_empty() {
                        let now = timer::clock_ns();
                        if now >= timer_wake {
                            self.note_timer_lateness(now - timer_wake);
                            self.spin_until_timer(ml, next);
                        }
                    }
                }
                // Another thread held the poller for a moment: do not sleep for good, or nobody
                // might be left polling; come back shortly and try again.
                Err(crate::netpoll::NotPolled::Busy) => {
                    let retry = crate::netpoll::BUSY_RETRY;
                    let d = if timed {
                        timer::until(next).min(retry)
                    } else {
                        retry
                    };
                    ml.m.note.sleep_timeout(d);
                }
                Err(_) if timed => self.sleep_until_timer(ml, next),
                Err(_) => ml.m.note.sleep(),
            }
            if timed {
                self.leave_timer_sleeper(ml);
            }
            let ready = polled.unwrap_or_default();
            let handed = ml.m.next_p.swap(0, Ordering::Acquire);
            if handed != 0 {
                ml.p.set(handed - 1);
                ml.spinning.set(ml.m.next_spinning.load(Ordering::Relaxed));
                self.got_p();
                // Goroutines the poll readied go to the P just handed to us.
                self.netpoll_ready(ml, ready);
                return;
            }
            // A timer is due (or a new earlier one was added), or the poll readied goroutines:
            // leave the idle list and go find a P, unless `startm` already took this M off the
            // list, in which case a P is on its way.
            let mut l = self.lock();
            if let Some(i) = l.midle.iter().position(|m| Arc::ptr_eq(m, &ml.m)) {
                l.midle.swap_remove(i);
                self.idle_threads.fetch_sub(1, Ordering::Relaxed);
                if !ready.is_empty() {
                    // Take an idle P now, so the readied goroutines land in its run queue.
                    if let Some(id) = self.pidleget(&mut l, ml.m.id) {
                        ml.p.set(id);
                        Self::netpoll_tick(self.p(id));
                    }
                }
                drop(l);
                if ml.p.get() != NO_P {
                    self.got_p();
                }
                self.netpoll_ready(ml, ready);
                return;
            }
            drop(l);
            ready.into_iter().for_each(std::task::Waker::wake);
        }
    }

    /// Counts the calling M as asleep (in `idle_threads`). The last M to fall asleep has sysmon look
    /// for a deadlock (Go's `checkdead`, which `mput` calls).
    fn count_idle_m(&'static self) {
        let idle = self.idle_threads.fetch_add(1, Ordering::SeqCst) + 1;
        if idle == self.threads.load(Ordering::SeqCst) && self.main_running.load(Ordering::SeqCst) {
            crate::sysmon::wake(self);
        }
    }

    /// Go's `stoplockedm`: the G locked to this M switched out (it is parked or queued). Hands the
    /// M's P on, if it still has one, and sleeps until `startlockedm` hands the G back with a P;
    /// the scheduler loop then runs it (`MLocal::handed`).
    fn stoplockedm(&'static self, ml: &MLocal) {
        let pid = ml.p.replace(NO_P);
        if pid != NO_P {
            // Not in user code, so sysmon leaves the word alone; `handoffp` takes it from here.
            self.p(pid)
                .owner
                .store(pword(SYSMON_M, P_HELD), Ordering::Release);
            self.handoffp(pid);
        }
        if ml.spinning.replace(false) {
            self.nmspinning.fetch_sub(1, Ordering::SeqCst);
        }
        self.count_idle_m();
        let g = loop {
            ml.m.note.sleep();
            let g = ml.m.next_g.swap(std::ptr::null_mut(), Ordering::Acquire);
            if !g.is_null() {
                break g;
            }
        };
        self.idle_threads.fetch_sub(1, Ordering::SeqCst);
        let handed = ml.m.next_p.swap(0, Ordering::Acquire);
        assert_ne!(
            handed, 0,
            "gort: a locked goroutine was handed over without a P"
        );
        ml.p.set(handed - 1);
        ml.handed.set(Some(RunItem::from_g_raw(g)));
    }

    /// Go's `startlockedm`: `g` came out of a run queue but is locked to M `m_id`. Hands it and this
    /// M's P to that M and wakes it; this M goes back to the scheduler loop without a P.
    fn startlockedm(&'static self, ml: &MLocal, g: Arc<G>, m_id: u32) {
        let m = self
            .m_by_id(m_id)
            .expect("gort: a goroutine is locked to an M that does not exist");
        let pid = ml.p.replace(NO_P);
        self.p(pid)
            .owner
            .store(pword(m_id, P_HELD), Ordering::Release);
        m.next_p.store(pid + 1, Ordering::Relaxed);
        // Release: the locked M reads `next_p` (and the P's state) after it sees the G.
        m.next_g
            .store(Arc::into_raw(g).cast_mut(), Ordering::Release);
        m.note.wake();
    }

    /// Netpoll hook: goroutines a poll readied start a new time slice. They are readied into
    /// `runnext`, whose pop inherits the slice; without this, a P fed only by its polls would never
    /// advance `schedtick`, so it would never look at the global queue (every 61 ticks) and
    /// sysmon would take it for a hog.
    fn netpoll_tick(p: &P) {
        p.schedtick.store(
            p.schedtick.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// The earliest timer deadline over all Ps, or [`NEVER`].
    fn earliest_timer(&self) -> u64 {
        self.allp
            .iter()
            .filter_map(|p| p.get())
            .map(|p| p.timers.next_deadline())
            .min()
            .unwrap_or(NEVER)
    }

    fn become_timer_sleeper(&self, ml: &MLocal, until: u64) -> bool {
        let mut s = crate::lock(&self.timer_sleeper);
        if s.as_ref().is_some_and(|(_, cur)| *cur <= until) {
            return false;
        }
        *s = Some((ml.m.clone(), until));
        self.timer_sleep_until.store(until, Ordering::SeqCst);
        true
    }

    /// The timer sleeper's wait for deadline `next` (or an earlier wake). The kernel wakes a timed
    /// futex wait late — 20-30 µs on this project's VMs, which would turn a 50 µs sleep into 80 —
    /// so the M sleeps until `next` minus the lateness it has been seeing (a running average,
    /// capped at `TIMER_SPIN_MAX_NS`) and spins out the rest, watching its note.
    fn sleep_until_timer(&self, ml: &MLocal, next: u64) {
        let target = next.saturating_sub(self.timer_early());
        let now = timer::clock_ns();
        if target > now {
            if ml
                .m
                .note
                .sleep_timeout(std::time::Duration::from_nanos(target - now))
            {
                return;
            }
            self.note_timer_lateness(timer::clock_ns().saturating_sub(target));
        }
        self.spin_until_timer(ml, next);
    }

    /// How early the timer sleeper ends its timed wait (futex or poll) and spins instead.
    fn timer_early(&self) -> u64 {
        self.timer_lateness
            .load(Ordering::Relaxed)
            .min(TIMER_SPIN_MAX_NS)
    }

    /// A timed wait ended `late` ns after it was asked to: folds it into the running average.
    fn note_timer_lateness(&self, late: u64) {
        let avg = self.timer_lateness.load(Ordering::Relaxed);
        self.timer_lateness
            .store(crate::smooth(avg, late), Ordering::Relaxed);
    }

    /// Spins until the timer deadline `next`, or until the M's note is woken.
    fn spin_until_timer(&self, ml: &MLocal, next: u64) {
        while timer::clock_ns() < next {
            if ml.m.note.try_consume() {
                return;
            }
            std::hint::spin_loop();
        }
    }

    fn leave_timer_sleeper(&self, ml: &MLocal) {
        let mut s = crate::lock(&self.timer_sleeper);
        if s.as_ref().is_some_and(|(m, _)| Arc::ptr_eq(m, &ml.m)) {
            *s = None;
            self.timer_sleep_until.store(NEVER, Ordering::SeqCst);
        }
    }

    /// Registers a timer (see `timer::add`): on the current P's heap, or off the runtime's threads on
    /// a P chosen round-robin. A timer earlier than what the timer sleeper waits for pokes it.
    pub(crate) fn add_timer(&'static self, when: u64, waker: std::task::Waker) -> TimerHandle {
        let heap = match self.current_p_index() {
            Some(i) => &self.p(i).timers,
            None => {
                let i = self.offp_timer_rr.fetch_add(1, Ordering::Relaxed) % self.max_procs();
                &self.p(i).timers
            }
        };
        let (handle, earliest) = heap.push(when, waker);
        if earliest && when < self.timer_sleep_until.load(Ordering::SeqCst) {
            let s = crate::lock(&self.timer_sleeper);
            match s.as_ref() {
                Some((m, until)) if when < *until => Self::wake_m(m),
                Some(_) => {}
                None => {
                    drop(s);
                    self.wakep();
                }
            }
        }
        handle
    }

    /// Fires the due timers of every P. Returns whether any fired.
    fn run_all_timers(&self) -> bool {
        let mut now = None;
        let mut fired = false;
        for p in self.allp.iter().filter_map(|p| p.get()) {
            if p.timers.next_deadline() != NEVER {
                let now = *now.get_or_insert_with(timer::clock_ns);
                fired |= p.timers.run(now) > 0;
            }
        }
        fired
    }

    fn next_rand(ml: &MLocal) -> u32 {
        let mut x = ml.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        ml.rng.set(x);
        x
    }

    /// Go's `findRunnable` (see the module docs). Returns the item and whether it inherits the time
    /// slice. Blocks while there is nothing to run.
    fn find_runnable(&'static self, ml: &MLocal) -> (RunItem, bool) {
        'top: loop {
            let pid = ml.p.get();
            if pid == NO_P {
                let got = self.pidleget(&mut self.lock(), ml.m.id);
                match got {
                    Some(id) => {
                        ml.p.set(id);
                        self.got_p();
                    }
                    None => self.stopm(ml),
                }
                continue 'top;
            }
            let procs = self.max_procs();
            if pid >= procs {
                self.retire_p(ml);
                continue 'top;
            }
            let p = self.p(pid);
            if p.timers.next_deadline() != NEVER {
                p.timers.run(timer::clock_ns());
            }
            let tick = p.schedtick.load(Ordering::Relaxed);
            if tick % GLOBAL_QUEUE_TICK == 0 {
                if self.global_len.load(Ordering::Relaxed) > 0 {
                    if let Some(it) = self.global_get(self.lock(), p, 1) {
                        return (it, false);
                    }
                }
                // Netpoll hook: a busy P also polls now and then, so sockets that became ready
                // do not wait for the run queue to drain (bounds I/O latency under load).
                // What it readies starts a new slice (`netpoll_tick`), which also moves the tick
                // off this multiple of 61: a P fed only by these polls would otherwise stay on it,
                // poll at every schedule, and look to sysmon like a hog to preempt.
                if self.netpoll_ready(ml, crate::netpoll::poll_nonblocking()) {
                    Self::netpoll_tick(p);
                }
            }
            if let Some((it, inherit)) = p.runq.pop() {
                return (RunItem(it), inherit);
            }
            if self.global_len.load(Ordering::Relaxed) > 0 {
                if let Some(it) = self.global_get(self.lock(), p, usize::MAX) {
                    return (it, false);
                }
            }

            // Netpoll hook: readiness that arrived while every M was busy (Go's `netpoll(0)` in
            // `findRunnable`); the readied goroutines go to this P's run queue.
            if self.netpoll_ready(ml, crate::netpoll::poll_nonblocking()) {
                Self::netpoll_tick(p);
                continue 'top;
            }

            // Steal, if spinning is allowed: at most half of the busy Ps may have spinning Ms.
            let busy = procs.saturating_sub(self.npidle.load(Ordering::SeqCst));
            if ml.spinning.get() || 2 * self.nmspinning.load(Ordering::SeqCst) < busy {
                if !ml.spinning.get() {
                    ml.spinning.set(true);
                    self.nmspinning.fetch_add(1, Ordering::SeqCst);
                }
                for pass in 0..STEAL_TRIES {
                    let start = Self::next_rand(ml) as usize % procs;
                    for i in 0..procs {
                        let victim = (start + i) % procs;
                        if victim == pid {
                            continue;
                        }
                        let Some(v) = self.allp[victim].get() else {
                            continue;
                        };
                        // Last pass: take a running victim's runnext too, after giving it a
                        // moment to run it itself (inside steal_into), and only if the victim
                        // ran nothing else meanwhile: a P that keeps switching (a ping-pong
                        // pair handing each other runnext) is not stuck, and moving the pair to
                        // another M would only add wake-ups and cache misses.
                        let take_next = pass == STEAL_TRIES - 1
                            && matches!(v.state(), P_HELD | P_RETAKING | P_SYSCALL);
                        let seen = v.nswitch.load(Ordering::Relaxed);
                        let stuck = || v.nswitch.load(Ordering::Relaxed) == seen;
                        if let Some(it) = v.runq.steal_into_if(&p.runq, take_next, stuck) {
                            return (RunItem(it), false);
                        }
                    }
                }
            }

            // Due timers of any P (idle Ps' included) may ready goroutines onto this P.
            if self.run_all_timers() {
                continue 'top;
            }

            // Nothing anywhere: give the P back, unless the global queue filled meanwhile.
            let mut l = self.lock();
            if !l.global.is_empty() {
                if let Some(it) = self.global_get(l, p, usize::MAX) {
                    return (it, false);
                }
                continue 'top;
            }
            self.pidleput(&mut l, pid);
            ml.p.set(NO_P);
            drop(l);

            // Leaving the spinning state: work submitted while we spun may have seen nmspinning > 0
            // and not woken anyone, so look at every queue once more after the decrement.
            if ml.spinning.replace(false) {
                self.nmspinning.fetch_sub(1, Ordering::SeqCst);
                // The global queue too (Go's findRunnable, golang/go#43997): a plain thread that
                // pushed there while we still counted as spinning did not wake anyone.
                let work_waits = self.global_len.load(Ordering::SeqCst) > 0
                    || self.allp[..procs]
                        .iter()
                        .filter_map(|p| p.get())
                        .any(|p| !p.runq.is_empty());
                if work_waits {
                    let got = self.pidleget(&mut self.lock(), ml.m.id);
                    if let Some(id) = got {
                        ml.p.set(id);
                        ml.spinning.set(true);
                        self.nmspinning.fetch_add(1, Ordering::SeqCst);
                        self.got_p();
                        continue 'top;
                    }
                }
            }
            self.stopm(ml);
        }
    }

    /// The M's P is past `max_procs` after a shrink: move its work to the global queue and retire it.
    fn retire_p(&'static self, ml: &MLocal) {
        let pid = ml.p.get();
        let p = self.p(pid);
        let mut items = Vec::new();
        p.runq.drain(&mut |it| items.push(RunItem(it)));
        // The P may stay retired for good: hand its caches to the runtime.
        // SAFETY: this M still holds `p`.
        let l = unsafe { p.local() };
        for s in l.stacks.drain(..) {
            self.stacks.free(s);
        }
        crate::lock(&self.gfree).append(&mut l.gfree);
        let mut l = self.lock();
        if pid < self.max_procs() {
            // max_procs grew back meanwhile: keep the P, put its work back in the global queue.
        } else {
            p.owner.store(pword(0, P_DEAD), Ordering::Release);
            ml.p.set(NO_P);
        }
        l.global.extend(items);
        self.global_len.store(l.global.len(), Ordering::Relaxed);
        drop(l);
        if ml.p.get() == NO_P && ml.spinning.replace(false) {
            self.nmspinning.fetch_sub(1, Ordering::SeqCst);
        }
        self.wakep();
    }

    /// Go's `GOMAXPROCS(n)`: changes the number of Ps and returns the previous value. A shrink takes
    /// effect as each surplus P's M next enters the scheduler (goroutines are not preempted yet).
    pub(crate) fn set_max_procs(&'static self, n: usize) -> usize {
        assert!(
            n <= MAX_PROCS,
            "gort: set_max_procs({n}): at most {MAX_PROCS} procs are supported"
        );
        if n == 0 {
            return self.max_procs();
        }
        let mut l = self.lock();
        let old = self.gomaxprocs.swap(n, Ordering::SeqCst);
        if n > old {
            for id in old..n {
                let p = self.p_or_create(id);
                // A P retired by a shrink (or never used) joins the idle list; one whose M has not
                // noticed the shrink yet simply stays with that M.
                if matches!(p.state(), P_IDLE | P_DEAD) && !l.pidle.contains(&id) {
                    self.pidleput(&mut l, id);
                }
            }
        } else {
            let before = l.pidle.len();
            l.pidle.retain(|&id| {
                if id >= n {
                    self.p(id).owner.store(pword(0, P_DEAD), Ordering::Release);
                    false
                } else {
                    true
                }
            });
            self.npidle
                .fetch_sub(before - l.pidle.len(), Ordering::SeqCst);
        }
        drop(l);
        self.wakep();
        old
    }

    // ---- running ---------------------------------------------------------------------------------

    fn run(&'static self, ml: &MLocal, item: RunItem, inherit: bool) {
        let p = self.p(ml.p.get());
        if !inherit {
            // Single writer (the owner); sysmon only reads it.
            p.schedtick.store(
                p.schedtick.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
        }
        p.nswitch.store(
            p.nswitch.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        p.preempt.store(false, Ordering::Relaxed);
        ml.m.preempt.store(false, Ordering::Relaxed);
        // SAFETY: the item came out of a run queue, which owns what it points at.
        match unsafe { item.into_work() } {
            Work::G(g) => {
                let locked_to = g.locked_m.load(Ordering::Relaxed);
                if locked_to != 0 && locked_to != ml.m.id {
                    self.startlockedm(ml, g, locked_to);
                } else if self.execute(ml, g) {
                    self.stoplockedm(ml);
                }
            }
            Work::Task(r) => {
                stack::set_running_goroutine(*r.metadata());
                self.enter_user(ml);
                r.run();
                self.leave_user(ml, false);
                stack::set_running_goroutine(0);
                // As after a goroutine: this M runs what the poll readied next.
                ml.deferred_wake.set(DEFER_NONE);
            }
        }
    }

    /// About to run user code (a goroutine or a task's poll): from here sysmon may retake the P
    /// if the code runs too long or blocks. The Release store publishes this M's writes to the
    /// P's local state to whoever retakes it.
    fn enter_user(&self, ml: &MLocal) {
        ml.m.in_user.store(true, Ordering::Release);
    }

    /// Back from user code: the M confirms it still holds its P (see "Taking a P from user code").
    /// Returns `false`, with `ml.p` cleared, if the P was retaken meanwhile (or given up by a
    /// blocking section that found no P on its way out).
    ///
    /// With `in_blocking_call`, a P this M left on offer in a blocking section (`P_SYSCALL`) is not
    /// held but stays claimed (`ml.p` kept): the caller is a runtime call made inside `blocking(f)`,
    /// which goes back to the blocking section.
    fn leave_user(&self, ml: &MLocal, in_blocking_call: bool) -> bool {
        ml.m.in_user.store(false, Ordering::Relaxed);
        crate::fence::light();
        let pid = ml.p.get();
        if pid == NO_P {
            return false;
        }
        let mine = pword(ml.m.id, P_HELD);
        let owner = &self.p(pid).owner;
        let mut w = owner.load(Ordering::Acquire);
        let mut spins = 0u32;
        while w == pword(ml.m.id, P_RETAKING) {
            // sysmon is between its claim and its decision: a few instructions and one
            // membarrier, unless the OS preempted it.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            w = owner.load(Ordering::Acquire);
        }
        let kept = w == mine;
        if !kept && in_blocking_call && w == pword(ml.m.id, P_SYSCALL) {
            return false;
        }
        if !kept {
            ml.p.set(NO_P);
            if ml.spinning.replace(false) {
                self.nmspinning.fetch_sub(1, Ordering::SeqCst);
            }
        }
        kept
    }

    /// Go's `execute`: switches to `g` and handles why it came back. Returns whether `g` switched
    /// out locked to this M (the caller then waits for it, `stoplockedm`).
    fn execute(&'static self, ml: &MLocal, g: Arc<G>) -> bool {
        let gp = Arc::as_ptr(&g);
        loop {
            ml.curg.set(gp);
            stack::set_running_goroutine(g.id.as_u64());
            // SAFETY: this M holds the G's scheduling reference, so it alone touches the coroutine.
            let coroutine = unsafe { g.coroutine(|| self.take_stack(ml)) };
            self.enter_user(ml);
            g.running.store(true, Ordering::Relaxed);
            let result = coroutine.resume(());
            g.running.store(false, Ordering::Relaxed);
            let kept = self.leave_user(ml, false);
            ml.curg.set(std::ptr::null());
            stack::set_running_goroutine(0);
            // This M runs what the goroutine readied next, if anyone does: no wake is owed.
            ml.deferred_wake.set(DEFER_NONE);
            // Read before the G can be woken elsewhere; only the G itself changes it.
            let locked = g.locked_m.load(Ordering::Relaxed) == ml.m.id;
            match result {
                CoroutineResult::Yield(why) => {
                    g.check_stack();
                    if why == Suspend::Park {
                        match g.park_state.compare_exchange(
                            g::RUNNING,
                            g::PARKED,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => {
                                g.wait_since.store(
                                    self.coarse_now.load(Ordering::Relaxed),
                                    Ordering::Relaxed,
                                );
                                // The park keeps the scheduling reference; the waker that wins
                                // PARKED -> RUNNING turns it back into a run queue entry.
                                std::mem::forget(g);
                                return locked;
                            }
                            Err(_) => {
                                // A wake arrived before we could park: consume it, run again.
                                g.park_state.store(g::RUNNING, Ordering::Relaxed);
                                if kept {
                                    continue;
                                }
                            }
                        }
                    }
                    if !kept || why == Suspend::Preempt {
                        // Without a P (it was retaken: this M goes idle next), or preempted so that
                        // others get a turn: behind everything else, on the global queue.
                        self.global_push(RunItem::from_g(g));
                        self.wakep();
                    } else {
                        // Back of the local queue. The global queue still gets its turn every 61
                        // ticks; sending every yield through its lock (as Go's Gosched does) would
                        // serialize yield-heavy programs on that lock.
                        let _ = self.runqput(self.p(ml.p.get()), RunItem::from_g(g), false);
                    }
                    return locked;
                }
                CoroutineResult::Return(()) => {
                    g.check_stack();
                    // A goroutine that ends locked (its guard leaked) leaves the thread to the
                    // scheduler, as if it had unlocked (`false` below; `G::reinit` clears the
                    // lock before the G is reused).
                    // SAFETY: as above; the coroutine has finished, so its stack can be reused.
                    let finished = unsafe { g.take_coroutine() };
                    if kept {
                        if let Some(c) = finished {
                            self.put_stack(ml, c.into_stack());
                        }
                        // This M holds its P in runtime code: no need to look it up again.
                        let p = self.p(ml.p.get());
                        P::bump(&p.exited);
                        self.gfput_on(p, g);
                    } else {
                        if let Some(c) = finished {
                            self.stacks.free(c.into_stack());
                        }
                        self.offp_exited.fetch_add(1, Ordering::Relaxed);
                    }
                    return false;
                }
            }
        }
    }

    /// A stack for a G that starts running: the most recently freed one of this P's cache (warm in
    /// cache and TLB), else one from the runtime's allocator.
    fn take_stack(&self, ml: &MLocal) -> Stack {
        let p = self.p(ml.p.get());
        // SAFETY: this M holds `p`.
        unsafe { p.local() }
            .stacks
            .pop()
            .unwrap_or_else(|| self.stacks.alloc())
    }

    fn put_stack(&self, ml: &MLocal, s: Stack) {
        let p = self.p(ml.p.get());
        // SAFETY: this M holds `p`.
        let l = unsafe { p.local() };
        l.stacks.push(s);
        if l.stacks.len() > P_STACK_CACHE {
            for s in l.stacks.drain(..P_STACK_CACHE / 2) {
                self.stacks.free(s);
            }
        }
    }

    // ---- sysmon, blocking sections, safe points -------------------------------------------------

    /// Starts sysmon if schedtrace wants it even before any M runs.
    pub(crate) fn start_tracing(&'static self) {
        if self.schedtrace.is_some() {
            crate::sysmon::wake(self);
        }
    }

    pub(crate) fn sysmon(&self) -> &Sysmon {
        &self.sysmon
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn schedtrace_every(&self) -> Option<std::time::Duration> {
        self.schedtrace
    }

    /// Go's schedtrace line: procs, idle procs, threads, spinning and idle threads, the global
    /// queue and each P's local queue.
    pub(crate) fn schedtrace_line(&self) -> String {
        let s = self.stats();
        format!(
            "gomaxprocs={} idleprocs={} threads={} spinningthreads={} idlethreads={} runqueue={} [{}] {}",
            s.procs, s.idle_procs, s.threads, s.spinning_threads, s.idle_threads, s.global_queue,
            s.local_queues.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" "),
            crate::cpuload::trace()
        )
    }

    /// Whether some P is idle (and could run what a poll readies).
    pub(crate) fn has_idle_p(&self) -> bool {
        self.npidle.load(Ordering::SeqCst) > 0
    }

    /// Whether no goroutine can be running: every P is idle.
    pub(crate) fn all_procs_idle(&self) -> bool {
        self.npidle.load(Ordering::SeqCst) >= self.max_procs()
    }

    /// Whether the goroutine running on `ml` must yield at a safe point: sysmon flagged it, or its
    /// M has no P any more.
    #[inline]
    pub(crate) fn must_yield(&self, ml: &MLocal) -> bool {
        ml.m.preempt.load(Ordering::Relaxed) || ml.p.get() == NO_P
    }

    /// The M with id `id`, if one was started (sysmon's rare look-ups).
    fn m_by_id(&self, id: u32) -> Option<Arc<M>> {
        crate::lock(&self.allm).iter().find(|m| m.id == id).cloned()
    }

    /// sysmon's round over the Ps (see `sysmon.rs`). Returns how many Ps it acted on.
    pub(crate) fn retake(&'static self, records: &mut Vec<PRecord>, now: u64) -> usize {
        let procs = self.max_procs();
        if records.len() < procs {
            records.resize(procs, PRecord::default());
        }
        let mut acted = 0;
        for (pid, rec) in records.iter_mut().enumerate().take(procs) {
            let Some(p) = self.allp[pid].get() else {
                continue;
            };
            let w = p.owner.load(Ordering::Acquire);
            // A readied G waits in its P's `runnext` without waking an M (see `ready_with`). If
            // that P has switched to nothing else since the last round, its M is busy with
            // something long: give the waiting work an M of its own, as `wakep` would have at
            // the `ready`. A P that keeps switching (a ping-pong pair, a busy server) is left
            // alone: its M gets to the waiting G soon.
            let nswitch = p.nswitch.load(Ordering::Relaxed);
            let switched = nswitch != rec.nswitch;
            rec.nswitch = nswitch;
            if !switched
                && w & P_STATE_MASK != P_IDLE
                && !p.runq.is_empty()
                && self.npidle.load(Ordering::SeqCst) > 0
                && self.nmspinning.load(Ordering::SeqCst) == 0
            {
                self.wakep();
                acted += 1;
            }
            match w & P_STATE_MASK {
                P_HELD => {
                    rec.syscall_seen = false;
                    let t = p.schedtick.load(Ordering::Relaxed);
                    if t != rec.schedtick {
                        rec.schedtick = t;
                        rec.schedwhen = now;
                        rec.flagged_at = 0;
                        continue;
                    }
                    let ran = now.saturating_sub(rec.schedwhen);
                    if ran < FORCE_PREEMPT_NS {
                        continue;
                    }
                    if !p.preempt.swap(true, Ordering::Relaxed) || rec.flagged_at == 0 {
                        if let Some(m) = self.m_by_id((w >> 32) as u32) {
                            m.preempt.store(true, Ordering::Relaxed);
                        }
                        rec.flagged_at = now;
                        acted += 1;
                        continue;
                    }
                    // The flag has been ignored for at least another sysmon round and the grace
                    // period: a loop without runtime calls, or a call that blocks the thread. Take
                    // the P (only out of user code).
                    if now.saturating_sub(rec.flagged_at) >= PREEMPT_GRACE_NS
                        && self.retake_from_user(p, w)
                    {
                        rec.flagged_at = 0;
                        rec.schedwhen = now;
                        p.preempt.store(false, Ordering::Relaxed);
                        self.handoffp(pid);
                        acted += 1;
                    }
                }
                P_SYSCALL => {
                    let t = p.syscalltick.load(Ordering::Relaxed);
                    if !rec.syscall_seen || t != rec.syscalltick {
                        rec.syscall_seen = true;
                        rec.syscalltick = t;
                        continue;
                    }
                    // In the same blocking section for a whole round: hand the P off.
                    if p.owner
                        .compare_exchange(
                            w,
                            pword(SYSMON_M, P_HELD),
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        rec.syscall_seen = false;
                        self.handoffp(pid);
                        acted += 1;
                    }
                }
                _ => rec.syscall_seen = false,
            }
        }
        acted
    }

    /// sysmon's side of "Taking a P from user code": takes P `p`, whose word was `w`
    /// (`pword(m, P_HELD)`), from M `m` if that M is in user code. On success the word is
    /// `pword(SYSMON_M, P_HELD)` and the caller must hand the P on.
    fn retake_from_user(&self, p: &P, w: u64) -> bool {
        let m_id = (w >> 32) as u32;
        if m_id == SYSMON_M {
            return false;
        }
        let Some(m) = self.m_by_id(m_id) else {
            return false;
        };
        if !m.in_user.load(Ordering::Relaxed) {
            return false; // in runtime code now; not worth a fence
        }
        if p.owner
            .compare_exchange(
                w,
                pword(m_id, P_RETAKING),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        crate::fence::heavy();
        if m.in_user.load(Ordering::Acquire) {
            // The M is in user code and will find the claim when it leaves: the P is ours. Its
            // goroutine gives the M back at its next safe point.
            p.owner.store(pword(SYSMON_M, P_HELD), Ordering::Release);
            m.preempt.store(true, Ordering::Relaxed);
            true
        } else {
            // The M is back in runtime code (or about to look): it keeps the P.
            p.owner.store(w, Ordering::Release);
            false
        }
    }

    /// Go's `entersyscall`: the calling goroutine is about to block its thread in `f` of
    /// `blocking(f)`. Its P becomes `P_SYSCALL`, retakeable; if other work is waiting it is handed
    /// off at once.
    pub(crate) fn entersyscall(&'static self, ml: &MLocal) {
        let pid = ml.p.get();
        if pid == NO_P {
            return;
        }
        let p = self.p(pid);
        let me = ml.m.id;
        if p.owner
            .compare_exchange(
                pword(me, P_HELD),
                pword(me, P_SYSCALL),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return; // already retaken: the exit path finds another P or queues the goroutine
        }
        p.syscalltick.store(
            p.syscalltick.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        if (!p.runq.is_empty() || self.global_len.load(Ordering::Relaxed) > 0)
            && p.owner
                .compare_exchange(
                    pword(me, P_SYSCALL),
                    pword(SYSMON_M, P_HELD),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.handoffp(pid);
        }
        crate::sysmon::wake(self);
    }

    /// Go's `exitsyscall`: the blocking call returned. Keeps the P if it is still ours, else takes
    /// an idle one, else queues the goroutine and gives the M back (the goroutine resumes later on
    /// whichever M picks it up).
    pub(crate) fn exitsyscall(&'static self) {
        let Some(ml) = current_m() else { return };
        let me = ml.m.id;
        let pid = ml.p.get();
        if pid != NO_P {
            let p = self.p(pid);
            let w = p.owner.load(Ordering::Acquire);
            if w == pword(me, P_HELD) {
                return;
            }
            if w == pword(me, P_SYSCALL)
                && p.owner
                    .compare_exchange(w, pword(me, P_HELD), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        let got = self.pidleget(&mut self.lock(), me);
        match got {
            // The goroutine goes on in user code (`in_user` is still set), now on P `id`.
            Some(id) => {
                ml.p.set(id);
                self.got_p();
            }
            None => {
                ml.p.set(NO_P);
                g::suspend(g::current_g(), Suspend::Preempt);
            }
        }
    }

    // ---- the goroutine registry, dumps, the deadlock check --------------------------------------

    fn register_g(&self, g: &Arc<G>) {
        crate::lock(&self.allgs).insert(Arc::as_ptr(g) as usize);
    }

    pub(crate) fn unregister_g(&self, g: &G) {
        crate::lock(&self.allgs).remove(&(g as *const G as usize));
    }

    /// Advances the coarse clock (sysmon, each round).
    pub(crate) fn tick_coarse_clock(&self, now: u64) {
        self.coarse_now.store(now, Ordering::Relaxed);
    }

    /// A goroutine dump, Go style: one paragraph per live goroutine with its id, its state (running,
    /// runnable, or the reason it waits and for how long) and where it was spawned.
    pub(crate) fn dump(&self) -> String {
        use std::fmt::Write;
        let now = timer::clock_ns();
        let mut rows = Vec::new();
        {
            let allgs = crate::lock(&self.allgs);
            for &addr in allgs.iter() {
                // SAFETY: a G stays allocated while it is in `allgs` (its Drop removes it under this
                // lock, which we hold); every field read here is atomic.
                let g = unsafe { &*(addr as *const G) };
                if !g.is_live() {
                    continue;
                }
                let state = if g.running.load(Ordering::Relaxed) {
                    "running".to_string()
                } else if g.park_state.load(Ordering::Acquire) == g::PARKED {
                    let since = g.wait_since.load(Ordering::Relaxed);
                    let waited = std::time::Duration::from_nanos(now.saturating_sub(since));
                    format!("{}, {}", g.wait_reason(), fmt_wait(waited))
                } else {
                    "runnable".to_string()
                };
                let at = g
                    .created_at()
                    .map_or_else(|| "unknown".to_string(), |l| l.to_string());
                let stack = if g.park_state.load(Ordering::Acquire) == g::PARKED {
                    g.wait_stack()
                } else {
                    None
                };
                rows.push((g.id.as_u64(), state, at, stack));
            }
        }
        rows.sort();
        let mut out = String::new();
        for (id, state, at, stack) in rows {
            let _ = writeln!(out, "goroutine {id} [{state}]:");
            if let Some(stack) = stack {
                out.push_str(&stack);
            }
            let _ = write!(out, "created at {at}\n\n");
        }
        out
    }

    /// Go's `checkdead`: with `run_main`'s main goroutine blocked, is the program stuck for good?
    /// Only when nothing could ever wake anything: every P idle and every M asleep (no goroutine
    /// running, none runnable, none in a blocking section), no timer pending, and no thread in the
    /// process besides the runtime's own and the one waiting in `run_main` (any other thread might
    /// still send on a channel or release a lock).
    pub(crate) fn is_deadlocked(&self) -> bool {
        if !self.main_running.load(Ordering::SeqCst) || !self.all_procs_idle() {
            return false;
        }
        let threads = self.threads.load(Ordering::SeqCst);
        if self.idle_threads.load(Ordering::SeqCst) != threads
            || self.nmspinning.load(Ordering::SeqCst) != 0
            || self.global_len.load(Ordering::SeqCst) != 0
            || self.earliest_timer() != NEVER
            || crate::netpoll::has_waiters()
            || self
                .allp
                .iter()
                .filter_map(|p| p.get())
                .any(|p| !p.runq.is_empty())
        {
            return false;
        }
        // The runtime's Ms, sysmon, and the thread blocked in run_main: anything else may act.
        match std::fs::read_dir("/proc/self/task") {
            Ok(tasks) => tasks.count() <= threads + 2,
            Err(_) => false,
        }
    }

    // ---- observing -------------------------------------------------------------------------------

    /// Live goroutines and tasks: created minus finished, summed over the Ps.
    pub(crate) fn num_goroutine(&self) -> usize {
        let (created, exited) = self.counts();
        created.saturating_sub(exited) as usize
    }

    fn counts(&self) -> (u64, u64) {
        let mut created = self.offp_created.load(Ordering::Relaxed);
        let mut exited = self.offp_exited.load(Ordering::Relaxed);
        for p in self.allp.iter().filter_map(|p| p.get()) {
            created += p.created.load(Ordering::Relaxed);
            exited += p.exited.load(Ordering::Relaxed);
        }
        (created, exited)
    }

    pub(crate) fn stats(&self) -> crate::runtime::Stats {
        let procs = self.max_procs();
        let (created, exited) = self.counts();
        let (stacks_allocated, stacks_free) = self.stacks.counts();
        let global_queue = self.global_len.load(Ordering::Relaxed);
        crate::runtime::Stats {
            procs,
            idle_procs: self.npidle.load(Ordering::Relaxed),
            threads: self.threads.load(Ordering::Relaxed),
            idle_threads: self.idle_threads.load(Ordering::Relaxed),
            spinning_threads: self.nmspinning.load(Ordering::Relaxed),
            goroutines: created.saturating_sub(exited) as usize,
            goroutines_spawned: created,
            global_queue,
            local_queues: (0..procs)
                .map(|i| self.allp[i].get().map_or(0, |p| p.runq.len()))
                .collect(),
            stacks_allocated,
            stacks_free,
            stack_size: self.stacks.stack_size(),
        }
    }
}
