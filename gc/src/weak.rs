//! `Weak<T>`: a handle that does not keep its object alive.
//!
//! The first `Gc::downgrade` gives the object a *weak slot*: a small `Arc`'d record holding the
//! object's address under a mutex. Weak handles point to the slot, never to the object, so they
//! can outlive it. The sweep clears the slot (under its mutex) before it frees the object, so a
//! non-null address read under the mutex is a live allocation.
//!
//! `upgrade` creates a handle out of nothing, which marking must know about: it runs pinned
//! (`phase.rs`) and, in the phase it pinned:
//! * Idle, Clear: just counts the new handle (a cycle that starts later sees it as a root);
//! * Mark: counts it and shades the object (snapshot-at-the-beginning: an object unreachable at the
//!   snapshot may have been scanned already, and must not be freed now that it has a handle);
//! * Terminating: waits for the phase to change (microseconds);
//! * Sweep: refuses (`None`) if this cycle found the object dead, so a `Drop` can never resurrect
//!   an object that is about to be (or is being) finalized.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::collector::{self, PHASES};
use crate::handle::Gc;
use crate::header::Header;
use crate::phase::Phase;
use crate::sync::Ordering;

/// The record weak handles share; see the module docs.
pub(crate) struct WeakSlot {
    target: Mutex<Option<NonNull<Header>>>,
}

// SAFETY: the address is only dereferenced under the mutex, while the sweep keeps it allocated.
unsafe impl Send for WeakSlot {}
// SAFETY: as above.
unsafe impl Sync for WeakSlot {}

impl WeakSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<NonNull<Header>>> {
        self.target
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sweep's half: called for a dead object before it is dropped.
pub(crate) fn clear_slot(h: &Header) {
    let p = h.weak.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !p.is_null() {
        // SAFETY: the object held one strong count of its slot, leaked in `Weak::new`; we take it
        // back exactly once (the swap above).
        let slot = unsafe { Arc::from_raw(p.cast_const()) };
        *slot.lock() = None;
    }
}

/// A weak handle to a heap object: [`Weak::upgrade`] gives a [`Gc`] while the object lives, and
/// `None` once the collector has found it dead.
///
/// ```
/// use gort_gc::{Gc, Weak};
/// let strong = Gc::new(5u32);
/// let weak: Weak<u32> = Gc::downgrade(&strong);
/// assert_eq!(*weak.upgrade().unwrap(), 5);
/// drop(strong);
/// gort_gc::collect();
/// assert!(weak.upgrade().is_none());
/// ```
pub struct Weak<T> {
    slot: Arc<WeakSlot>,
    _value: PhantomData<*const T>,
}

// SAFETY: like Gc: upgrading gives shared access from any thread.
unsafe impl<T: Send + Sync> Send for Weak<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Weak<T> {}

impl<T> Weak<T> {
    pub(crate) fn new(h: &Header) -> Weak<T> {
        let mut p = h.weak.load(Ordering::Acquire);
        if p.is_null() {
            let fresh = Arc::new(WeakSlot {
                target: Mutex::new(Some(NonNull::from(h))),
            });
            let raw = Arc::into_raw(fresh).cast_mut();
            match h.weak.compare_exchange(
                std::ptr::null_mut(),
                raw,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => p = raw,
                Err(existing) => {
                    // SAFETY: `raw` came from Arc::into_raw just above and was not published.
                    drop(unsafe { Arc::from_raw(raw.cast_const()) });
                    p = existing;
                }
            }
        }
        // SAFETY: `p` is the object's slot, kept alive by the object's count until the sweep takes
        // it (and the object is alive: the caller holds a handle). Add a count for this Weak.
        let slot = unsafe {
            Arc::increment_strong_count(p.cast_const());
            Arc::from_raw(p.cast_const())
        };
        Weak {
            slot,
            _value: PhantomData,
        }
    }

    /// A handle to the object, or `None` if the collector found it dead.
    ///
    /// Never blocks, except for the few microseconds of a collection's mark termination.
    pub fn upgrade(&self) -> Option<Gc<T>> {
        loop {
            let target = self.slot.lock();
            let h = (*target)?;
            let pin = PHASES.pin();
            // SAFETY: non-null under the slot's mutex: the object is allocated (module docs).
            let header = unsafe { h.as_ref() };
            match pin.state.phase {
                Phase::Terminating => {
                    drop(pin);
                    drop(target);
                    collector::wait_out_termination();
                    continue;
                }
                Phase::Sweep if header.is_dead(pin.state.cycle) => return None,
                Phase::Mark => {
                    header.inc_handle();
                    if header.try_mark(pin.state.cycle) {
                        collector::push_gray(vec![crate::trace::ObjPtr(h)]);
                    }
                }
                _ => header.inc_handle(),
            }
            drop(pin);
            return Some(Gc::from_counted(h));
        }
    }
}

impl<T> Clone for Weak<T> {
    fn clone(&self) -> Weak<T> {
        Weak {
            slot: self.slot.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Weak<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(Weak)")
    }
}

// SAFETY: a Weak holds no counted handle, so there is nothing to report. Dropping one releases
// its slot's `Arc`: plain.
unsafe impl<T> crate::Trace for Weak<T> {
    fn trace(&self, _: &mut crate::Tracer<'_>) {}
    fn plain_drop() -> bool {
        true
    }
}
