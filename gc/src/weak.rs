//! `Weak<T>`: a handle that does not keep its object alive.
//!
//! The first `Gc::downgrade` gives the object a *weak slot*: a small `Arc`'d record holding the
//! object's address under a mutex, kept in a side table keyed by the address (the object's
//! `WEAK` bit says it has one, so the sweep looks only for those). Weak handles point to the
//! slot, never to the object, so they can outlive it. The sweep removes the slot from the table
//! and clears it (under its mutex) before it drops or frees the object, so a non-null address read
//! under the mutex is a live allocation. The table's lock orders downgrades and the sweep.
//!
//! `upgrade` creates a handle out of nothing, which marking must know about: it runs pinned
//! (`phase.rs`) and, in the phase it pinned:
//! * Idle, Clear: just counts the new handle (a cycle that starts later sees it as a root);
//! * Mark: counts it and shades the object (snapshot-at-the-beginning: an object unreachable at the
//!   snapshot may have been scanned already, and must not be freed now that it has a handle);
//! * Terminating: waits for the phase to change (microseconds);
//! * Sweep: refuses (`None`) if this cycle found the object dead, so a `Drop` can never resurrect
//!   an object that is about to be (or is being) finalized.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::collector::{self, PHASES};
use crate::handle::Gc;
use crate::header::Header;
use crate::phase::Phase;

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

/// The weak slots of live objects, by object address.
static SLOTS: Mutex<Option<HashMap<usize, Arc<WeakSlot>>>> = Mutex::new(None);

fn slots() -> std::sync::MutexGuard<'static, Option<HashMap<usize, Arc<WeakSlot>>>> {
    SLOTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The sweep's half: called for a dead object before it is dropped.
pub(crate) fn clear_slot(h: &Header) {
    if !h.has_weak() {
        return;
    }
    let slot = slots()
        .as_mut()
        .and_then(|m| m.remove(&(h as *const Header as usize)));
    if let Some(slot) = slot {
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
        // The caller holds a handle to the live object, so the sweep cannot clear its slot
        // meanwhile; the table's lock makes the first downgrade's insertion and `WEAK` bit atomic
        // with respect to other downgrades and the sweep.
        let mut table = slots();
        let slot = table
            .get_or_insert_with(HashMap::new)
            .entry(h as *const Header as usize)
            .or_insert_with(|| {
                h.set_weak();
                Arc::new(WeakSlot {
                    target: Mutex::new(Some(NonNull::from(h))),
                })
            })
            .clone();
        drop(table);
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
                Phase::Sweep if crate::heap::marks_of(header).is_dead() => return None,
                Phase::Mark => {
                    header.inc_handle();
                    if crate::heap::marks_of(header).try_mark() {
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
