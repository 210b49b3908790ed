//! The allocator: size classes, spans, per-P caches (Go's mheap/mcentral/mcache, simplified).
//!
//! * Objects up to 32 KiB are rounded up to one of [`CLASS_SIZES`] (keeping their alignment); each
//!   class has 64 KiB *spans* cut into equal slots, with one *marks byte* per slot: the slot's
//!   state (`FREE`, `RESERVED`, `ALLOC`, `DEAD`, `LEAKED`) and its object's mark and stamp for the
//!   cycle in progress (`header::Marks`). Spans are 64 KiB-aligned (cut from 1 MiB chunks) and
//!   recorded in the *span map*, so an object's span and slot index follow from its address:
//!   marking finds a target's marks byte that way, and prompt reclamation its slot.
//! * Each P caches one span per class (`P_CACHES`, reached through the runtime's
//!   `with_current_proc` hook) and owns that span's `FREE -> RESERVED` transitions: a cursor walks
//!   the state bytes. A plain thread (no P) has the same cache in a thread-local.
//! * Allocation does not go to the P every time: the hook costs two atomic read-modify-writes, so
//!   a thread takes 32 free slots at once into a thread-local *magazine* and allocates from it
//!   (`RESERVED -> ALLOC`) with no atomic read-modify-write at all. A goroutine touches its
//!   thread's magazine only within one non-blocking call, so migration between threads is
//!   harmless; at thread exit the unused slots go back (`RESERVED -> FREE`).
//! * Prompt reclamation (`reclaim.rs`, only while the collector is idle) frees an object whose last
//!   handle was dropped: its slot goes into the freeing thread's magazine (`ALLOC -> RESERVED`, up
//!   to `MAGAZINE_BYTES`), or back to its span (`ALLOC -> FREE`).
//! * When its span is used up, a cache returns it and takes one from the class's *central* list of
//!   spans with free slots, or a fresh span. That refill is where the pacer looks at the heap
//!   (`collector::on_refill`), as Go's does in `mcache.refill`.
//! * Apart from prompt reclamation, only the sweep turns `ALLOC` into `DEAD` (after dropping the
//!   value) and `ALLOC` or `DEAD` into `FREE` or `LEAKED` (once every dead value of the cycle is
//!   dropped), also in spans a cache owns: the cache's allocation never writes an `ALLOC` or
//!   `DEAD` slot's state and the sweep never writes any other. A span that gains free slots and
//!   is not cached goes back on its central list.
//! * The sweep's last step is lazy, as Go's: when no dead value of the cycle ran user code, the
//!   collector does not free the dead slots itself but leaves each span's list with the span
//!   (`Span::sweep_later`). The allocator that next takes the span (from its central list, or as
//!   its cached span) frees them first (`Span::sweep`); the collector's workers sweep the rest in
//!   the background, and the collector finishes that before its next cycle begins. Exactly one
//!   of them frees each span's list (it claims `sweep_state` from `UNSWEPT` to `SWEEPING`).
//! * Larger objects (or alignment above 16) get a span of their own, also in the span map, freed
//!   to the system when the object dies (by the sweep only).
//!
//! Invariants: a slot's memory is initialized exactly when its state is `ALLOC` (published with
//! release, read with acquire); small spans are never unmapped, so a `&Span` to one is valid
//! forever; every span is in the registry from creation until (large ones) their object is freed.

use std::alloc::Layout;
use std::cell::{RefCell, UnsafeCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
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

use crate::header::{Header, Marks};
pub(crate) use crate::header::{ALLOC, DEAD, FREE, LEAKED, RESERVED};
/// Bytes of freed objects' slots a magazine takes back (`recycle`), at most `MAGAZINE_MAX` slots:
/// slots parked in a magazine are usable only by its thread, so the bound is in bytes.
const MAGAZINE_BYTES: usize = 16 * 1024;
const MAGAZINE_MAX: usize = 512;
/// Slots a magazine takes from its cache at once.
const RESERVE: usize = 32;
/// How many allocations ahead `alloc` prefetches the slot it will hand out.
const PREFETCH_AHEAD: usize = 4;
/// Small allocations by one thread between two goroutine safe points.
const SAFE_POINT_EVERY: u64 = 32;

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
    /// The allocation to give back when the span is dropped: large spans only (small spans are
    /// cut from chunks that are never freed).
    own: Option<Layout>,
    bytes: usize,
    pub(crate) slot_size: usize,
    /// `ceil(2^32 / slot_size)`: a slot's index from its offset is `offset * recip >> 32`
    /// (exact for offsets below 2^16, which is all a small span has).
    recip: u64,
    class: usize,
    states: Box<[AtomicU8]>,
    free_slots: AtomicUsize,
    /// In a cache (changed only under the class's central lock).
    owned: AtomicBool,
    /// On the central list (changed only under the class's central lock).
    listed: AtomicBool,
    /// The lazy part of a sweep (`Span::sweep`): slots whose objects the last cycle found dead
    /// and whose values it dropped (or skipped), still to be freed, and where that stands
    /// (`SWEPT`, `UNSWEPT`, `SWEEPING`).
    unswept: Mutex<Vec<u16>>,
    sweep_state: AtomicU8,
}

// SAFETY: a Span is its memory plus atomics; who may touch which slot is the module's protocol.
unsafe impl Send for Span {}
// SAFETY: as above.
unsafe impl Sync for Span {}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(layout) = self.own {
            // SAFETY: allocated with this layout in `Span::new_large`; the span is dropped only
            // when it is out of the registry and no snapshot holds it, so no slot is used any more.
            unsafe { std::alloc::dealloc(self.base.as_ptr(), layout) };
        }
    }
}

impl Span {
    /// A span of class `class` (small) or of one large object, registered for the collector and
    /// (small ones) in the span map.
    fn new(class: usize, size: usize, align: usize) -> Arc<Span> {
        let (base, own, nslots, slot_size) = if class == LARGE {
            let layout = Layout::from_size_align(size, align.max(SPAN_BYTES))
                .expect("gort: heap span layout");
            // SAFETY: the layout has non-zero size.
            let base = unsafe { std::alloc::alloc(layout) };
            let Some(base) = NonNull::new(base) else {
                std::alloc::handle_alloc_error(layout)
            };
            (base, Some(layout), 1, size)
        } else {
            let slot = CLASS_SIZES[class];
            (chunk_span(), None, SPAN_BYTES / slot, slot)
        };
        let bytes = own.map_or(SPAN_BYTES, |l| l.size());
        poison(base.as_ptr(), bytes);
        let span = Arc::new(Span {
            base,
            own,
            bytes,
            slot_size,
            recip: (1u64 << 32).div_ceil(slot_size as u64),
            class,
            states: (0..nslots).map(|_| AtomicU8::new(FREE)).collect(),
            free_slots: AtomicUsize::new(nslots),
            owned: AtomicBool::new(false),
            listed: AtomicBool::new(false),
            unswept: Mutex::new(Vec::new()),
            sweep_state: AtomicU8::new(SWEPT),
        });
        let mut registry = lock(&REGISTRY);
        map_span(Arc::as_ptr(&span), Arc::as_ptr(&span));
        registry.push(span.clone());
        span
    }

    /// A small span as `'static`: small spans are never deallocated (they stay in the registry
    /// for good), so a reference to one is valid for the rest of the process.
    fn as_static(&self) -> &'static Span {
        assert_ne!(self.class, LARGE, "gort: a large span is not 'static");
        // SAFETY: as above: the registry holds an `Arc` to every small span forever.
        unsafe { &*(self as *const Span) }
    }

    pub(crate) fn slots(&self) -> usize {
        self.states.len()
    }

    /// Slot `i`'s state (`FREE`, `ALLOC`, ...), without the marks.
    #[inline]
    pub(crate) fn state(&self, i: usize) -> u8 {
        self.marks(i).state()
    }

    /// Slot `i`'s marks byte: its state and its object's marks for the cycle in progress.
    #[inline]
    pub(crate) fn marks(&self, i: usize) -> Marks<'_> {
        Marks(&self.states[i])
    }

    pub(crate) fn slot_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: `i < slots()`, so the offset stays inside the span's allocation.
        unsafe { self.base.as_ptr().add(i * self.slot_size) }
    }

    /// Publishes an initialized slot (`RESERVED -> ALLOC`, unstamped and unmarked), by the thread
    /// that took it.
    #[inline]
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
    pub(crate) fn freed(&self, n: usize) {
        // SeqCst, with the loads below and a cache's release of the span (`Cache::refill`): a
        // cache giving the span up either sees these slots and lists the span, or this sees that
        // nobody holds the span and lists it.
        self.free_slots.fetch_add(n, Ordering::SeqCst);
        if self.class == LARGE {
            let mut registry = lock(&REGISTRY);
            map_span(self, std::ptr::null());
            registry.retain(|s| !std::ptr::eq(Arc::as_ptr(s), self));
            return;
        }
        self.list_unless_held();
    }

    /// Puts a small span on its central list unless a cache holds it or it is listed already.
    /// The check before the lock is the common case when objects die one by one
    /// (`reclaim.rs`): the lock is not needed.
    fn list_unless_held(&self) {
        if self.owned.load(Ordering::SeqCst) || self.listed.load(Ordering::SeqCst) {
            return;
        }
        let mut central = lock(&CENTRAL[self.class]);
        if !self.owned.load(Ordering::SeqCst) && !self.listed.load(Ordering::SeqCst) {
            self.listed.store(true, Ordering::SeqCst);
            central.push(self.as_static());
        }
    }
}

/// A span's lazy sweep (`Span::sweep_state`): nothing left to free; slots left to free; being
/// freed by someone (who stores `SWEPT` when done).
const SWEPT: u8 = 0;
const UNSWEPT: u8 = 1;
const SWEEPING: u8 = 2;

/// The bits of a [`Span::sweep_later`] list entry that hold the slot index (the collector's
/// sweep uses bit 15 for a flag of its own).
pub(crate) const SLOT_INDEX_MASK: u16 = 0x7fff;

impl Span {
    /// Leaves the freeing of `dead` (slots whose values a sweep's drop pass has dropped, every
    /// dead value of that cycle being dropped already) to whoever next needs this span: the
    /// allocator that takes it (`Cache`), or the background sweep ([`Span::sweep`]), which the
    /// collector finishes before its next cycle. A span with no free slot is listed on its central
    /// list, so that allocators find it.
    pub(crate) fn sweep_later(&self, dead: Vec<u16>) {
        *lock(&self.unswept) = dead;
        self.sweep_state.store(UNSWEPT, Ordering::Release);
        if self.class != LARGE {
            self.list_unless_held();
        }
    }

    /// Frees the slots [`Span::sweep_later`] left, if no one has claimed them yet (Go's lazy
    /// sweep: the allocator that takes a span sweeps it first). Returns how many it freed. Never
    /// call it holding the span's central lock (`freed` may take it).
    pub(crate) fn sweep(&self) -> usize {
        if self.sweep_state.load(Ordering::Relaxed) != UNSWEPT
            || self
                .sweep_state
                .compare_exchange(UNSWEPT, SWEEPING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return 0;
        }
        let dead = std::mem::take(&mut *lock(&self.unswept));
        for &e in &dead {
            self.free_slot(usize::from(e & SLOT_INDEX_MASK));
        }
        if !dead.is_empty() {
            self.freed(dead.len());
        }
        self.sweep_state.store(SWEPT, Ordering::Release);
        dead.len()
    }

    /// Whether slots are left for the lazy sweep to free (a cheap check before [`Span::sweep`]).
    #[inline]
    fn needs_sweep(&self) -> bool {
        self.sweep_state.load(Ordering::Relaxed) == UNSWEPT
    }

    /// The background sweep's step: sweeps the span if no one has, and waits for whoever is
    /// sweeping it, so that when it returns nothing of the span's last sweep is left in flight
    /// (the next cycle's clear pass must not meet a dead object being freed).
    pub(crate) fn finish_sweep(&self) {
        let mut round = 0;
        loop {
            match self.sweep_state.load(Ordering::Acquire) {
                SWEPT => return,
                UNSWEPT => {
                    self.sweep();
                }
                _ => {
                    // An allocator frees a span's slots without blocking: a short wait.
                    round += 1;
                    crate::sync::backoff(round);
                }
            }
        }
    }
}

/// Every span, for the collector's passes.
static REGISTRY: Mutex<Vec<Arc<Span>>> = Mutex::new(Vec::new());
/// Per class: spans with free slots that no cache holds.
static CENTRAL: [Mutex<Vec<&'static Span>>; NCLASSES] =
    [const { Mutex::new(Vec::new()) }; NCLASSES];

/// Small spans are cut from chunks of this many bytes, aligned to `SPAN_BYTES`, so that a
/// span's address is a multiple of `SPAN_BYTES` (the span map's key). Chunks are never freed.
const CHUNK_BYTES: usize = 16 * SPAN_BYTES;

/// The chunk small spans are being cut from: its next free span, and how many are left.
static CHUNK: Mutex<(usize, usize)> = Mutex::new((0, 0));

/// Memory for one small span: `SPAN_BYTES`, aligned to `SPAN_BYTES`.
fn chunk_span() -> NonNull<u8> {
    let mut c = lock(&CHUNK);
    if c.1 == 0 {
        let layout =
            Layout::from_size_align(CHUNK_BYTES, SPAN_BYTES).expect("gort: heap chunk layout");
        // SAFETY: the layout has non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        if base.is_null() {
            std::alloc::handle_alloc_error(layout)
        }
        *c = (base as usize, CHUNK_BYTES / SPAN_BYTES);
    }
    let at = c.0;
    c.0 += SPAN_BYTES;
    c.1 -= 1;
    // Non-null: inside a successful allocation.
    NonNull::new(at as *mut u8).expect("gort: heap chunk address")
}

/// The span map: every span by address (a large span by its first 64 KiB), in two levels (Go's
/// arena index, for spans): the root is indexed by address bits 32..48, a leaf by bits 16..32.
/// Leaves are allocated on first use and never freed; entries are written under the registry's
/// lock (a large span's is cleared when it is freed, before it leaves the registry).
type MapLeaf = [AtomicPtr<Span>; 1 << 16];
static SPAN_MAP: [AtomicPtr<MapLeaf>; 1 << 16] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; 1 << 16];

/// Sets the map entry of `span`'s address to `to` (the span, or null), with the registry locked.
fn map_span(span: *const Span, to: *const Span) {
    // SAFETY: called with a span that is registered (or just created).
    let a = unsafe { (*span).base.as_ptr() } as usize;
    assert!(
        a >> 48 == 0,
        "gort: heap address {a:#x} beyond the span map's 48 bits"
    );
    // One entry per 64 KiB: two spans must never share one.
    assert!(
        a % SPAN_BYTES == 0,
        "gort: span at {a:#x} is not 64 KiB-aligned"
    );
    let root = &SPAN_MAP[a >> 32];
    let mut leaf = root.load(Ordering::Acquire);
    if leaf.is_null() {
        let layout = Layout::new::<MapLeaf>();
        // SAFETY: non-zero size; an all-zero `AtomicPtr` is a null pointer, a valid value.
        leaf = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<MapLeaf>();
        if leaf.is_null() {
            std::alloc::handle_alloc_error(layout)
        }
        root.store(leaf, Ordering::Release);
    }
    // SAFETY: leaves are never freed.
    unsafe { (*leaf)[(a >> 16) & 0xffff].store(to.cast_mut(), Ordering::Release) };
}

/// The marks byte of the object headed by `h`.
#[inline]
pub(crate) fn marks_of(h: &Header) -> Marks<'_> {
    let Some((span, i)) = locate((h as *const Header).cast::<u8>()) else {
        unreachable!("gort: a heap object outside every span")
    };
    // The span outlives the object (a large span is freed with its object), and so the borrow.
    Marks(&span.states[i])
}

/// The small span holding the object at `p`, and the object's slot index; `None` if `p` is not
/// in a small span.
pub(crate) fn locate_small(p: *const u8) -> Option<(&'static Span, usize)> {
    locate(p).filter(|(span, _)| span.class != LARGE)
}

/// The span holding the object at `p` (which is in a registered span: the object is allocated),
/// and its slot index. The `'static` lifetime is only true of small spans; a large span lives as
/// long as its object, and callers keep the reference no longer than that.
#[inline]
fn locate(p: *const u8) -> Option<(&'static Span, usize)> {
    let a = p as usize;
    let leaf = SPAN_MAP.get(a >> 32)?.load(Ordering::Acquire);
    if leaf.is_null() {
        return None;
    }
    // SAFETY: leaves are never freed.
    let span = unsafe { (*leaf)[(a >> 16) & 0xffff].load(Ordering::Acquire) };
    if span.is_null() {
        return None;
    }
    // SAFETY: a mapped span is registered: a small one forever, a large one until its object is
    // freed, and `p` heads an object that is allocated (the caller's contract).
    let span: &'static Span = unsafe { &*span };
    let offset = (a - span.base.as_ptr() as usize) as u64;
    let i = ((offset * span.recip) >> 32) as usize;
    debug_assert_eq!(
        i * span.slot_size,
        offset as usize,
        "gort: not a slot address"
    );
    Some((span, i))
}

/// A copy of the span list (cheap: one `Arc` per 64 KiB).
pub(crate) fn spans() -> Vec<Arc<Span>> {
    lock(&REGISTRY).clone()
}

#[derive(Default)]
struct ClassCache {
    span: Option<&'static Span>,
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

    /// Fills `mag` (empty) with up to `RESERVE` free slots of `class`, all from one span
    /// (`FREE -> RESERVED`). Returns whether the cache had to take a new span (the caller then
    /// runs the pacer check).
    fn reserve(&mut self, class: usize, mag: &mut Magazine) -> bool {
        let mut refilled = false;
        loop {
            let cc = &mut self.classes[class];
            if let Some(span) = cc.span {
                if span.needs_sweep() && span.sweep() > 0 {
                    cc.cursor = 0;
                }
                while cc.cursor < span.slots() && mag.slots.len() < RESERVE {
                    let i = cc.cursor;
                    cc.cursor += 1;
                    if span.states[i].load(Ordering::Acquire) == FREE {
                        span.states[i].store(RESERVED, Ordering::Relaxed);
                        mag.push(span, i);
                    }
                }
                if !mag.slots.is_empty() {
                    span.free_slots
                        .fetch_sub(mag.slots.len(), Ordering::Relaxed);
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
            give_up(old, &mut central);
        }
        let span = loop {
            match central.pop() {
                Some(s) => {
                    s.listed.store(false, Ordering::SeqCst);
                    if s.needs_sweep() {
                        // Swept here, by the allocator that needs it, outside the central lock
                        // (`freed` may take it); owned meanwhile, so that `freed` does not list
                        // it again.
                        s.owned.store(true, Ordering::SeqCst);
                        drop(central);
                        s.sweep();
                        central = lock(&CENTRAL[class]);
                        s.owned.store(false, Ordering::SeqCst);
                    }
                    if s.free_slots.load(Ordering::SeqCst) > 0 {
                        break s;
                    }
                }
                None => {
                    drop(central);
                    let s = Span::new(class, CLASS_SIZES[class], SMALL_ALIGN).as_static();
                    central = lock(&CENTRAL[class]);
                    break s;
                }
            }
        };
        span.owned.store(true, Ordering::SeqCst);
        drop(central);
        cc.span = Some(span);
        cc.cursor = 0;
    }

    fn release_all(&mut self) {
        for (cc, central) in self.classes.iter_mut().zip(&CENTRAL) {
            if let Some(old) = cc.span.take() {
                give_up(old, &mut lock(central));
            }
        }
    }
}

/// A cache stops allocating from `span` (its class's central lock held): list it if it has free
/// slots. SeqCst, with `Span::freed`'s increment and its loads of the flags: either this sees the
/// slots freed while the cache held the span, or `freed` sees the span unowned and lists it.
fn give_up(span: &'static Span, central: &mut Vec<&'static Span>) {
    span.owned.store(false, Ordering::SeqCst);
    if span.free_slots.load(Ordering::SeqCst) > 0 && !span.listed.load(Ordering::SeqCst) {
        span.listed.store(true, Ordering::SeqCst);
        central.push(span);
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

/// A small slot a magazine holds (`RESERVED`): its address and its marks byte, so that allocating
/// and publishing it touch neither its span's descriptor nor anything but the slot and the byte.
#[derive(Clone, Copy)]
pub(crate) struct SlotRef {
    ptr: NonNull<u8>,
    state: &'static AtomicU8,
}

impl SlotRef {
    fn new(span: &'static Span, i: usize) -> SlotRef {
        SlotRef {
            // Non-null: inside a span.
            ptr: NonNull::new(span.slot_ptr(i)).expect("gort: slot address"),
            state: &span.states[i],
        }
    }

    /// The slot's span and index (through the span map; for the rare paths).
    fn place(self) -> (&'static Span, usize) {
        locate_small(self.ptr.as_ptr()).expect("gort: a magazine slot outside every small span")
    }
}

/// Slots of one class for allocation without touching the P: a thread takes them through its
/// P's cache (or, off Ps, its own cache) `RESERVE` at a time, and slots of objects it frees
/// promptly (`recycle`) come back here, up to `MAGAZINE_BYTES` (so they may come from many
/// spans). A
/// program that builds and drops small structures over and over (a tree of a few hundred nodes)
/// then reuses the same slots, still in cache, without touching a span.
#[derive(Default)]
struct Magazine {
    slots: Vec<SlotRef>,
}

impl Magazine {
    fn push(&mut self, span: &'static Span, i: usize) {
        self.slots.push(SlotRef::new(span, i));
    }
}

/// Per-thread counters (written only by their thread, read by `stats()`): objects and bytes
/// allocated, and objects and bytes freed promptly (`recycle`).
#[derive(Default)]
struct Counters {
    objects: AtomicU64,
    bytes: AtomicU64,
    recycled_objects: AtomicU64,
    recycled_bytes: AtomicU64,
}

impl Counters {
    /// Adds to counters only this thread writes: a load and a store, no locked instruction.
    #[inline]
    fn bump(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// Per thread: the magazines, the cache used when the thread has no P, and the counters; given
/// back at thread exit.
struct ThreadCache {
    /// One per class, on the heap: together they are tens of KiB, too much for the goroutine
    /// stack the thread-local may be initialized on.
    magazines: RefCell<Box<[Magazine]>>,
    cache: RefCell<Cache>,
    counters: Arc<Counters>,
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        for mag in self.magazines.borrow_mut().iter_mut() {
            for r in mag.slots.drain(..) {
                r.state.store(FREE, Ordering::Release);
                r.place().0.freed(1);
            }
        }
        self.cache.borrow_mut().release_all();
        // Held until the counters are in the exited threads' sums (see `totals`).
        let mut live = lock(&LIVE_THREAD_COUNTERS);
        live.retain(|c| !Arc::ptr_eq(c, &self.counters));
        let c = &self.counters;
        for (total, mine) in [
            (&THREAD_OBJECTS, &c.objects),
            (&THREAD_BYTES, &c.bytes),
            (&THREAD_RECYCLED_OBJECTS, &c.recycled_objects),
            (&THREAD_RECYCLED_BYTES, &c.recycled_bytes),
        ] {
            total.fetch_add(mine.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

thread_local!(static THREAD_CACHE: ThreadCache = {
    let counters = Arc::new(Counters::default());
    lock(&LIVE_THREAD_COUNTERS).push(counters.clone());
    ThreadCache {
        magazines: RefCell::new((0..NCLASSES).map(|_| Magazine::default()).collect()),
        cache: RefCell::new(Cache::new()),
        counters,
    }
});
/// Objects freed promptly by plain threads that have exited (or during thread exit).
static THREAD_RECYCLED_OBJECTS: AtomicU64 = AtomicU64::new(0);
static THREAD_RECYCLED_BYTES: AtomicU64 = AtomicU64::new(0);
/// Allocations of plain threads that have exited.
static THREAD_OBJECTS: AtomicU64 = AtomicU64::new(0);
static THREAD_BYTES: AtomicU64 = AtomicU64::new(0);
/// The counters of live plain threads' caches.
static LIVE_THREAD_COUNTERS: Mutex<Vec<Arc<Counters>>> = Mutex::new(Vec::new());

/// A slot for a new object: where to write it, and how to publish it.
pub(crate) enum Slot {
    /// A small slot, and its class's slot size.
    Small(SlotRef, usize),
    Large(Arc<Span>),
}

impl Slot {
    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        let (p, size) = match self {
            Slot::Small(r, size) => (r.ptr.as_ptr(), *size),
            Slot::Large(span) => (span.slot_ptr(0), span.slot_size),
        };
        unpoison(p, size);
        p
    }

    /// Publishes the initialized object to the collector (`RESERVED -> ALLOC`).
    #[inline]
    pub(crate) fn publish(&self) {
        match self {
            Slot::Small(r, _) => r.state.store(ALLOC, Ordering::Release),
            Slot::Large(span) => span.publish(0),
        }
    }

    /// Leaks the published object for good (its adoption panicked).
    pub(crate) fn leak(&self) {
        match self {
            Slot::Small(r, _) => r.state.store(LEAKED, Ordering::Release),
            Slot::Large(span) => span.leak(0),
        }
    }
}

/// Allocates a slot for `layout`, whose class is `class` (`class_of(layout)`, computed by the
/// caller at compile time). Never waits for the collector, except through the pacer's stall
/// (`collector::on_refill`) when it takes a span. A goroutine safe point every
/// `SAFE_POINT_EVERY` small objects, and for every large one.
#[inline]
pub(crate) fn alloc(layout: Layout, class: Option<usize>) -> Slot {
    debug_assert_eq!(class, class_of(layout.size(), layout.align()));
    match class {
        Some(class) => {
            let taken = THREAD_CACHE.try_with(|tc| {
                let mut mags = tc.magazines.borrow_mut();
                let mag = &mut mags[class];
                let mut refilled = false;
                if mag.slots.is_empty() {
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
                let Some(slot) = mag.slots.pop() else {
                    unreachable!("gort: a magazine left empty by its refill")
                };
                // A recycled slot is cold: the first store into it is the costliest part of
                // `Gc::new`. Start fetching a slot a few allocations ahead, so it is in cache by then.
                if let Some(next) = mag
                    .slots
                    .len()
                    .checked_sub(PREFETCH_AHEAD)
                    .map(|at| mag.slots[at])
                {
                    crate::sync::prefetch(next.ptr.as_ptr());
                }
                let c = &tc.counters;
                let n = c.objects.load(Ordering::Relaxed);
                Counters::bump(&c.objects, 1);
                Counters::bump(&c.bytes, CLASS_SIZES[class] as u64);
                (
                    Slot::Small(slot, CLASS_SIZES[class]),
                    refilled,
                    n % SAFE_POINT_EVERY == 0,
                )
            });
            let Ok((slot, refilled, safe_point)) = taken else {
                panic!(
                    "gort: Gc::new called while this thread exits, after its allocation cache \
                     was torn down (from a thread-local's destructor?)"
                );
            };
            if refilled {
                crate::collector::on_refill();
            }
            if safe_point {
                // Allocation is a goroutine safe point once every few dozen objects, not every
                // time: the check is a call into the runtime, a few percent of a small `Gc::new`.
                gort_goroutine::runtime::safe_point();
            }
            slot
        }
        None => {
            let size = layout.size().max(16).next_multiple_of(SMALL_ALIGN);
            let span = Span::new(LARGE, size, layout.align());
            span.free_slots.store(0, Ordering::Relaxed);
            LARGE_OBJECTS.fetch_add(1, Ordering::Relaxed);
            LARGE_BYTES.fetch_add(size as u64, Ordering::Relaxed);
            crate::collector::on_refill();
            gort_goroutine::runtime::safe_point();
            Slot::Large(span)
        }
    }
}

static LARGE_OBJECTS: AtomicU64 = AtomicU64::new(0);
static LARGE_BYTES: AtomicU64 = AtomicU64::new(0);

/// The heap's counters now: one pass over the live threads' counters (one lock).
///
/// The exited threads' sums are read under the lock too: a thread's exit moves its counters
/// from the list to those sums while holding it, so a reader outside it could see them in
/// neither place (or, for two reads, count them once and not the other time).
pub(crate) fn totals() -> Totals {
    let live = lock(&LIVE_THREAD_COUNTERS);
    let mut t = Totals {
        objects: THREAD_OBJECTS.load(Ordering::Relaxed) + LARGE_OBJECTS.load(Ordering::Relaxed),
        bytes: THREAD_BYTES.load(Ordering::Relaxed) + LARGE_BYTES.load(Ordering::Relaxed),
        recycled_objects: THREAD_RECYCLED_OBJECTS.load(Ordering::Relaxed),
        recycled_bytes: THREAD_RECYCLED_BYTES.load(Ordering::Relaxed),
    };
    for c in live.iter() {
        t.objects += c.objects.load(Ordering::Relaxed);
        t.bytes += c.bytes.load(Ordering::Relaxed);
        t.recycled_objects += c.recycled_objects.load(Ordering::Relaxed);
        t.recycled_bytes += c.recycled_bytes.load(Ordering::Relaxed);
    }
    t
}

/// The heap's counters since the process started (slot sizes): what was allocated, and what was
/// freed promptly (`recycle`; the sweep's frees are the collector's to count).
pub(crate) struct Totals {
    pub(crate) objects: u64,
    pub(crate) bytes: u64,
    pub(crate) recycled_objects: u64,
    pub(crate) recycled_bytes: u64,
}

/// Frees slot `i` of `span` at once, for an object whose value is dropped (prompt reclamation,
/// `reclaim.rs`: the collector is idle and nothing can reach the object). The slot goes to this
/// thread's magazine of its class while there is room (`ALLOC -> RESERVED`: the next `Gc::new`
/// of that class reuses it, still in cache), and back to its span otherwise (`ALLOC -> FREE`).
pub(crate) fn recycle(span: &'static Span, i: usize) {
    poison(span.slot_ptr(i), span.slot_size);
    let kept = THREAD_CACHE.try_with(|tc| {
        let c = &tc.counters;
        Counters::bump(&c.recycled_objects, 1);
        Counters::bump(&c.recycled_bytes, span.slot_size as u64);
        // Not borrowed by this thread: `alloc` runs no user code while it holds the magazines.
        let Ok(mut mags) = tc.magazines.try_borrow_mut() else {
            return false;
        };
        let mag = &mut mags[span.class];
        if mag.slots.len() >= (MAGAZINE_BYTES / span.slot_size).min(MAGAZINE_MAX) {
            return false;
        }
        span.states[i].store(RESERVED, Ordering::Release);
        mag.push(span, i);
        true
    });
    if kept == Ok(true) {
        return;
    }
    if kept.is_err() {
        // This thread's cache is gone (a thread-local's destructor dropped the last handle).
        THREAD_RECYCLED_OBJECTS.fetch_add(1, Ordering::Relaxed);
        THREAD_RECYCLED_BYTES.fetch_add(span.slot_size as u64, Ordering::Relaxed);
    }
    span.states[i].store(FREE, Ordering::Release);
    span.freed(1);
}

/// Bytes of spans obtained from the system (the heap's footprint).
pub(crate) fn span_bytes() -> u64 {
    lock(&REGISTRY).iter().map(|s| s.bytes as u64).sum()
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
