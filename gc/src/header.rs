//! The object header every heap object starts with, the *counts word* at its heart, and the
//! per-slot *marks byte* the heap keeps beside each object.
//!
//! The header is two words: the type's vtable and the counts word. (A `Weak`'s slot lives in a
//! side table, `weak.rs`, found through the `WEAK` bit; an object's mark and stamp live in its
//! slot's byte in the span, `Marks`: every word in the header costs every object memory and every
//! collector pass time, and a binary-trees node is 32 bytes this way.)
//!
//! The counts word packs five things so that one atomic load gives a consistent view:
//!
//! * bits 0..30, `handles`: every live `Gc` handle to the object, wherever it is;
//! * bits 30..60, `internal`: how many of those handles sit inside heap objects (*adopted* by the
//!   object that holds them, see the crate docs);
//! * bit 61, `FLAGGED`: the sweep found the object dead, set before any user `Drop` of the cycle
//!   runs: from then on dereferencing, cloning or downgrading a handle to it panics;
//! * bit 62, `WEAK`: the object has a weak slot (set once, by the first `Gc::downgrade`);
//! * bit 63, `DIRTY`: set by every operation that *lowers* `handles - internal` (dropping a handle,
//!   adopting one into the heap), cleared only by the collector's clear pass.
//!
//! An object is a root for a cycle when, at its scan, `handles > internal` (a handle outside the
//! heap exists) or `DIRTY` is set (one existed since the clear pass). The operations that lower the
//! external count set `DIRTY` in the *same* read-modify-write, so no interleaving can drop a handle
//! and hide it from the scan.
//!
//! The marks byte holds the slot's state (`heap.rs`: free, reserved, allocated, dead, leaked) in
//! its low bits and two marks for the cycle in progress: `STAMPED` (the clear pass found the object
//! allocated: it existed before the snapshot, and only stamped objects can die) and `MARKED`. The
//! clear pass resets both for every allocated object, so marks never outlive their cycle; only
//! marking (in `Mark` and `Terminating`) sets `MARKED`, and only on an allocated slot, so a dead
//! object whose value the sweep dropped is never traced.

use crate::sync::{AtomicU64, AtomicU8, Ordering};
use crate::trace::Tracer;

pub(crate) const HANDLE_ONE: u64 = 1;
pub(crate) const HANDLE_MASK: u64 = (1 << 30) - 1;
pub(crate) const INTERNAL_ONE: u64 = 1 << 30;
pub(crate) const INTERNAL_MASK: u64 = HANDLE_MASK << 30;
pub(crate) const FLAGGED: u64 = 1 << 61;
pub(crate) const WEAK: u64 = 1 << 62;
pub(crate) const DIRTY: u64 = 1 << 63;
/// More handles than this to one object is refused with a panic (the counter has 2^30 values;
/// the gap absorbs racing increments that are undone, and `internal` never exceeds `handles`).
pub(crate) const MAX_HANDLES: u64 = 1 << 29;

/// Slot states, the low bits of a marks byte (see `heap.rs` for who moves a slot between them).
pub(crate) const STATE_MASK: u8 = 0b111;
pub(crate) const FREE: u8 = 0;
pub(crate) const ALLOC: u8 = 1;
/// Never freed: its finalizing trace panicked, or a `Drop` kept a handle to it.
pub(crate) const LEAKED: u8 = 2;
/// Taken from a span by a cache into a thread's magazine, not yet allocated.
pub(crate) const RESERVED: u8 = 3;
/// Dead, value dropped (or its drop skipped) by the sweep's pass two, header intact: the slot
/// becomes `FREE` in pass three, once no handle to it will be used again.
pub(crate) const DEAD: u8 = 4;
/// The clear pass of the cycle in progress found the object allocated.
pub(crate) const STAMPED: u8 = 1 << 4;
/// Marked in the cycle in progress.
pub(crate) const MARKED: u8 = 1 << 5;

/// An object's marks byte (its slot's byte in the span).
pub(crate) struct Marks<'a>(pub(crate) &'a AtomicU8);

impl Marks<'_> {
    /// The slot's state (`FREE`, `ALLOC`, ...).
    #[inline]
    pub(crate) fn state(&self) -> u8 {
        self.0.load(Ordering::Acquire) & STATE_MASK
    }

    /// Marks an allocated object; true if this call did it (the caller then owes a trace). A slot
    /// in any other state (dead, value dropped; leaked) is never marked.
    #[inline]
    pub(crate) fn try_mark(&self) -> bool {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            if cur & STATE_MASK != ALLOC || cur & MARKED != 0 {
                return false;
            }
            match self.0.compare_exchange_weak(
                cur,
                cur | MARKED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// The clear pass: an allocated object becomes stamped and unmarked for the new cycle.
    /// Returns false if the slot is not allocated (the pass skips it).
    pub(crate) fn stamp(&self) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & STATE_MASK != ALLOC {
                return false;
            }
            match self.0.compare_exchange_weak(
                cur,
                ALLOC | STAMPED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Dead after the cycle's marking: allocated, stamped and not marked. Meaningful from the
    /// cycle's sweep phase until the sweep drops the value (`DEAD`: the stamp is gone with it);
    /// see [`Marks::is_swept`] for a test that stays true after that.
    pub(crate) fn is_dead(&self) -> bool {
        self.0.load(Ordering::Acquire) & (STATE_MASK | STAMPED | MARKED) == ALLOC | STAMPED
    }

    /// In `Sweep`, for an object a live handle points to: the sweep found it dead and frees it
    /// (stamped and unmarked, or its value already dropped: `DEAD`), or leaked it. Once the handle
    /// is dropped, such an object may be freed at any moment and must not be touched.
    pub(crate) fn is_swept(&self) -> bool {
        let b = self.0.load(Ordering::Acquire);
        b & STATE_MASK != ALLOC || b & (STAMPED | MARKED) == STAMPED
    }

    /// Found live by the cycle's snapshot: stamped and marked (what the pacer counts).
    pub(crate) fn is_marked_old(&self) -> bool {
        self.0.load(Ordering::Acquire) & (STAMPED | MARKED) == STAMPED | MARKED
    }
}

pub(crate) fn handles_of(w: u64) -> u64 {
    w & HANDLE_MASK
}
pub(crate) fn internal_of(w: u64) -> u64 {
    (w & INTERNAL_MASK) >> 30
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
}

/// A heap object: header, then value.
#[repr(C)]
pub(crate) struct GcBox<T> {
    pub(crate) header: Header,
    pub(crate) value: T,
}

impl Header {
    /// A header with one handle.
    pub(crate) fn new(vtable: &'static VTable) -> Header {
        Header {
            vtable,
            counts: AtomicU64::new(HANDLE_ONE),
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

    /// `release`, for a caller that reclaims the object at once if this was its last handle: then
    /// nobody else can reach the counts (only handles and weak slots do, and the collector is
    /// idle) and they are never read again, so the write is skipped. (If the reclaim's `Trace`
    /// panics, the object is leaked for good, flagged, and its counts still never matter.)
    #[inline]
    pub(crate) fn release_last(&self) -> bool {
        if self.counts.load(Ordering::Acquire) & (HANDLE_MASK | WEAK) == HANDLE_ONE {
            return true;
        }
        self.release()
    }

    /// A handle inside an object being reclaimed goes away with its holder: one fewer handle
    /// *and* one fewer internal handle (`disown` and `dec_handle` in one step). Returns what
    /// `dec_handle` does. Only while the collector is idle (`reclaim.rs`).
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
        if cur == HANDLE_ONE {
            // The handle being moved is the object's only one, and nothing is flagged: nobody
            // else can change the counts (that takes a handle or a weak slot, and the clear pass
            // only clears a `DIRTY` that is not set), so a store does what the CAS would, at a
            // fraction of the cost: the common case of `Gc::new(Node { child: Gc::new(..) })`.
            // Release keeps the holder's publication before it (`Gc::new`: publish, then adopt);
            // a collector that reads the counts before this store sees an outside handle, a root.
            self.counts
                .store(HANDLE_ONE | INTERNAL_ONE | DIRTY, Ordering::Release);
            return;
        }
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

    /// Whether the object has a weak slot (in `weak.rs`'s table).
    pub(crate) fn has_weak(&self) -> bool {
        self.counts.load(Ordering::Acquire) & WEAK != 0
    }

    /// Records that the object has a weak slot (under the weak table's lock).
    pub(crate) fn set_weak(&self) {
        self.counts.fetch_or(WEAK, Ordering::Release);
    }

    /// True once a sweep found the object dead (see [`FLAGGED`]).
    #[inline]
    pub(crate) fn is_flagged_dead(&self) -> bool {
        self.counts.load(Ordering::Relaxed) & FLAGGED != 0
    }

    /// Flags the object dead (see [`FLAGGED`]).
    pub(crate) fn flag_dead(&self) {
        self.counts.fetch_or(FLAGGED, Ordering::Relaxed);
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
