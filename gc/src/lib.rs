//! gort's garbage-collected heap: [`Gc<T>`], [`GcCell<T>`], [`Weak<T>`], the [`Trace`] trait, and a
//! concurrent mark-sweep collector paced like Go's.
//!
//! ```
//! use gort_gc::{Gc, GcCell, Trace, Tracer};
//!
//! struct Node { name: String, edges: GcCell<Vec<Gc<Node>>> }
//! // SAFETY: reports every handle; they change only through the GcCell.
//! // (With the facade: `#[derive(gort::Trace)]` and `#[gc(skip)] name: String`.)
//! unsafe impl Trace for Node {
//!     fn trace(&self, t: &mut Tracer<'_>) { self.edges.trace(t) }
//! }
//!
//! let a = Gc::new(Node { name: "a".into(), edges: GcCell::new(vec![]) });
//! let b = Gc::new(Node { name: "b".into(), edges: GcCell::new(vec![a.clone()]) });
//! a.edges.borrow_mut().push(b.clone()); // a <-> b: a cycle
//! assert_eq!(a.edges.borrow()[0].name, "b");
//! let before = gort_gc::stats().freed_objects;
//! drop((a, b));
//! gort_gc::collect();
//! assert!(gort_gc::stats().freed_objects >= before + 2);
//! ```
//!
//! This crate owns the heap: the allocator (`heap`: size classes, spans, per-P caches), object
//! headers and their counts word (`header`), handles (`handle`, `weak`), the write barrier
//! (`cell`), tracing (`trace`), the phase word and pins (`phase`) and the collector with its pacer
//! (`collector`), and prompt reclamation of objects whose last handle is dropped (`reclaim`).
//! `unsafe` lives in `heap` (raw span memory, the span map), `handle` (the object behind a
//! pointer), `cell` (the lock's data), `weak` (the slot's address), `collector` (walking spans,
//! dropping dead values) and `reclaim` (dropping unreachable values); each block states its
//! invariant.
//!
//! # Roots without stack maps: handle counting
//! Every handle anywhere — a stack, a `Box`, a `Vec`, a channel, a static, another thread — adds
//! one to its object's `handles` count. Handles inside heap objects are also counted as
//! `internal`: a value's handles are *adopted* when `Gc::new` moves it into the heap and when a
//! [`GcCell`] write guard is released, and *disowned* when a write guard is taken or their holder
//! is finalized. So `handles - internal` is the number of handles outside the heap, and an object
//! with any is a **root**. Nothing scans stacks and nothing registers roots.
//!
//! # The collection protocol
//! A cycle `n` has five phases (`phase.rs`); the collector moves between them with
//! `Phases::advance`, which waits until no *pinned* operation still acts on the old phase.
//! Only `GcCell` writes (taking and releasing the guard) and `Weak::upgrade` pin, and only they
//! wait for a phase change. (Mark assists pass through a gate instead, `phase::AssistGate`, which
//! the collector closes while still in Mark, waiting for the assists inside, so they never
//! lengthen the pause. Reads, clones, drops and `Gc::new` never wait for the collector.)
//!
//! | operation | Idle / Clear | Mark | Terminating | Sweep |
//! |---|---|---|---|---|
//! | `Deref`, `GcCell::borrow` | read | read | read | read |
//! | `clone` | `handles += 1` | same | same | same |
//! | `drop` | `handles -= 1`, set `DIRTY` (one CAS); if no handle is left, *reclaim* (below) in Idle | same; if none is left, keep it for the Idle after the cycle, in Clear leave it to the collector | same as Mark | same as Mark, unless found dead |
//! | `Gc::new` | allocate (unstamped, unmarked), publish, *then* adopt the value's handles (`internal += 1`, `DIRTY`); during a cycle, help it (more past the goal; never wait) | same, may also assist marking | same | same |
//! | `borrow_mut` | disown contents | disown and **shade** contents | wait | disown contents |
//! | guard drop (pinned) | adopt contents, unlock | same | same | same |
//! | `Weak::upgrade` | `handles += 1` | `handles += 1`, **shade** | wait | `None` if dead, else `handles += 1` |
//!
//! Each object's *marks byte* (its slot's byte in the span, `header.rs`) holds its mark and
//! stamp for the cycle in progress. The collector, for cycle `n`: **Clear** stamps every allocated
//! object (it was allocated before `T0`, below), unmarks it and clears its `DIRTY`. Then the phase becomes **Mark**; the
//! moment `advance` returns is the *snapshot point* `T0`. It scans every allocated object and
//! shades the roots — objects with `handles > internal` or `DIRTY` — then traces gray objects (a
//! `GcCell` is read under a shared `try` lock; one held by a writer is skipped). An object the scan
//! sees without a stamp was allocated after its slot was cleared and counts as *new* (below): it
//! cannot die in `n`. **Terminating** drains what pinned operations shaded (if they left more than
//! a little, the collector goes back to **Mark** first, a bounded number of times). **Sweep** frees
//! exactly the objects *stamped and not marked*, unless a `Drop` kept a handle to one
//! (see below).
//!
//! **Why no live object is freed.** Call an object *new* if it was allocated after `T0`.
//! 1. *Everything reachable at `T0` is marked* (snapshot at the beginning). Take a path at `T0`
//!    from an outside handle to `X1`, then through heap handles to `Xk`. `X1` is a root at its
//!    scan: either its outside handle still exists, or an operation lowered `handles - internal`
//!    after `T0` — a drop or an adoption, both of which set `DIRTY` in the same atomic step, after
//!    the clear pass, so the scan sees it. Each marked `Xi` is traced; its handle to `Xi+1` is
//!    either still there (an object's value only changes inside a `GcCell`), or a write guard
//!    removed it. A guard taken after `T0` shaded it (the pin makes the phase reliable). A guard
//!    taken before `T0` had disowned it, so at `T0` it was an *outside* handle and case `X1`
//!    applies. A cell the tracer skips is write-locked, and its contents are disowned: taking a
//!    guard locks and disowns under one pin, releasing it adopts and unlocks under one pin, and
//!    `advance` waits out pins, so no cell can be locked with *adopted* contents across `T0`
//!    (a release that began before `T0` has unlocked by then). A release that begins after `T0`
//!    adopts handles that were outside the heap after `T0`, so their objects were roots at their
//!    scan or are `DIRTY` at it. (The first version of this crate adopted without a pin; the
//!    many-goroutines test in `tests/gc.rs` caught a cell locked mid-release across `T0`.)
//! 2. *An unstamped object that the scan visits is marked*: it was allocated after the clear pass
//!    passed its slot, started with one outside handle, and every way to lose it (drop, adoption)
//!    sets `DIRTY`, which no clear pass erases before the scan. *An unstamped object is not freed*:
//!    that covers every new object, since only the sweep frees slots, so a slot that
//!    holds a new object was empty when the clear pass passed it. Its children are protected by
//!    their own counts, because `Gc::new` adopts them only after publishing the new object: until
//!    then they count as outside handles, and once adopted they sit in an object the scan can see
//!    (or they were adopted after `T0`, with `DIRTY`). (Adopting before publishing let a snapshot
//!    fall between the two and free a child; the stress test under ASan caught it.)
//! 3. *Nothing else can become reachable*: a handle is only ever made from a handle (clone, a read
//!    from a reachable object), by `Gc::new`, or by `Weak::upgrade` — which shades in Mark, waits in
//!    Terminating and refuses dead objects in Sweep. Marking ends only after `Terminating` has
//!    waited out every pinned shade and drained the gray queue.
//!
//! So an object freed in `n`'s sweep was not reachable at `T0`, is not new, and cannot have been
//! reached since: no handle to it exists outside dead objects.
//!
//! Reporting fewer handles than a value holds (`#[gc(skip)]`, a forgotten guard) only makes them
//! count as outside handles: a leak, never a premature free.
//!
//! # Prompt reclamation
//! Counting handles tells when an object has *no* handle left anywhere (and no weak slot, which
//! could make one): only a handle makes a handle, so nothing can ever reach it again. Most
//! garbage dies that way — trees, lists, temporaries, anything outside a cycle — and the
//! goroutine that drops the last handle frees it on the spot, as `Arc` would, with everything
//! that dies with it (`reclaim.rs`: the handles inside give back their `internal` counts, the
//! value is dropped, the slot goes to the thread's magazine for the next `Gc::new`; a long list
//! is freed in constant stack). The collector is then left with cycles, and the heap stays near
//! its live size. This happens only while no cycle runs, under an *idle pin* (`Phases::pin_idle`:
//! the next cycle's clear pass waits for it), and only for values whose drop is plain
//! (`Trace::plain_drop`) and small objects. A last handle dropped during a cycle, after its
//! snapshot, is kept by the dropping thread and reclaimed in the idle time after the cycle (the
//! object was reachable at the snapshot, so that cycle's sweep does not free it); one dropped
//! during the clear pass, or not reclaimed before the next cycle begins, is ordinary garbage for
//! the collector. The idle pin is taken *after* the decrement, so the thread may have been
//! descheduled across a whole cycle that found the object dead and freed it: the phase is read
//! before the decrement, and the object is touched again only if no clear pass began since
//! (`State::may_reclaim_dropped_in`; a loom model covers it). In `Sweep`, an object the sweep
//! found dead (stamped and unmarked, or its value already dropped: `Marks::is_swept`) is never
//! touched after the decrement; `tests/gc_sweep_races.rs` drives that case. A `Drop` with user code, an object with a
//! weak handle, and cycles are always the collector's. `stats().freed_promptly` counts these
//! frees.
//!
//! # Safe destruction
//! The sweep works in three passes. Pass one, for every dead object: clear its weak slot, and give
//! back the `internal` count of each of its handles to a live object; then, if any dead value's
//! drop runs user code, every dead object is *flagged* (the `FLAGGED` bit of its counts). Pass two
//! drops each dead value (allocating goroutines help with the values whose drop is *plain*,
//! `Trace::plain_drop`: it runs no user code). Pass three frees each dead slot whose `handles`
//! count is back to zero (checked only when some dead value's drop is not plain: plain drops
//! cannot move a handle anywhere). Without that check, pass three is *lazy*, as Go's sweep: each
//! span keeps its list of dead slots, the allocator that next takes the span frees them first,
//! and the collector's workers free the rest in the background before the next cycle. When no dead value's drop runs user code, pass two skips the
//! values whose drop would only drop handles to other dead objects
//! (`Trace::drop_is_handles_only`): their counts are never read again.
//!
//! Handles never change (a `Gc` is one non-null pointer, so `Option<Gc<T>>` is one word), so a
//! `Drop` may still hold a handle to another dead object; but every dead object is flagged before
//! any user `Drop` runs (plain drops only drop handles), and dereferencing, cloning or downgrading
//! a handle to a flagged object panics (`gort: use of a Gc handle to a collected object`), while
//! dropping one only lowers the count in a header that stays allocated until pass three. A `Drop`
//! that moves such a handle out and keeps it (in a global, say) leaves the count above zero, and
//! pass three then leaks the object instead of freeing it (`stats().leaked_objects`): the kept
//! handle panics when used, and never reaches a reused slot. One that upgrades a `Weak` to a dead
//! object gets `None`. So: no use-after-free, no resurrection. A panicking `Drop` is caught and
//! reported on stderr (`stats().drop_panics`), and the sweep goes on. A `Trace` that panics
//! during marking makes that cycle free nothing; during finalization it leaks that object.
//!
//! # Allocation and pacing
//! Like Go's: per-P caches of spans over 39 size classes (`heap.rs`), a central free list per
//! class, objects over 32 KiB in spans of their own, and a lazy sweep (*Safe destruction*). Each thread allocates from a *magazine* of 32
//! slots it reserves through its P's cache, so the runtime's per-P hook is paid once per 32
//! objects. New objects are published unmarked, even while marking: marks are bits valid for
//! one cycle, and a stale phase read must not leave an object marked into the next.
//!
//! A cycle's work runs on the runtime's Ps, as in Go: the collector thread starts *worker
//! goroutines* for each cycle, a quarter of the Ps (Go's 25% background utilization), at least
//! one, and posts every span pass and the marking to them; it moves the phases and traces the few
//! gray objects left for mark termination, and works itself only while no worker runs (every P
//! busy, or the workers not scheduled yet), so that a cycle never waits for a P. Workers are
//! scheduled like any goroutine, yield at safe points when sysmon asks, and exit with their
//! cycle. Values whose drop runs user code are
//! dropped only by the workers (user `Drop` code must not run inside an unrelated `Gc::new`;
//! `Trace` impls may, in assists). The
//! pacer uses Go's heap goal, `marked * (1 + GOGC/100)` with a 4 MiB floor, where `marked` is
//! what the last cycle found live at its snapshot; a cycle starts at 7/8 of the way to the goal.
//! A goroutine that takes a span during a cycle helps it, more the further the heap is past its
//! goal: it processes spans of the collector's current pass (Go's proportional sweep; in the drop
//! pass, only spans whose dead values are all plain), and while marking it also traces batches of
//! gray objects (a mark assist; the workers share their work through the global gray queue).
//! Past three times the goal it does all of the cycle's work it can take before allocating on.
//! Allocation never waits for the collector: when no work is left for the goroutine to take, it
//! goes on allocating. Objects whose last handle goes during a cycle are kept for the idle time
//! after it (*Prompt reclamation*), so before the pacer starts the next cycle the collector gives
//! the threads holding such objects a moment (2 ms at most) to reclaim them. [`set_percent`] is `GOGC` (env
//! `GORT_GC`); `GORT_GCTRACE=1` prints one line per cycle, like Go's `GODEBUG=gctrace=1`.
//!
//! # Costs and limits
//! * A `GcCell` write guard traces the cell's contents twice (disown, adopt): writes to a cell
//!   holding a large collection cost time proportional to its size. Prefer many small cells.
//! * `Gc::new` traces the new value once (adoption), and every handle op is one atomic
//!   read-modify-write on the object's counts word. Dropping a last handle traces the value once
//!   more and frees it (prompt reclamation), like `Arc`'s drop.
//! * Nothing bounds the heap when allocation outruns the collector: allocation helps but never
//!   waits, so on a machine whose CPUs are all busy the heap can grow well past its goal.
//! * The only pause is mark termination, and only `GcCell` writes and `Weak::upgrade` can wait in
//!   it; it is normally a few microseconds, but it first waits out pinned operations, so a thread
//!   descheduled by the OS in the middle of a `GcCell` write's disown stretches it.
//! * Every cycle passes over every object three times (clear, scan, flag) and over the dead ones
//!   again to drop them (unless their drop is handles-only), where Go's sweep reads only mark
//!   bitmaps; on a busy machine allocation can outrun the collector and the heap grows past its
//!   goal.
//! * Dereferencing and cloning a `Gc` read the object's counts word (the dead flag) first.
//! * An object's header is two words (a binary-trees node, two handles, is 32 bytes); marking
//!   finds a target's marks byte through the span map (two loads) rather than in the header.
//! * A collected value's `Drop` (and `Trace` during marking) runs on a worker goroutine, so
//!   within a goroutine stack (256 KiB unless `GORT_STACK_SIZE` says otherwise): a value whose
//!   drop recurses thousands of levels deep (a long `Box` list, say) needs a larger one, or an
//!   iterative `Drop`. Overflowing it stops the process with a `goroutine N stack overflow`
//!   report, as in any goroutine.
//! * `Gc<T>` needs `T: Sized + Send + 'static` (the collector's workers drop values);
//!   there is no `Gc<dyn Trait>` yet.
//!
//! # Loom models
//! `loom_tests.rs` models the protocol's core — pins and phase changes, the counts word with
//! `DIRTY`, the clear pass and root scan, a cell write's disown-and-shade and adopt-and-unlock,
//! `Weak::upgrade`, `Gc::new`'s publish-then-adopt, the sweep's dead test and the assist gate —
//! with loom's atomics, in seven models (a cell write racing a cycle, a clone out of the heap then
//! a drop of the holder, an upgrade racing a cycle, a new object adopting a handle during a cycle,
//! an assist racing the close of marking, a prompt reclamation racing the start of a cycle, and
//! one racing a whole cycle), checking that no object a mutator can still reach is found dead,
//! that no assist traces once marking is closed, and that no object is freed twice. Run them with
//! `scripts/loom_gc.sh` (under a second with the default bound of 3 preemptions). As negative
//! controls, releasing a write guard without its pin, upgrading during marking without shading,
//! adopting before publishing, or an assist gate that reads the cycle before registering (or a
//! close that does not wait), an idle pin that does not re-check the phase, or a reclamation
//! that does not check what the collector did since the decrement, makes the
//! corresponding model fail. Loom treats
//! `SeqCst` as acquire/release, so the pins re-read the phase word with a read-modify-write rather
//! than relying on store-load ordering.

#![warn(missing_docs)]
// The loom build compiles only the protocol core (see `loom_tests.rs`).
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
mod cell;
#[cfg(not(loom))]
mod collector;
#[cfg(not(loom))]
mod handle;
mod header;
#[cfg(not(loom))]
mod heap;
#[cfg(all(loom, test))]
mod loom_tests;
mod phase;
#[cfg(not(loom))]
mod reclaim;
mod sync;
mod trace;
#[cfg(not(loom))]
mod weak;

#[cfg(not(loom))]
pub use cell::{GcCell, GcRef, GcRefMut};
#[cfg(not(loom))]
pub use collector::{collect, set_percent, stats};
#[cfg(not(loom))]
pub use handle::Gc;
pub use trace::{Trace, Tracer};
#[cfg(not(loom))]
pub use weak::Weak;

/// A snapshot of the heap and the collector, from [`stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcStats {
    /// Objects allocated and not yet freed (includes unreachable ones not collected yet).
    pub live_objects: u64,
    /// Bytes in those objects' slots (size-class rounded, headers included).
    pub heap_bytes: u64,
    /// The pacer's current heap goal in bytes (`u64::MAX` when collection is off).
    pub heap_goal: u64,
    /// Bytes of spans obtained from the system.
    pub span_bytes: u64,
    /// Completed collection cycles.
    pub collections: u64,
    /// Objects freed so far (by collections, and promptly: `freed_promptly`).
    pub freed_objects: u64,
    /// Objects freed as their last handle was dropped, while no collection was running (see the
    /// crate docs, *Prompt reclamation*): included in `freed_objects`.
    pub freed_promptly: u64,
    /// The longest mark termination: the only window in which any mutator operation (a `GcCell`
    /// write or a `Weak::upgrade`) could wait for the collector.
    pub max_pause: std::time::Duration,
    /// All mark terminations together.
    pub total_pause: std::time::Duration,
    /// Wall time of the last cycle (concurrent with the program).
    pub last_cycle: std::time::Duration,
    /// Mark assists run by allocating goroutines.
    pub assists: u64,
    /// Spans of the collector's passes (any of them, plain drops included) processed by
    /// allocating goroutines (when the heap is past its goal).
    pub span_assists: u64,
    /// `Drop`s of collected objects that panicked (caught and reported).
    pub drop_panics: u64,
    /// Objects leaked because their `Trace` panicked while they were finalized, or because a
    /// `Drop` run by the sweep kept a handle to them.
    pub leaked_objects: u64,
    /// The current [`set_percent`] value (negative: off).
    pub percent: i32,
}

#[cfg(all(test, not(loom)))]
mod tests;
