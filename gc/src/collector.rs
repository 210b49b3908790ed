//! The collector: a background thread that runs Go-style cycles on worker goroutines (a quarter
//! of the runtime's Ps, at least one; see "the workers" below), the pacer, mark assists, the sweep
//! with safe finalization, and the statistics.
//!
//! A cycle `n` (the crate docs give the protocol and the soundness argument):
//! 1. **Clear** (`phase.rs` phase `Clear`): stamp every allocated object `scan = n` and clear its
//!    `DIRTY` bit.
//! 2. **Mark** begins (the snapshot point): root-test every allocated object: objects with an
//!    outside handle or `DIRTY` are roots and are shaded. Then trace gray objects until none are
//!    left, on the workers; mutators shade through `GcCell` writes and
//!    `Weak::upgrade`, and allocating goroutines help (assists) when the heap passes its goal.
//!    Before termination, assists are closed and waited for (still in Mark, so not in the pause).
//! 3. **Terminating**: wait out pinned operations, drain the last gray objects (going back to Mark
//!    first, a few times at most, if they left a backlog). This is the only window in which a
//!    mutator operation (a `GcCell` write, an upgrade) can wait; its length is the reported pause.
//! 4. **Sweep**: dead = stamped in `n` and not marked. Pass one (`Flag`), per dead object: clear
//!    its weak slot, give back the `internal` counts of its handles to live objects, and list it.
//!    If some dead value's drop runs user code, `Condemn` flags every listed object
//!    (`FLAGGED`). Pass two (`Drop`) drops the listed values (a panicking `Drop` is caught and
//!    reported). Pass three (`Free`) frees their slots, or leaks an object a `Drop` kept a handle
//!    to. When no dead value's drop ran user code (no handle can have been kept), pass three is
//!    lazy instead: each span keeps its dead slots (`Span::sweep_later`) for the allocator that
//!    next takes it to free, and the workers free the rest in the background after the cycle
//!    (`PassKind::Sweep`), which ends before the next cycle begins.
//! 5. Back to **Idle**; the pacer sets the next goal: `marked * (1 + GOGC/100)` (Go's formula),
//!    at least 4 MiB, with the next cycle triggered at 7/8 of the runway.
//!
//! Every span pass is split by span among the workers and allocating goroutines (in the `Drop`
//! pass, only spans whose dead values are all plain: user code must not run inside an unrelated
//! `Gc::new`); a pass ends when every span is done, and passes never overlap.
//!
//! Invariants: an `ALLOC` slot's header and value are valid; a `DEAD` slot's header is valid
//! until pass three; gray objects are marked in the current cycle; workers and assists take gray
//! work only while the cycle's marking is open for them (`GrayQueue::helping`, `ASSIST_GATE`);
//! the collector thread runs no user code but `Trace` (a `Drop` span an allocator defers after
//! the workers left its pass is posted to them again).
//!
//! A `Trace` that panics during marking makes the cycle free nothing (every scanned object is
//! marked before the sweep), so no object reachable from the panicking one can be lost.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::header::Header;
use crate::heap::{self, ALLOC};
use crate::phase::{AssistGate, Phase, Phases};
use crate::trace::{Mode, ObjPtr, Tracer};
use crate::GcStats;

/// The collector's phase word and pins.
pub(crate) static PHASES: Phases = Phases::new();

/// Set when a `Trace` panics during marking: the cycle then frees nothing.
static TRACE_PANICKED: AtomicBool = AtomicBool::new(false);

/// The gate mark assists pass through (see [`assist`]).
static ASSIST_GATE: AssistGate = AssistGate::new();

/// Go's GOGC; negative: automatic collection off.
static PERCENT: AtomicI32 = AtomicI32::new(100);
/// Bytes in use after the last sweep.
static HEAP_MARKED: AtomicU64 = AtomicU64::new(0);
static HEAP_GOAL: AtomicU64 = AtomicU64::new(MIN_GOAL);
static TRIGGER: AtomicU64 = AtomicU64::new(MIN_GOAL * 7 / 8);
static KICKED: AtomicBool = AtomicBool::new(false);

static FREED_OBJECTS: AtomicU64 = AtomicU64::new(0);
static FREED_BYTES: AtomicU64 = AtomicU64::new(0);
static COLLECTIONS: AtomicU64 = AtomicU64::new(0);
static MAX_PAUSE_NS: AtomicU64 = AtomicU64::new(0);
static TOTAL_PAUSE_NS: AtomicU64 = AtomicU64::new(0);
static LAST_CYCLE_NS: AtomicU64 = AtomicU64::new(0);
static ASSISTS: AtomicU64 = AtomicU64::new(0);
static DROP_PANICS: AtomicU64 = AtomicU64::new(0);
static LEAKED_OBJECTS: AtomicU64 = AtomicU64::new(0);

/// Go's `heapminimum`: the smallest goal.
const MIN_GOAL: u64 = 4 << 20;
/// Gray objects mark termination traces itself; with more, it returns to marking first.
const TERMINATION_BACKLOG: usize = 256;
/// Past this many times its goal, an allocating goroutine does all the cycle's work it can take
/// (see `on_refill`).
const OVERRUN_FACTOR: u64 = 3;
/// Gray objects an assist traces per refill.
const ASSIST_BATCH: usize = 128;

struct Control {
    /// Cycles finished.
    completed: u64,
    /// Run until `completed` reaches this.
    requested: u64,
    running: bool,
    kicked: bool,
    waiters: Vec<Waker>,
}

static CONTROL: Mutex<Control> = Mutex::new(Control {
    completed: 0,
    requested: 0,
    running: false,
    kicked: false,
    waiters: Vec::new(),
});
static WAKE_COLLECTOR: Condvar = Condvar::new();
static START: Once = Once::new();

gort_goroutine::goroutine_local! {
    /// Set on the collector thread and in its worker goroutines: they may run user `Drop`s, and
    /// must not wait for a cycle. Goroutine-local, as a worker may move between threads when a
    /// `Drop` it runs blocks.
    static ON_COLLECTOR: std::cell::Cell<bool> = std::cell::Cell::new(false);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ensure_started() {
    START.call_once(|| {
        if let Some(v) = std::env::var_os("GORT_GC") {
            let v = v.to_string_lossy();
            match parse_percent(&v) {
                Some(p) => {
                    PERCENT.store(p, Ordering::Relaxed);
                }
                None => eprintln!(
                    "gort: GORT_GC={v:?} is not a percentage or \"off\"; using the default 100"
                ),
            }
            set_goal(HEAP_MARKED.load(Ordering::Relaxed));
        }
        std::thread::Builder::new()
            .name("gort-gc".into())
            .spawn(collector_main)
            .expect("gort: cannot start the collector thread");
    });
}

fn parse_percent(v: &str) -> Option<i32> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("off") {
        return Some(-1);
    }
    v.parse::<i32>().ok().filter(|p| *p >= 0)
}

fn collector_main() {
    ON_COLLECTOR.with(|c| c.set(true));
    let mut cycle = 0u32;
    loop {
        {
            let mut c = lock(&CONTROL);
            while !(c.requested > c.completed || c.kicked) {
                c = WAKE_COLLECTOR
                    .wait(c)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            c.kicked = false;
        }
        if !requested_or_wait_out_deferred() {
            KICKED.store(false, Ordering::SeqCst);
            continue;
        }
        // Set before the snapshot: a `collect()` that sees it waits for the next cycle too.
        lock(&CONTROL).running = true;
        // Cycle numbers start at 1 (0: none yet).
        cycle = cycle.wrapping_add(1).max(1);
        let unswept = run_cycle(cycle);
        KICKED.store(false, Ordering::SeqCst);
        let waiters = {
            let mut c = lock(&CONTROL);
            c.completed += 1;
            c.running = false;
            std::mem::take(&mut c.waiters)
        };
        for w in waiters {
            w.wake();
        }
        // The background sweep, still on this cycle's workers; the next cycle waits for it
        // (Go's `finishsweep_m`), as every span must be swept before the next clear pass.
        if !unswept.is_empty() {
            run_pass(PassKind::Sweep, &unswept, None);
        }
        stop_workers();
    }
}

/// How long the pacer's next cycle waits for threads to reclaim what they kept during the last
/// one (`reclaim::DEFERRED_THREADS`).
const DEFERRED_GRACE: Duration = Duration::from_millis(2);

/// Whether to run the cycle the collector was just woken for: always when `collect()` asked.
/// When the pacer did, it first gives the threads that kept objects during the last cycle
/// (`reclaim.rs`: last handles dropped after its snapshot) up to `DEFERRED_GRACE` to reclaim
/// them at their next allocation, and runs the cycle only if the heap is still past the
/// trigger. Otherwise a cycle begun at once would take that garbage as its own, and under
/// steady allocation each cycle would leave the next more of it, the heap growing cycle after
/// cycle.
fn requested_or_wait_out_deferred() -> bool {
    {
        let c = lock(&CONTROL);
        if c.requested > c.completed {
            return true;
        }
    }
    let start = Instant::now();
    while crate::reclaim::DEFERRED_THREADS.load(Ordering::SeqCst) > 0
        && start.elapsed() < DEFERRED_GRACE
    {
        std::thread::sleep(Duration::from_micros(50));
    }
    if in_use().1 >= TRIGGER.load(Ordering::Relaxed) {
        return true;
    }
    // `collect()` may have asked meanwhile.
    let c = lock(&CONTROL);
    c.requested > c.completed
}

/// `(objects, bytes)` in use now.
fn in_use() -> (u64, u64) {
    in_use_of(&heap::totals())
}

fn in_use_of(t: &heap::Totals) -> (u64, u64) {
    (
        t.objects
            .saturating_sub(FREED_OBJECTS.load(Ordering::Relaxed) + t.recycled_objects),
        t.bytes
            .saturating_sub(FREED_BYTES.load(Ordering::Relaxed) + t.recycled_bytes),
    )
}

fn set_goal(marked: u64) {
    let p = PERCENT.load(Ordering::Relaxed);
    let goal = if p < 0 {
        u64::MAX
    } else {
        (marked + marked * p as u64 / 100).max(MIN_GOAL)
    };
    HEAP_GOAL.store(goal, Ordering::Relaxed);
    let trigger = if goal == u64::MAX {
        u64::MAX
    } else {
        marked + (goal.saturating_sub(marked)) * 7 / 8
    };
    TRIGGER.store(trigger, Ordering::Relaxed);
}

/// Called by allocators when they take a new span: starts a cycle when the heap reaches the
/// trigger, and helps the cycle in progress when the heap has passed its goal. Never waits: the
/// help is work this goroutine does itself, and when none is left for it, it goes on allocating.
pub(crate) fn on_refill() {
    ensure_started();
    let state = PHASES.peek();
    if state.phase == Phase::Idle {
        crate::reclaim::reclaim_deferred();
    }
    let live = in_use().1;
    if state.phase == Phase::Idle {
        if live >= TRIGGER.load(Ordering::Relaxed) && !KICKED.swap(true, Ordering::SeqCst) {
            lock(&CONTROL).kicked = true;
            WAKE_COLLECTOR.notify_one();
        }
        return;
    }
    let goal = HEAP_GOAL.load(Ordering::Relaxed).max(1);
    if live / OVERRUN_FACTOR > goal {
        // Far past the goal: garbage is piling up faster than the cycle frees it (objects whose
        // last handle goes during a cycle wait for its end). Do all of the cycle's work this
        // goroutine may take before allocating on, so that allocation pays for the collection
        // instead of growing the heap without bound; that is work, never a wait.
        while help_pass(64) > 0 || (state.phase == Phase::Mark && assist()) {}
        return;
    }
    // Proportional help (Go's assists, which start with the cycle): every span taken during a
    // cycle pays for one span of the current pass and a batch of marking, and for more the
    // further the heap is past its goal. So the cycle moves on with allocation even while its
    // workers wait for a P.
    let rounds = if live <= goal {
        1
    } else {
        4 * (live / goal).min(16) as usize
    };
    help_pass(rounds);
    if state.phase == Phase::Mark {
        // A span of small objects holds over a thousand of them: trace a comparable number,
        // so marking keeps ahead of allocation.
        for _ in 0..2 * rounds {
            if !assist() {
                break;
            }
        }
    }
}

/// A mark assist: trace a batch of gray objects on the allocating goroutine, inside the assist
/// gate (`phase::AssistGate`: the collector closes it before mark termination and waits for the
/// assists inside, so an assist traces only inside its cycle's open marking, and what it shaded is
/// in the gray queue before termination begins). Returns whether it found gray work.
fn assist() -> bool {
    if !ASSIST_GATE.is_open() || ASSIST_GATE.enter().is_none() {
        return false;
    }
    let mut batch = lock(&GRAY).take(ASSIST_BATCH);
    let found = !batch.is_empty();
    if found {
        ASSISTS.fetch_add(1, Ordering::Relaxed);
        let mut traced = 0;
        while let Some(o) = batch.pop() {
            trace_gray(o, &mut batch);
            traced += 1;
            if traced >= ASSIST_BATCH {
                break;
            }
        }
        if !batch.is_empty() {
            push_gray(batch);
        }
    }
    ASSIST_GATE.leave();
    found
}

/// Lets mark assists trace for `cycle` (its phase is `Mark`).
fn open_marking(cycle: u32) {
    ASSIST_GATE.open(cycle);
}

/// Stops mark assists before mark termination: when this returns, no assist is tracing and none
/// will start until the next [`open_marking`] (see [`assist`]).
fn close_marking() {
    ASSIST_GATE.close();
}

/// Adds shaded objects to the global gray queue, and wakes workers waiting for gray work.
pub(crate) fn push_gray(objs: Vec<ObjPtr>) {
    if objs.is_empty() {
        return;
    }
    lock(&GRAY).objs.extend(objs);
    wake_workers();
}

/// Waits until the collector leaves mark termination (GcCell writes and upgrades only).
pub(crate) fn wait_out_termination() {
    let mut round = 0u32;
    while PHASES.peek().phase == Phase::Terminating {
        round += 1;
        if round < 32 {
            std::hint::spin_loop();
        } else if gort_goroutine::runtime::current_id().is_some() {
            gort_goroutine::yield_now();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Traces one gray object in mark mode, pushing what it shades onto `gray`.
fn trace_gray(o: ObjPtr, gray: &mut Vec<ObjPtr>) {
    // SAFETY: a gray object was marked in this cycle (so it is not freed before this cycle's
    // sweep, which starts after marking ends) and was allocated when shaded.
    let h = unsafe { o.0.as_ref() };
    let mut t = Tracer::new(Mode::Mark { gray });
    // SAFETY: `h` heads a live object of the vtable's type.
    let r = catch_unwind(AssertUnwindSafe(|| unsafe { (h.vtable.trace)(h, &mut t) }));
    if let Err(e) = r {
        discard_panic(e);
        if !TRACE_PANICKED.swap(true, Ordering::SeqCst) {
            eprintln!(
                "gort: Trace::trace of {} panicked during marking; this collection frees nothing",
                (h.vtable.type_name)()
            );
        }
    }
}

/// Drops a caught panic's payload without letting a panic in the payload's own `Drop` unwind
/// into the collector (a worker goroutine that unwinds leaves its span or its `busy` count
/// unfinished, and the cycle waits for it forever); such a payload is leaked.
fn discard_panic(e: Box<dyn std::any::Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(e))) {
        std::mem::forget(again);
    }
}

/// The global gray queue and the workers' share of marking.
struct GrayQueue {
    objs: Vec<ObjPtr>,
    /// The cycle whose marking workers may take work for (0: none). Changed only under the
    /// queue's lock, so a worker that takes work under it counts in `busy` before the collector
    /// can decide that marking is over.
    helping: u32,
    /// Workers holding gray objects taken from the queue (not yet traced or given back).
    busy: usize,
}

impl GrayQueue {
    /// Takes up to `max` gray objects, the most recently added (the deepest in a depth-first
    /// trace, so the least likely to be shared with other markers' work).
    fn take(&mut self, max: usize) -> Vec<ObjPtr> {
        let at = self.objs.len() - self.objs.len().min(max);
        self.objs.split_off(at)
    }
}

/// Gray objects shared between the collector, its workers, mark assists, and mutators'
/// shading (GcCell writes, upgrades).
static GRAY: Mutex<GrayQueue> = Mutex::new(GrayQueue {
    objs: Vec::new(),
    helping: 0,
    busy: 0,
});

/// Gray objects a marker takes from the global queue at once.
const SHARE_BATCH: usize = 256;
/// A marker with at least this many gray objects gives half to the global queue when the queue
/// has fewer.
const SHARE_MIN: usize = 8;
/// Objects a worker traces between two goroutine safe points.
const TRACES_PER_SAFE_POINT: usize = 4096;

/// Traces `local` to exhaustion, giving half of its backlog to the global queue now and then
/// when the queue runs low (for the other workers and assists). Returns the number of objects
/// traced. `on_worker`: the caller is a worker goroutine, which passes a safe point now and
/// then (so that sysmon can make it yield its P).
///
/// A depth-first trace of a tree keeps only a short stack (about one entry per level), so the
/// threshold is low: the bottom half of the stack holds the siblings of the nodes nearest the
/// root, that is, the largest untraced subtrees, which is what another worker should take.
fn trace_local(local: &mut Vec<ObjPtr>, on_worker: bool) -> usize {
    let mut traced = 0usize;
    while let Some(o) = local.pop() {
        trace_gray(o, local);
        traced += 1;
        if traced % 64 == 0 && local.len() >= SHARE_MIN {
            if let Ok(mut g) = GRAY.try_lock() {
                if g.objs.len() < SHARE_MIN {
                    let half = local.len() / 2;
                    g.objs.extend(local.drain(..half));
                    drop(g);
                    wake_workers();
                }
            }
        }
        if on_worker && traced % TRACES_PER_SAFE_POINT == 0 {
            gort_goroutine::runtime::safe_point();
        }
    }
    traced
}

/// Mark termination's marking, on the collector thread: traces until its own stack and the
/// global queue are empty and no worker holds gray objects (none takes new ones in termination).
fn drain(local: &mut Vec<ObjPtr>) {
    let mut round = 0;
    loop {
        trace_local(local, false);
        let mut g = lock(&GRAY);
        if !g.objs.is_empty() {
            std::mem::swap(&mut g.objs, local);
            round = 0;
            continue;
        }
        if g.busy == 0 {
            return;
        }
        drop(g);
        round += 1;
        crate::sync::backoff(round);
    }
}

/// Lets workers mark for `cycle` (0: stop them taking new gray work).
fn set_helping(cycle: u32) {
    lock(&GRAY).helping = cycle;
    wake_workers();
}

/// A worker's share of marking: take a batch from the global queue, trace it, repeat, until the
/// collector stops marking for `cycle`. Parks while the queue is empty; whoever adds to it wakes
/// the parked workers, and the last worker to go idle with the queue empty tells the collector.
fn help_mark(cycle: u32) {
    loop {
        let mut local = {
            let mut g = lock(&GRAY);
            if g.helping != cycle {
                return;
            }
            if g.objs.is_empty() {
                // Registered under the queue's lock, before anyone can add to it: no lost wake.
                register_parked_worker();
                drop(g);
                park_worker();
                continue;
            }
            g.busy += 1;
            g.take(SHARE_BATCH)
        };
        trace_local(&mut local, true);
        let quiet = {
            let mut g = lock(&GRAY);
            g.busy -= 1;
            g.busy == 0 && g.objs.is_empty()
        };
        if quiet {
            notify_collector();
        }
        gort_goroutine::runtime::safe_point();
    }
}

/// Calls `f` with the header of every allocated object of `span`.
fn for_each_object(span: &Arc<heap::Span>, mut f: impl FnMut(usize, &Header)) {
    for i in 0..span.slots() {
        if span.state(i) == ALLOC {
            // SAFETY: an ALLOC slot holds an initialized object (published with release, read
            // with acquire above), and the sweep frees objects only in pass three or lazily
            // after it (`Span::sweep_later`), which the collector finishes before its next
            // cycle's first pass: never alongside another pass.
            let h = unsafe { &*span.slot_ptr(i).cast::<Header>() };
            f(i, h);
        }
    }
}

/// The collector's passes over every span. Each is shared by the collector's workers and
/// allocating goroutines: a goroutine that takes a span while the heap is past its goal
/// processes a few spans of the current pass itself (Go's proportional sweeping and assists, for
/// our passes). In `Drop`, an allocating goroutine only drops spans whose dead values are all
/// plain (`Trace::plain_drop`): user `Drop` code must not run inside an unrelated `Gc::new`, so
/// it defers the others to the workers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PassKind {
    /// Stamp (and unmark) every allocated object and clear its `DIRTY` (phase Clear).
    Clear,
    /// Shade roots (phase Mark).
    Scan,
    /// Sweep pass one: per dead object, weak slot, handles to live objects, list (phase Sweep).
    Flag,
    /// Only when some dead value's drop runs user code: flag every listed object dead
    /// (`FLAGGED`), so that a user `Drop` that reaches one through a handle panics.
    Condemn,
    /// Sweep pass two: drop the dead values (phase Sweep, after every span's `Flag`).
    Drop,
    /// Sweep pass three: free the dropped objects' slots (phase Sweep, after every `Drop`), when
    /// some dead value's drop ran user code (a `Drop` may have kept a handle to a dead object).
    Free,
    /// Otherwise the sweep's last step is lazy (`Span::sweep_later`): this pass, in the idle time
    /// after the cycle, frees what allocators have not (Go's background sweeper).
    Sweep,
}

struct SpanPass {
    kind: PassKind,
    spans: Vec<Arc<heap::Span>>,
    /// The next span to claim.
    next: AtomicUsize,
    /// `Drop` spans claimed by allocators but left to the workers (not plain).
    deferred: Mutex<Vec<usize>>,
    /// Spans ever pushed onto `deferred` (so the collector can tell a new deferral).
    deferrals: AtomicUsize,
    /// Spans finished (their effects, gray objects included, published).
    done: AtomicUsize,
    /// The sweep's dead objects, per span (indices into `spans`): listed by `Flag`, read by
    /// `Drop` and `Free`.
    dead: Option<Arc<DeadLists>>,
    /// `Free`: objects and bytes freed; `Flag`: bytes found live (marked in the snapshot).
    freed_objects: AtomicU64,
    freed_bytes: AtomicU64,
    marked_bytes: AtomicU64,
}

/// Set by the sweep's `Flag` pass when a dead object's drop is not plain (runs user code). Only
/// then can a `Drop` move a handle to a dead object out of the heap, so only then does the `Free`
/// pass check each dead object's count (otherwise every handle to a dead object lives in a dead
/// object, and none is left once their values are dropped).
static SWEEP_RUNS_USER_DROPS: AtomicBool = AtomicBool::new(false);

/// In a dead list, marks an object whose drop may be skipped: its type's drop only drops handles
/// (`Trace::drop_is_handles_only`) and every handle in it points to a dead object.
const SKIP_DROP: u16 = !heap::SLOT_INDEX_MASK;
// Slot indices fit beside the flag: a span has at most 64 KiB / 16 slots.
const _: () =
    assert!(heap::SPAN_BYTES / heap::CLASS_SIZES[0] <= heap::SLOT_INDEX_MASK as usize + 1);

/// Per span of a cycle's sweep: the slots of its dead objects, and whether all of them are plain
/// (`Trace::plain_drop`: an allocating goroutine may drop them).
type DeadLists = Vec<Mutex<(Vec<u16>, bool)>>;

/// The pass in progress, if any (for allocating goroutines).
static PASS: Mutex<Option<Arc<SpanPass>>> = Mutex::new(None);
/// Spans processed by allocating goroutines.
static SPAN_ASSISTS: AtomicU64 = AtomicU64::new(0);

fn process_span(pass: &SpanPass, at: usize, gray: &mut Vec<ObjPtr>) {
    let span = &pass.spans[at];
    match pass.kind {
        // Stamping here, before the snapshot, rather than in the scan pass, saves the scan pass a
        // write to every object: an object stamped now existed before the snapshot and is root-
        // tested by the scan pass (only the sweep frees, so it is still allocated then); one
        // allocated after its slot was cleared is unstamped and cannot die in this cycle. The
        // stamp also clears the last cycle's mark.
        PassKind::Clear => {
            for i in 0..span.slots() {
                if span.marks(i).stamp() {
                    // SAFETY: an allocated slot holds an initialized object (stamped just now:
                    // its state was ALLOC, read with acquire), and only the sweep frees objects
                    // while a cycle runs.
                    let h = unsafe { &*span.slot_ptr(i).cast::<Header>() };
                    h.clear_dirty();
                }
            }
        }
        PassKind::Scan => for_each_object(span, |i, h| {
            if h.is_root() && span.marks(i).try_mark() {
                gray.push(ObjPtr(std::ptr::NonNull::from(h)));
            }
        }),
        PassKind::Flag => flag_span(pass, at),
        PassKind::Condemn => {
            if let Some(lists) = &pass.dead {
                let span = &pass.spans[at];
                for &e in &lock(&lists[at]).0 {
                    let i = (e & !SKIP_DROP) as usize;
                    // SAFETY: a listed slot holds a dead object, allocated until pass three.
                    let h = unsafe { &*span.slot_ptr(i).cast::<Header>() };
                    h.flag_dead();
                }
            }
        }
        PassKind::Drop => drop_span(pass, at),
        PassKind::Free => free_span(pass, at),
        PassKind::Sweep => pass.spans[at].finish_sweep(),
    }
}

/// Sweep pass one for one span. For each dead object (stamped in the cycle, not marked in it):
/// clear its weak slot, give back the `internal` counts of its handles to live objects, and list
/// it for the next passes. Runs no user code but `Trace`.
fn flag_span(pass: &SpanPass, at: usize) {
    let span = &pass.spans[at];
    let mut marked_bytes = 0u64;
    let mut dead = Vec::new();
    let mut plain = true;
    // Spans mostly hold one type: ask each vtable once in a row.
    let mut last_vtable: *const crate::header::VTable = std::ptr::null();
    let mut last_handles_only = false;
    for_each_object(span, |i, h| {
        let marks = span.marks(i);
        if !marks.is_dead() {
            // Live at the snapshot: stamped and marked. Objects allocated during the cycle are
            // not counted: counting them would let the goal run away.
            if marks.is_marked_old() {
                marked_bytes += span.slot_size as u64;
            }
            return;
        }
        crate::weak::clear_slot(h);
        let mut t = Tracer::new(Mode::Finalize {
            live_targets: false,
        });
        // SAFETY: `h` heads a live object of the vtable's type (its value is dropped only in
        // pass two); nothing but the sweep can reach it (it is dead).
        let r = catch_unwind(AssertUnwindSafe(|| unsafe { (h.vtable.trace)(h, &mut t) }));
        if let Err(e) = r {
            discard_panic(e);
            // Flagged at once: it is dead either way, and its handles must panic.
            h.flag_dead();
            eprintln!(
                "gort: Trace::trace of {} panicked while finalizing it; the object is leaked",
                (h.vtable.type_name)()
            );
            span.leak(i); // never dropped or freed
            LEAKED_OBJECTS.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !std::ptr::eq(last_vtable, h.vtable) {
            last_vtable = h.vtable;
            last_handles_only = (h.vtable.drop_is_handles_only)();
            if plain && !(h.vtable.plain_drop)() {
                plain = false;
                SWEEP_RUNS_USER_DROPS.store(true, Ordering::Relaxed);
            }
        }
        // A value whose drop would only lower the counts of other dead objects may be freed
        // without dropping it, if no user `Drop` runs in this sweep (see `drop_span`).
        let live_targets = matches!(
            t.mode,
            Mode::Finalize {
                live_targets: true,
                ..
            }
        );
        let skippable = last_handles_only && !live_targets;
        dead.push(i as u16 | if skippable { SKIP_DROP } else { 0 });
    });
    pass.marked_bytes.fetch_add(marked_bytes, Ordering::Relaxed);
    if let Some(lists) = &pass.dead {
        *lock(&lists[at]) = (dead, plain);
    }
}

/// Sweep pass two for one span: drop the values of the objects pass one listed, and mark their
/// slots `DEAD`. Every dead object of the cycle was flagged before this pass began, so no `Drop`
/// can use a handle to one (dereferencing, cloning or downgrading it panics); dropping such a
/// handle only lowers the count in a header that stays allocated until pass three.
fn drop_span(pass: &SpanPass, at: usize) {
    let span = &pass.spans[at];
    let Some(lists) = &pass.dead else { return };
    let dead = std::mem::take(&mut lock(&lists[at]).0);
    // Written before the Flag pass ended; this pass began after it (see `run_pass`).
    let may_skip = !SWEEP_RUNS_USER_DROPS.load(Ordering::Relaxed);
    for &e in &dead {
        if may_skip && e & SKIP_DROP != 0 {
            // Its drop would only lower the counts of dead objects, which no one will read: no
            // user `Drop` runs in this sweep, so pass three checks no counts.
            continue;
        }
        let i = (e & !SKIP_DROP) as usize;
        let p = span.slot_ptr(i).cast::<Header>();
        // SAFETY: a dead object's value is initialized (its slot is still `ALLOC`) and dropped
        // exactly once, here: each span is processed by one thread, and its slot leaves `ALLOC`
        // right after.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe { ((*p).vtable.drop_value)(p) }));
        if let Err(e) = r {
            // SAFETY: the header outlives the value's drop (only the value was dropped).
            let name = unsafe { ((*p).vtable.type_name)() };
            report_drop_panic(name, e);
        }
        span.drop_done(i);
    }
    lock(&lists[at]).0 = dead;
}

/// A dead value's `Drop` panicked (in the sweep, or when freed promptly): count and report it;
/// the caller goes on.
pub(crate) fn report_drop_panic(name: &str, e: Box<dyn std::any::Any + Send>) {
    DROP_PANICS.fetch_add(1, Ordering::Relaxed);
    let msg = e
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic>".into());
    discard_panic(e);
    eprintln!("gort: the Drop of a collected {name} panicked ({msg}); the collector goes on");
}

/// An unreachable object's `Trace` panicked while freeing it promptly (`reclaim.rs`): it is
/// leaked for good.
pub(crate) fn report_leak(name: &str) {
    LEAKED_OBJECTS.fetch_add(1, Ordering::Relaxed);
    eprintln!("gort: Trace::trace of {name} panicked while freeing it; the object is leaked");
}

/// Sweep pass three for one span: free the slots whose values pass two dropped, unless a handle
/// to the object is still around (a `Drop` moved one out of a dead object and kept it): such an
/// object is leaked for good, flagged dead, so that handle panics when used and never reaches a
/// reused slot. The check is skipped when no dead object's drop ran user code
/// (`SWEEP_RUNS_USER_DROPS`).
fn free_span(pass: &SpanPass, at: usize) {
    let span = &pass.spans[at];
    let Some(lists) = &pass.dead else { return };
    let dead = std::mem::take(&mut lock(&lists[at]).0);
    // Written before the Flag pass ended; this pass began after it (see `run_pass`).
    let check_escapes = SWEEP_RUNS_USER_DROPS.load(Ordering::Relaxed);
    let mut freed_here = 0;
    for e in dead {
        let i = (e & !SKIP_DROP) as usize;
        // SAFETY: a dead slot's header is intact until this pass frees it.
        let h = unsafe { &*span.slot_ptr(i).cast::<Header>() };
        if check_escapes && crate::header::handles_of(h.counts.load(Ordering::Acquire)) != 0 {
            span.leak(i);
            LEAKED_OBJECTS.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        span.free_slot(i);
        freed_here += 1;
    }
    if freed_here > 0 {
        span.freed(freed_here);
        pass.freed_objects
            .fetch_add(freed_here as u64, Ordering::Relaxed);
        pass.freed_bytes
            .fetch_add((freed_here * span.slot_size) as u64, Ordering::Relaxed);
    }
}

/// Who is working on a pass: the collector's workers may run user `Drop`s; allocating
/// goroutines and the collector thread may not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Worker {
    /// A worker goroutine (`worker_main`).
    Background,
    Allocator,
    /// The collector thread, while no worker runs (`RUNNING_WORKERS`).
    Bridge,
}

/// Claims and processes up to `max` spans of `pass`. Gray objects go to the global queue before
/// a span counts as done, so the collector, which waits for every span to be done, sees them. An
/// allocator that claims a `Drop` span holding a value whose drop is not plain defers the span to
/// the workers instead. Whoever finishes the last span tells the collector.
fn work_on(pass: &SpanPass, max: usize, gray: &mut Vec<ObjPtr>, who: Worker) -> usize {
    let mut k = 0;
    while k < max {
        let i = pass.next.fetch_add(1, Ordering::Relaxed);
        if i >= pass.spans.len() {
            break;
        }
        if who != Worker::Background && pass.kind == PassKind::Drop {
            let plain = pass.dead.as_ref().map_or(true, |lists| lock(&lists[i]).1);
            if !plain {
                lock(&pass.deferred).push(i);
                pass.deferrals.fetch_add(1, Ordering::Release);
                notify_collector();
                continue;
            }
        }
        process_span(pass, i, gray);
        push_gray(std::mem::take(gray));
        span_done(pass);
        k += 1;
        if who == Worker::Background {
            gort_goroutine::runtime::safe_point();
        }
    }
    if who == Worker::Background {
        // Spans allocators deferred (`Drop` spans with user code). Not `while let`: its
        // scrutinee's guard would be held across the span (and `span_done` takes `PROGRESS`,
        // which the collector holds while it checks `deferred`).
        loop {
            let Some(i) = lock(&pass.deferred).pop() else {
                break;
            };
            process_span(pass, i, gray);
            span_done(pass);
        }
    }
    k
}

/// Counts a span of `pass` as done (its effects published), and tells the collector when it was
/// the last.
fn span_done(pass: &SpanPass) {
    if pass.done.fetch_add(1, Ordering::Release) + 1 == pass.spans.len() {
        notify_collector();
    }
}

// ---- the workers --------------------------------------------------------------------------------
//
// Go runs its background mark workers on a quarter of the Ps; so does gort. Each cycle the
// collector thread starts `worker_count()` worker goroutines on the runtime (a quarter of its Ps,
// at least one), posts each span pass and the marking on the job board, and waits: the workers
// (and allocating goroutines' assists) do the cycle's work, on Ps, scheduled like any goroutine
// and yielding at safe points when sysmon asks. The collector thread itself moves the phases,
// traces the last few gray objects in mark termination (the pause), posts a pass again when an
// allocator deferred a `Drop` span after the workers had finished it, and works itself (spans
// and gray batches, never a user `Drop`) only while no worker runs (`RUNNING_WORKERS`): when
// every P is busy, a worker may wait many milliseconds for one, and a cycle must not. Workers exit at the end of
// their cycle, so between cycles the collector owns no goroutine.

/// What the workers are asked to do.
#[derive(Clone)]
enum HelpJob {
    Nothing,
    Pass(Arc<SpanPass>),
    Mark(u32),
}

/// The job board: the current job, numbered so each worker takes each job once, and the cycle
/// whose workers may take it (workers of any other cycle exit).
struct Board {
    seq: u64,
    cycle: u32,
    job: HelpJob,
}

static BOARD: Mutex<Board> = Mutex::new(Board {
    seq: 0,
    cycle: 0,
    job: HelpJob::Nothing,
});

/// Wakers of workers parked for a job or for gray work, and whether there are any (so that the
/// mutators' shading, which calls `wake_workers`, pays one load when none waits).
static PARKED_WORKERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());
static ANY_PARKED: AtomicBool = AtomicBool::new(false);

/// Registers the calling worker to be woken by the next `wake_workers`. The caller holds the lock
/// that guards the condition it waits for (the board's or the gray queue's), and whoever changes
/// that condition calls `wake_workers` after taking that lock: so the wake cannot be missed.
fn register_parked_worker() {
    let mut parked = lock(&PARKED_WORKERS);
    parked.push(gort_goroutine::park::current_waker());
    ANY_PARKED.store(true, Ordering::SeqCst);
}

/// Wakes every parked worker (they recheck what they wait for).
fn wake_workers() {
    if !ANY_PARKED.load(Ordering::SeqCst) {
        return;
    }
    let wakers = {
        let mut parked = lock(&PARKED_WORKERS);
        ANY_PARKED.store(false, Ordering::SeqCst);
        std::mem::take(&mut *parked)
    };
    for w in wakers {
        w.wake();
    }
}

fn post_job(job: HelpJob) {
    {
        let mut b = lock(&BOARD);
        b.seq += 1;
        b.job = job;
    }
    wake_workers();
}

/// Number of workers per cycle: a quarter of the runtime's Ps (Go's 25% background
/// utilization), at least one.
fn worker_count() -> usize {
    (gort_goroutine::runtime::max_procs() / 4).max(1)
}

/// Opens the board for cycle `n` and starts its workers.
fn start_workers(n: u32) {
    {
        let mut b = lock(&BOARD);
        b.seq += 1;
        b.cycle = n;
        b.job = HelpJob::Nothing;
    }
    for _ in 0..worker_count() {
        // The handle is dropped: the worker runs detached and exits with its cycle.
        drop(gort_goroutine::spawn(move || worker_main(n)));
    }
}

/// Closes the board at the end of a cycle: its workers exit.
fn stop_workers() {
    {
        let mut b = lock(&BOARD);
        b.seq += 1;
        b.cycle = 0;
        b.job = HelpJob::Nothing;
    }
    wake_workers();
}

/// A worker goroutine of cycle `cycle`: takes each job posted on the board (the latest one; the
/// collector never needs a particular worker to see a job) until its cycle ends.
fn worker_main(cycle: u32) {
    ON_COLLECTOR.with(|c| c.set(true));
    worker_running(true);
    let mut seen = 0u64;
    loop {
        let job = {
            let b = lock(&BOARD);
            if b.cycle != cycle {
                drop(b);
                worker_running(false);
                return;
            }
            if b.seq == seen {
                register_parked_worker();
                drop(b);
                park_worker();
                continue;
            }
            seen = b.seq;
            b.job.clone()
        };
        match job {
            HelpJob::Nothing => {}
            HelpJob::Pass(pass) => {
                let mut gray = Vec::new();
                work_on(&pass, usize::MAX, &mut gray, Worker::Background);
            }
            HelpJob::Mark(c) => help_mark(c),
        }
    }
}

/// Workers running now (started, on a P, not parked): while there is none (every P busy, or the
/// workers not started yet), the collector thread does the cycle's work itself, so that a cycle
/// never waits for a P (`run_pass`, `mark_on_workers`).
static RUNNING_WORKERS: AtomicUsize = AtomicUsize::new(0);

fn worker_running(running: bool) {
    if running {
        RUNNING_WORKERS.fetch_add(1, Ordering::SeqCst);
    } else if RUNNING_WORKERS.fetch_sub(1, Ordering::SeqCst) == 1 {
        notify_collector();
    }
}

/// Parks a worker that registered its waker, counting it out of `RUNNING_WORKERS` meanwhile.
fn park_worker() {
    worker_running(false);
    gort_goroutine::park::park();
    worker_running(true);
}

/// The collector thread's wait for its workers: `notify_collector` is called after each change
/// that may end a wait (a pass's last span, marking going quiet, a deferred span).
/// Lock order: `PROGRESS` before the locks `done` checks take; nobody takes `PROGRESS` while
/// holding one of them.
static PROGRESS: Mutex<()> = Mutex::new(());
static PROGRESSED: Condvar = Condvar::new();

fn notify_collector() {
    drop(lock(&PROGRESS));
    PROGRESSED.notify_all();
}

/// Blocks the collector thread until `done()` holds. `done` is checked under `PROGRESS`'s lock,
/// which `notify_collector` takes before notifying, so a change made before the notification is
/// never missed; the timeout only bounds the cost of a change made without one.
fn wait_for_workers(mut done: impl FnMut() -> bool) {
    let mut guard = lock(&PROGRESS);
    while !done() {
        guard = PROGRESSED
            .wait_timeout(guard, Duration::from_millis(1))
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
}

/// Runs a pass over `spans` on the workers and allocating goroutines; returns when every span is
/// done.
fn run_pass(
    kind: PassKind,
    spans: &[Arc<heap::Span>],
    dead: Option<&Arc<DeadLists>>,
) -> Arc<SpanPass> {
    let pass = Arc::new(SpanPass {
        kind,
        spans: spans.to_vec(),
        next: AtomicUsize::new(0),
        deferred: Mutex::new(Vec::new()),
        deferrals: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        dead: dead.cloned(),
        freed_objects: AtomicU64::new(0),
        freed_bytes: AtomicU64::new(0),
        marked_bytes: AtomicU64::new(0),
    });
    *lock(&PASS) = Some(pass.clone());
    post_job(HelpJob::Pass(pass.clone()));
    // Deferrals already handed back to the workers.
    let mut handed = 0;
    let mut gray = Vec::new();
    loop {
        let unclaimed = || pass.next.load(Ordering::Relaxed) < pass.spans.len();
        wait_for_workers(|| {
            pass.done.load(Ordering::Acquire) >= pass.spans.len()
                || (!unclaimed() && pass.deferrals.load(Ordering::Acquire) > handed)
                || (unclaimed() && RUNNING_WORKERS.load(Ordering::SeqCst) == 0)
        });
        if pass.done.load(Ordering::Acquire) >= pass.spans.len() {
            break;
        }
        if unclaimed() {
            // No worker runs: bridge the wait for a P with a span (deferring a `Drop` span
            // with user code, which only workers drop).
            work_on(&pass, 1, &mut gray, Worker::Bridge);
            continue;
        }
        // Once every span is claimed, an allocator may still defer one it claimed; the workers
        // may have left the pass by then. Post the pass again: the workers come back for the
        // deferred spans (`work_on`'s last loop), so user `Drop`s run only on them, never on
        // this thread.
        handed = pass.deferrals.load(Ordering::Acquire);
        post_job(HelpJob::Pass(pass.clone()));
    }
    *lock(&PASS) = None;
    post_job(HelpJob::Nothing);
    pass
}

/// An allocating goroutine's share of the current span pass (see [`PassKind`]).
/// Returns the number of spans it processed.
fn help_pass(spans: usize) -> usize {
    let Some(pass) = lock(&PASS).clone() else {
        return 0;
    };
    let mut gray = Vec::new();
    let k = work_on(&pass, spans, &mut gray, Worker::Allocator);
    SPAN_ASSISTS.fetch_add(k as u64, Ordering::Relaxed);
    k
}

/// Marks on the workers until nothing gray is left anywhere and no worker holds gray work; the
/// collector's own gray objects (`gray`) go to the global queue first.
fn mark_on_workers(n: u32, gray: &mut Vec<ObjPtr>) {
    push_gray(std::mem::take(gray));
    loop {
        set_helping(n);
        post_job(HelpJob::Mark(n));
        loop {
            wait_for_workers(|| {
                let g = lock(&GRAY);
                (g.objs.is_empty() && g.busy == 0)
                    || (!g.objs.is_empty() && RUNNING_WORKERS.load(Ordering::SeqCst) == 0)
            });
            // No worker runs: bridge the wait for a P with a batch of marking.
            let mut local = {
                let mut g = lock(&GRAY);
                if g.objs.is_empty() {
                    break;
                }
                g.busy += 1;
                g.take(SHARE_BATCH)
            };
            trace_local(&mut local, false);
            lock(&GRAY).busy -= 1;
        }
        set_helping(0);
        // A worker may have taken work between the check and `helping` changing: it is counted
        // in `busy`, and what it gives back lands in the queue.
        wait_for_workers(|| lock(&GRAY).busy == 0);
        if lock(&GRAY).objs.is_empty() {
            return;
        }
    }
}

/// `GORT_GCTRACE=1`: one line per cycle on stderr (Go's `GODEBUG=gctrace=1`).
fn gctrace() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("GORT_GCTRACE").is_some_and(|v| v != "0"))
}

/// Runs cycle `n`; returns the spans whose dead slots are left to the lazy sweep.
fn run_cycle(n: u32) -> Vec<Arc<heap::Span>> {
    let started = Instant::now();
    let live_at_start = in_use().1;
    TRACE_PANICKED.store(false, Ordering::SeqCst);

    start_workers(n);

    // 1. Clear.
    PHASES.advance(n, Phase::Clear);
    let spans = heap::spans();
    let mut gray = Vec::new();
    run_pass(PassKind::Clear, &spans, None);

    // 2. Mark: the snapshot point is when this returns.
    let cleared_at = started.elapsed();
    PHASES.advance(n, Phase::Mark);
    open_marking(n);
    let spans = heap::spans();
    run_pass(PassKind::Scan, &spans, None);
    // Mark until nothing gray is left, then stop assists (they finish their batches while still
    // in Mark) and mark what they left: termination only has the last moment's shading by GcCell
    // writes and upgrades left to trace.
    mark_on_workers(n, &mut gray);
    close_marking();
    mark_on_workers(n, &mut gray);
    let marked_at = started.elapsed();

    // 3. Terminating. If the pinned operations that finished meanwhile (GcCell writes, upgrades)
    // left much gray work, go back to marking rather than trace it while writers wait; after a
    // few tries, finish anyway.
    let mut pause = Instant::now();
    PHASES.advance(n, Phase::Terminating);
    for _ in 0..4 {
        if lock(&GRAY).objs.len() <= TERMINATION_BACKLOG {
            break;
        }
        PHASES.advance(n, Phase::Mark);
        open_marking(n);
        mark_on_workers(n, &mut gray);
        close_marking();
        mark_on_workers(n, &mut gray);
        pause = Instant::now();
        PHASES.advance(n, Phase::Terminating);
    }
    drain(&mut gray);
    if TRACE_PANICKED.load(Ordering::SeqCst) {
        for span in &spans {
            for_each_object(span, |i, _| {
                span.marks(i).try_mark();
            });
        }
    }
    PHASES.advance(n, Phase::Sweep);
    let pause = pause.elapsed().as_nanos() as u64;
    MAX_PAUSE_NS.fetch_max(pause, Ordering::Relaxed);
    TOTAL_PAUSE_NS.fetch_add(pause, Ordering::Relaxed);

    // 4. Sweep. Pass one flags every dead object (and gives back its handles to live ones);
    // pass two drops their values; pass three frees their slots. No slot is freed before pass
    // three, so every dead object's header (every handle target) stays readable meanwhile.
    let dead: Arc<DeadLists> = Arc::new(
        (0..spans.len())
            .map(|_| Mutex::new((Vec::new(), true)))
            .collect(),
    );
    SWEEP_RUNS_USER_DROPS.store(false, Ordering::Relaxed);
    let flag = run_pass(PassKind::Flag, &spans, Some(&dead));
    let pass_one_at = started.elapsed();
    // Every dead object is flagged before any user `Drop` runs. Plain drops never dereference,
    // clone or downgrade a handle (they only drop them), so a sweep without user drops needs no
    // flags: nothing can reach a dead object, and pass three checks no counts.
    if SWEEP_RUNS_USER_DROPS.load(Ordering::Relaxed) {
        run_pass(PassKind::Condemn, &spans, Some(&dead));
    }
    run_pass(PassKind::Drop, &spans, Some(&dead));
    let mut unswept = Vec::new();
    let (freed_objects, freed_bytes) = if SWEEP_RUNS_USER_DROPS.load(Ordering::Relaxed) {
        let free = run_pass(PassKind::Free, &spans, Some(&dead));
        (
            free.freed_objects.load(Ordering::Relaxed),
            free.freed_bytes.load(Ordering::Relaxed),
        )
    } else {
        // Every dead value is dropped and none ran user code, so no handle to a dead object is
        // left anywhere: the slots may be freed in any order, by anyone, from now on. Counted as
        // freed now (their values are gone).
        let (mut objects, mut bytes) = (0u64, 0u64);
        for (span, list) in spans.iter().zip(dead.iter()) {
            let list = std::mem::take(&mut lock(list).0);
            if list.is_empty() {
                continue;
            }
            objects += list.len() as u64;
            bytes += (list.len() * span.slot_size) as u64;
            span.sweep_later(list);
            unswept.push(span.clone());
        }
        (objects, bytes)
    };
    let marked_bytes = flag.marked_bytes.load(Ordering::Relaxed);
    FREED_OBJECTS.fetch_add(freed_objects, Ordering::Relaxed);
    FREED_BYTES.fetch_add(freed_bytes, Ordering::Relaxed);
    drop(spans);

    // 5. Idle, and the next goal.
    PHASES.advance(n, Phase::Idle);
    // Go's heap goal is relative to the heap marked live by this cycle, not to what was allocated
    // meanwhile (that is next cycle's business).
    set_goal(marked_bytes);
    HEAP_MARKED.store(marked_bytes, Ordering::Relaxed);
    COLLECTIONS.fetch_add(1, Ordering::Relaxed);
    LAST_CYCLE_NS.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    if gctrace() {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        eprintln!(
            "gort gc {n}: {:.1} ms (clear {:.1}, scan+mark {:.1}, sweep {:.1} + {:.1} ms; pause {} us), \
             {:.1} -> {:.1} MiB, freed {} objects, goal {:.1} MiB",
            started.elapsed().as_secs_f64() * 1e3,
            cleared_at.as_secs_f64() * 1e3,
            (marked_at - cleared_at).as_secs_f64() * 1e3,
            (pass_one_at - marked_at).as_secs_f64() * 1e3,
            (started.elapsed() - pass_one_at).as_secs_f64() * 1e3,
            pause / 1000,
            mib(live_at_start),
            mib(in_use().1),
            freed_objects,
            mib(HEAP_GOAL.load(Ordering::Relaxed)),
        );
    }
    unswept
}

/// Runs a full collection and returns when it is done (Go's `runtime.GC()`): every object that was
/// unreachable when `collect` was called has been dropped and freed. Parks the calling goroutine
/// (blocks a plain thread) meanwhile.
///
/// # Panics
/// When called from a `Drop` that the collector is running (it would wait for itself).
pub fn collect() {
    if ON_COLLECTOR.with(|c| c.get()) {
        panic!("gort: gc::collect() called from a Drop run by the collector (it would wait for itself)");
    }
    if crate::reclaim::in_cascade() {
        panic!(
            "gort: gc::collect() called from a Trace impl while a dropped object was being freed              (the collection would wait for that free)"
        );
    }
    ensure_started();
    let target = {
        let mut c = lock(&CONTROL);
        // A cycle already running may have taken its snapshot before our caller's last drop.
        let t = c.completed + if c.running { 2 } else { 1 };
        c.requested = c.requested.max(t);
        t
    };
    WAKE_COLLECTOR.notify_one();
    loop {
        {
            let mut c = lock(&CONTROL);
            if c.completed >= target {
                return;
            }
            c.waiters.push(gort_goroutine::park::current_waker());
        }
        gort_goroutine::park::park();
    }
}

/// Sets the collection target percentage (Go's `GOGC`, `debug.SetGCPercent`): a cycle starts when
/// the heap has grown by `percent`% over what the last cycle left live. A negative value turns
/// automatic collection off ([`collect`] still works). Returns the previous setting. The default
/// is 100, or the value of the environment variable `GORT_GC` (a number, or `off`).
pub fn set_percent(percent: i32) -> i32 {
    ensure_started();
    let old = PERCENT.swap(percent.max(-1), Ordering::SeqCst);
    set_goal(HEAP_MARKED.load(Ordering::Relaxed));
    old
}

/// A snapshot of the heap and the collector.
pub fn stats() -> GcStats {
    let totals = heap::totals();
    let (live_objects, heap_bytes) = in_use_of(&totals);
    GcStats {
        live_objects,
        heap_bytes,
        heap_goal: HEAP_GOAL.load(Ordering::Relaxed),
        span_bytes: heap::span_bytes(),
        collections: COLLECTIONS.load(Ordering::Relaxed),
        freed_objects: FREED_OBJECTS.load(Ordering::Relaxed) + totals.recycled_objects,
        freed_promptly: totals.recycled_objects,
        max_pause: Duration::from_nanos(MAX_PAUSE_NS.load(Ordering::Relaxed)),
        total_pause: Duration::from_nanos(TOTAL_PAUSE_NS.load(Ordering::Relaxed)),
        last_cycle: Duration::from_nanos(LAST_CYCLE_NS.load(Ordering::Relaxed)),
        assists: ASSISTS.load(Ordering::Relaxed),
        span_assists: SPAN_ASSISTS.load(Ordering::Relaxed),
        drop_panics: DROP_PANICS.load(Ordering::Relaxed),
        leaked_objects: LEAKED_OBJECTS.load(Ordering::Relaxed),
        percent: PERCENT.load(Ordering::Relaxed),
    }
}
