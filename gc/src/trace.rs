//! `Trace`: how the collector finds the handles inside a value, and its impls for std types.
//!
//! A [`Tracer`] walks a value in one of four modes, one per question the heap asks:
//!
//! * **mark** (collector, mark assists): shade every object a handle points to;
//! * **adopt** (`Gc::new`, releasing a `GcCell` write guard): the handles now live in the heap, so
//!   each target's `internal` count goes up (with `DIRTY`, see `header.rs`);
//! * **disown** (taking a `GcCell` write guard): the handles leave the heap's accounting for as
//!   long as the guard lives, so `internal` goes down, and while marking each target is shaded (the
//!   snapshot-at-the-beginning deletion barrier);
//! * **finalize** (sweep, for a dead object): handles to live objects give their `internal` count
//!   back; handles to other dead objects are left as they are (every dead object is flagged before
//!   any `Drop` runs, so using such a handle panics).
//!
//! Soundness rests on one rule, which is why the trait is `unsafe`: a `trace` must report every
//! handle it can reach the same way each time, and the handles it reports may change only through
//! a [`GcCell`](crate::GcCell) write guard. Reporting *fewer* handles is safe (an unreported handle
//! just counts as outside the heap: it keeps its object alive, at worst leaking a cycle), which is
//! why `#[gc(skip)]` is not unsafe. There are no impls for `Rc`, `Arc`, `Cell`, `RefCell` or
//! `Mutex`: shared or interior-mutable places could report a handle twice or change it behind the
//! collector's back; put such fields under `#[gc(skip)]` (their handles then act as roots).

use std::ptr::NonNull;

use crate::header::Header;

/// A type whose values can live in the traced heap: it reports every [`Gc`](crate::Gc) handle it
/// holds, so the collector can find them.
///
/// Derive it with `#[derive(gort::Trace)]` (fields marked `#[gc(skip)]` are not traced). To
/// implement it by hand, call `trace` on every field that may hold a handle:
///
/// ```
/// use gort_gc::{Gc, Trace, Tracer};
/// struct Pair { left: Option<Gc<Pair>>, right: Option<Gc<Pair>>, label: String }
/// // SAFETY: reports every handle Pair holds, the same way every time; they change only through
/// // GcCell write guards (there are none here: a Pair never changes).
/// unsafe impl Trace for Pair {
///     fn trace(&self, t: &mut Tracer<'_>) {
///         self.left.trace(t);
///         self.right.trace(t);
///     }
/// }
/// let leaf = Gc::new(Pair { left: None, right: None, label: "leaf".into() });
/// let root = Gc::new(Pair { left: Some(leaf.clone()), right: Some(leaf), label: "root".into() });
/// assert_eq!(root.label, "root");
/// ```
///
/// # Safety
/// `trace` must report (call `trace` on) the handles it reaches identically on every call, and
/// those handles may change only through a [`GcCell`](crate::GcCell) write guard: no other
/// interior mutability may hold a reported handle. Not reporting a handle is allowed (it then acts
/// as a root). `trace` should not panic; if it does, the heap stays sound (see the crate docs) but
/// objects may leak.
///
/// [`plain_drop`](Trace::plain_drop) may return `true` only if dropping a value runs no code but
/// the standard library's and gort's: in particular nothing that dereferences, clones, downgrades
/// or moves out a [`Gc`](crate::Gc). When every dead value of a sweep is plain, the collector
/// neither flags dead objects nor checks their counts before freeing them, so code in a wrongly
/// plain `Drop` could keep a handle to a freed object: a use-after-free.
/// [`drop_is_handles_only`](Trace::drop_is_handles_only) may return `true` only if dropping a
/// value has no effect besides dropping the `Gc` handles in it (no memory of its own to free, no
/// other drop glue), and only if `plain_drop` does too. The defaults of both are always correct.
pub unsafe trait Trace {
    /// Reports the handles in `self` to `tracer`.
    fn trace(&self, tracer: &mut Tracer<'_>);

    /// Whether dropping a value of this type runs only gort's and the standard library's code:
    /// no `Drop` impl of yours anywhere inside it, so nothing that could block, take a lock or
    /// panic. The collector lets allocating goroutines help drop such values when the heap is past
    /// its goal (Go's proportional sweep); other values are dropped only on the collector's own
    /// threads, after every dead object is flagged. The default, `true` only for types with no
    /// drop glue at all, is always correct; `#[derive(Trace)]` computes it (a struct or enum with
    /// no `Drop` impl whose traced fields are all plain and whose skipped fields need no drop at
    /// all). Returning `true` for a type whose drop runs other code is unsound (see the trait's
    /// safety section).
    #[inline]
    fn plain_drop() -> bool
    where
        Self: Sized,
    {
        !std::mem::needs_drop::<Self>()
    }

    /// Whether dropping a value of this type does nothing but drop the [`Gc`](crate::Gc) handles
    /// it holds: no memory of its own to free, no `Drop` impl anywhere inside. When the collector
    /// finds such a value dead with every handle in it pointing to another dead object, and no
    /// user `Drop` runs in that sweep, it frees the value's slot without dropping it (the drop
    /// would only lower the counts of objects freed with it). The default asks whether the type
    /// has any drop glue at all, which is always correct; `#[derive(Trace)]` computes it like
    /// [`plain_drop`](Trace::plain_drop). `true` implies `plain_drop() == true`.
    #[inline]
    fn drop_is_handles_only() -> bool
    where
        Self: Sized,
    {
        !std::mem::needs_drop::<Self>()
    }
}

#[cfg(not(loom))]
use crate::heap::marks_of;

/// The loom models drive the protocol without tracing through a `Tracer` (and without spans).
#[cfg(loom)]
fn marks_of(_: &Header) -> crate::header::Marks<'_> {
    unreachable!("gort: the loom models do not trace through Tracer")
}

/// A pointer to a heap object that may cross threads (the gray queue).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ObjPtr(pub(crate) NonNull<Header>);
// SAFETY: an ObjPtr is an address; every dereference is argued where it happens (the heap's
// objects are shared between threads by design).
unsafe impl Send for ObjPtr {}

pub(crate) enum Mode<'a> {
    Mark {
        gray: &'a mut Vec<ObjPtr>,
    },
    Adopt,
    /// A write guard taken (`shade`: while marking, the old contents are shaded), or a value
    /// being freed promptly.
    Disown {
        shade: bool,
        gray: &'a mut Vec<ObjPtr>,
    },
    Finalize {
        /// Set when a handle points to a live object.
        live_targets: bool,
    },
    /// Prompt reclamation of an unreachable object whose drop only drops handles
    /// (`reclaim.rs`): each handle is listed for release (its target's count and internal count
    /// lowered, as disowning and dropping it would), and its target prefetched meanwhile.
    Release {
        handles: &'a mut Vec<ObjPtr>,
    },
}

/// Walks a value's handles for the heap; handed to [`Trace::trace`]. Its work is internal to the
/// heap: a `Trace` impl only passes it on to its fields.
pub struct Tracer<'a> {
    pub(crate) mode: Mode<'a>,
}

impl<'a> Tracer<'a> {
    pub(crate) fn new(mode: Mode<'a>) -> Tracer<'a> {
        Tracer { mode }
    }

    /// Visits one handle (the pointer inside a `Gc`).
    #[inline]
    pub(crate) fn visit_handle(&mut self, target: NonNull<Header>) {
        // SAFETY: a handle that is ever visited has a target header that is still allocated: the
        // target is live, or dead and not yet freed, or leaked for good. The sweep frees a dead
        // object only once no handle to it will ever be visited, dereferenced or dropped again
        // (its handles are gone, or they sit in dead values freed with it whose drops are
        // skipped), and `Trace::plain_drop`'s contract keeps user code from holding one.
        let header = unsafe { target.as_ref() };
        match &mut self.mode {
            Mode::Mark { gray } => {
                if marks_of(header).try_mark() {
                    gray.push(ObjPtr(target));
                }
            }
            Mode::Adopt => header.adopt(),
            Mode::Disown { shade, gray } => {
                if *shade && marks_of(header).try_mark() {
                    gray.push(ObjPtr(target));
                }
                header.disown();
            }
            Mode::Release { handles } => {
                crate::sync::prefetch(target.as_ptr().cast::<u8>());
                handles.push(ObjPtr(target));
            }
            Mode::Finalize { live_targets } => {
                // A handle to a live object gives back its `internal` count; one to another dead
                // object is left alone (that object's header outlives every dead holder's drop,
                // and using the handle panics: the target is flagged dead before any user drop).
                if !marks_of(header).is_dead() {
                    header.disown();
                    *live_targets = true;
                }
            }
        }
    }
}

macro_rules! trace_nothing {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: holds no handles; dropping one runs only the standard library's code.
        unsafe impl Trace for $t {
            #[inline]
            fn trace(&self, _: &mut Tracer<'_>) {}
            #[inline]
            fn plain_drop() -> bool {
                true
            }
        }
    )*};
}

trace_nothing!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    std::num::NonZeroU8,
    std::num::NonZeroU16,
    std::num::NonZeroU32,
    std::num::NonZeroU64,
    std::num::NonZeroUsize,
    std::num::NonZeroI32,
    std::num::NonZeroI64,
    std::num::NonZeroIsize,
    std::time::Duration,
    std::time::Instant,
    std::time::SystemTime,
    std::path::PathBuf,
    std::ffi::OsString,
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicIsize,
);

// SAFETY: holds no handles. (Unsized: `plain_drop` does not apply.)
unsafe impl Trace for str {
    #[inline]
    fn trace(&self, _: &mut Tracer<'_>) {}
}

// SAFETY: holds no handles (and has no drop glue: the defaults answer `true`).
unsafe impl<T: ?Sized> Trace for std::marker::PhantomData<T> {
    fn trace(&self, _: &mut Tracer<'_>) {}
}

// SAFETY: reports the boxed value's handles; a Box has one owner. (`plain_drop` keeps its
// default: the boxed value may be unsized, and its own answer is then out of reach.)
unsafe impl<T: Trace + ?Sized> Trace for Box<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        (**self).trace(t);
    }
}

// SAFETY: reports every element's handles.
unsafe impl<T: Trace> Trace for [T] {
    fn trace(&self, t: &mut Tracer<'_>) {
        for v in self {
            v.trace(t);
        }
    }
}

// SAFETY: reports every element's handles.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    fn trace(&self, t: &mut Tracer<'_>) {
        for v in self {
            v.trace(t);
        }
    }
    fn plain_drop() -> bool {
        T::plain_drop()
    }
    fn drop_is_handles_only() -> bool {
        T::drop_is_handles_only()
    }
}

macro_rules! trace_elements {
    ($($collection:ident)::+) => {
        // SAFETY: reports every element's handles; dropping the collection runs only the standard
        // library's code besides the elements' drops.
        unsafe impl<T: Trace> Trace for $($collection)::+<T> {
            fn trace(&self, t: &mut Tracer<'_>) {
                for v in self {
                    v.trace(t);
                }
            }
            fn plain_drop() -> bool {
                T::plain_drop()
            }
        }
    };
}

trace_elements!(Vec);
trace_elements!(std::collections::VecDeque);
trace_elements!(std::collections::LinkedList);
trace_elements!(std::collections::BTreeSet);
trace_elements!(std::collections::BinaryHeap);

// SAFETY: reports the value's handles, if any.
unsafe impl<T: Trace> Trace for Option<T> {
    fn trace(&self, t: &mut Tracer<'_>) {
        if let Some(v) = self {
            v.trace(t);
        }
    }
    fn plain_drop() -> bool {
        T::plain_drop()
    }
    fn drop_is_handles_only() -> bool {
        T::drop_is_handles_only()
    }
}

// SAFETY: reports the handles of whichever side is present.
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    fn trace(&self, t: &mut Tracer<'_>) {
        match self {
            Ok(v) => v.trace(t),
            Err(e) => e.trace(t),
        }
    }
    fn plain_drop() -> bool {
        T::plain_drop() && E::plain_drop()
    }
    fn drop_is_handles_only() -> bool {
        T::drop_is_handles_only() && E::drop_is_handles_only()
    }
}

// SAFETY: reports every key's and value's handles.
unsafe impl<K: Trace, V: Trace, S> Trace for std::collections::HashMap<K, V, S> {
    fn trace(&self, t: &mut Tracer<'_>) {
        for (k, v) in self {
            k.trace(t);
            v.trace(t);
        }
    }
    fn plain_drop() -> bool {
        K::plain_drop() && V::plain_drop() && !std::mem::needs_drop::<S>()
    }
}

// SAFETY: reports every key's and value's handles.
unsafe impl<K: Trace, V: Trace> Trace for std::collections::BTreeMap<K, V> {
    fn trace(&self, t: &mut Tracer<'_>) {
        for (k, v) in self {
            k.trace(t);
            v.trace(t);
        }
    }
    fn plain_drop() -> bool {
        K::plain_drop() && V::plain_drop()
    }
}

// SAFETY: reports every element's handles.
unsafe impl<T: Trace, S> Trace for std::collections::HashSet<T, S> {
    fn trace(&self, t: &mut Tracer<'_>) {
        for v in self {
            v.trace(t);
        }
    }
    fn plain_drop() -> bool {
        T::plain_drop() && !std::mem::needs_drop::<S>()
    }
}

macro_rules! trace_tuple {
    ($($name:ident)+) => {
        // SAFETY: reports every component's handles.
        unsafe impl<$($name: Trace),+> Trace for ($($name,)+) {
            #[allow(non_snake_case)]
            fn trace(&self, t: &mut Tracer<'_>) {
                let ($($name,)+) = self;
                $($name.trace(t);)+
            }
            fn plain_drop() -> bool {
                $($name::plain_drop() &&)+ true
            }
            fn drop_is_handles_only() -> bool {
                $($name::drop_is_handles_only() &&)+ true
            }
        }
    };
}
trace_tuple!(A);
trace_tuple!(A B);
trace_tuple!(A B C);
trace_tuple!(A B C D);
trace_tuple!(A B C D E);
trace_tuple!(A B C D E F);
trace_tuple!(A B C D E F G);
trace_tuple!(A B C D E F G H);
trace_tuple!(A B C D E F G H I);
trace_tuple!(A B C D E F G H I J);
trace_tuple!(A B C D E F G H I J K);
trace_tuple!(A B C D E F G H I J K L);
