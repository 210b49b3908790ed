//! Goroutine-local storage: `thread_local!` for goroutines.
//!
//! A goroutine may move between threads at any blocking call (see the crate docs, "Thread-locals
//! and goroutines"), so a `thread_local!` is the wrong home for per-request state such as a request
//! id or a tracing span. A [`GoroutineLocal`] (declared with [`goroutine_local!`](crate::goroutine_local))
//! gives each goroutine its own value instead: created from the initializer at the goroutine's
//! first access, kept across every park and migration, and dropped when the goroutine finishes.
//!
//! Invariants:
//! * A goroutine's values live in its G (`G::locals`) and are touched only by that goroutine while
//!   it runs — never by the M, never by another goroutine — so no lock is needed.
//! * Values are boxed and never removed while the goroutine runs: a reference handed to `with`
//!   stays valid while the callback adds other keys (the list may reallocate; the boxes do not
//!   move).
//! * When the goroutine's function returns (or panics), its values are dropped on its own stack,
//!   before its `JoinHandle` sees the result; a panicking `Drop` is reported and the others are
//!   still dropped.
//!
//! Outside a goroutine (a plain thread, or an async task, which has no G) the value is per thread,
//! like `thread_local!`.

use std::any::Any;
use std::cell::RefCell;

/// The values of one goroutine (or, outside goroutines, of one thread), by key. One word in every
/// G until the goroutine first uses a goroutine-local.
#[derive(Default)]
pub(crate) struct Locals {
    // Boxed on purpose: one word in every G rather than a `Vec`'s three, since most goroutines
    // never use a goroutine-local (the memory per parked goroutine is a budget).
    #[allow(clippy::box_collection)]
    entries: Option<Box<Vec<Entry>>>,
}

/// A key (the `GoroutineLocal`'s address) and its value.
type Entry = (usize, Box<dyn Any + Send>);

impl Locals {
    /// The value for `key`, created by `init` if absent. The reference stays valid until the
    /// `Locals` is cleared (boxes do not move when `entries` grows).
    fn get_or_init<T: Send + 'static>(&mut self, key: usize, init: fn() -> T) -> *const T {
        let entries = self.entries.get_or_insert_with(Box::default);
        if let Some((_, v)) = entries.iter().find(|(k, _)| *k == key) {
            return v
                .downcast_ref::<T>()
                .expect("gort: a goroutine-local key holds a value of another type")
                as *const T;
        }
        let boxed: Box<dyn Any + Send> = Box::new(init());
        let ptr = boxed
            .downcast_ref::<T>()
            .expect("the value was just boxed as T") as *const T;
        entries.push((key, boxed));
        ptr
    }

    /// Drops every value, newest first; a panicking `Drop` is reported on stderr and the rest are
    /// still dropped.
    pub(crate) fn clear(&mut self, goid: u64) {
        let Some(entries) = self.entries.as_mut() else {
            return;
        };
        while let Some((_, v)) = entries.pop() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(v))).is_err() {
                eprintln!("gort: goroutine {goid}: dropping a goroutine-local value panicked");
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.as_ref().map_or(true, |e| e.is_empty())
    }
}

thread_local! {
    /// Values of code that runs outside goroutines.
    static THREAD_LOCALS: RefCell<Locals> = RefCell::new(Locals::default());
}

/// A goroutine-local value: each goroutine gets its own, initialized on first use and dropped when
/// the goroutine finishes. Declare one with [`goroutine_local!`](crate::goroutine_local).
///
/// Outside a goroutine (on a plain thread, or in an async task) the value is per thread.
pub struct GoroutineLocal<T: 'static> {
    init: fn() -> T,
}

impl<T: Send + 'static> GoroutineLocal<T> {
    /// A key whose values start as `init()` (used by the macro).
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> GoroutineLocal<T> {
        GoroutineLocal { init }
    }

    /// Runs `f` with the calling goroutine's value, creating it first if needed.
    ///
    /// `f` may block (the value stays with the goroutine) and may use other goroutine-locals. The
    /// initializer must not use this same key (that would recurse forever).
    ///
    /// ```
    /// use std::cell::Cell;
    ///
    /// gort_goroutine::goroutine_local! {
    ///     static REQUEST: Cell<u64> = Cell::new(0);
    /// }
    ///
    /// let h = gort_goroutine::spawn(|| {
    ///     REQUEST.with(|r| r.set(7));
    ///     gort_goroutine::yield_now(); // may resume on another thread
    ///     REQUEST.with(|r| r.get())
    /// });
    /// assert_eq!(h.join().unwrap(), 7);
    /// // Another goroutine starts from the initializer.
    /// assert_eq!(gort_goroutine::spawn(|| REQUEST.with(|r| r.get())).join().unwrap(), 0);
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self as *const Self as usize;
        let g = crate::g::current_g();
        if g.is_null() {
            let ptr = THREAD_LOCALS.with(|l| l.borrow_mut().get_or_init(key, self.init));
            // SAFETY: the value is boxed in this thread's list, which only `clear` at thread exit
            // empties; the thread is running `f` now, so that cannot happen meanwhile.
            return f(unsafe { &*ptr });
        }
        // SAFETY: `g` is the running goroutine; its locals are touched only by itself (module
        // invariants), and this borrow ends before `f` runs (which may re-enter `with`).
        let ptr = unsafe { (*g).locals_mut().get_or_init(key, self.init) };
        // SAFETY: the box stays in place until the goroutine finishes, after `f` returns.
        f(unsafe { &*ptr })
    }
}

/// Declares goroutine-local statics, as `thread_local!` does thread-locals:
///
/// ```
/// use std::cell::RefCell;
///
/// gort_goroutine::goroutine_local! {
///     /// The request this goroutine serves.
///     pub static TRACE: RefCell<Vec<&'static str>> = RefCell::new(Vec::new());
/// }
///
/// gort_goroutine::spawn(|| {
///     TRACE.with(|t| t.borrow_mut().push("start"));
///     TRACE.with(|t| assert_eq!(*t.borrow(), ["start"]));
/// })
/// .join()
/// .unwrap();
/// ```
///
/// The type must be `Send + 'static` (the goroutine may move between threads with its values).
#[macro_export]
macro_rules! goroutine_local {
    ($($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr;)+) => {
        $(
            $(#[$attr])*
            $vis static $name: $crate::local::GoroutineLocal<$t> =
                $crate::local::GoroutineLocal::new(|| $init);
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    crate::goroutine_local! {
        static COUNTER: Cell<u32> = Cell::new(0);
        static NAME: RefCell<String> = RefCell::new(String::from("unset"));
    }

    #[test]
    fn each_goroutine_has_its_own_value_across_parks() {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                crate::spawn(move || {
                    COUNTER.with(|c| c.set(i));
                    for _ in 0..10 {
                        crate::yield_now();
                        COUNTER.with(|c| c.set(c.get() + 1));
                    }
                    COUNTER.with(|c| c.get())
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), i as u32 + 10);
        }
    }

    #[test]
    fn keys_are_independent_and_nest() {
        crate::spawn(|| {
            COUNTER.with(|c| {
                c.set(5);
                NAME.with(|n| n.borrow_mut().push_str("-set"));
                assert_eq!(c.get(), 5);
            });
            NAME.with(|n| assert_eq!(*n.borrow(), "unset-set"));
        })
        .join()
        .unwrap();
    }

    struct CountsDrops(Arc<AtomicUsize>);
    impl Drop for CountsDrops {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    crate::goroutine_local! {
        static DROPPED: RefCell<Option<CountsDrops>> = RefCell::new(None);
    }

    #[test]
    fn values_are_dropped_when_the_goroutine_finishes_even_by_panic() {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        crate::spawn(move || DROPPED.with(|v| *v.borrow_mut() = Some(CountsDrops(d))))
            .join()
            .unwrap();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "dropped before join returned"
        );
        let d = drops.clone();
        let r = crate::spawn(move || {
            DROPPED.with(|v| *v.borrow_mut() = Some(CountsDrops(d)));
            panic!("boom");
        })
        .join();
        assert!(r.unwrap_err().is_panic());
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn outside_goroutines_the_value_is_per_thread() {
        COUNTER.with(|c| c.set(41));
        COUNTER.with(|c| assert_eq!(c.get(), 41));
        std::thread::spawn(|| COUNTER.with(|c| assert_eq!(c.get(), 0)))
            .join()
            .unwrap();
    }
}
