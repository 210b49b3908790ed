//! `Gc<T>`: a counted handle to a traced heap object.
//!
//! A handle is one non-null pointer (so `Option<Gc<T>>` is one word too). Creating one
//! (`Gc::new`, `clone`, `Weak::upgrade`) adds one to the object's `handles` count; dropping one
//! subtracts it and sets `DIRTY` (`header.rs`). Dropping the last handle of an object (with no
//! weak handle) frees it at once when no cycle runs (`reclaim.rs`); otherwise only the collector
//! frees, and only objects its marking proved unreachable.
//!
//! A handle never changes. The sweep flags every dead object (`FLAGGED`) before any user
//! `Drop` runs (plain drops only drop handles), so a handle that a dead object's `Drop` reaches
//! panics when dereferenced, cloned or downgraded; dropping one only lowers the count of a header
//! that is still allocated. The sweep frees a dead object only once no handle to it will ever be
//! visited, dereferenced or dropped again (every handle to it is gone, or sits in a dead value
//! freed with it whose drop is skipped), and leaks it otherwise.

use std::alloc::Layout;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use crate::header::{GcBox, Header, VTable};
use crate::trace::{Mode, Trace, Tracer};
use crate::weak::Weak;

/// A handle to a value in gort's garbage-collected heap (Go's pointer; `Arc` without counting
/// cycles as live).
///
/// `Gc::new` moves the value into the heap; clones are cheap (one atomic add) and all point to the
/// same object. Dropping the last handle frees the object at once, like `Arc` (when no collection
/// is running and its drop runs no user code; see the crate docs, *Prompt reclamation*); otherwise
/// the collector drops it once no handle outside the heap can reach it, cycles included. The value
/// is shared and immutable: use a [`GcCell`](crate::GcCell) inside it
/// for the parts that change.
///
/// ```
/// use gort_gc::{Gc, GcCell, Trace, Tracer};
/// struct Node { next: GcCell<Option<Gc<Node>>> }
/// // SAFETY: reports its one handle slot, which changes only through the GcCell.
/// unsafe impl Trace for Node {
///     fn trace(&self, t: &mut Tracer<'_>) { self.next.trace(t) }
/// }
/// let a = Gc::new(Node { next: GcCell::new(None) });
/// let b = Gc::new(Node { next: GcCell::new(Some(a.clone())) });
/// *a.next.borrow_mut() = Some(b.clone()); // a cycle
/// assert!(Gc::ptr_eq(a.next.borrow().as_ref().unwrap(), &b));
/// drop((a, b));
/// gort_gc::collect(); // the cycle is collected
/// ```
pub struct Gc<T> {
    ptr: NonNull<Header>,
    _value: PhantomData<*const T>,
}

// SAFETY: a Gc gives shared access to the T from any thread that has a handle, and the collector
// drops the T on its own thread: like Arc, it needs T: Send + Sync to cross threads.
unsafe impl<T: Send + Sync> Send for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Gc<T> {}

fn vtable<T: Trace + Send + 'static>() -> &'static VTable {
    struct Table<T>(PhantomData<T>);
    impl<T: Trace + Send + 'static> Table<T> {
        const VTABLE: VTable = VTable {
            trace: trace_value::<T>,
            drop_value: drop_value::<T>,
            type_name: std::any::type_name::<T>,
            plain_drop: T::plain_drop,
            drop_is_handles_only: T::drop_is_handles_only,
            class: SizeClass::<T>::CLASS,
        };
    }
    &Table::<T>::VTABLE
}

/// The allocator's size class of a `GcBox<T>`, computed once per type at compile time.
struct SizeClass<T>(PhantomData<T>);
impl<T> SizeClass<T> {
    const CLASS: Option<usize> = crate::heap::class_of(
        std::mem::size_of::<GcBox<T>>(),
        std::mem::align_of::<GcBox<T>>(),
    );
}

/// # Safety
/// `h` is the header of a live `GcBox<T>`.
unsafe fn trace_value<T: Trace>(h: *const Header, t: &mut Tracer) {
    // SAFETY: by the contract, `h` starts a live GcBox<T> (repr(C): header first).
    unsafe { (*h.cast::<GcBox<T>>()).value.trace(t) }
}

/// # Safety
/// `h` is the header of a `GcBox<T>` whose value is initialized and dropped exactly once, here.
unsafe fn drop_value<T>(h: *mut Header) {
    // SAFETY: by the contract.
    unsafe { std::ptr::drop_in_place(std::ptr::addr_of_mut!((*h.cast::<GcBox<T>>()).value)) }
}

impl<T: Trace + Send + 'static> Gc<T> {
    /// Moves `value` into the heap and returns the first handle to it.
    ///
    /// Allocates from the current P's cache. While a collection runs it helps the collector,
    /// more the further the heap is past its goal (processes spans of the current pass, drops
    /// plain dead values, traces gray objects: an *assist*, which may run other types' `Trace`
    /// impls); it never waits for the collector. It is a goroutine safe point once every few dozen allocations.
    ///
    /// # Panics
    /// If `value`'s `Trace` impl panics (the value is then leaked, never dropped).
    pub fn new(value: T) -> Gc<T> {
        // A new object is published unmarked (white), never allocated black: marks are bits
        // valid for the cycle in progress (`header.rs`), and a phase read here may be stale by a
        // whole cycle, which would leave an object allocated just after the next clear pass
        // marked, so never traced, while its children's counts rely on that trace. White is
        // always safe: an object allocated after the snapshot has an outside handle, so the scan
        // marks and traces it if it reaches it.
        let slot = crate::heap::alloc(Layout::new::<GcBox<T>>(), SizeClass::<T>::CLASS);
        let p = slot.ptr().cast::<GcBox<T>>();
        // SAFETY: the slot is at least as large and aligned as a GcBox<T> (heap::alloc's contract)
        // and is ours until published.
        unsafe {
            p.write(GcBox {
                header: Header::new(vtable::<T>()),
                value,
            })
        };
        // Publish first, adopt second. The value's handles stop counting as outside handles only
        // once the object holding them is in the heap where the collector can see it: adopting
        // first would open a window in which a child is neither a root (its handle is counted
        // internal) nor reachable from any heap object the collector knows (the holder is not
        // published), and a cycle's snapshot falling in it would free the child. The stress test
        // under ASan caught exactly that in an earlier version.
        slot.publish();
        let mut adopt = Tracer::new(Mode::Adopt);
        // SAFETY: published just now and not yet shared: no other handle exists, so nobody but
        // the collector (which only reads) can reach the value.
        let value_ref = unsafe { &(*p).value };
        if catch_unwind(AssertUnwindSafe(|| value_ref.trace(&mut adopt))).is_err() {
            // Some handles were adopted, some not. Leaking the object (never traced, dropped or
            // freed again) keeps every count consistent with a handle that really exists. Flagged
            // like every leaked object, though no handle to it exists.
            // SAFETY: published just now; the header is initialized.
            unsafe { &(*p).header }.flag_dead();
            slot.leak();
            panic!(
                "gort: Trace::trace of {} panicked in Gc::new; the value was leaked",
                std::any::type_name::<T>()
            );
        }
        Gc {
            // SAFETY: `p` points into the slot just written.
            ptr: unsafe { NonNull::new_unchecked(p.cast::<Header>()) },
            _value: PhantomData,
        }
    }

    /// A [`Weak`] handle: does not keep the object alive; `upgrade` gives `None` once collected.
    pub fn downgrade(this: &Gc<T>) -> Weak<T> {
        Weak::new(this.header())
    }
}

impl<T> Gc<T> {
    /// The object's header, which may belong to a dead object (only counts may be touched).
    #[inline]
    fn raw_header(&self) -> &Header {
        // SAFETY: a handle that is used keeps its target's header allocated (module docs: a dead
        // object is freed only once no handle to it will be used again).
        unsafe { self.ptr.as_ref() }
    }

    /// The header of a live object; panics if the sweep found it dead (a `Drop` reached it).
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        let h = self.raw_header();
        if h.is_flagged_dead() {
            dead_handle();
        }
        h
    }

    /// Wraps a handle whose count was already taken (by `Weak::upgrade`).
    pub(crate) fn from_counted(h: NonNull<Header>) -> Gc<T> {
        Gc {
            ptr: h,
            _value: PhantomData,
        }
    }

    /// True if both handles point to the same object.
    pub fn ptr_eq(a: &Gc<T>, b: &Gc<T>) -> bool {
        a.ptr == b.ptr
    }

    /// The object's address, for identity (hashing, debugging).
    pub fn as_ptr(this: &Gc<T>) -> *const T {
        let p = this.ptr.as_ptr().cast::<GcBox<T>>();
        // SAFETY: only computes a field address inside the live object.
        unsafe { std::ptr::addr_of!((*p).value) }
    }
}

#[cold]
#[inline(never)]
fn dead_handle() -> ! {
    panic!(
        "gort: use of a Gc handle to a collected object (a Drop of a dead object reached another \
         dead object; dead objects are flagged before any Drop runs)"
    )
}

impl<T> Deref for Gc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        let p = (self.header() as *const Header).cast::<GcBox<T>>();
        // SAFETY: the object is alive (`header` checked that it was not found dead, and a live
        // object with a handle is never freed), and its value is never mutated except through
        // GcCell, which hands out only guarded references.
        unsafe { &(*p).value }
    }
}

impl<T> Clone for Gc<T> {
    fn clone(&self) -> Gc<T> {
        // `header` refuses a dead object: a new handle to it could outlive its slot.
        self.header().inc_handle();
        Gc::from_counted(self.ptr)
    }
}

impl<T> Drop for Gc<T> {
    fn drop(&mut self) {
        // Read before the decrement: whether a last handle may be reclaimed, or kept for the end
        // of a cycle, depends on what the collector did since (`reclaim.rs`).
        let before = crate::collector::PHASES.peek();
        // A dead target's header is still allocated (it is freed only with no handle left).
        let h = self.raw_header();
        // While marking is over and this handle exists, the object is either one the sweep
        // found dead (its handle sat in a dead object, or a `Drop` moved it out of one), which the
        // sweep frees as soon as its count is zero, or one it will not free. The former must not
        // be touched after the decrement, so this is read first. Only in `Sweep` (rare).
        let sweeps_it =
            before.phase == crate::phase::Phase::Sweep && crate::heap::marks_of(h).is_swept();
        if h.dec_handle() && !sweeps_it {
            crate::reclaim::last_handle_dropped(self.ptr, before);
        }
    }
}

// SAFETY: reports its one handle. Dropping a handle only lowers its object's count: plain.
unsafe impl<T> Trace for Gc<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        t.visit_handle(self.ptr);
    }
    fn plain_drop() -> bool {
        true
    }
    fn drop_is_handles_only() -> bool {
        true
    }
}

impl<T: fmt::Debug> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: PartialEq> PartialEq for Gc<T> {
    fn eq(&self, other: &Gc<T>) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for Gc<T> {}

impl<T: std::hash::Hash> std::hash::Hash for Gc<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl<T> AsRef<T> for Gc<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T> std::borrow::Borrow<T> for Gc<T> {
    fn borrow(&self) -> &T {
        self
    }
}
