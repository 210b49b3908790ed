//! Prompt reclamation: an object whose last handle goes away while no collection is running is
//! dropped and freed at once, by the goroutine that dropped the handle, the way `Arc` frees.
//!
//! Handle counting already knows when an object has no handle left anywhere (`handles == 0`, the
//! object has no weak slot): only a handle can make a handle, so nothing can ever reach the object
//! again. Most garbage dies that way (trees, lists, temporaries: anything not in a cycle), and
//! freeing it on the spot keeps the heap near its live size, so the collector runs rarely and only
//! cycles wait for it. What the collector would do for such an object is done here instead:
//! give back the `internal` counts of its handles, drop its value, free its slot.
//!
//! Invariants, and why this is safe beside the concurrent collector:
//! * **Only while the collector is idle.** A cascade runs under `Phases::pin_idle`: the collector
//!   cannot start a cycle's clear pass until the pin is released, and no pass, tracer or assist of
//!   the previous cycle is still running in `Idle` (the sweep's passes all finish before it). So
//!   nothing but this thread reads or writes the object. If a cycle is running, the object is left
//!   alone: it is ordinary garbage, and the collector frees it (it was `DIRTY` at its drop, so
//!   possibly one cycle later).
//! * **Only plain drops** (`Trace::plain_drop`). A value whose drop runs user code is left to the
//!   collector, which runs such drops on its own threads: user code must not run inside an
//!   unrelated `Gc` drop holding the idle pin (a `Drop` that calls `gc::collect` would wait for a
//!   cycle that waits for the pin), and the collector's `Drop` rules (dead objects flagged first)
//!   only hold there. Objects found dead by the collector (flagged, or leaked for good) and large
//!   objects are left alone too.
//! * **No recursion.** Dropping a value may drop the last handle to another object; that object is
//!   listed and reclaimed by the same loop under the same pin, so a long list is freed in constant
//!   stack. The loop checks the phase word now and then: when the collector is waiting to start a
//!   cycle, it stops and leaves what it listed to the collector (unreachable, with no handles:
//!   ordinary garbage).
//! * Counts stay exact: a handle inside the object counts in its target's `internal`; reclaiming
//!   gives that back and drops the handle (`Header::release` does both in one step when the value's
//!   drop only drops handles, `Trace::drop_is_handles_only`: the value is then not dropped at all).

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::collector::{self, PHASES};
use crate::header::{Header, VTable};
use crate::heap::{self, ALLOC};
use crate::phase::{Phase, Pin, State};
use crate::trace::{Mode, ObjPtr, Tracer};

/// Objects reclaimed between two looks at the phase word (see the module docs).
const PHASE_CHECK_EVERY: usize = 1024;

/// Per thread: whether a cascade is running, the objects it has still to reclaim, and the
/// objects whose last handle was dropped during a cycle, kept for the idle time after it.
struct Cascade {
    running: Cell<bool>,
    pending: RefCell<Vec<ObjPtr>>,
    /// The cascade's list of handles to release (kept for its capacity).
    releases: RefCell<Vec<ObjPtr>>,
    /// Objects whose last handle went away during cycle `deferred_cycle` after its snapshot, and
    /// that its sweep does not free (see `last_handle_dropped`): reclaimable in the `Idle` that
    /// follows that cycle, and only then.
    deferred: RefCell<Vec<ObjPtr>>,
    deferred_cycle: Cell<u32>,
}

/// Threads whose `deferred` list is not empty: the collector gives them a moment to reclaim
/// before it lets the pacer start the next cycle (`collector::collector_main`), as a cycle
/// that began first would turn all of it into its own garbage.
pub(crate) static DEFERRED_THREADS: AtomicUsize = AtomicUsize::new(0);

impl Drop for Cascade {
    fn drop(&mut self) {
        // Thread exit: what it kept becomes the collector's.
        if !self.deferred.get_mut().is_empty() {
            DEFERRED_THREADS.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

thread_local!(static CASCADE: Cascade = const {
    Cascade {
        running: Cell::new(false),
        pending: RefCell::new(Vec::new()),
        releases: RefCell::new(Vec::new()),
        deferred: RefCell::new(Vec::new()),
        deferred_cycle: Cell::new(0),
    }
});

/// The last handle to `h` was dropped (`Header::dec_handle` said so; `before` is the phase the
/// dropper read *before* its decrement): reclaim it now, with every object that dies with it, if
/// the collector is idle; keep it for the end of the cycle if that is safe; else leave it to the
/// collector.
///
/// Keeping it is safe when the decrement came after the cycle's snapshot (`before` is `Mark`,
/// `Terminating` or `Sweep`: the snapshot point is the switch to `Mark`, and `before` was read
/// first) and the cycle's sweep will not free the object. The handle existed at the snapshot, so
/// the object was reachable then and is marked — unless the handle sat in a dead object, which
/// only the sweep drops: so in `Sweep` the object is kept only if not found dead. It must then be
/// reclaimed before the next cycle's clear pass (after it, it is that cycle's garbage), which the
/// idle pin and the cycle tag ensure.
#[cold]
#[inline(never)]
pub(crate) fn last_handle_dropped(h: NonNull<Header>, before: State) {
    // During thread exit, after the thread-local is gone, the collector takes the object.
    let _ = CASCADE.try_with(|c| {
        if c.running.get() {
            c.pending.borrow_mut().push(ObjPtr(h));
            return;
        }
        // Nothing here reads the object before the idle pin says it is still there: the thread
        // may have been descheduled after its decrement for a whole cycle, whose sweep freed it.
        if let Some(pin) = PHASES.pin_idle() {
            let still_there = pin.state.may_reclaim_dropped_in(before);
            cascade(c, still_there.then_some(ObjPtr(h)), pin);
            return;
        }
        // Kept only if the decrement followed a snapshot: the caller already left out, in
        // `Sweep`, the objects that sweep found dead.
        let keep = matches!(
            before.phase,
            Phase::Mark | Phase::Terminating | Phase::Sweep
        );
        if keep {
            let mut deferred = c.deferred.borrow_mut();
            if deferred.is_empty() {
                DEFERRED_THREADS.fetch_add(1, Ordering::SeqCst);
            }
            if c.deferred_cycle.get() != before.cycle {
                // Kept for an earlier cycle and not reclaimed in time: the collector's garbage now.
                deferred.clear();
                c.deferred_cycle.set(before.cycle);
            }
            deferred.push(ObjPtr(h));
        }
    });
}

/// Reclaims the objects this thread kept during the last cycle, if the collector is idle after
/// it (allocation calls this when it takes a span).
pub(crate) fn reclaim_deferred() {
    let _ = CASCADE.try_with(|c| {
        if c.running.get() || c.deferred.borrow().is_empty() {
            return;
        }
        if let Some(pin) = PHASES.pin_idle() {
            cascade(c, None, pin);
        }
    });
}

/// Reclaims `first` and the objects kept for the cycle that just ended, and everything that dies
/// with them, under the idle pin.
///
/// Two lists drive it: `ready`, objects whose last handle is gone, and `releases`, handles that
/// sat in objects reclaimed since, whose targets' counts are still to be lowered. A cascade walks
/// a structure that is usually cold in cache, so reading each target's counts the moment its
/// holder is traced would stall on every object: instead the trace only prefetches the target
/// and lists the handle, and the loop takes releases a few entries below the top of the list, by
/// when the prefetch has landed (still depth-first, so the list stays short).
fn cascade(c: &Cascade, first: Option<ObjPtr>, pin: Pin<'_>) {
    c.running.set(true);
    // Reset even if something below panics (a `Trace`'s `plain_drop`, say), so the thread keeps
    // reclaiming afterwards.
    struct Running<'a>(&'a Cell<bool>);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.set(false);
        }
    }
    let _running = Running(&c.running);
    // The lists are taken out of the thread-local (keeping their capacity); handles dropped by a
    // value's drop glue come back through `last_handle_dropped`, into `pending`, and are moved to
    // `ready` after each drop.
    let mut ready = std::mem::take(&mut *c.pending.borrow_mut());
    let mut releases = std::mem::take(&mut *c.releases.borrow_mut());
    {
        let mut deferred = c.deferred.borrow_mut();
        if !deferred.is_empty() {
            DEFERRED_THREADS.fetch_sub(1, Ordering::SeqCst);
        }
        if c.deferred_cycle.get() == pin.state.cycle {
            ready.append(&mut deferred);
        } else {
            deferred.clear();
        }
    }
    ready.extend(first);
    let mut done = 0usize;
    let mut kind = KindCache::default();
    loop {
        let (o, place) = if let Some(o) = ready.pop() {
            match reclaimable(o, &mut kind) {
                Some(place) => (o, place),
                None => continue, // the collector's
            }
        } else if let Some(h) = pop_delayed(&mut releases) {
            // SAFETY: the handle existed until its holder was reclaimed: its target is allocated.
            let header = unsafe { h.0.as_ref() };
            match reclaimable(h, &mut kind) {
                // The last handle? Then the object goes now, and its counts are never read again.
                Some(place) if header.release_last() => (h, place),
                Some(_) => continue,
                None => {
                    // Counted exactly: if that was its last handle, it is the collector's.
                    header.release();
                    continue;
                }
            }
        } else {
            break;
        };
        reclaim(o, place, &mut releases, &mut ready, c, &kind);
        done += 1;
        if done % PHASE_CHECK_EVERY == 0 && PHASES.peek() != pin.state {
            // A cycle waits to begin: leave the rest to it, with exact counts. Objects in `ready`
            // have no handle; the handles in `releases` are given back (still under the pin).
            for h in releases.drain(..) {
                // SAFETY: as above.
                unsafe { h.0.as_ref() }.release();
            }
            break;
        }
    }
    ready.clear();
    *c.pending.borrow_mut() = ready;
    *c.releases.borrow_mut() = releases;
    drop(pin);
}

/// How far below the top of `releases` the cascade takes the next one: the prefetches issued for
/// the entries above it (about this many objects' worth of work) have time to land.
const RELEASE_LOOKAHEAD: usize = 16;

fn pop_delayed(releases: &mut Vec<ObjPtr>) -> Option<ObjPtr> {
    match releases.len() {
        0 => None,
        n if n > RELEASE_LOOKAHEAD => Some(releases.swap_remove(n - RELEASE_LOOKAHEAD)),
        _ => releases.pop(),
    }
}

/// Whether this thread is reclaiming (holds the idle pin): `gc::collect` would wait for itself.
pub(crate) fn in_cascade() -> bool {
    CASCADE.try_with(|c| c.running.get()).unwrap_or(false)
}

/// What the cascade asks of the last type it met: a cascade mostly frees one type (a tree, a
/// list), so each vtable's answers are fetched once in a row, not once per object.
#[derive(Default)]
struct KindCache {
    vtable: Option<&'static VTable>,
    reclaimable: bool,
    handles_only: bool,
}

impl KindCache {
    /// Whether objects of this type may be reclaimed here; `handles_only` then holds for it.
    fn of(&mut self, vt: &'static VTable) -> bool {
        if !self.vtable.is_some_and(|v| std::ptr::eq(v, vt)) {
            self.vtable = Some(vt);
            // User-overridable: a panic here must not unwind out of the cascade (it would lose
            // the handles still listed for release). A type that panics is the collector's.
            let asked = catch_unwind(|| ((vt.plain_drop)(), (vt.drop_is_handles_only)()));
            let (plain, handles_only) = asked.unwrap_or((false, false));
            self.reclaimable = vt.class.is_some() && plain;
            self.handles_only = handles_only;
        }
        self.reclaimable
    }
}

/// Where an object with no handle left lives, if this cascade may free it (module docs): a small
/// object, allocated (not leaked), not flagged dead, whose drop is plain.
fn reclaimable(o: ObjPtr, kind: &mut KindCache) -> Option<(&'static heap::Span, usize)> {
    // SAFETY: the object is allocated (the callers' contracts: its last handle, or a handle to it,
    // existed until now, and nothing frees it meanwhile under the idle pin).
    let h = unsafe { o.0.as_ref() };
    if !kind.of(h.vtable) || h.is_flagged_dead() {
        return None;
    }
    // In `Idle` a slot reachable through a handle is allocated, or leaked for good and then
    // flagged (every leak flags: a panicking `Trace` here or in the sweep, a `Drop` that kept a
    // handle, which only a sweep with user drops, one that flags every dead object, allows). No
    // need to read the slot's byte, a cache miss of its own on a large structure.
    let (span, i) = heap::locate_small(o.0.as_ptr().cast::<u8>())?;
    debug_assert_eq!(
        span.state(i),
        ALLOC,
        "gort: an unflagged handle to a slot not allocated"
    );
    Some((span, i))
}

/// Frees one object with no handle left, found `reclaimable` at `place`: lists the handles in its
/// value for release (a value whose drop only drops handles is not dropped at all), or disowns
/// and drops the value (its last handles come back through `pending` into `ready`), then frees
/// the slot.
fn reclaim(
    o: ObjPtr,
    (span, i): (&'static heap::Span, usize),
    releases: &mut Vec<ObjPtr>,
    ready: &mut Vec<ObjPtr>,
    c: &Cascade,
    kind: &KindCache,
) {
    // SAFETY: the object has no handle, and the collector is idle (we hold the idle pin): it is
    // allocated (only the sweep and this loop free, and this loop takes each object once: it is
    // listed only by the decrement that took its last handle) and only this thread touches it.
    let h = unsafe { o.0.as_ref() };
    let vt = h.vtable;
    let handles_only = kind.handles_only;
    let traced = if handles_only {
        let mut t = Tracer::new(Mode::Release { handles: releases });
        // SAFETY: `h` heads a live object of the vtable's type, reachable by nobody else.
        catch_unwind(AssertUnwindSafe(|| unsafe { (vt.trace)(h, &mut t) }))
    } else {
        let mut no_gray = Vec::new();
        let mut t = Tracer::new(Mode::Disown {
            shade: false,
            gray: &mut no_gray,
        });
        // SAFETY: as above.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe { (vt.trace)(h, &mut t) }));
        if r.is_ok() {
            // SAFETY: the value is initialized (state ALLOC) and dropped once, here; the slot is
            // freed right after and nothing can reach it. Handles it drops that were the last to
            // their objects list them through `last_handle_dropped` (the cascade is running).
            let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
                (vt.drop_value)(o.0.as_ptr())
            }));
            if let Err(e) = dropped {
                collector::report_drop_panic((vt.type_name)(), e);
            }
            ready.append(&mut c.pending.borrow_mut());
        }
        r
    };
    if traced.is_err() {
        // Some handles were given back, some not: like the collector, leak the object for good
        // (its value is never dropped, so no handle in it is ever dropped twice or used).
        h.flag_dead();
        span.leak(i);
        collector::report_leak((vt.type_name)());
        return;
    }
    heap::recycle(span, i);
}
