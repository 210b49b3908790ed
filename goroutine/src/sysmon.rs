//! sysmon: the runtime's watchdog thread (Go's `sysmon`).
//!
//! One thread per runtime, started with the first M, never holding a P. It wakes every 20 µs while
//! it finds something to do, doubling its sleep up to 10 ms after 50 quiet rounds. Each round it
//! looks at every P (`Sched::retake`).
//!
//! **Deep sleep.** Once every P has been idle at each of its rounds for `DEEP_SLEEP_AFTER_NS`
//! (20 ms), sysmon sleeps without a timeout, so an idle runtime burns no CPU. An M that gets a P
//! (from `startm`, from the idle list, after a blocking section) wakes it (`wake`: one load unless
//! sysmon deep-sleeps), as does the last M to go idle (for the deadlock check). Waiting 20 ms before
//! the deep sleep matters for servers: they go all-idle between bursts thousands of times a second,
//! and a deep sleep at each gap would cost a futex wake (and a rebuilt sleep schedule) at the next
//! burst; a round every 10 ms costs nothing by comparison. The M that got the P wakes sysmon, not
//! whoever handed it the P, so the wake is off the path that readies work.
//!
//! * **Preemption.** A P whose `schedtick` has not moved for 10 ms is running one goroutine (or a
//!   chain of goroutines handing it `runnext`) for too long: sysmon sets its `preempt` flag, and the
//!   goroutine yields to the global queue at its next safe point (any runtime call). If the flag is
//!   still ignored a round and a millisecond later — a tight loop with no runtime call, or an
//!   unmarked blocking call such as `std::thread::sleep` or a std `Mutex` — sysmon takes the P away
//!   from its M (the handshake of `sched.rs`, "Taking a P from user code") and hands it to another
//!   M, so every other goroutine keeps running. The hog keeps its thread; at its next runtime call it finds its P gone, queues itself
//!   and gives the M back.
//! * **Blocking sections.** A P whose goroutine is inside `blocking(f)` (`P_SYSCALL`) and that sysmon
//!   sees in the same section on two consecutive rounds is handed off (the section hands it off at
//!   once itself when other work is waiting).
//!
//! * **The network.** Idle Ms leave the poller to the Ms that hold Ps (`Sched::stopm`). When
//!   nobody has polled for `POLL_STALE_NS` (1 ms) while a P is idle, sysmon wakes an M, which
//!   polls; it keeps its rounds at most that far apart while sockets are registered and some Ps
//!   are busy and some idle. When no M has polled for 10 ms with every P busy, sysmon polls without blocking itself
//!   and readies what it finds onto the global queue (`netpoll::sysmon_poll`).
//! * **Waiting work.** A goroutine readied into a `runnext` wakes no M (`sched.rs`); if its P has
//!   switched to nothing else for a round while a P is idle, sysmon wakes an M for it.
//! * **The machine's load.** While sockets are registered and a P is busy, sysmon samples the
//!   kernel's count of runnable threads at most once a millisecond (`cpuload::sample`): whether a
//!   CPU is spare decides how network work spreads over the Ms (`sched.rs`, "Network poll
//!   batches").
//!
//! sysmon never takes a P whose M is in runtime code (its `in_user` flag clear): that M may be
//! using the P's local state.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Once;
use std::time::Duration;

use crate::futex::Note;
use crate::sched::Sched;
use crate::timer;

/// Go's `forcePreemptNS`: how long a goroutine may run before it is asked to yield.
pub(crate) const FORCE_PREEMPT_NS: u64 = 10_000_000;
/// How long a flagged goroutine has to reach a safe point before its P is taken away.
pub(crate) const PREEMPT_GRACE_NS: u64 = 1_000_000;
/// How long the network may go unpolled while a P is idle before sysmon wakes an M to poll it:
/// idle Ms leave the poller to the Ms that hold Ps (`Sched::stopm`), which poll whenever their
/// queues run dry; this bounds the wait when one of them runs a long goroutine or is descheduled.
pub(crate) const POLL_STALE_NS: u64 = 1_000_000;
/// How long every P must have looked idle (at each round) before sysmon deep-sleeps.
const DEEP_SLEEP_AFTER_NS: u64 = 20_000_000;
const MIN_DELAY_US: u64 = 20;
const MAX_DELAY_US: u64 = 10_000;
/// Quiet rounds before sysmon starts doubling its sleep.
const IDLE_ROUNDS: u32 = 50;

/// sysmon's part of a runtime.
pub(crate) struct Sysmon {
    started: Once,
    /// Set while sysmon sleeps with no timeout because every P is idle.
    sleeping: AtomicBool,
    /// sysmon sleeps on this between rounds, so it can be woken early (SIGQUIT, all-idle wake-up).
    note: Note,
}

impl Sysmon {
    pub(crate) const fn new() -> Sysmon {
        Sysmon {
            started: Once::new(),
            sleeping: AtomicBool::new(false),
            note: Note::new(),
        }
    }
}

/// What sysmon last saw of one P.
#[derive(Clone, Copy, Default)]
pub(crate) struct PRecord {
    pub(crate) schedtick: u32,
    pub(crate) schedwhen: u64,
    pub(crate) syscalltick: u32,
    pub(crate) syscall_seen: bool,
    /// The P's `nswitch` at the last round (see `Sched::retake`'s wake for waiting work).
    pub(crate) nswitch: u32,
    /// When sysmon set the P's preempt flag for the current run (0: not flagged).
    pub(crate) flagged_at: u64,
}

/// Set by the SIGQUIT handler that `run_main` installs; sysmon dumps and exits.
static QUIT: AtomicBool = AtomicBool::new(false);
/// The runtime whose sysmon the SIGQUIT handler wakes.
static QUIT_RUNTIME: AtomicPtr<Sched> = AtomicPtr::new(std::ptr::null_mut());

/// Go's `fatal error: all goroutines are asleep - deadlock!`: print it with a goroutine dump and
/// exit with status 2.
fn deadlock(sched: &Sched) -> ! {
    let dump = sched.dump();
    eprint!("fatal error: all goroutines are asleep - deadlock!\n\n{dump}");
    std::process::exit(2);
}

/// The SIGQUIT response: a goroutine dump, then exit with status 2 (as Go).
fn quit(sched: &Sched) -> ! {
    let dump = sched.dump();
    eprint!("SIGQUIT: quit\n\n{dump}");
    std::process::exit(2);
}

extern "C" fn on_sigquit(_: libc::c_int) {
    QUIT.store(true, Ordering::SeqCst);
    let sched = QUIT_RUNTIME.load(Ordering::SeqCst);
    // SAFETY: the pointer is a leaked `&'static Sched` set before the handler was installed; waking
    // a note is an atomic swap and a futex syscall, both async-signal-safe.
    if let Some(sched) = unsafe { sched.as_ref() } {
        sched.sysmon().note.wake();
    }
}

/// Makes SIGQUIT (Ctrl-\\) print a goroutine dump of `sched` and exit with status 2, as in Go.
/// Installed by `run_main` (`#[gort::main]` programs own their process); libraries using gort keep
/// their process's own SIGQUIT behaviour and can call `runtime::dump` instead.
pub(crate) fn install_sigquit_dump(sched: &'static Sched) {
    QUIT_RUNTIME.store(sched as *const Sched as *mut Sched, Ordering::SeqCst);
    wake(sched); // sysmon must be running to act on it
                 // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid; `on_sigquit` is an
                 // `extern "C" fn(c_int)` that only touches atomics and makes a futex syscall.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigquit as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGQUIT, &sa, std::ptr::null_mut());
    }
}

/// Makes sure sysmon runs, and wakes it from its all-idle sleep. Called when an M gets a P.
pub(crate) fn wake(sched: &'static Sched) {
    let s = sched.sysmon();
    s.started.call_once(|| {
        let name = format!("{}-sysmon", sched.name());
        if let Err(e) = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(sched))
        {
            panic!("gort: cannot start the sysmon thread: {e}");
        }
    });
    if s.sleeping.load(Ordering::SeqCst) {
        s.note.wake();
    }
}

fn run(sched: &'static Sched) {
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack; no memory is passed.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    let s = sched.sysmon();
    let mut records: Vec<PRecord> = Vec::new();
    let mut delay_us = MIN_DELAY_US;
    let mut quiet = 0u32;
    let mut last_trace = 0u64;
    // When the current run of all-idle rounds began (`None` while some P is busy).
    let mut idle_since: Option<u64> = None;
    loop {
        if quiet == 0 {
            delay_us = MIN_DELAY_US;
        } else if quiet > IDLE_ROUNDS {
            delay_us = (delay_us * 2).min(MAX_DELAY_US);
        }
        // Watching the network for stale polls (below) needs a round at least every
        // `POLL_STALE_NS` while that can happen: sockets registered, a P idle and a P busy.
        if sched.has_idle_p() && !sched.all_procs_idle() && crate::netpoll::has_waiters() {
            delay_us = delay_us.min(POLL_STALE_NS / 1000);
        }
        let trace = sched.schedtrace_every();
        if let Some(every) = trace {
            delay_us = delay_us.min(
                u64::try_from(every.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(MIN_DELAY_US),
            );
        }
        s.note.sleep_timeout(Duration::from_micros(delay_us));
        let now = timer::clock_ns();
        sched.tick_coarse_clock(now);
        if QUIT.load(Ordering::SeqCst) {
            quit(sched);
        }
        if let Some(every) = trace {
            if now.saturating_sub(last_trace) >= u64::try_from(every.as_nanos()).unwrap_or(u64::MAX)
            {
                last_trace = now;
                eprintln!("SCHED {}ms: {}", now / 1_000_000, sched.schedtrace_line());
            }
        }
        if sched.all_procs_idle() {
            // Every P idle, sockets registered, and nobody in the poller: the Ms that left the
            // poller to a busy one (`Sched::stopm`) must not all sleep for good. `stopm` and
            // `handoffp` see to it; this is the backstop.
            if crate::netpoll::needs_poller() {
                sched.wakep();
            }
            let since = *idle_since.get_or_insert(now);
            // Nothing to retake: let the sleep grow at once.
            quiet = quiet.max(IDLE_ROUNDS + 1);
            let deep = trace.is_none() && now.saturating_sub(since) >= DEEP_SLEEP_AFTER_NS;
            // Announce the sleep before the deadlock check: an M that goes idle after the check
            // (`stopm`, the last one to) sees `sleeping` and wakes us to check again, so the
            // check never misses the moment the last M falls asleep.
            if deep {
                s.sleeping.store(true, Ordering::SeqCst);
            }
            if sched.is_deadlocked() {
                // Confirm after a moment: an M may be between states.
                std::thread::sleep(Duration::from_millis(10));
                if sched.is_deadlocked() {
                    deadlock(sched);
                }
            }
            if deep {
                if sched.all_procs_idle() && !QUIT.load(Ordering::SeqCst) {
                    s.note.sleep();
                }
                s.sleeping.store(false, Ordering::SeqCst);
                // Back from a long idle spell: start at the shortest sleep but double at once (the
                // wake-up may be a lone request; 50 rounds of 20 µs would be wasted on it).
                idle_since = None;
                delay_us = MIN_DELAY_US / 2;
            }
            continue;
        }
        idle_since = None;
        // Whether a CPU is spare decides how network work spreads over the Ms (`cpuload.rs`).
        if crate::netpoll::has_waiters() {
            crate::cpuload::sample(now);
        }
        // Netpoll hook: with a P idle, an M polls the network when nobody has for
        // `POLL_STALE_NS` (the woken M polls when it finds no work, and blocks in the poller if it
        // stays idle); with every P busy, sysmon polls itself when nobody has for 10 ms.
        if sched.has_idle_p() && crate::netpoll::stale(now, POLL_STALE_NS) {
            sched.wakep();
        }
        crate::netpoll::sysmon_poll(now);
        if sched.retake(&mut records, now) > 0 {
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
}

/// Marks a blocking call (Go's `entersyscall`/`exitsyscall`): runs `f`, which may block the thread
/// (a blocking read, a C library call, `std::thread::sleep`, a DNS lookup), while the goroutine's
/// processor is handed to another thread if other goroutines are waiting — at once when work is
/// queued, otherwise after one sysmon round. When `f` returns, the goroutine takes a processor back
/// (its own if it is still free) and carries on; if none is free it waits in the run queue.
///
/// Off goroutines it just calls `f`. Unmarked blocking calls are caught too, but later (after the
/// 10 ms and grace period a CPU hog gets), so mark the ones you know about.
///
/// ```
/// let h = gort_goroutine::spawn(|| {
///     gort_goroutine::blocking(|| std::thread::sleep(std::time::Duration::from_millis(5)));
///     1
/// });
/// assert_eq!(h.join().unwrap(), 1);
/// ```
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    if crate::g::current_g().is_null() {
        return f();
    }
    let Some(ml) = crate::sched::current_m() else {
        return f();
    };
    let sched = ml.sched;
    sched.entersyscall(ml);
    /// Leaves the blocking section even if `f` panics.
    struct Exit(&'static Sched);
    impl Drop for Exit {
        fn drop(&mut self) {
            self.0.exitsyscall();
        }
    }
    let _exit = Exit(sched);
    f()
}

/// A preemption check (Go's safe point): if sysmon asked the calling goroutine to yield (it has run
/// for over 10 ms), or took its processor away, the goroutine yields here. Every gort runtime call
/// (spawning, channel and lock operations, timers, I/O) includes this check; call it yourself in
/// a long computation that makes no runtime calls, so that it yields instead of losing its
/// processor to another thread. Costs a thread-local read and two loads.
pub fn safe_point() {
    let Some(ml) = crate::sched::current_m() else {
        return;
    };
    let g = ml.curg.get();
    if g.is_null() {
        return;
    }
    ml.sched.deferred_wake(ml);
    if ml.sched.must_yield(ml) {
        crate::g::suspend(g, crate::g::Suspend::Preempt);
    }
}
