//! The collector: one background thread running Go-style cycles, the pacer, mark assists, the
//! sweep with safe finalization, and the statistics.
//!
//! A cycle `n` (the crate docs give the protocol and the soundness argument):
//! 1. **Clear** (`phase.rs` phase `Clear`): clear every object's `DIRTY` bit.
//! 2. **Mark** begins (the snapshot point): scan every allocated object, stamping `scan = n`;
//!    objects with an outside handle or `DIRTY` are roots and are shaded. Then trace gray objects
//!    until none are left; mutators shade through `GcCell` writes and `Weak::upgrade`, and
//!    allocating goroutines help (assists) when the heap passes its goal.
//! 3. **Terminating**: wait out pinned operations, drain the last gray objects (going back to Mark
//!    first, a few times at most, if they left a backlog). This is the only window in which a
//!    mutator operation (a `GcCell` write, an upgrade) can wait; its length is the reported pause.
//! 4. **Sweep**: dead = scanned in `n` and not marked. Pass one clears every dead object's weak
//!    slot, then its handles to other dead objects, and gives back its handles to live ones; pass
//!    two drops each dead value (a panicking `Drop` is caught and reported) and frees its slot.
//! 5. Back to **Idle**; the pacer sets the next goal: `marked * (1 + GOGC/100)` (Go's formula),
//!    at least 4 MiB, with the next cycle triggered at 7/8 of the runway.
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
use crate::phase::{Phase, Phases};
use crate::trace::{Mode, ObjPtr, Tracer};
use crate::GcStats;

/// The collector's phase word and pins.
pub(crate) static PHASES: Phases = Phases::new();

/// Objects shaded by mutators (GcCell writes, upgrades) and assists' leftovers.
static GRAY: Mutex<Vec<ObjPtr>> = Mutex::new(Vec::new());

/// Set when a `Trace` panics during marking: the cycle then frees nothing.
static TRACE_PANICKED: AtomicBool = AtomicBool::new(false);

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

thread_local!(static ON_COLLECTOR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });

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
            c.running = true;
        }
        cycle = cycle.wrapping_add(1).max(1);
        run_cycle(cycle);
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
    }
}

/// `(objects, bytes)` in use now.
fn in_use() -> (u64, u64) {
    let (objects, bytes) = heap::allocated();
    (
        objects.saturating_sub(FREED_OBJECTS.load(Ordering::Relaxed)),
        bytes.saturating_sub(FREED_BYTES.load(Ordering::Relaxed)),
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
/// trigger, and assists marking when it has passed the goal.
pub(crate) fn on_refill() {
    ensure_started();
    let live = in_use().1;
    let state = PHASES.peek();
    if state.phase == Phase::Idle {
        if live >= TRIGGER.load(Ordering::Relaxed) && !KICKED.swap(true, Ordering::SeqCst) {
            lock(&CONTROL).kicked = true;
            WAKE_COLLECTOR.notify_one();
        }
    } else {
        let goal = HEAP_GOAL.load(Ordering::Relaxed).max(1);
        if live > goal {
            // Proportional help (Go's assist ratio, simplified): the further past the goal, the
            // more of the collector's work each span of allocation pays for.
            let rounds = (live / goal).min(16) as usize;
            help_pass(4 * rounds);
            if state.phase == Phase::Mark {
                for _ in 0..rounds {
                    assist();
                }
            }
        }
    }
}

/// A mark assist: trace a batch of gray objects on the allocating goroutine.
fn assist() {
    let pin = PHASES.pin();
    if pin.state.phase != Phase::Mark {
        return;
    }
    let mut batch = {
        let mut g = lock(&GRAY);
        let n = g.len().min(ASSIST_BATCH);
        let at = g.len() - n;
        g.split_off(at)
    };
    if batch.is_empty() {
        return;
    }
    ASSISTS.fetch_add(1, Ordering::Relaxed);
    let mut traced = 0;
    while let Some(o) = batch.pop() {
        trace_gray(o, pin.state.cycle, &mut batch);
        traced += 1;
        if traced >= ASSIST_BATCH {
            break;
        }
    }
    if !batch.is_empty() {
        push_gray(batch);
    }
    drop(pin);
}

/// Adds shaded objects to the global gray queue.
pub(crate) fn push_gray(objs: Vec<ObjPtr>) {
    lock(&GRAY).extend(objs);
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
fn trace_gray(o: ObjPtr, cycle: u32, gray: &mut Vec<ObjPtr>) {
    // SAFETY: a gray object was marked in this cycle (so it is not freed before this cycle's
    // sweep, which starts after marking ends) and was allocated when shaded.
    let h = unsafe { o.0.as_ref() };
    let mut t = Tracer::new(Mode::Mark { cycle, gray });
    // SAFETY: `h` heads a live object of the vtable's type.
    let r = catch_unwind(AssertUnwindSafe(|| unsafe { (h.vtable.trace)(h, &mut t) }));
    if r.is_err() && !TRACE_PANICKED.swap(true, Ordering::SeqCst) {
        eprintln!(
            "gort: Trace::trace of {} panicked during marking; this collection frees nothing",
            (h.vtable.type_name)()
        );
    }
}

fn drain(cycle: u32, local: &mut Vec<ObjPtr>) {
    let mut traced = 0u32;
    loop {
        while let Some(o) = local.pop() {
            trace_gray(o, cycle, local);
            traced = traced.wrapping_add(1);
            // Share work with mark assists: allocating goroutines take it from the global queue.
            if traced % 256 == 0 && local.len() > 2 * ASSIST_BATCH {
                if let Ok(mut g) = GRAY.try_lock() {
                    if g.len() < ASSIST_BATCH {
                        let half = local.len() / 2;
                        g.extend(local.drain(..half));
                    }
                }
            }
        }
        let mut g = lock(&GRAY);
        if g.is_empty() {
            return;
        }
        std::mem::swap(&mut *g, local);
    }
}

/// Calls `f` with the header of every allocated object, span by span.
fn for_each_object(spans: &[Arc<heap::Span>], mut f: impl FnMut(&Arc<heap::Span>, usize, &Header)) {
    for span in spans {
        for i in 0..span.slots() {
            if span.state(i) == ALLOC {
                // SAFETY: an ALLOC slot holds an initialized object (published with release, read
                // with acquire above), and objects are freed only by this thread's sweep.
                let h = unsafe { &*span.slot_ptr(i).cast::<Header>() };
                f(span, i, h);
            }
        }
    }
}

/// The collector's passes over every span (clear, scan, finalize), shared with allocating
/// goroutines: a goroutine that takes a span while the heap is past its goal processes a few spans
/// of the current pass itself (Go's proportional sweeping and assists, for our passes). None of
/// these passes runs `Drop` (user code other than `Trace`): dropping stays on the collector.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PassKind {
    /// Clear `DIRTY` (phase Clear).
    Clear,
    /// Stamp `scan` and shade roots (phase Mark).
    Scan,
    /// Sweep pass one for dead objects: weak slot, then handles (phase Sweep).
    Finalize,
}

struct SpanPass {
    kind: PassKind,
    cycle: u32,
    spans: Vec<Arc<heap::Span>>,
    /// The next span to claim.
    next: AtomicUsize,
    /// Spans finished (their effects, gray objects included, published).
    done: AtomicUsize,
}

/// The pass in progress, if any.
static PASS: Mutex<Option<Arc<SpanPass>>> = Mutex::new(None);
/// Spans processed by allocating goroutines.
static SPAN_ASSISTS: AtomicU64 = AtomicU64::new(0);

fn process_span(pass: &SpanPass, span: &Arc<heap::Span>, gray: &mut Vec<ObjPtr>) {
    let n = pass.cycle;
    for_each_object(std::slice::from_ref(span), |span, i, h| match pass.kind {
        PassKind::Clear => h.clear_dirty(),
        PassKind::Scan => {
            h.scan.store(n, Ordering::Relaxed);
            if h.is_root() && h.try_mark(n) {
                gray.push(ObjPtr(std::ptr::NonNull::from(h)));
            }
        }
        PassKind::Finalize => {
            if !h.is_dead(n) {
                return;
            }
            crate::weak::clear_slot(h);
            let mut t = Tracer::new(Mode::Finalize { cycle: n });
            // SAFETY: `h` heads a live object of the vtable's type; nothing else can reach it
            // (it is dead), and no slot is freed before every span's pass one is done.
            let r = catch_unwind(AssertUnwindSafe(|| unsafe { (h.vtable.trace)(h, &mut t) }));
            if r.is_err() {
                eprintln!(
                    "gort: Trace::trace of {} panicked while finalizing it; the object is leaked",
                    (h.vtable.type_name)()
                );
                span.leak(i); // no longer ALLOC: pass two skips it
                LEAKED_OBJECTS.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

/// Claims and processes up to `max` spans of `pass`. Gray objects go to the global queue before
/// a span counts as done, so the collector, which waits for every span to be done, sees them.
fn work_on(pass: &SpanPass, max: usize, gray: &mut Vec<ObjPtr>, publish: bool) -> usize {
    let mut k = 0;
    while k < max {
        let i = pass.next.fetch_add(1, Ordering::Relaxed);
        let Some(span) = pass.spans.get(i) else { break };
        process_span(pass, span, gray);
        if publish && !gray.is_empty() {
            push_gray(std::mem::take(gray));
        }
        pass.done.fetch_add(1, Ordering::Release);
        k += 1;
    }
    k
}

/// Runs a pass over `spans` with whoever helps; returns when every span is done.
fn run_pass(kind: PassKind, cycle: u32, spans: &[Arc<heap::Span>], gray: &mut Vec<ObjPtr>) {
    let pass = Arc::new(SpanPass {
        kind,
        cycle,
        spans: spans.to_vec(),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    *lock(&PASS) = Some(pass.clone());
    work_on(&pass, usize::MAX, gray, false);
    *lock(&PASS) = None;
    let mut round = 0;
    while pass.done.load(Ordering::Acquire) < pass.spans.len() {
        round += 1;
        crate::sync::backoff(round);
    }
}

/// An allocating goroutine's share of the current span pass (see [`PassKind`]).
fn help_pass(spans: usize) {
    let pass = lock(&PASS).clone();
    if let Some(pass) = pass {
        let mut gray = Vec::new();
        let k = work_on(&pass, spans, &mut gray, true);
        SPAN_ASSISTS.fetch_add(k as u64, Ordering::Relaxed);
    }
}

/// `GORT_GCTRACE=1`: one line per cycle on stderr (Go's `GODEBUG=gctrace=1`).
fn gctrace() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("GORT_GCTRACE").is_some_and(|v| v != "0"))
}

fn run_cycle(n: u32) {
    let started = Instant::now();
    let live_at_start = in_use().1;
    TRACE_PANICKED.store(false, Ordering::SeqCst);

    // 1. Clear.
    PHASES.advance(n, Phase::Clear);
    let spans = heap::spans();
    let mut gray = Vec::new();
    run_pass(PassKind::Clear, n, &spans, &mut gray);

    // 2. Mark: the snapshot point is when this returns.
    let cleared_at = started.elapsed();
    PHASES.advance(n, Phase::Mark);
    let spans = heap::spans();
    run_pass(PassKind::Scan, n, &spans, &mut gray);
    // Drain until a pass finds nothing new, so that termination only has the last moment's
    // shading left to trace.
    loop {
        drain(n, &mut gray);
        std::thread::yield_now();
        if lock(&GRAY).is_empty() {
            break;
        }
    }
    let marked_at = started.elapsed();

    // 3. Terminating. If the pinned operations that finished meanwhile (assists, writes) left
    // much gray work, go back to marking rather than trace it while writers wait; after a few
    // tries, finish anyway.
    let mut pause = Instant::now();
    PHASES.advance(n, Phase::Terminating);
    for _ in 0..4 {
        if lock(&GRAY).len() <= TERMINATION_BACKLOG {
            break;
        }
        PHASES.advance(n, Phase::Mark);
        drain(n, &mut gray);
        pause = Instant::now();
        PHASES.advance(n, Phase::Terminating);
    }
    drain(n, &mut gray);
    if TRACE_PANICKED.load(Ordering::SeqCst) {
        for_each_object(&spans, |_, _, h| {
            h.mark.store(n, Ordering::Relaxed);
        });
    }
    PHASES.advance(n, Phase::Sweep);
    let pause = pause.elapsed().as_nanos() as u64;
    MAX_PAUSE_NS.fetch_max(pause, Ordering::Relaxed);
    TOTAL_PAUSE_NS.fetch_add(pause, Ordering::Relaxed);

    // 4. Sweep, pass one: weak slots, then handles between dead objects. No slot is freed before
    // pass two, so every dead object (and so every handle target) stays allocated meanwhile.
    run_pass(PassKind::Finalize, n, &spans, &mut gray);
    let pass_one_at = started.elapsed();
    // Pass two: drop and free, span by span (dead = still ALLOC, scanned in n, not marked in n;
    // objects allocated since the scan have `scan == 0`).
    let mut freed_bytes = 0u64;
    let mut freed_objects = 0u64;
    let mut marked_bytes = 0u64;
    for span in &spans {
        let mut freed_here = 0;
        for i in 0..span.slots() {
            if span.state(i) != ALLOC {
                continue;
            }
            let h = span.slot_ptr(i).cast::<Header>();
            // SAFETY: an ALLOC slot holds an initialized object; only this thread frees.
            if !unsafe { &*h }.is_dead(n) {
                // Live at the snapshot: scanned and marked. Objects allocated black after their
                // slot was scanned are not counted: our cycles are long, and counting what was
                // allocated during them would let the goal run away. SAFETY: as above.
                let o = unsafe { &*h };
                if o.mark.load(Ordering::Relaxed) == n && o.scan.load(Ordering::Relaxed) == n {
                    marked_bytes += span.slot_size as u64;
                }
                continue;
            }
            // SAFETY: a dead object's value is initialized and dropped exactly once, here; every
            // handle it holds to another dead object was cleared in pass one.
            let r = catch_unwind(AssertUnwindSafe(|| unsafe { ((*h).vtable.drop_value)(h) }));
            if let Err(p) = r {
                DROP_PANICS.fetch_add(1, Ordering::Relaxed);
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "<non-string panic>".into());
                // SAFETY: the header outlives the value's drop (only the value was dropped).
                let name = unsafe { ((*h).vtable.type_name)() };
                eprintln!(
                    "gort: the Drop of a collected {name} panicked ({msg}); the collector goes on"
                );
            }
            span.free_slot(i);
            freed_here += 1;
        }
        if freed_here > 0 {
            span.freed(freed_here);
            freed_objects += freed_here as u64;
            freed_bytes += (freed_here * span.slot_size) as u64;
        }
    }
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
    let (live_objects, heap_bytes) = in_use();
    GcStats {
        live_objects,
        heap_bytes,
        heap_goal: HEAP_GOAL.load(Ordering::Relaxed),
        span_bytes: heap::span_bytes(),
        collections: COLLECTIONS.load(Ordering::Relaxed),
        freed_objects: FREED_OBJECTS.load(Ordering::Relaxed),
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
