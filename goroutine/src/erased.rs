//! Inline storage for a value whose type only its writer and its reader know.
//!
//! A G is not generic, yet it carries a generic closure until it starts and a generic result until
//! its `JoinHandle<T>` takes it. Boxing both would cost two heap allocations per spawn; instead the
//! G holds two [`Erased`] slots: a value that fits (size and alignment of at most `WORDS` machine
//! words) is stored in place, a larger one in a `Box` stored in place. The slot remembers how to drop
//! what it holds, so a closure that never ran or a result nobody joined is still dropped properly.
//!
//! The one obligation on callers (the reason `take` is `unsafe`): read back exactly the type that
//! was put. gort pairs them by construction: the `T` of a `JoinHandle<T>` and of the entry function
//! that completes it come from the same `spawn::<F, T>` call.

use std::mem::{align_of, size_of, MaybeUninit};

/// A slot of `WORDS` machine words holding at most one value of an erased type.
pub(crate) struct Erased<const WORDS: usize> {
    buf: MaybeUninit<[usize; WORDS]>,
    /// Drops the value in `buf`; `Some` exactly while the slot is full.
    drop_fn: Option<unsafe fn(*mut u8)>,
}

// SAFETY: `put` only accepts `T: Send`, so whatever the slot holds may move between threads.
unsafe impl<const WORDS: usize> Send for Erased<WORDS> {}

impl<const WORDS: usize> Erased<WORDS> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Erased {
            buf: MaybeUninit::uninit(),
            drop_fn: None,
        }
    }

    const fn fits<T>() -> bool {
        size_of::<T>() <= size_of::<[usize; WORDS]>() && align_of::<T>() <= align_of::<usize>()
    }

    /// Stores `value`, dropping whatever the slot held before.
    pub(crate) fn put<T: Send + 'static>(&mut self, value: T) {
        self.clear();
        let p = self.buf.as_mut_ptr() as *mut u8;
        if Self::fits::<T>() {
            // SAFETY: `T` fits in `buf` in size and alignment (checked above) and the slot is empty.
            unsafe { (p as *mut T).write(value) };
            self.drop_fn = Some(drop_inline::<T>);
        } else {
            // SAFETY: a `Box<T>` is one pointer, which always fits; the slot is empty.
            unsafe { (p as *mut Box<T>).write(Box::new(value)) };
            self.drop_fn = Some(drop_boxed::<T>);
        }
    }

    /// Moves the value out, leaving the slot empty.
    ///
    /// # Safety
    /// The slot is full and its value was stored by `put::<T>` with this same `T`.
    pub(crate) unsafe fn take<T>(&mut self) -> T {
        debug_assert!(self.drop_fn.is_some(), "gort: take from an empty slot");
        self.drop_fn = None;
        let p = self.buf.as_ptr() as *const u8;
        if Self::fits::<T>() {
            // SAFETY: the caller guarantees a `T` stored in place by `put::<T>`; clearing `drop_fn`
            // first means it is read out exactly once.
            unsafe { (p as *const T).read() }
        } else {
            // SAFETY: as above, for the boxed case.
            *unsafe { (p as *const Box<T>).read() }
        }
    }

    /// Whether the slot holds a value.
    pub(crate) fn is_full(&self) -> bool {
        self.drop_fn.is_some()
    }

    /// Drops the value, if any.
    pub(crate) fn clear(&mut self) {
        if let Some(drop_fn) = self.drop_fn.take() {
            // SAFETY: `drop_fn` was set by `put` for the value currently in `buf`, and taking it
            // first means the value is dropped once.
            unsafe { drop_fn(self.buf.as_mut_ptr() as *mut u8) };
        }
    }
}

impl<const WORDS: usize> Drop for Erased<WORDS> {
    fn drop(&mut self) {
        self.clear();
    }
}

unsafe fn drop_inline<T>(p: *mut u8) {
    // SAFETY: called through `drop_fn` only, for a `T` that `put` wrote in place at `p`.
    unsafe { std::ptr::drop_in_place(p as *mut T) };
}

unsafe fn drop_boxed<T>(p: *mut u8) {
    // SAFETY: called through `drop_fn` only, for a `Box<T>` that `put` wrote at `p`.
    drop(unsafe { (p as *mut Box<T>).read() });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Erased;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>, #[allow(dead_code)] [u64; 3]);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn small_and_large_values_round_trip() {
        let mut s = Erased::<2>::new();
        s.put(7u64);
        assert!(s.is_full());
        // SAFETY: a u64 was put.
        assert_eq!(unsafe { s.take::<u64>() }, 7);
        assert!(!s.is_full());
        s.put([9u64; 10]);
        // SAFETY: a [u64; 10] was put (boxed, it does not fit in two words).
        assert_eq!(unsafe { s.take::<[u64; 10]>() }, [9; 10]);
        s.put(());
        // SAFETY: a () was put.
        unsafe { s.take::<()>() };
    }

    #[test]
    fn unread_values_are_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        {
            let mut inline = Erased::<4>::new();
            inline.put(Counted(drops.clone(), [0; 3]));
            let mut boxed = Erased::<1>::new();
            boxed.put(Counted(drops.clone(), [0; 3]));
            boxed.put(Counted(drops.clone(), [0; 3])); // replaces (drops) the first
            assert_eq!(drops.load(Ordering::Relaxed), 1);
        }
        assert_eq!(drops.load(Ordering::Relaxed), 3);
        let mut s = Erased::<4>::new();
        s.put(Counted(drops.clone(), [0; 3]));
        // SAFETY: a Counted was put.
        let v = unsafe { s.take::<Counted>() };
        drop(s);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            3,
            "take moved it out: the slot must not drop it"
        );
        drop(v);
        assert_eq!(drops.load(Ordering::Relaxed), 4);
    }
}
