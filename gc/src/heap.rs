//! The allocator: size classes, spans, per-P caches (Go's mheap/mcentral/mcache, simplified).
//!
//! * Objects up to 32 KiB are rounded up to one of [`CLASS_SIZES`] (keeping their alignment); each
//!   class has 64 KiB *spans* cut into equal slots, with one state byte per slot (`FREE`,
//!   `RESERVED`, `ALLOC`, `DEAD`, `LEAKED`).
//! * Each P caches one span per class (`P_CACHES`, reached through the runtime's
//!   `with_current_proc` hook) and owns that span's `FREE -> RESERVED` transitions: a cursor walks
//!   the state bytes. A plain thread (no P) has the same cache in a thread-local.
//! * Allocation does not go to the P every time: the hook costs two atomic read-modify-writes, so
//!   a thread takes 32 free slots at once into a thread-local *magazine* and allocates from it
//!   (`RESERVED -> ALLOC`) with no atomic read-modify-write at all. A goroutine touches its
//!   thread's magazine only within one non-blocking call, so migration between threads is
//!   harmless; at thread exit the unused slots go back (`RESERVED -> FREE`).
//! * When its span is used up, a cache returns it and takes one from the class's *central* list of
//!   spans with free slots, or a fresh span. That refill is where the pacer looks at the heap
//!   (`collector::on_refill`), as Go's does in `mcache.refill`.
//! * Only the sweep (run by the collector's threads, helped by allocating goroutines) turns
//!   `ALLOC` into `DEAD` (after dropping the value) and `ALLOC` or `DEAD` into `FREE` or `LEAKED`
//!   (once every dead value of the cycle is dropped), also in spans a cache owns: allocation
//!   never writes an `ALLOC` or `DEAD` slot's state and the sweep never writes any other. A span
//!   that gains free slots and is not cached goes back on its central list.
//! * Larger objects (or alignment above 16) get a span of their own, freed to the system when the
//!   object dies.
//!
//! Invariants: a slot's memory is initialized exactly when its state is `ALLOC` (published with
//! release, read with acquire); small spans are never unmapped, so a `&Span` to one is valid
//! forever; every span is in the registry from creation until (large ones) their object is freed.

use std::alloc::Layout;
use std::cell::{RefCell, UnsafeCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gort_goroutine::runtime::{with_current_proc, MAX_PROCS_LIMIT};

/// Bytes per small-object span.
pub(crate) const SPAN_BYTES: usize = 64 * 1024;

/// Slot sizes of the small size classes. A slot is aligned to the largest power of two dividing
/// its size (spans start page-aligned): 24, 40 and 56 serve only objects aligned to 8 or less
/// (most objects: a header is three 8-byte words), the others any alignment up to 16.
pub(crate) const CLASS_SIZES: [usize; 39] = [
    16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320, 384, 448, 512, 640,
    768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 4096, 5120, 6144, 8192, 10240, 13056,
    16384, 21760, 32768,
];
const NCLASSES: usize = CLASS_SIZES.len();
const SMALL_ALIGN: usize = 16;
const LARGE: usize = usize::MAX;

pub(crate) const FREE: u8 = 0;
pub(crate) const ALLOC: u8 = 1;
/// Never freed: its finalizing trace panicked, so its handles could not be accounted for.
pub(crate) const LEAKED: u8 = 2;
/// Taken from a span by a cache into a thread's magazine, not yet allocated.
pub(crate) const RESERVED: u8 = 3;
/// Dead, value dropped (or its drop skipped) by the sweep's pass two, header intact: the slot
/// becomes `FREE` in pass three, once no handle to it will be used again.
pub(crate) const DEAD: u8 = 4;
/// Slots a magazine holds.
const MAGAZINE: usize = 32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The class for an object of `size` bytes and `align`, or `None` for a large object. A `const
/// fn` so that `Gc::new` computes it once per type, at compile time.
pub(crate) const fn class_of(size: usize, align: usize) -> Option<usize> {
    if align > SMALL_ALIGN || size > CLASS_SIZES[NCLASSES - 1] {
        return None;
    }
    // The first class at least `size` whose slots keep `align` (a linear scan: this runs at
    // compile time). `align` is a power of two up to 16, and the last class is a multiple of 16.
    let mut c = 0;
    while CLASS_SIZES[c] < size || CLASS_SIZES[c] % align != 0 {
        c += 1;
    }
    Some(c)
}

/// A run of equal slots (or one large object).
pub(crate) struct Span {
    base: NonNull<u8>,
    layout: Layout,
    pub(crate) slot_size: usize,
    class: usize,
    states: Box<[AtomicU8]>,
    free_slots: AtomicUsize,
    /// In a cache (changed only under the class's central lock).
    owned: AtomicBool,
    /// On the central list (changed only under the class's central lock).
    listed: AtomicBool,
}

// SAFETY: a Span is its memory plus atomics; who may touch which slot is the module's protocol.
unsafe impl Send for Span {}
// SAFETY: as above.
unsafe impl Sync for Span {}

impl Drop for Span {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `Span::new`; the span is dropped only when it is out
        // of the registry and no cache or snapshot holds it, so no slot is used any more.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}

impl Span {
    fn new(slot_size: usize, nslots: usize, align: usize, class: usize) -> Arc<Span> {
        let layout = Layout::from_size_align(slot_size * nslots, align.max(4096))
            .expect("gort: heap span layout");
        // SAFETY: the layout has non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        let Some(base) = NonNull::new(base) else {
            std::alloc::handle_alloc_error(layout)
        };
        poison(base.as_ptr(), layout.size());
        let span = Arc::new(Span {
            base,
            layout,
            slot_size,
            class,
            states: (0..nslots).map(|_| AtomicU8::new(FREE)).collect(),
            free_slots: AtomicUsize::new(nslots),
            owned: AtomicBool::new(false),
            listed: AtomicBool::new(false),
        });
        lock(&REGISTRY).push(span.clone());
        span
    }

    pub(crate) fn slots(&self) -> usize {
        self.states.len()
    }

    pub(crate) fn state(&self, i: usize) -> u8 {
        self.states[i].load(Ordering::Acquire)
    }

    pub(crate) fn slot_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: `i < slots()`, so the offset stays inside the span's allocation.
        unsafe { self.base.as_ptr().add(i * self.slot_size) }
    }

    /// Publishes an initialized slot (`FREE -> ALLOC`), by the cache that took it.
    pub(crate) fn publish(&self, i: usize) {
        self.states[i].store(ALLOC, Ordering::Release);
    }

    /// Marks a slot as leaked for good.
    pub(crate) fn leak(&self, i: usize) {
        self.states[i].store(LEAKED, Ordering::Release);
    }

    /// The sweep dropped slot `i`'s value: `ALLOC -> DEAD` (the header stays readable until
    /// [`Span::free_slot`]).
    pub(crate) fn drop_done(&self, i: usize) {
        self.states[i].store(DEAD, Ordering::Release);
    }

    /// The sweep freed slot `i` (its value is dropped): `DEAD -> FREE`. Call [`Span::freed`]
    /// once the span's sweep is done.
    pub(crate) fn free_slot(&self, i: usize) {
        poison(self.slot_ptr(i), self.slot_size);
        self.states[i].store(FREE, Ordering::Release);
    }

    /// The sweep freed `n` slots of this span: count them, and put the span back on its central
    /// list if no cache holds it (a large span leaves the registry instead).
    pub(crate) fn freed(self: &Arc<Span>, n: usize) {
        self.free_slots.fetch_add(n, Ordering::Relaxed);
        if self.class == LARGE {
            lock(&REGISTRY).retain(|s| !Arc::ptr_eq(s, self));
            return;
        }
        let mut central = lock(&CENTRAL[self.class]);
        if !self.owned.load(Ordering::Relaxed) && !self.listed.load(Ordering::Relaxed) {
            self.listed.store(true, Ordering::Relaxed);
            central.push(self.clone());
        }
    }
}

/// Every span, for the collector's passes.
static REGISTRY: Mutex<Vec<Arc<Span>>> = Mutex::new(Vec::new());
/// Per class: spans with free slots that no cache holds.
static CENTRAL: [Mutex<Vec<Arc<Span>>>; NCLASSES] = [const { Mutex::new(Vec::new()) }; NCLASSES];

/// A copy of the span list (cheap: one `Arc` per 64 KiB).
pub(crate) fn spans() -> Vec<Arc<Span>> {
    lock(&REGISTRY).clone()
}

#[derive(Default)]
struct ClassCache {
    span: Option<Arc<Span>>,
    cursor: usize,
}

/// One P's (or plain thread's) allocation cache: the span it allocates from, per class.
pub(crate) struct Cache {
    classes: [ClassCache; NCLASSES],
}

impl Cache {
    const fn new() -> Cache {
        Cache {
            classes: [const {
                ClassCache {
                    span: None,
                    cursor: 0,
                }
            }; NCLASSES],
        }
    }

    /// Fills `mag` (empty) with free slots of `class`, all from one span (`FREE -> RESERVED`).
    /// Returns whether the cache had to take a new span (the caller then runs the pacer check).
    fn reserve(&mut self, class: usize, mag: &mut Magazine) -> bool {
        let mut refilled = false;
        loop {
            let cc = &mut self.classes[class];
            if let Some(span) = &cc.span {
                while cc.cursor < span.slots() && mag.len < MAGAZINE {
                    let i = cc.cursor;
                    cc.cursor += 1;
                    if span.states[i].load(Ordering::Acquire) == FREE {
                        span.states[i].store(RESERVED, Ordering::Relaxed);
                        mag.slots[mag.len] = i as u32;
                        mag.len += 1;
                    }
                }
                if mag.len > 0 {
                    span.free_slots.fetch_sub(mag.len, Ordering::Relaxed);
                    mag.span = Some(span.clone());
                    return refilled;
                }
            }
            self.refill(class);
            refilled = true;
        }
    }

    fn refill(&mut self, class: usize) {
        let cc = &mut self.classes[class];
        let old = cc.span.take();
        let mut central = lock(&CENTRAL[class]);
        if let Some(old) = old {
            old.owned.store(false, Ordering::Relaxed);
            if old.free_slots.load(Ordering::Relaxed) > 0 && !old.listed.load(Ordering::Relaxed) {
                old.listed.store(true, Ordering::Relaxed);
                central.push(old);
            }
        }
        let span = loop {
            match central.pop() {
                Some(s) => {
                    s.listed.store(false, Ordering::Relaxed);
                    if s.free_slots.load(Ordering::Relaxed) > 0 {
                        break s;
                    }
                }
                None => {
                    drop(central);
                    let size = CLASS_SIZES[class];
                    let s = Span::new(size, SPAN_BYTES / size, SMALL_ALIGN, class);
                    central = lock(&CENTRAL[class]);
                    break s;
                }
            }
        };
        span.owned.store(true, Ordering::Relaxed);
        drop(central);
        cc.span = Some(span);
        cc.cursor = 0;
    }

    fn release_all(&mut self) {
        for (cc, central) in self.classes.iter_mut().zip(&CENTRAL) {
            if let Some(old) = cc.span.take() {
                let mut central = lock(central);
                old.owned.store(false, Ordering::Relaxed);
                if old.free_slots.load(Ordering::Relaxed) > 0 && !old.listed.load(Ordering::Relaxed)
                {
                    old.listed.store(true, Ordering::Relaxed);
                    central.push(old);
                }
            }
        }
    }
}

/// P `i`'s cache. `with_current_proc` makes P indices exclusive *within one runtime*; a process
/// may run several runtimes (`runtime::Builder`), whose Ps share indices, so the cache also has a
/// try-lock (`busy`): the loser of a race uses its thread's cache instead.
struct PCache {
    busy: AtomicBool,
    cache: UnsafeCell<Cache>,
}
// SAFETY: the cache is touched only by the thread that set `busy` (acquire/release pair).
unsafe impl Sync for PCache {}

static P_CACHES: [PCache; MAX_PROCS_LIMIT] = [const {
    PCache {
        busy: AtomicBool::new(false),
        cache: UnsafeCell::new(Cache::new()),
    }
}; MAX_PROCS_LIMIT];

/// Slots reserved from one span, for allocation without touching the P: a thread takes them
/// through its P's cache (or, off Ps, its own cache) 32 at a time.
#[derive(Default)]
struct Magazine {
    span: Option<Arc<Span>>,
    slots: [u32; MAGAZINE],
    len: usize,
}

/// Per thread: the magazines, the cache used when the thread has no P, and the allocation
/// counters (written only by this thread, read by `stats()`); given back at thread exit.
struct ThreadCache {
    magazines: RefCell<[Magazine; NCLASSES]>,
    cache: RefCell<Cache>,
    counters: Arc<(AtomicU64, AtomicU64)>,
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        for mag in self.magazines.borrow_mut().iter_mut() {
            if let Some(span) = mag.span.take() {
                for &i in &mag.slots[..mag.len] {
                    span.states[i as usize].store(FREE, Ordering::Release);
                }
                span.freed(mag.len);
                mag.len = 0;
            }
        }
        self.cache.borrow_mut().release_all();
        let mut live = lock(&LIVE_THREAD_COUNTERS);
        live.retain(|c| !Arc::ptr_eq(c, &self.counters));
        THREAD_OBJECTS.fetch_add(self.counters.0.load(Ordering::Relaxed), Ordering::Relaxed);
        THREAD_BYTES.fetch_add(self.counters.1.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

thread_local!(static THREAD_CACHE: ThreadCache = {
    let counters = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    lock(&LIVE_THREAD_COUNTERS).push(counters.clone());
    ThreadCache {
        magazines: RefCell::new(std::array::from_fn(|_| Magazine::default())),
        cache: RefCell::new(Cache::new()),
        counters,
    }
});
/// Allocations of plain threads that have exited.
static THREAD_OBJECTS: AtomicU64 = AtomicU64::new(0);
static THREAD_BYTES: AtomicU64 = AtomicU64::new(0);
/// The counters of live plain threads' caches.
static LIVE_THREAD_COUNTERS: Mutex<Vec<Arc<(AtomicU64, AtomicU64)>>> = Mutex::new(Vec::new());

/// A slot for a new object: where to write it, and how to publish it.
pub(crate) enum Slot {
    Small(&'static Span, usize),
    Large(Arc<Span>),
}

impl Slot {
    pub(crate) fn ptr(&self) -> *mut u8 {
        let p = match self {
            Slot::Small(span, i) => span.slot_ptr(*i),
            Slot::Large(span) => span.slot_ptr(0),
        };
        unpoison(
            p,
            match self {
                Slot::Small(span, _) => span.slot_size,
                Slot::Large(span) => span.slot_size,
            },
        );
        p
    }
    /// Publishes the initialized object to the collector.
    pub(crate) fn publish(&self) {
        match self {
            Slot::Small(span, i) => span.publish(*i),
            Slot::Large(span) => span.publish(0),
        }
    }

    /// Leaks the published object for good (its adoption panicked).
    pub(crate) fn leak(&self) {
        match self {
            Slot::Small(span, i) => span.leak(*i),
            Slot::Large(span) => span.leak(0),
        }
    }
}

/// Allocates a slot for `layout`, whose class is `class` (`class_of(layout)`, computed by the
/// caller at compile time). Never waits for the collector (`Gc::new` may, before it calls this).
#[inline]
pub(crate) fn alloc(layout: Layout, class: Option<usize>) -> Slot {
    debug_assert_eq!(class, class_of(layout.size(), layout.align()));
    match class {
        Some(class) => {
            let taken = THREAD_CACHE.try_with(|tc| {
                let mut mags = tc.magazines.borrow_mut();
                let mag = &mut mags[class];
                let mut refilled = false;
                if mag.len == 0 {
                    mag.span = None;
                    let via_p = with_current_proc(|p| match p {
                        Some(p) if !P_CACHES[p].busy.swap(true, Ordering::Acquire) => {
                            // SAFETY: we set `busy` (see PCache): nobody else touches this cache.
                            let cache = unsafe { &mut *P_CACHES[p].cache.get() };
                            let r = cache.reserve(class, mag);
                            P_CACHES[p].busy.store(false, Ordering::Release);
                            Some(r)
                        }
                        _ => None,
                    });
                    refilled = match via_p {
                        Some(r) => r,
                        None => tc.cache.borrow_mut().reserve(class, mag),
                    };
                }
                mag.len -= 1;
                let i = mag.slots[mag.len] as usize;
                let span = mag.span.as_ref().expect("a filled magazine has a span");
                // SAFETY: small spans are never deallocated (module invariants: they stay in the
                // registry forever), so the reference is valid for 'static.
                let span: &'static Span = unsafe { &*Arc::as_ptr(span) };
                // A recycled slot is cold: the first store into it is the costliest part of
                // `Gc::new`. Start fetching the slot after next now, so it is in cache by then.
                if mag.len >= 2 {
                    prefetch(span.slot_ptr(mag.slots[mag.len - 2] as usize));
                }
                // Single writer (this thread): a load and a store, no locked instruction.
                let c = &tc.counters;
                c.0.store(c.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                c.1.store(
                    c.1.load(Ordering::Relaxed) + CLASS_SIZES[class] as u64,
                    Ordering::Relaxed,
                );
                (Slot::Small(span, i), refilled)
            });
            let Ok((slot, refilled)) = taken else {
                panic!(
                    "gort: Gc::new called while this thread exits, after its allocation cache \
                     was torn down (from a thread-local's destructor?)"
                );
            };
            if refilled {
                crate::collector::on_refill();
            }
            slot
        }
        None => {
            let size = layout.size().max(16).next_multiple_of(SMALL_ALIGN);
            let span = Span::new(size, 1, layout.align(), LARGE);
            span.free_slots.store(0, Ordering::Relaxed);
            LARGE_OBJECTS.fetch_add(1, Ordering::Relaxed);
            LARGE_BYTES.fetch_add(size as u64, Ordering::Relaxed);
            crate::collector::on_refill();
            Slot::Large(span)
        }
    }
}

static LARGE_OBJECTS: AtomicU64 = AtomicU64::new(0);
static LARGE_BYTES: AtomicU64 = AtomicU64::new(0);

/// `(objects, bytes)` allocated since the process started (slot sizes).
pub(crate) fn allocated() -> (u64, u64) {
    let mut objects =
        THREAD_OBJECTS.load(Ordering::Relaxed) + LARGE_OBJECTS.load(Ordering::Relaxed);
    let mut bytes = THREAD_BYTES.load(Ordering::Relaxed) + LARGE_BYTES.load(Ordering::Relaxed);
    for c in lock(&LIVE_THREAD_COUNTERS).iter() {
        objects += c.0.load(Ordering::Relaxed);
        bytes += c.1.load(Ordering::Relaxed);
    }
    (objects, bytes)
}

/// Bytes of spans obtained from the system (the heap's footprint).
pub(crate) fn span_bytes() -> u64 {
    lock(&REGISTRY).iter().map(|s| s.layout.size() as u64).sum()
}

/// Hints the CPU to bring `p`'s cache line in (a no-op off x86-64).
#[inline(always)]
fn prefetch(_p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and has no visible effect, whatever the
    // address; SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(_p.cast::<i8>())
    };
}

#[cfg(feature = "sanitizer")]
extern "C" {
    fn __asan_poison_memory_region(addr: *const u8, size: usize);
    fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
}

/// Marks freed slot memory unaddressable for AddressSanitizer (a no-op without the feature).
fn poison(_p: *mut u8, _len: usize) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: the region is inside a live span allocation.
    unsafe {
        __asan_poison_memory_region(_p, _len)
    };
}

fn unpoison(_p: *mut u8, _len: usize) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: the region is inside a live span allocation.
    unsafe {
        __asan_unpoison_memory_region(_p, _len)
    };
}
