//! The object header every heap object starts with, and the *counts word* at its heart.
//!
//! The header is three words: the type's vtable, the counts word, and the cycle numbers of the
//! object's mark and stamp. (A `Weak`'s slot lives in a side table, `weak.rs`, found through the
//! `WEAK` bit: weak handles are rare, and every word in the header costs every object memory and
//! every collector pass time.)
//!
//! The counts word packs four things so that one atomic load gives the collector a consistent view:
//!
//! * bits 0..31, `handles`: every live `Gc` handle to the object, wherever it is;
//! * bits 31..62, `internal`: how many of those handles sit inside heap objects (*adopted* by the
//!   object that holds them, see the crate docs);
//! * bit 62, `WEAK`: the object has a weak slot (set once, by the first `Gc::downgrade`);
//! * bit 63, `DIRTY`: set by every operation that *lowers* `handles - internal` (dropping a handle,
//!   adopting one into the heap), cleared only by the collector's clear pass.
//!
//! An object is a root for a cycle when, at its scan, `handles > internal` (a handle outside the
//! heap exists) or `DIRTY` is set (one existed since the clear pass). The operations that lower the
//! external count set `DIRTY` in the *same* read-modify-write, so no interleaving can drop a handle
//! and hide it from the scan.

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::trace::Tracer;

pub(crate) const HANDLE_ONE: u64 = 1;
pub(crate) const HANDLE_MASK: u64 = (1 << 31) - 1;
pub(crate) const INTERNAL_ONE: u64 = 1 << 31;
pub(crate) const INTERNAL_MASK: u64 = ((1 << 31) - 1) << 31;
pub(crate) const WEAK: u64 = 1 << 62;
pub(crate) const DIRTY: u64 = 1 << 63;
/// The `mark` of an object the sweep found dead, set before any user `Drop` of the cycle runs: from
/// then on dereferencing, cloning or downgrading a handle to it panics, and marking never traces
/// it (its value is dropped). Cycle numbers skip it.
pub(crate) const DEAD_MARK: u32 = u32::MAX;
/// More handles than this to one object is refused with a panic (the counter has 2^31 values;
/// the gap absorbs racing increments that are undone, and `internal` never exceeds `handles`).
pub(crate) const MAX_HANDLES: u64 = 1 << 30;

pub(crate) fn handles_of(w: u64) -> u64 {
    w & HANDLE_MASK
}
pub(crate) fn internal_of(w: u64) -> u64 {
    (w & INTERNAL_MASK) >> 31
}

/// Per-type operations, one static table per `T`.
pub(crate) struct VTable {
    /// Traces the value (the header is that of a `GcBox<T>`).
    pub(crate) trace: unsafe fn(*const Header, &mut Tracer),
    /// Drops the value in place.
    pub(crate) drop_value: unsafe fn(*mut Header),
    /// The value's type, for reports.
    pub(crate) type_name: fn() -> &'static str,
    /// `Trace::plain_drop` of the value's type: may an allocating goroutine drop it?
    pub(crate) plain_drop: fn() -> bool,
    /// `Trace::drop_is_handles_only` of the value's type.
    pub(crate) drop_is_handles_only: fn() -> bool,
    /// The allocator's size class of the object (`None`: a large object).
    pub(crate) class: Option<usize>,
}

/// The header of every heap object; a `GcBox<T>` is this followed by the value.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) vtable: &'static VTable,
    pub(crate) counts: AtomicU64,
    /// The cycle in which the object was marked (0: never).
    pub(crate) mark: AtomicU32,
    /// The cycle whose clear pass stamped the object (0: never). Only stamped objects can die.
    pub(crate) scan: AtomicU32,
}

/// A heap object: header, then value.
#[repr(C)]
pub(crate) struct GcBox<T> {
    pub(crate) header: Header,
    pub(crate) value: T,
}

impl Header {
    /// A header with one handle, marked for `mark` (0: unmarked; see `Gc::new`).
    pub(crate) fn new(vtable: &'static VTable, mark: u32) -> Header {
        Header {
            vtable,
            counts: AtomicU64::new(HANDLE_ONE),
            mark: AtomicU32::new(mark),
            scan: AtomicU32::new(0),
        }
    }

    /// A new handle from an existing one (clone). Only raises the external count: no barrier.
    #[inline]
    pub(crate) fn inc_handle(&self) {
        let old = self.counts.fetch_add(HANDLE_ONE, Ordering::Relaxed);
        if handles_of(old) >= MAX_HANDLES {
            self.counts.fetch_sub(HANDLE_ONE, Ordering::Relaxed);
            handle_overflow();
        }
    }

    /// A handle goes away: one fewer handle, and `DIRTY`, in one step. Returns true if that was
    /// the last handle of an object without a weak slot: nothing can reach it any more, and it
    /// may be reclaimed at once (`reclaim.rs`).
    #[inline]
    pub(crate) fn dec_handle(&self) -> bool {
        let mut cur = self.counts.load(Ordering::Relaxed);
        loop {
            debug_assert!(handles_of(cur) > 0, "gort: handle count underflow");
            let new = (cur - HANDLE_ONE) | DIRTY;
            match self
                .counts
                .compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return unreachable_now(new),
                Err(now) => cur = now,
            }
        }
    }

    /// A handle inside an object being reclaimed goes away with its holder: one fewer handle
    /// *and* one fewer internal handle (`disown` and `dec_handle` in one step). Returns what
    /// `dec_handle` does.
    #[inline]
    pub(crate) fn release(&self) -> bool {
        let mut cur = self.counts.load(Ordering::Relaxed);
        loop {
            debug_assert!(handles_of(cur) > 0, "gort: handle count underflow");
            // `internal` saturates at zero, as in `disown`.
            let internal = if internal_of(cur) > 0 {
                INTERNAL_ONE
            } else {
                0
            };
            let new = (cur - HANDLE_ONE - internal) | DIRTY;
            match self
                .counts
                .compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return unreachable_now(new),
                Err(now) => cur = now,
            }
        }
    }

    /// A handle moves into the heap (`Gc::new`, a `GcCell` write guard released): one more
    /// internal handle, and `DIRTY`, in one step.
    #[inline]
    pub(crate) fn adopt(&self) {
        let mut cur = self.counts.load(Ordering::Relaxed);
        loop {
            let internal = internal_of(cur);
            // A cell broken by a panicking Trace may have left counts imprecise: keep the field in
            // range (saturating only ever makes the object look *more* external, never less).
            let new = if internal >= MAX_HANDLES {
                cur | DIRTY
            } else {
                (cur + INTERNAL_ONE) | DIRTY
            };
            match self
                .counts
                .compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// A handle leaves the heap (a `GcCell` write guard taken, or its holder finalized): one fewer
    /// internal handle. Raises the external count, so no `DIRTY`. Saturates at zero.
    pub(crate) fn disown(&self) {
        let mut cur = self.counts.load(Ordering::Relaxed);
        loop {
            if internal_of(cur) == 0 {
                return;
            }
            match self.counts.compare_exchange_weak(
                cur,
                cur - INTERNAL_ONE,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// The collector's clear pass.
    pub(crate) fn clear_dirty(&self) {
        if self.counts.load(Ordering::SeqCst) & DIRTY != 0 {
            self.counts.fetch_and(!DIRTY, Ordering::SeqCst);
        }
    }

    /// The collector's root test (see the module docs).
    pub(crate) fn is_root(&self) -> bool {
        let w = self.counts.load(Ordering::SeqCst);
        w & DIRTY != 0 || handles_of(w) > internal_of(w)
    }

    /// Marks the object for `cycle`; true if this call did it (the caller then owes a trace). A
    /// dead object (`DEAD_MARK`) is never marked again: its value may be dropped.
    pub(crate) fn try_mark(&self, cycle: u32) -> bool {
        let cur = self.mark.load(Ordering::Relaxed);
        cur != cycle
            && cur != DEAD_MARK
            && self
                .mark
                .compare_exchange(cur, cycle, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether the object has a weak slot (in `weak.rs`'s table).
    pub(crate) fn has_weak(&self) -> bool {
        self.counts.load(Ordering::Acquire) & WEAK != 0
    }

    /// Records that the object has a weak slot (under the weak table's lock).
    pub(crate) fn set_weak(&self) {
        self.counts.fetch_or(WEAK, Ordering::Release);
    }

    /// True once a sweep found the object dead (see [`DEAD_MARK`]).
    #[inline]
    pub(crate) fn is_flagged_dead(&self) -> bool {
        self.mark.load(Ordering::Relaxed) == DEAD_MARK
    }

    /// Dead after `cycle`'s marking: stamped in it and not marked. Meaningful from that cycle's
    /// sweep phase until the object is freed.
    pub(crate) fn is_dead(&self, cycle: u32) -> bool {
        self.scan.load(Ordering::Acquire) == cycle && self.mark.load(Ordering::Acquire) != cycle
    }
}

/// After a decrement: no handle is left and no weak slot can make one. Only handles make handles
/// (a weak slot aside), so no handle to the object can ever exist again.
#[inline]
fn unreachable_now(counts: u64) -> bool {
    counts & (HANDLE_MASK | WEAK) == 0
}

#[cold]
#[inline(never)]
fn handle_overflow() -> ! {
    panic!("gort: more than 2^30 Gc handles to one object (handle counter would overflow)");
}

#[cfg(test)]
impl Header {
    /// Test hook: forces the handle count, to reach the overflow check without 2^30 clones.
    pub(crate) fn set_handles_for_test(&self, n: u64) {
        let cur = self.counts.load(Ordering::SeqCst);
        self.counts
            .store((cur & !HANDLE_MASK) | n, Ordering::SeqCst);
    }
}
