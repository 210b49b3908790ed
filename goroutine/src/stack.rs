//! Goroutine stacks: carving, guard pages, canaries and stack-overflow reports.
//!
//! # Why fixed, lazily committed stacks
//!
//! Go grows a goroutine's stack by copying it to a bigger one and fixing up the pointers into
//! it. gort runs arbitrary Rust code on its goroutine stacks and Rust code keeps raw pointers to
//! stack locals everywhere, so a stack can never move. Instead every goroutine gets a fixed
//! reservation of address space (`DEFAULT_STACK_SIZE`, 256 KiB, adjustable with
//! `GORT_STACK_SIZE`) and lets the kernel commit it page by page on first touch. A parked
//! goroutine therefore costs exactly the pages its deepest call chain touched (usually one or
//! two), not its reservation. Nothing in this file ever writes a stack's memory up front (no
//! memset, no pre-faulting); the only exception is the canary word of canary-mode stacks, see
//! below.
//!
//! # Regions
//!
//! Stacks are carved out of large anonymous mappings, "regions", created with
//! `mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE|MAP_STACK)` and
//! `madvise(MADV_NOHUGEPAGE)`. `MAP_NORESERVE` keeps the reservation out of the commit charge, so
//! with `vm.overcommit_memory = 0` a million 256 KiB stacks (260 GiB of address space) are fine;
//! `MADV_NOHUGEPAGE` (and `MAP_STACK`, which implies it on recent kernels) stops transparent
//! huge pages from turning the first touch of a stack into a 2 MiB commit. An allocator's first
//! region holds 64 stacks and every further region twice as many as the previous one, up to 1 GiB
//! of address space per region. Regions are never unmapped: freed stacks are kept for reuse, and a
//! dropped allocator parks its regions in a process-wide orphan list from which the next
//! allocator of the same stack size and guard mode adopts them, so creating and dropping runtimes
//! in a loop does not leak mappings.
//!
//! # Memory layout
//!
//! Every stack occupies one `stride = page + stack_size` slot of a region: a guard page at the low
//! end, then `stack_size` usable bytes. Stacks grow down, from `base` towards the guard page.
//!
//! ```text
//!  region.start                                                                region.end
//!  |<-------------- stride -------------->|<-------------- stride -------------->|
//!  +--------+-----------------------------+--------+-----------------------------+
//!  | guard  |    usable (stack_size)      | guard  |    usable (stack_size)      | ...
//!  +--------+-----------------------------+--------+-----------------------------+
//!  ^ limit  ^ low: canary word (canary    ^ base = limit + stride: the top of the stack,
//!             mode only)                    page aligned, so 16-byte aligned
//! ```
//!
//! `limit` (the lowest address, guard page included) and `base` are what corosensei's `Stack`
//! trait reports. The layout is the same in every guard mode; only what happens to the guard
//! page differs.
//!
//! # The three guard modes
//!
//! A guard page per stack is the obvious design, but one `mmap` or `mprotect` per stack gives
//! every stack its own VMA (two, in fact, as the guard splits the mapping), and
//! `vm.max_map_count` (65530 by default) kills the process near 32k stacks. The mode is decided
//! once per process, on the first allocator:
//!
//! * **madvise** (the default where the kernel supports it): the guard page is installed with
//!   `madvise(guard, page, MADV_GUARD_INSTALL)` (Linux 6.13+). This writes guard markers into the
//!   page tables and keeps the whole region ONE mapping, so a million guarded stacks need at most
//!   a few hundred map entries (adjacent regions usually merge: 2 or 3 in practice). Touching a
//!   guard page raises SIGSEGV. Support is probed once, with `madvise` on a scratch page;
//!   `EINVAL` (or any error) means "unsupported".
//! * **mprotect** (the fallback on older kernels): `mprotect(guard, page, PROT_NONE)`, while a
//!   process-wide budget of `MPROTECT_GUARD_BUDGET` (16384) guarded stacks lasts, i.e. about 32k
//!   map entries. Past the budget, or if `mprotect` fails, the stack falls back to a canary. In
//!   madvise mode a failing `madvise` falls back the same way, so protection degrades stack by
//!   stack but is never silently absent.
//! * **canary**: no guard page. A random 64-bit word (one value per process) is written at the
//!   lowest usable address, `low`, when the stack is handed out, and [`Stack::check_overflow`]
//!   verifies it whenever the goroutine switches out (and [`StackAllocator::free`] once more). A
//!   frame that overflows the stack overwrites the canary first; the write then lands in the
//!   stack's (unprotected) guard slot, a one-page red zone, and only beyond that in the
//!   neighbouring stack. The cost is one extra committed page per stack (the lowest page is
//!   touched to write the canary), so canary mode does not meet the "4.5 KiB per parked
//!   goroutine" memory target; and detection is after the fact and best effort: an overflow that
//!   never writes the exact canary word goes unnoticed, and memory below the stack may already be
//!   corrupted when it is noticed. It exists only for kernels without guard markers once the
//!   mprotect budget is gone.
//!
//! The environment variable `GORT_STACK_GUARD=madvise|mprotect|canary` forces a mode. It is meant
//! for gort's own tests (to exercise all three paths on one kernel) and is not a user-facing knob;
//! `GORT_STACK_GUARD=madvise` on a kernel without `MADV_GUARD_INSTALL` panics.
//!
//! # Reporting an overflow
//!
//! A guard-page hit is a SIGSEGV. [`install_overflow_handler`] installs, once per process, a
//! SIGSEGV/SIGBUS handler with `SA_ONSTACK`; it runs on the alternate signal stack that
//! [`install_thread_signal_stack`] gives every runtime thread (without it the kernel could not
//! even build the signal frame on the overflowed stack, and the process would die silently). The
//! handler looks the fault address up in a lock-free registry of all gort regions (a
//! singly-linked list of leaked nodes, pushed with a compare-and-swap and never removed, because
//! regions are never unmapped). If the address lies in the guard page of a stack slot, it writes
//! `goroutine N stack overflow` plus a hint line to fd 2 and calls `abort()`; `N` is read from a
//! `const`-initialised thread-local `Cell<u64>` maintained by [`set_running_goroutine`]. Only
//! async-signal-safe operations are used on that path: atomic loads, a hand-written number
//! formatter into a stack buffer, `write(2)` and `abort(3)`. Any other fault is passed on to the
//! handler that was installed before ours (Rust's own stack-overflow handler, a sanitizer's, ...),
//! or, if there was none, the default disposition is restored and the signal re-raised, so the
//! process dies of the original signal. A canary hit prints the same message from
//! [`Stack::check_overflow`] and aborts too: a stack overflow never continues silently.
//!
//! # Allocation
//!
//! [`StackAllocator`] keeps a mutex-protected LIFO free list: a freed stack is handed out again
//! next, while its top pages are still committed and cache-warm, and memory is never given back
//! to the OS on `free`. When the free list is empty the allocator carves the next slot of its
//! current region (mapping a new region when it is full); the guard page is installed outside the
//! lock, so a burst of spawns does not serialise on the `madvise` (about 0.3 µs on bare metal,
//! 1-3 µs measured in a VM). The scheduler is expected to keep a small per-P cache of stacks in
//! front of the allocator. When an allocator is dropped, the memory of its free stacks is released
//! with `MADV_DONTNEED` (guard markers and `PROT_NONE` pages survive that) and its regions become
//! orphans, see above.
//!
//! # Invariants
//!
//! 1. Regions are never unmapped and their registry nodes never freed, so any address inside a
//!    region stays mapped for the life of the process and every registry node stays readable
//!    from a signal handler.
//! 2. A stack slot belongs to at most one [`Stack`] value at a time: it is carved exactly once
//!    (under the pool lock) and afterwards only moves between the free list and its holder.
//! 3. A guard slot is only made inaccessible (never made accessible again), and only before its
//!    stack is first handed out.
//! 4. `Stack::canary` is 0 exactly when the stack is guarded by a real guard page; otherwise it
//!    is the process-wide canary value, which is never 0, and the word at `low` holds it whenever
//!    the stack is not in use by a running goroutine (unless it overflowed).
//! 5. Every fault inside a guard slot of a registered region is a stack overflow: nothing else
//!    can fault there, since guard slots are either guard pages or red zones of canary stacks.
//!
//! # What the scheduler must do
//!
//! * Create one [`StackAllocator`] per runtime (`StackAllocator::new(stack_size_from_env())`);
//!   this also installs the process-wide fault handler.
//! * Call [`install_thread_signal_stack`] first thing on every worker thread (M).
//! * Call [`set_running_goroutine`] with the goroutine id before resuming a goroutine and with 0
//!   after it switches out.
//! * After every resume returns (the goroutine yielded, parked or finished), call
//!   `check_overflow(goid)`. A corosensei `Coroutine` owns its stack and does not lend it out, so
//!   take an [`OverflowChecker`] (`Copy`, 24 bytes) from the stack before moving it into the
//!   coroutine, keep it in the G, and call [`OverflowChecker::check`]; it is the same check.
//! * Give finished stacks back with [`StackAllocator::free`] (`Coroutine::into_stack`).
//!
//! # Limitations
//!
//! A guard page only catches overflows that touch it. Rust emits stack probes for frames larger
//! than a page, so Rust code always does; C code compiled without `-fstack-clash-protection` may
//! jump over it. The fault handler is installed once: a handler installed later by someone else
//! replaces it (their handler then sees our faults), and a handler installed between our query and
//! our install of the previous handler is lost. The thread-local goroutine id is read from the
//! signal handler; that is async-signal-safe for static TLS (executables and the usual `cdylib`
//! cases) but not guaranteed for lazily allocated dynamic TLS in `dlopen`ed libraries. This file
//! is Linux-only.

#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::missing_docs_in_private_items)]

use crate::lock;
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::ffi::c_void;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::mem::{self, MaybeUninit};
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use corosensei::stack::StackPointer;
use libc::c_int;

/// Default usable size of a goroutine stack (256 KiB of address space, lazily committed).
pub(crate) const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Smallest usable stack size handed out; smaller requests are rounded up to it.
const MIN_STACK_SIZE: usize = 16 * 1024;

/// Largest usable stack size accepted (the same 1 GB limit Go applies on 64-bit systems).
const MAX_STACK_SIZE: usize = 1 << 30;

/// Environment variable holding the goroutine stack size (see [`stack_size_from_env`]).
const STACK_SIZE_ENV: &str = "GORT_STACK_SIZE";

/// Environment variable forcing a guard mode: `madvise`, `mprotect` or `canary` (tests only).
const GUARD_MODE_ENV: &str = "GORT_STACK_GUARD";

/// Upper bound on the address space of one region (a region always holds at least one stack).
const MAX_REGION_BYTES: usize = 1 << 30;

/// Number of stacks in an allocator's first region; each later region doubles it.
const FIRST_REGION_STACKS: usize = 64;

/// Process-wide number of stacks that may be guarded with `mprotect` (each costs about two map
/// entries, so this stays well inside the default `vm.max_map_count` of 65530).
const MPROTECT_GUARD_BUDGET: usize = 16 * 1024;

/// `madvise` advice that installs guard markers (Linux 6.13+; not in the `libc` crate yet).
const MADV_GUARD_INSTALL: c_int = 102;

/// An alternate signal stack already installed on a thread is kept if it is at least this big.
const SIGNAL_STACK_REUSE_MIN: usize = 32 * 1024;

/// Size of the alternate signal stacks this module allocates (before the `AT_MINSIGSTKSZ` check).
const SIGNAL_STACK_SIZE: usize = 64 * 1024;

/// The signals a guard-page hit can raise, in the order of the `PREV_*` slots.
const FAULT_SIGNALS: [c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

// ---------------------------------------------------------------------------------------------
// Stack size configuration
// ---------------------------------------------------------------------------------------------

/// Reads `GORT_STACK_SIZE` (bytes, accepts plain numbers and K/KiB/M/MiB suffixes, case
/// insensitive); panics with a message starting "gort: " on a malformed value; rounds up to whole
/// pages; minimum 16 KiB, maximum 1 GiB. Unset or empty means [`DEFAULT_STACK_SIZE`].
pub(crate) fn stack_size_from_env() -> usize {
    let page = page_size();
    match std::env::var(STACK_SIZE_ENV) {
        Ok(value) if !value.trim().is_empty() => parse_stack_size(&value, page)
            .unwrap_or_else(|why| panic!("gort: invalid {STACK_SIZE_ENV}={value:?}: {why}")),
        Ok(_) | Err(std::env::VarError::NotPresent) => round_to_pages(DEFAULT_STACK_SIZE, page),
        Err(std::env::VarError::NotUnicode(value)) => {
            panic!("gort: invalid {STACK_SIZE_ENV}={value:?}: not valid UTF-8")
        }
    }
}

/// Parses a stack size such as `262144`, `256K`, `256KiB`, `1M` or `1 MiB` and normalises it with
/// [`round_to_pages`]. The error says what is wrong, without the "gort: " prefix.
fn parse_stack_size(value: &str, page: usize) -> Result<usize, String> {
    let value = value.trim();
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(digits);
    if number.is_empty() {
        return Err("expected a number of bytes, such as 262144, 256K, 256KiB, 1M or 1MiB".into());
    }
    let multiplier: usize = match suffix.trim().to_ascii_lowercase().as_str() {
        "" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        other => return Err(format!("unknown unit {other:?} (use K, KiB, M or MiB)")),
    };
    let too_big = || format!("larger than the {} MiB maximum", MAX_STACK_SIZE >> 20);
    let count: usize = number.parse().map_err(|_| too_big())?;
    let bytes = count
        .checked_mul(multiplier)
        .filter(|&bytes| bytes <= MAX_STACK_SIZE)
        .ok_or_else(too_big)?;
    Ok(round_to_pages(bytes, page))
}

/// Normalises a requested stack size the way [`StackAllocator::new`] does: raised to 16 KiB and
/// rounded up to whole pages. Panics with a "gort: " message above the 1 GiB maximum.
pub(crate) fn round_stack_size(bytes: usize) -> usize {
    assert!(
        bytes <= MAX_STACK_SIZE,
        "gort: goroutine stack size {bytes} exceeds the {MAX_STACK_SIZE}-byte maximum"
    );
    round_to_pages(bytes, page_size())
}

/// Raises `bytes` to [`MIN_STACK_SIZE`] and rounds it up to a multiple of `page`.
fn round_to_pages(bytes: usize, page: usize) -> usize {
    bytes.max(MIN_STACK_SIZE).next_multiple_of(page)
}

/// The system page size, queried once and cached.
fn page_size() -> usize {
    /// Cached page size; 0 until the first query.
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf only reads a system parameter; it has no memory-safety preconditions.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(raw)
        .ok()
        .filter(|page| page.is_power_of_two())
        .expect("gort: sysconf(_SC_PAGESIZE) returned an invalid page size");
    PAGE_SIZE.store(page, Ordering::Relaxed);
    page
}

// ---------------------------------------------------------------------------------------------
// Guard modes
// ---------------------------------------------------------------------------------------------

/// How an allocator protects the low end of its stacks (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GuardMode {
    /// Guard pages installed with `MADV_GUARD_INSTALL`, falling back to `Mprotect`.
    Madvise,
    /// Guard pages made `PROT_NONE` while the process-wide budget lasts, then canaries.
    Mprotect,
    /// No guard page: a canary word checked when the goroutine switches out.
    Canary,
}

impl GuardMode {
    /// Parses the value of `GORT_STACK_GUARD`.
    fn parse(value: &str) -> Option<GuardMode> {
        match value {
            "madvise" => Some(GuardMode::Madvise),
            "mprotect" => Some(GuardMode::Mprotect),
            "canary" => Some(GuardMode::Canary),
            _ => None,
        }
    }
}

/// The guard mode of this process: decided (and `GORT_STACK_GUARD` read) on first use, then cached.
fn process_guard_mode() -> GuardMode {
    /// The cached decision.
    static MODE: OnceLock<GuardMode> = OnceLock::new();
    *MODE.get_or_init(|| {
        let forced = match std::env::var(GUARD_MODE_ENV) {
            Ok(value) if !value.trim().is_empty() => {
                Some(GuardMode::parse(value.trim()).unwrap_or_else(|| {
                    panic!(
                        "gort: invalid {GUARD_MODE_ENV}={value:?}: use madvise, mprotect or canary"
                    )
                }))
            }
            Ok(_) | Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(value)) => {
                panic!("gort: invalid {GUARD_MODE_ENV}={value:?}: not valid UTF-8")
            }
        };
        match forced {
            Some(GuardMode::Madvise) if !guard_install_supported() => panic!(
                "gort: {GUARD_MODE_ENV}=madvise, but this kernel does not support \
                 MADV_GUARD_INSTALL (Linux 6.13 or later is needed)"
            ),
            Some(mode) => mode,
            None if guard_install_supported() => GuardMode::Madvise,
            None => GuardMode::Mprotect,
        }
    })
}

/// Whether the kernel supports `MADV_GUARD_INSTALL`: probed once on a scratch page, then cached.
fn guard_install_supported() -> bool {
    /// The cached probe result.
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let page = page_size();
        let Ok(probe) = map_anonymous(page, libc::PROT_READ | libc::PROT_WRITE, 0) else {
            return false;
        };
        // SAFETY: `probe` is a page-sized mapping created just above and referenced by nothing
        // else; turning it into a guard page affects no live data.
        let supported = unsafe { madvise_guard(probe, page) };
        // SAFETY: the probe mapping is ours alone and is not used after this point.
        unsafe { libc::munmap(probe as *mut c_void, page) };
        supported
    })
}

/// Number of stacks guarded with `mprotect` so far, process-wide (bounded by the budget).
static MPROTECT_GUARDS: AtomicUsize = AtomicUsize::new(0);

/// Protects the guard slot `[addr, addr + len)` as `mode` asks, with the fallbacks described in
/// the module documentation; returns false when the stack must rely on its canary instead.
///
/// # Safety
///
/// The range must be page aligned, lie inside a mapping owned by this module, and must not be
/// used by any live reference, stack or stack frame (it is a freshly carved guard slot).
unsafe fn guard_slot(mode: GuardMode, addr: usize, len: usize) -> bool {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match mode {
            GuardMode::Madvise => madvise_guard(addr, len) || mprotect_guard_budgeted(addr, len),
            GuardMode::Mprotect => mprotect_guard_budgeted(addr, len),
            GuardMode::Canary => false,
        }
    }
}

/// Installs guard markers on `[addr, addr + len)`; returns whether the kernel accepted them.
///
/// # Safety
///
/// As for [`guard_slot`]: the range must be unused memory of a mapping owned by this module.
unsafe fn madvise_guard(addr: usize, len: usize) -> bool {
    // SAFETY: the caller guarantees nothing uses the range, so discarding its contents and
    // making it fault on access cannot invalidate any live data.
    unsafe { libc::madvise(addr as *mut c_void, len, MADV_GUARD_INSTALL) == 0 }
}

/// Makes `[addr, addr + len)` `PROT_NONE` if the process-wide mprotect budget allows; returns
/// whether the range is now a guard page.
///
/// # Safety
///
/// As for [`guard_slot`]: the range must be unused memory of a mapping owned by this module.
unsafe fn mprotect_guard_budgeted(addr: usize, len: usize) -> bool {
    let reserved = MPROTECT_GUARDS
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |guards| {
            (guards < MPROTECT_GUARD_BUDGET).then_some(guards + 1)
        })
        .is_ok();
    if !reserved {
        return false;
    }
    // SAFETY: forwarded from this function's contract.
    let protected = unsafe { mprotect_guard(addr, len) };
    if !protected {
        MPROTECT_GUARDS.fetch_sub(1, Ordering::Relaxed);
    }
    protected
}

/// Makes `[addr, addr + len)` `PROT_NONE`; returns whether that worked.
///
/// # Safety
///
/// As for [`guard_slot`]: the range must be unused memory of a mapping owned by this module.
unsafe fn mprotect_guard(addr: usize, len: usize) -> bool {
    // SAFETY: the caller guarantees nothing uses the range, so revoking access to it cannot
    // invalidate any live reference.
    unsafe { libc::mprotect(addr as *mut c_void, len, libc::PROT_NONE) == 0 }
}

/// Creates a new private anonymous mapping of `len` bytes and returns its address.
fn map_anonymous(len: usize, prot: c_int, extra_flags: c_int) -> io::Result<usize> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags;
    // SAFETY: without MAP_FIXED and with a null hint the kernel picks unused address space, so
    // the new mapping cannot alias any existing memory.
    let addr = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, -1, 0) };
    if addr == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(addr as usize)
    }
}

/// The process-wide canary value: random, never 0, computed once.
fn canary_value() -> u64 {
    /// The cached value.
    static CANARY: OnceLock<u64> = OnceLock::new();
    *CANARY.get_or_init(|| {
        // RandomState is seeded from the OS; the clock is extra salt.
        let mut hasher = RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        hasher.write_u32(nanos);
        hasher.write_u32(std::process::id());
        hasher.finish() | 1
    })
}

// ---------------------------------------------------------------------------------------------
// Region registry (read by the signal handler)
// ---------------------------------------------------------------------------------------------

/// One region, as the fault handler needs to see it. Nodes are leaked and never freed.
#[derive(Debug)]
struct Region {
    /// Lowest address of the region.
    start: usize,
    /// One past the highest address of the region.
    end: usize,
    /// Size of one stack slot: guard page plus usable size.
    stride: usize,
    /// Size of the guard slot at the low end of each stack slot.
    guard_len: usize,
    /// Usable size of each stack (for the overflow message).
    stack_size: usize,
    /// The region registered before this one (null for the first).
    next: AtomicPtr<Region>,
}

/// Head of the registry list (the most recently registered region).
static REGIONS: AtomicPtr<Region> = AtomicPtr::new(ptr::null_mut());

/// Adds a region to the registry. Lock-free; the node is leaked on purpose (invariant 1).
fn register_region(start: usize, len: usize, stride: usize, stack_size: usize) {
    let node: &'static Region = Box::leak(Box::new(Region {
        start,
        end: start + len,
        stride,
        guard_len: page_size(),
        stack_size,
        next: AtomicPtr::new(ptr::null_mut()),
    }));
    let node_ptr = node as *const Region as *mut Region;
    let mut head = REGIONS.load(Ordering::Relaxed);
    loop {
        node.next.store(head, Ordering::Relaxed);
        match REGIONS.compare_exchange_weak(head, node_ptr, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(current) => head = current,
        }
    }
}

/// If `addr` lies in the guard slot of a stack of any registered region, returns that stack's
/// usable size. Async-signal-safe: only atomic loads and arithmetic.
fn find_guard_hit(addr: usize) -> Option<usize> {
    let mut node = REGIONS.load(Ordering::Acquire);
    while !node.is_null() {
        // SAFETY: registry nodes are leaked boxes that are never freed (invariant 1) and are
        // fully initialised before the Release compare-and-swap that publishes them, which this
        // Acquire load (directly or through the release sequence of later pushes) observes.
        let region = unsafe { &*node };
        if (region.start..region.end).contains(&addr) {
            let offset_in_slot = (addr - region.start) % region.stride;
            return (offset_in_slot < region.guard_len).then_some(region.stack_size);
        }
        node = region.next.load(Ordering::Acquire);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Stacks
// ---------------------------------------------------------------------------------------------

/// One goroutine stack: a slot of a region (see the module documentation for the layout).
///
/// It is plain memory, so it is `Send`. Dropping a `Stack` instead of freeing it leaks its slot
/// (the memory stays mapped and reserved, which is always safe).
#[derive(Debug)]
pub(crate) struct Stack {
    /// Highest address (exclusive): the initial stack pointer. Page aligned.
    base: StackPointer,
    /// Lowest address, guard slot included. Page aligned.
    limit: StackPointer,
    /// 0 when guarded by a guard page, else the canary value expected at the low end.
    canary: u64,
}

// SAFETY: `base` and `limit` delimit one stack slot that this `Stack` owns exclusively
// (invariant 2) and that stays mapped forever (invariant 1); both are page aligned, hence
// aligned to STACK_ALIGNMENT, and the usable part is at least MIN_STACK_SIZE (16 KiB) bytes,
// above corosensei's minimum. The trait asks for a guard page that catches overflows. Guarded
// stacks (`canary == 0`) have one at `limit`, and a hit aborts the process from the fault
// handler. Canary stacks, which exist only on kernels without MADV_GUARD_INSTALL once the
// mprotect budget is used up, replace it with a one-page red zone plus a canary that the
// scheduler checks on every switch and that aborts the process when found overwritten; that is
// detection after the fact, a documented weakening chosen over refusing to run.
unsafe impl corosensei::stack::Stack for Stack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.base
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.limit
    }
}

impl Stack {
    /// True when the stack is guarded by a real guard page; false when it relies on the canary.
    #[inline]
    pub(crate) fn is_guarded(&self) -> bool {
        self.canary == 0
    }

    /// Cheap check called by the scheduler every time a goroutine switches out: for
    /// canary-protected stacks verifies the canary word at the low end; if it was overwritten,
    /// prints "goroutine {goid} stack overflow" (plus a hint line) to stderr and aborts the
    /// process. For guarded stacks it costs one branch.
    #[inline]
    pub(crate) fn check_overflow(&self, goid: u64) {
        if !self.is_guarded() {
            self.overflow_checker().check_canary(goid);
        }
    }

    /// A copyable handle doing the same check as [`Stack::check_overflow`], for when the stack
    /// itself has been moved into a corosensei `Coroutine` (which does not lend it back).
    pub(crate) fn overflow_checker(&self) -> OverflowChecker {
        let page = page_size();
        OverflowChecker {
            canary_addr: self.limit.get() + page,
            canary: self.canary,
            stack_size: self.base.get() - self.limit.get() - page,
        }
    }

    /// Writes the canary word of a canary stack (no-op for guarded stacks). Called when the
    /// stack is handed out, i.e. while no goroutine runs on it.
    fn arm_canary(&self) {
        if !self.is_guarded() {
            let canary_addr = self.limit.get() + page_size();
            // SAFETY: `canary_addr` is the lowest usable word of this stack: page aligned (so
            // 8-byte aligned), mapped read-write for the life of the process (invariant 1), and
            // owned by this `Stack` (invariant 2), which no goroutine is running on yet.
            unsafe { ptr::write_volatile(canary_addr as *mut u64, self.canary) };
        }
    }
}

/// A `Copy` handle that checks a stack for overflow: the canary location and expected value of a
/// [`Stack`] (nothing to check for guarded stacks). Valid while that stack is allocated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverflowChecker {
    /// Address of the canary word (the lowest usable address of the stack).
    canary_addr: usize,
    /// Expected canary value; 0 for guarded stacks.
    canary: u64,
    /// Usable size of the stack, for the overflow message.
    stack_size: usize,
}

impl OverflowChecker {
    /// Whether the stack is canary-protected (otherwise a guard page catches overflows and
    /// [`check`](Self::check) has nothing to do).
    #[inline]
    pub(crate) fn uses_canary(&self) -> bool {
        self.canary != 0
    }

    /// Same as [`Stack::check_overflow`]: call it after every switch out of the goroutine.
    #[inline]
    pub(crate) fn check(&self, goid: u64) {
        if self.canary != 0 {
            self.check_canary(goid);
        }
    }

    /// Reads the canary word and aborts with an overflow report if it changed.
    #[inline(never)]
    fn check_canary(&self, goid: u64) {
        // SAFETY: `canary_addr` is inside a region, which stays mapped read-write for the life
        // of the process (invariant 1), and is 8-byte aligned. The goroutine owning the stack is
        // switched out, so nothing writes the word concurrently.
        let found = unsafe { ptr::read_volatile(self.canary_addr as *const u64) };
        if found != self.canary {
            report_overflow(goid, self.stack_size, Detection::Canary);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The allocator
// ---------------------------------------------------------------------------------------------

/// Hands out stacks of one size, carved from large mmap regions. Thread-safe (a mutex-protected
/// LIFO free list; the scheduler caches stacks per P in front of it). Never returns memory to the
/// OS on free: stacks are reused warm. One allocator per runtime; several may exist in a process.
#[derive(Debug)]
pub(crate) struct StackAllocator {
    /// Usable bytes per stack (page multiple, at least `MIN_STACK_SIZE`).
    stack_size: usize,
    /// Bytes per stack slot: one guard page plus `stack_size`.
    stride: usize,
    /// How new stacks are protected.
    mode: GuardMode,
    /// Free list and carving state.
    pool: Mutex<Pool>,
}

/// The mutable state of a [`StackAllocator`].
#[derive(Debug)]
struct Pool {
    /// Freed stacks, reused last-in first-out.
    free: Vec<Stack>,
    /// Number of stacks carved so far (including those inherited from an orphan).
    carved: usize,
    /// Start of the next uncarved slot of the current region.
    next: usize,
    /// End of the current region (`next == end` means "map a new region").
    end: usize,
    /// Number of stacks the next region will hold.
    region_stacks: usize,
}

impl Pool {
    /// An empty pool for slots of `stride` bytes.
    fn new(stride: usize) -> Pool {
        Pool {
            free: Vec::new(),
            carved: 0,
            next: 0,
            end: 0,
            region_stacks: FIRST_REGION_STACKS.min(max_region_stacks(stride)),
        }
    }
}

/// The state of a dropped allocator, waiting to be adopted by the next one of the same kind.
#[derive(Debug)]
struct Orphan {
    /// Usable stack size of the dropped allocator.
    stack_size: usize,
    /// Guard mode of the dropped allocator.
    mode: GuardMode,
    /// Its free list (memory already released) and the uncarved rest of its region.
    pool: Pool,
}

/// Pools of dropped allocators.
static ORPHANS: Mutex<Vec<Orphan>> = Mutex::new(Vec::new());

/// Most stacks one region may hold for slots of `stride` bytes.
fn max_region_stacks(stride: usize) -> usize {
    (MAX_REGION_BYTES / stride).max(1)
}

impl StackAllocator {
    /// Creates an allocator for stacks of `stack_size` usable bytes (rounded up to whole pages,
    /// at least 16 KiB; at most 1 GiB or it panics), using the process's guard mode. Also
    /// installs the process-wide overflow handler. Maps nothing until the first `alloc`.
    pub(crate) fn new(stack_size: usize) -> StackAllocator {
        install_overflow_handler();
        StackAllocator::with_guard_mode(stack_size, process_guard_mode())
    }

    /// Like [`StackAllocator::new`] with an explicit guard mode and without the handler.
    fn with_guard_mode(stack_size: usize, mode: GuardMode) -> StackAllocator {
        let stack_size = round_stack_size(stack_size);
        let stride = stack_size + page_size();
        let orphan = {
            let mut orphans = lock(&ORPHANS);
            orphans
                .iter()
                .rposition(|orphan| orphan.stack_size == stack_size && orphan.mode == mode)
                .map(|index| orphans.swap_remove(index).pool)
        };
        StackAllocator {
            stack_size,
            stride,
            mode,
            pool: Mutex::new(orphan.unwrap_or_else(|| Pool::new(stride))),
        }
    }

    /// Usable bytes per stack.
    pub(crate) fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// Hands out a stack: the most recently freed one if any, else a newly carved one.
    /// Panics with "gort: cannot reserve goroutine stacks: `<os error>`" if mmap fails.
    pub(crate) fn alloc(&self) -> Stack {
        let slot = {
            let mut pool = lock(&self.pool);
            if let Some(stack) = pool.free.pop() {
                drop(pool);
                // Needed after an orphan's memory was released; a store to a warm page otherwise.
                stack.arm_canary();
                return stack;
            }
            if pool.next == pool.end {
                self.map_region(&mut pool);
            }
            let slot = pool.next;
            pool.next += self.stride;
            pool.carved += 1;
            slot
        };
        let page = page_size();
        // SAFETY: `slot` was just taken from the uncarved part of a region under the pool lock,
        // so its guard slot `[slot, slot + page)` is page aligned, inside our mapping and used by
        // nothing else (invariants 2 and 3).
        let guarded = unsafe { guard_slot(self.mode, slot, page) };
        let stack = Stack {
            base: stack_pointer(slot + self.stride),
            limit: stack_pointer(slot),
            canary: if guarded { 0 } else { canary_value() },
        };
        stack.arm_canary();
        stack
    }

    /// Takes a stack back for reuse. It must have this allocator's stack size (it may come from
    /// another allocator of the same size). Its canary, if any, is verified first; a violation
    /// is reported against the goroutine recorded by [`set_running_goroutine`].
    pub(crate) fn free(&self, stack: Stack) {
        assert_eq!(
            stack.base.get() - stack.limit.get(),
            self.stride,
            "gort: a stack was freed to an allocator of another stack size"
        );
        stack.check_overflow(running_goroutine());
        lock(&self.pool).free.push(stack);
    }

    /// Number of stacks carved so far and number sitting in the free list (for runtime stats).
    /// Stacks in use are the difference. An allocator that adopted a dropped allocator's regions
    /// starts with that allocator's counts.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let pool = lock(&self.pool);
        (pool.carved, pool.free.len())
    }

    /// Maps and registers a new region and makes it the one `pool` carves from.
    fn map_region(&self, pool: &mut Pool) {
        // Cannot overflow: `region_stacks * stride` is at most max(1 GiB, stride) <= 2 GiB + page.
        let len = pool.region_stacks * self.stride;
        let flags = libc::MAP_NORESERVE | libc::MAP_STACK;
        let start = map_anonymous(len, libc::PROT_READ | libc::PROT_WRITE, flags)
            .unwrap_or_else(|err| panic!("gort: cannot reserve goroutine stacks: {err}"));
        // SAFETY: the range is the mapping created just above; MADV_NOHUGEPAGE only changes its
        // transparent-huge-page policy. Failure is harmless (no THP support) and ignored.
        unsafe { libc::madvise(start as *mut c_void, len, libc::MADV_NOHUGEPAGE) };
        register_region(start, len, self.stride, self.stack_size);
        pool.next = start;
        pool.end = start + len;
        pool.region_stacks = (pool.region_stacks * 2).min(max_region_stacks(self.stride));
    }
}

impl Drop for StackAllocator {
    /// Releases the memory of the free stacks and parks the regions for the next allocator of the
    /// same stack size and guard mode. Stacks still held elsewhere stay valid (and may be freed
    /// to that next allocator).
    fn drop(&mut self) {
        let mut pool = mem::replace(
            self.pool.get_mut().unwrap_or_else(PoisonError::into_inner),
            Pool::new(self.stride),
        );
        release_memory(&mut pool.free);
        if !pool.free.is_empty() || pool.next != pool.end {
            lock(&ORPHANS).push(Orphan {
                stack_size: self.stack_size,
                mode: self.mode,
                pool,
            });
        }
    }
}

/// Gives the memory of free stacks back to the OS with `MADV_DONTNEED`, one call per run of
/// adjacent stacks; their contents then read as zeros. Leaves `free` sorted by address.
fn release_memory(free: &mut [Stack]) {
    /// Discards the pages of `[start, end)`.
    ///
    /// # Safety
    ///
    /// The range must consist of whole stack slots of stacks in `free`, which nothing runs on.
    unsafe fn discard(start: usize, end: usize) {
        // SAFETY: per the contract the range holds only the dead contents of free stacks (which
        // then read as zeros). Guard markers and PROT_NONE pages survive MADV_DONTNEED, and
        // canaries are re-armed when a stack is handed out again.
        unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_DONTNEED) };
    }
    free.sort_unstable_by_key(|stack| stack.limit);
    let mut run: Option<(usize, usize)> = None;
    for stack in free.iter() {
        let (limit, base) = (stack.limit.get(), stack.base.get());
        run = match run {
            Some((start, end)) if end == limit => Some((start, base)),
            Some((start, end)) => {
                // SAFETY: [start, end) is a run of adjacent slots of stacks in `free`, which the
                // caller owns (invariant 2) and therefore nothing runs on.
                unsafe { discard(start, end) };
                Some((limit, base))
            }
            None => Some((limit, base)),
        };
    }
    if let Some((start, end)) = run {
        // SAFETY: as above, the last run of slots of stacks in `free`.
        unsafe { discard(start, end) };
    }
}

/// Converts an address known to be inside a mapping (hence non-zero) to a `StackPointer`.
fn stack_pointer(addr: usize) -> StackPointer {
    StackPointer::new(addr).expect("gort: stack address is null")
}

// ---------------------------------------------------------------------------------------------
// Overflow reporting
// ---------------------------------------------------------------------------------------------

/// How an overflow was detected (changes the hint printed).
#[derive(Clone, Copy, Debug)]
enum Detection {
    /// The goroutine hit a guard page (reported from the fault handler).
    GuardPage,
    /// The canary word was found overwritten after the goroutine switched out.
    Canary,
}

/// A fixed-size message buffer that never allocates, so it can be used in a signal handler.
/// Text that does not fit is cut off.
struct MessageBuf {
    /// The bytes written so far.
    bytes: [u8; 512],
    /// How many bytes of `bytes` are used.
    len: usize,
}

impl MessageBuf {
    /// An empty buffer.
    fn new() -> MessageBuf {
        MessageBuf {
            bytes: [0; 512],
            len: 0,
        }
    }

    /// Appends raw bytes, as many as fit.
    fn push_bytes(&mut self, bytes: &[u8]) {
        let room = &mut self.bytes[self.len..];
        let take = bytes.len().min(room.len());
        room[..take].copy_from_slice(&bytes[..take]);
        self.len += take;
    }

    /// Appends a string, as much as fits.
    fn push_str(&mut self, text: &str) {
        self.push_bytes(text.as_bytes());
    }

    /// Appends the decimal form of `value`.
    fn push_u64(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.push_bytes(&digits[start..]);
    }

    /// The message so far.
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Builds the overflow report for goroutine `goid` whose stack held `stack_size` usable bytes.
fn overflow_message(goid: u64, stack_size: usize, how: Detection) -> MessageBuf {
    let mut message = MessageBuf::new();
    message.push_str("goroutine ");
    message.push_u64(goid);
    message.push_str(" stack overflow\n");
    message.push_str("gort: the goroutine needed more than its ");
    message.push_u64(stack_size as u64);
    message.push_str(
        "-byte stack; raise GORT_STACK_SIZE (for example GORT_STACK_SIZE=1M) \
         or make the recursion shallower\n",
    );
    if let Detection::Canary = how {
        message.push_str(
            "gort: found by the stack canary (no guard page on this stack): \
             memory below the stack may have been overwritten\n",
        );
    }
    message
}

/// Writes the overflow report to stderr and aborts. Async-signal-safe.
#[cold]
#[inline(never)]
fn report_overflow(goid: u64, stack_size: usize, how: Detection) -> ! {
    write_stderr(overflow_message(goid, stack_size, how).as_bytes());
    std::process::abort()
}

/// Writes all of `bytes` to fd 2 with `write(2)`, retrying on EINTR. Async-signal-safe.
fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe the live slice `bytes`.
        let written = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(written) {
            Ok(0) => return,
            Ok(count) => bytes = &bytes[count.min(bytes.len())..],
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

thread_local! {
    /// The goroutine this thread is running (0 = none). Read by the fault handler: `const`
    /// initialised and without destructor, so reading it never allocates or registers anything.
    static RUNNING_GOROUTINE: Cell<u64> = const { Cell::new(0) };
}

/// Record which goroutine this thread is running (0 = none); the scheduler calls it on every
/// switch. The fault handler reads it to name the goroutine in an overflow report.
#[inline]
pub(crate) fn set_running_goroutine(goid: u64) {
    RUNNING_GOROUTINE.with(|running| running.set(goid));
}

/// The goroutine recorded by [`set_running_goroutine`] on this thread (0 if none or unreadable).
/// Async-signal-safe. Never inlined, like every runtime thread-local read (see the crate docs).
#[inline(never)]
pub(crate) fn running_goroutine() -> u64 {
    RUNNING_GOROUTINE.try_with(Cell::get).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The fault handler
// ---------------------------------------------------------------------------------------------

/// Handler addresses (`sa_sigaction`) that were installed before ours, per `FAULT_SIGNALS` slot.
/// 0 is `SIG_DFL`, which is also what a fault sees before the first install.
static PREV_HANDLER: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// `sa_flags` of the handlers that were installed before ours, per `FAULT_SIGNALS` slot.
static PREV_FLAGS: [AtomicI32; 2] = [AtomicI32::new(0), AtomicI32::new(0)];

/// Install the SIGSEGV/SIGBUS handler once per process (idempotent, chains to any previous handler
/// for faults that are not in a gort guard page, and restores default + re-raises when there is
/// none). [`StackAllocator::new`] calls it, so calling it separately is optional.
pub(crate) fn install_overflow_handler() {
    /// Makes the installation happen once.
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Save the previous handlers before ours can run, so `chain` never sees a half state.
        for (slot, &signal) in FAULT_SIGNALS.iter().enumerate() {
            let mut previous = MaybeUninit::<libc::sigaction>::zeroed();
            // SAFETY: a null new action only queries; the kernel fills `previous`, a valid
            // out-pointer.
            let rc = unsafe { libc::sigaction(signal, ptr::null(), previous.as_mut_ptr()) };
            if rc == 0 {
                // SAFETY: sigaction succeeded and wrote the whole struct (which was also
                // zero-initialised, a valid bit pattern for this plain C struct).
                let previous = unsafe { previous.assume_init() };
                PREV_FLAGS[slot].store(previous.sa_flags, Ordering::Release);
                PREV_HANDLER[slot].store(previous.sa_sigaction, Ordering::Release);
            }
        }
        for signal in FAULT_SIGNALS {
            // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are valid.
            let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
            let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = on_fault;
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: `action.sa_mask` is a valid, exclusively borrowed sigset_t.
            unsafe { libc::sigemptyset(&mut action.sa_mask) };
            // SAFETY: `action` is fully initialised and `on_fault` has the SA_SIGINFO signature;
            // it only does async-signal-safe work.
            if unsafe { libc::sigaction(signal, &action, ptr::null_mut()) } != 0 {
                panic!(
                    "gort: cannot install the stack overflow handler for signal {signal}: {}",
                    io::Error::last_os_error()
                );
            }
        }
    });
}

/// The SIGSEGV/SIGBUS handler: reports a guard-page hit and aborts, or passes the fault on.
extern "C" fn on_fault(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    if !info.is_null() {
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler. The fault
        // address is read from the union, and only used when si_code > 0, i.e. for faults
        // raised by the kernel, for which si_addr is the member that is set.
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        if code > 0 {
            if let Some(stack_size) = find_guard_hit(addr) {
                report_overflow(running_goroutine(), stack_size, Detection::GuardPage);
            }
        }
    }
    chain(signal, info, context);
}

/// Passes a fault that is not ours to the previously installed handler, or restores the default
/// disposition and re-raises the signal, which then kills the process. Async-signal-safe.
fn chain(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let slot = usize::from(signal == libc::SIGBUS);
    let handler = PREV_HANDLER[slot].load(Ordering::Acquire);
    let flags = PREV_FLAGS[slot].load(Ordering::Acquire);
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: signal() and raise() are async-signal-safe. The raised signal stays pending
        // while this handler runs and is delivered, with the default action, when it returns (a
        // hardware fault would also simply recur).
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    } else if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: `handler` is the address of a handler someone installed with SA_SIGINFO, so it
        // has this signature, and it is given the arguments the kernel gave us.
        let previous: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { mem::transmute::<usize, _>(handler) };
        previous(signal, info, context);
    } else {
        // SAFETY: `handler` is the address of a handler someone installed without SA_SIGINFO,
        // so it is a plain `void handler(int)`.
        let previous: extern "C" fn(c_int) = unsafe { mem::transmute::<usize, _>(handler) };
        previous(signal);
    }
}

// ---------------------------------------------------------------------------------------------
// Alternate signal stacks
// ---------------------------------------------------------------------------------------------

/// An alternate signal stack mapped by this module (with a guard page below it).
#[derive(Debug)]
struct SignalStack {
    /// Start of the mapping (the guard page).
    map: usize,
    /// Length of the mapping.
    map_len: usize,
    /// Start of the usable part, as given to sigaltstack.
    sp: usize,
    /// Usable size, as given to sigaltstack.
    size: usize,
}

impl SignalStack {
    /// Maps a new signal stack; panics with a "gort: " message on failure.
    fn new() -> SignalStack {
        let page = page_size();
        // SAFETY: getauxval only reads the auxiliary vector; it returns 0 for unknown entries.
        let kernel_minimum = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
        let size = SIGNAL_STACK_SIZE
            .max(kernel_minimum + 32 * 1024)
            .next_multiple_of(page);
        let map_len = size + page;
        let flags = libc::MAP_NORESERVE | libc::MAP_STACK;
        let map = map_anonymous(map_len, libc::PROT_READ | libc::PROT_WRITE, flags)
            .unwrap_or_else(|err| panic!("gort: cannot allocate a signal stack: {err}"));
        // SAFETY: the lowest page of the mapping created just above; nothing uses it. If neither
        // guard can be installed the stack still works, just without overflow protection for
        // the (small, bounded) handlers that run on it.
        let _guarded = unsafe { madvise_guard(map, page) || mprotect_guard(map, page) };
        SignalStack {
            map,
            map_len,
            sp: map + page,
            size,
        }
    }
}

impl Drop for SignalStack {
    /// Uninstalls the stack if it is still this thread's alternate stack, then unmaps it.
    fn drop(&mut self) {
        let current = current_signal_stack();
        if current.ss_sp as usize == self.sp && current.ss_flags & libc::SS_DISABLE == 0 {
            if current.ss_flags & libc::SS_ONSTACK != 0 {
                return; // Running on it (cannot happen at thread exit): leak rather than unmap.
            }
            let disable = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            // SAFETY: disabling the alternate stack of the calling thread has no preconditions.
            if unsafe { libc::sigaltstack(&disable, ptr::null_mut()) } != 0 {
                return; // Still installed: leak rather than unmap.
            }
        }
        // SAFETY: the mapping is ours and is no longer the thread's alternate stack (checked or
        // disabled above), so the kernel will not deliver signals on it and nothing refers to it.
        unsafe { libc::munmap(self.map as *mut c_void, self.map_len) };
    }
}

/// The calling thread's current alternate signal stack settings (disabled if the query fails).
fn current_signal_stack() -> libc::stack_t {
    let mut current = libc::stack_t {
        ss_sp: ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: a null new stack only queries; `current` is a valid out-pointer.
    unsafe { libc::sigaltstack(ptr::null(), &mut current) };
    current
}

thread_local! {
    /// Whether this thread has an adequate alternate signal stack (ours or a pre-existing one).
    static SIGNAL_STACK_READY: Cell<bool> = const { Cell::new(false) };
    /// The alternate signal stack this module installed on this thread, if any; dropped (and
    /// unmapped) when the thread exits.
    static OWN_SIGNAL_STACK: Cell<Option<SignalStack>> = const { Cell::new(None) };
}

/// Give the calling thread an alternate signal stack (sigaltstack) so the handler can run after an
/// overflow; called once at the start of every runtime worker thread (M). Idempotent per thread.
/// An alternate stack that is already installed and at least 32 KiB is kept (a sanitizer's, say);
/// otherwise a 64 KiB one (more if the kernel's `AT_MINSIGSTKSZ` asks) is mapped and installed,
/// and unmapped again when the thread exits.
pub(crate) fn install_thread_signal_stack() {
    if SIGNAL_STACK_READY.with(Cell::get) {
        return;
    }
    let current = current_signal_stack();
    let enabled = current.ss_flags & libc::SS_DISABLE == 0;
    let in_use = current.ss_flags & libc::SS_ONSTACK != 0;
    if in_use || (enabled && current.ss_size >= SIGNAL_STACK_REUSE_MIN) {
        SIGNAL_STACK_READY.with(|ready| ready.set(true));
        return;
    }
    let stack = SignalStack::new();
    let new = libc::stack_t {
        ss_sp: stack.sp as *mut c_void,
        ss_flags: 0,
        ss_size: stack.size,
    };
    // Park the mapping in thread-local storage first, so that it outlives its installation.
    OWN_SIGNAL_STACK.with(|own| own.set(Some(stack)));
    // SAFETY: `new` describes memory owned by OWN_SIGNAL_STACK until this thread exits, and that
    // value's Drop uninstalls it before unmapping it.
    if unsafe { libc::sigaltstack(&new, ptr::null_mut()) } != 0 {
        let err = io::Error::last_os_error();
        OWN_SIGNAL_STACK.with(|own| own.set(None));
        panic!("gort: cannot install a signal stack: {err}");
    }
    SIGNAL_STACK_READY.with(|ready| ready.set(true));
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::missing_docs_in_private_items)]
mod tests {
    //! Unit tests, plus the overflow tests, which re-run this test binary as a child process
    //! (`overflow_child`) that overflows a stack on purpose and must die with SIGABRT.
    //!
    //! Set `GORT_SKIP_OVERFLOW_TESTS=1` to skip the child-process tests; they are also skipped
    //! when the `sanitizer` feature is on (scripts/asan.sh), since sanitizers own the fault path.

    use super::*;
    use corosensei::stack::Stack as _;
    use corosensei::{Coroutine, CoroutineResult, Yielder};
    use std::hint::black_box;
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const KIB: usize = 1024;

    /// Tells the re-executed test binary which overflow scenario `overflow_child` should run.
    const CHILD_ENV: &str = "GORT_TEST_OVERFLOW_CHILD";
    /// Skips the child-process tests when set.
    const SKIP_ENV: &str = "GORT_SKIP_OVERFLOW_TESTS";

    fn usable_range(stack: &Stack) -> (usize, usize) {
        (stack.limit().get() + page_size(), stack.base().get())
    }

    // --- GORT_STACK_SIZE parsing -------------------------------------------------------------

    #[test]
    fn parses_plain_numbers_and_suffixes() {
        let page = 4096;
        assert_eq!(parse_stack_size("262144", page), Ok(256 * KIB));
        assert_eq!(parse_stack_size("256K", page), Ok(256 * KIB));
        assert_eq!(parse_stack_size("256k", page), Ok(256 * KIB));
        assert_eq!(parse_stack_size("256KiB", page), Ok(256 * KIB));
        assert_eq!(parse_stack_size("256kib", page), Ok(256 * KIB));
        assert_eq!(parse_stack_size("1M", page), Ok(1024 * KIB));
        assert_eq!(parse_stack_size("2MiB", page), Ok(2048 * KIB));
        assert_eq!(parse_stack_size("  64 K ", page), Ok(64 * KIB));
        assert_eq!(parse_stack_size("1024M", page), Ok(MAX_STACK_SIZE));
    }

    #[test]
    fn rounds_up_to_pages_and_the_minimum() {
        assert_eq!(parse_stack_size("100000", 4096), Ok(102_400));
        assert_eq!(parse_stack_size("100000", 16384), Ok(114_688));
        assert_eq!(parse_stack_size("1", 4096), Ok(MIN_STACK_SIZE));
        assert_eq!(parse_stack_size("0", 4096), Ok(MIN_STACK_SIZE));
        assert_eq!(parse_stack_size("15K", 4096), Ok(MIN_STACK_SIZE));
        assert_eq!(parse_stack_size("17K", 4096), Ok(20 * KIB));
        assert_eq!(round_stack_size(DEFAULT_STACK_SIZE), DEFAULT_STACK_SIZE);
        assert_eq!(round_stack_size(1), MIN_STACK_SIZE);
        assert_eq!(
            round_stack_size(MIN_STACK_SIZE + 1),
            MIN_STACK_SIZE + page_size()
        );
    }

    #[test]
    fn rejects_malformed_sizes() {
        for bad in [
            "",
            "K",
            "-1",
            "1.5M",
            "12Q",
            "1G",
            "1 KB",
            "0x1000",
            "1025M",
            "99999999999999999999999",
        ] {
            assert!(parse_stack_size(bad, 4096).is_err(), "{bad:?} was accepted");
        }
        let why = parse_stack_size("12Q", 4096).unwrap_err();
        assert!(why.contains("KiB"), "unhelpful error: {why}");
    }

    // --- Allocation ----------------------------------------------------------------------------

    #[test]
    fn free_stacks_are_reused_lifo_and_warm() {
        for mode in [GuardMode::Madvise, GuardMode::Canary] {
            let allocator = StackAllocator::with_guard_mode(24 * KIB, mode);
            let a = allocator.alloc();
            let b = allocator.alloc();
            let (a_base, b_base) = (a.base(), b.base());
            // Leave a mark just below the top of `a`, where a goroutine's first frame lives.
            // SAFETY: the word is inside a's usable range, which we own and nothing runs on.
            unsafe { ptr::write_volatile((a_base.get() - 64) as *mut u64, 0x5EED) };
            allocator.free(a);
            allocator.free(b);
            let again_b = allocator.alloc();
            let again_a = allocator.alloc();
            assert_eq!(again_b.base(), b_base, "{mode:?}: not LIFO");
            assert_eq!(again_a.base(), a_base, "{mode:?}: not LIFO");
            // SAFETY: as above; the stack was not released, so the mark must still be there.
            let mark = unsafe { ptr::read_volatile((a_base.get() - 64) as *const u64) };
            assert_eq!(mark, 0x5EED, "{mode:?}: a reused stack was not warm");
            again_a.check_overflow(1);
            again_b.check_overflow(1);
        }
    }

    #[test]
    fn stacks_are_aligned_and_laid_out() {
        let page = page_size();
        for (size, expected) in [
            (52 * KIB, 52 * KIB),
            (52 * KIB + 1, 52 * KIB + page),
            (1, 16 * KIB),
        ] {
            let allocator = StackAllocator::with_guard_mode(size, GuardMode::Canary);
            assert_eq!(allocator.stack_size(), expected);
            let stacks: Vec<Stack> = (0..5).map(|_| allocator.alloc()).collect();
            for stack in &stacks {
                assert_eq!(stack.base().get() % 16, 0);
                assert_eq!(stack.base().get() % page, 0);
                assert_eq!(stack.limit().get() % page, 0);
                assert_eq!(stack.base().get() - stack.limit().get(), expected + page);
                let checker = stack.overflow_checker();
                assert_eq!(checker.canary_addr, stack.limit().get() + page);
                assert_eq!(checker.stack_size, expected);
            }
            // Carved consecutively from one region: each stack's guard sits on the previous top.
            for pair in stacks.windows(2) {
                assert_eq!(pair[1].limit(), pair[0].base());
            }
        }
    }

    #[test]
    fn counts_track_carving_and_the_free_list() {
        let allocator = StackAllocator::with_guard_mode(28 * KIB, GuardMode::Madvise);
        assert_eq!(allocator.counts(), (0, 0));
        let mut stacks: Vec<Stack> = (0..100).map(|_| allocator.alloc()).collect();
        assert_eq!(allocator.counts(), (100, 0));
        for stack in stacks.drain(..40) {
            allocator.free(stack);
        }
        assert_eq!(allocator.counts(), (100, 40));
        stacks.extend((0..50).map(|_| allocator.alloc()));
        assert_eq!(allocator.counts(), (110, 0));
        for stack in stacks {
            allocator.free(stack);
        }
        assert_eq!(allocator.counts(), (110, 110));
    }

    #[test]
    fn the_whole_usable_range_is_writable_in_every_mode() {
        for mode in [GuardMode::Madvise, GuardMode::Mprotect, GuardMode::Canary] {
            let allocator = StackAllocator::with_guard_mode(32 * KIB, mode);
            let stack = allocator.alloc();
            if mode == GuardMode::Canary {
                assert!(!stack.is_guarded());
            }
            let (low, high) = usable_range(&stack);
            // The canary word (if any) is the lowest usable word: skip it, write the rest.
            let first = if stack.is_guarded() { low } else { low + 8 };
            // SAFETY: [first, high) is inside the stack's usable range, which this test owns.
            unsafe { ptr::write_bytes(first as *mut u8, 0xC3, high - first) };
            // SAFETY: as above.
            let sum: usize = (first..high)
                .step_by(997)
                .map(|addr| unsafe { ptr::read_volatile(addr as *const u8) } as usize)
                .sum();
            assert_eq!(sum, 0xC3 * (first..high).step_by(997).count());
            stack.check_overflow(1);
            allocator.free(stack);
        }
    }

    #[test]
    fn new_uses_the_process_mode() {
        let allocator = StackAllocator::new(36 * KIB);
        let stack = allocator.alloc();
        let expect_guarded = process_guard_mode() != GuardMode::Canary;
        assert_eq!(
            stack.is_guarded(),
            expect_guarded,
            "mode {:?}",
            process_guard_mode()
        );
        allocator.free(stack);
    }

    #[test]
    fn guard_slots_are_recognised_by_the_fault_lookup() {
        let page = page_size();
        let allocator = StackAllocator::with_guard_mode(40 * KIB, GuardMode::Madvise);
        let stacks: Vec<Stack> = (0..3).map(|_| allocator.alloc()).collect();
        for stack in &stacks {
            let limit = stack.limit().get();
            assert_eq!(find_guard_hit(limit), Some(40 * KIB));
            assert_eq!(find_guard_hit(limit + page - 1), Some(40 * KIB));
            assert_eq!(find_guard_hit(limit + page), None);
            assert_eq!(find_guard_hit(stack.base().get() - 1), None);
        }
        assert_eq!(find_guard_hit(0), None);
        assert_eq!(find_guard_hit(page), None);
        let local = 0u8;
        assert_eq!(find_guard_hit(&local as *const u8 as usize), None);
    }

    #[test]
    fn runs_coroutines_on_its_stacks() {
        #[inline(never)]
        fn descend(depth: u32) -> u64 {
            let mut frame = [0u8; 512];
            frame.fill(depth as u8);
            black_box(&mut frame);
            if depth == 0 {
                return u64::from(frame[7]);
            }
            descend(depth - 1) + u64::from(black_box(&frame)[depth as usize % 512])
        }
        for mode in [GuardMode::Madvise, GuardMode::Mprotect, GuardMode::Canary] {
            let allocator = StackAllocator::with_guard_mode(64 * KIB, mode);
            for round in 0..3 {
                let stack = allocator.alloc();
                let checker = stack.overflow_checker();
                let mut coroutine =
                    Coroutine::with_stack(stack, |yielder: &Yielder<(), u32>, ()| {
                        let first = descend(40); // about 25 KiB deep
                        yielder.suspend(40);
                        first + descend(20)
                    });
                assert!(matches!(coroutine.resume(()), CoroutineResult::Yield(40)));
                checker.check(7);
                let expected: u64 = (0..=40u64).map(|d| d % 256).sum::<u64>()
                    + (0..=20u64).map(|d| d % 256).sum::<u64>();
                match coroutine.resume(()) {
                    CoroutineResult::Return(total) => assert_eq!(total, expected),
                    CoroutineResult::Yield(_) => panic!("unexpected yield"),
                }
                let stack = coroutine.into_stack();
                stack.check_overflow(7);
                allocator.free(stack);
                assert_eq!(allocator.counts(), (1, 1), "{mode:?} round {round}");
            }
        }
    }

    #[test]
    fn hundred_thousand_stacks_take_few_mappings() {
        if !guard_install_supported() {
            eprintln!("skipped: this kernel lacks MADV_GUARD_INSTALL");
            return;
        }
        const COUNT: usize = 100_000;
        let allocator = StackAllocator::with_guard_mode(DEFAULT_STACK_SIZE, GuardMode::Madvise);
        let started = Instant::now();
        let stacks: Vec<Stack> = (0..COUNT).map(|_| allocator.alloc()).collect();
        let carve_ns = started.elapsed().as_nanos() / COUNT as u128;
        assert!(stacks.iter().all(Stack::is_guarded));
        let mut addrs: Vec<usize> = stacks
            .iter()
            .flat_map(|s| [s.limit().get(), usable_range(s).0])
            .collect();
        let mappings = mappings_containing(&mut addrs);
        let started = Instant::now();
        for stack in stacks {
            allocator.free(stack);
        }
        let again: Vec<Stack> = (0..COUNT).map(|_| allocator.alloc()).collect();
        let reuse_ns = started.elapsed().as_nanos() / COUNT as u128;
        eprintln!(
            "{COUNT} stacks: carve {carve_ns} ns/stack, free+realloc {reuse_ns} ns/stack, \
             {mappings} /proc/self/maps entries"
        );
        assert!(mappings <= 40, "{COUNT} stacks span {mappings} mappings");
        for stack in again {
            allocator.free(stack);
        }
    }

    /// Counts the /proc/self/maps entries that contain at least one of `addrs`.
    fn mappings_containing(addrs: &mut [usize]) -> usize {
        addrs.sort_unstable();
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
        maps.lines()
            .filter(|line| {
                let range = line.split_whitespace().next().unwrap_or_default();
                let (start, end) = range.split_once('-').expect("maps line");
                let start = usize::from_str_radix(start, 16).expect("maps start");
                let end = usize::from_str_radix(end, 16).expect("maps end");
                let first = addrs.partition_point(|&addr| addr < start);
                first < addrs.len() && addrs[first] < end
            })
            .count()
    }

    #[test]
    fn a_dropped_allocator_is_adopted_with_its_memory_released() {
        for mode in [GuardMode::Madvise, GuardMode::Canary] {
            let size = 44 * KIB;
            let first = StackAllocator::with_guard_mode(size, mode);
            let stacks: Vec<Stack> = (0..10).map(|_| first.alloc()).collect();
            let bases: Vec<_> = stacks.iter().map(|s| s.base()).collect();
            let top_word = bases[3].get() - 8;
            // SAFETY: inside the usable range of a stack this test owns.
            unsafe { ptr::write_volatile(top_word as *mut u64, 0xDEAD) };
            let kept = stacks
                .into_iter()
                .enumerate()
                .fold(None, |kept, (i, stack)| {
                    if i == 9 {
                        Some(stack)
                    } else {
                        first.free(stack);
                        kept
                    }
                });
            drop(first);
            let second = StackAllocator::with_guard_mode(size, mode);
            assert_eq!(second.counts(), (10, 9), "{mode:?}: orphan not adopted");
            // SAFETY: the stack is free and its memory was released, never unmapped.
            let word = unsafe { ptr::read_volatile(top_word as *const u64) };
            assert_eq!(word, 0, "{mode:?}: free stack memory was not released");
            let reused: Vec<Stack> = (0..9).map(|_| second.alloc()).collect();
            for stack in &reused {
                assert!(bases.contains(&stack.base()));
                stack.check_overflow(1); // canaries are armed again
            }
            // A stack held across the drop can be freed to the adopting allocator.
            second.free(kept.expect("kept stack"));
            assert_eq!(second.counts(), (10, 1));
            for stack in reused {
                second.free(stack);
            }
        }
    }

    #[test]
    fn overflow_messages_are_formatted_by_hand() {
        let message = overflow_message(7, 262_144, Detection::GuardPage);
        let text = std::str::from_utf8(message.as_bytes()).unwrap();
        assert!(text.starts_with("goroutine 7 stack overflow\n"), "{text}");
        assert!(text.contains("262144-byte stack"), "{text}");
        assert!(!text.contains("canary"), "{text}");
        let message = overflow_message(u64::MAX, 0, Detection::Canary);
        let text = std::str::from_utf8(message.as_bytes()).unwrap();
        assert!(
            text.starts_with("goroutine 18446744073709551615 stack overflow\n"),
            "{text}"
        );
        assert!(text.contains("canary"), "{text}");
        let mut full = MessageBuf::new();
        for _ in 0..100 {
            full.push_str("0123456789");
        }
        full.push_u64(42);
        assert_eq!(full.as_bytes().len(), 512);
    }

    #[test]
    fn install_functions_are_idempotent() {
        install_overflow_handler();
        install_overflow_handler();
        std::thread::spawn(|| {
            install_thread_signal_stack();
            let first = current_signal_stack();
            install_thread_signal_stack();
            let second = current_signal_stack();
            assert_eq!(first.ss_flags & libc::SS_DISABLE, 0);
            assert!(first.ss_size >= SIGNAL_STACK_REUSE_MIN);
            assert_eq!(first.ss_sp, second.ss_sp);
            set_running_goroutine(99);
            assert_eq!(running_goroutine(), 99);
            set_running_goroutine(0);
        })
        .join()
        .unwrap();
        // Many short-lived threads must not leak their signal stacks' mappings.
        let before = std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .count();
        for _ in 0..200 {
            std::thread::spawn(install_thread_signal_stack)
                .join()
                .unwrap();
        }
        let after = std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .count();
        assert!(
            after < before + 100,
            "signal stacks leak: {before} -> {after} mappings"
        );
    }

    /// Not run by default: allocates a million stacks, touches the top page of each (a parked
    /// goroutine's frames) and prints time, mappings, RSS and page-table cost. Run with
    /// `cargo test --release --lib -- --ignored --nocapture million`.
    #[test]
    #[ignore]
    fn a_million_parked_stacks() {
        fn status_kib(field: &str) -> usize {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        }
        const COUNT: usize = 1_000_000;
        let allocator = StackAllocator::new(DEFAULT_STACK_SIZE);
        let mut stacks = Vec::with_capacity(COUNT);
        let (rss0, pte0) = (status_kib("VmRSS:"), status_kib("VmPTE:"));
        let started = Instant::now();
        stacks.extend((0..COUNT).map(|_| allocator.alloc()));
        let carving = started.elapsed();
        let started = Instant::now();
        for stack in &stacks {
            // SAFETY: the top word of a stack this test owns.
            unsafe { ptr::write_volatile((stack.base().get() - 8) as *mut u64, 1) };
        }
        let touching = started.elapsed();
        let (rss1, pte1) = (status_kib("VmRSS:"), status_kib("VmPTE:"));
        let mut addrs: Vec<usize> = stacks.iter().map(|s| s.limit().get()).collect();
        let mappings = mappings_containing(&mut addrs);
        eprintln!(
            "{COUNT} stacks ({:?} mode): carve {} ns/stack, first touch {} ns/stack, \
             {mappings} mappings, RSS +{} B/stack, page tables +{} B/stack",
            process_guard_mode(),
            carving.as_nanos() / COUNT as u128,
            touching.as_nanos() / COUNT as u128,
            (rss1 - rss0) * 1024 / COUNT,
            (pte1 - pte0) * 1024 / COUNT,
        );
        let started = Instant::now();
        for stack in stacks {
            allocator.free(stack);
        }
        let freed = started.elapsed();
        let started = Instant::now();
        drop(allocator);
        eprintln!(
            "free: {freed:?}; drop (MADV_DONTNEED): {:?}, RSS now {} KiB",
            started.elapsed(),
            status_kib("VmRSS:")
        );
        assert!(mappings <= 400);
        assert!((rss1 - rss0) * 1024 / COUNT <= 4608);
    }

    // --- Overflow: child-process tests ---------------------------------------------------------

    fn child_tests_disabled() -> bool {
        if cfg!(feature = "sanitizer") || std::env::var_os(SKIP_ENV).is_some() {
            eprintln!("skipped: overflow child tests are disabled");
            return true;
        }
        false
    }

    /// Re-runs this test binary with only `overflow_child`, in `scenario`; returns how the child
    /// ended and its stderr.
    fn run_child(scenario: &str, guard_mode: Option<&str>) -> (std::process::ExitStatus, String) {
        let path = module_path!();
        let module = path.split_once("::").map_or(path, |(_crate, rest)| rest);
        let test_name = format!("{module}::overflow_child");
        let mut command = Command::new(std::env::current_exe().expect("current_exe"));
        command
            .args([
                test_name.as_str(),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, scenario)
            .env_remove(STACK_SIZE_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match guard_mode {
            Some(mode) => command.env(GUARD_MODE_ENV, mode),
            None => command.env_remove(GUARD_MODE_ENV),
        };
        let mut child = command.spawn().expect("spawn the test binary");
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the child") {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                panic!("overflow child {scenario} hung");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .ok();
        (status, stderr)
    }

    fn expect_overflow_abort(mode: &str) {
        let (status, stderr) = run_child(mode, Some(mode));
        assert_eq!(
            status.signal(),
            Some(libc::SIGABRT),
            "{mode}: child should abort, ended with {status:?}; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains("goroutine 7 stack overflow\n"),
            "{mode}: no overflow report; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains("GORT_STACK_SIZE"),
            "{mode}: no hint; stderr:\n{stderr}"
        );
    }

    #[test]
    fn overflow_aborts_with_madvise_guard() {
        if child_tests_disabled() {
            return;
        }
        if !guard_install_supported() {
            eprintln!("skipped: this kernel lacks MADV_GUARD_INSTALL");
            return;
        }
        expect_overflow_abort("madvise");
    }

    #[test]
    fn overflow_aborts_with_mprotect_guard() {
        if child_tests_disabled() {
            return;
        }
        expect_overflow_abort("mprotect");
    }

    #[test]
    fn overflow_aborts_with_canary() {
        if child_tests_disabled() {
            return;
        }
        expect_overflow_abort("canary");
    }

    #[test]
    fn other_faults_are_passed_on() {
        if child_tests_disabled() {
            return;
        }
        let (status, stderr) = run_child("wild", None);
        assert_eq!(
            status.signal(),
            Some(libc::SIGSEGV),
            "child should die of SIGSEGV, ended with {status:?}; stderr:\n{stderr}"
        );
        assert!(
            !stderr.contains("stack overflow\n"),
            "misreported fault; stderr:\n{stderr}"
        );
    }

    #[test]
    fn mprotect_budget_falls_back_to_canaries() {
        if child_tests_disabled() {
            return;
        }
        let (status, stderr) = run_child("budget", Some("mprotect"));
        assert!(
            status.success(),
            "child failed with {status:?}; stderr:\n{stderr}"
        );
    }

    /// Child side of `mprotect_budget_falls_back_to_canaries` (a fresh process, so the
    /// process-wide budget is untouched).
    fn exhaust_mprotect_budget() {
        let allocator = StackAllocator::new(16 * KIB);
        assert_eq!(allocator.mode, GuardMode::Mprotect);
        let stacks: Vec<Stack> = (0..MPROTECT_GUARD_BUDGET + 8)
            .map(|_| allocator.alloc())
            .collect();
        let guarded = stacks.iter().filter(|stack| stack.is_guarded()).count();
        assert_eq!(guarded, MPROTECT_GUARD_BUDGET);
        assert!(stacks[MPROTECT_GUARD_BUDGET..]
            .iter()
            .all(|s| !s.is_guarded()));
        for stack in stacks {
            stack.check_overflow(1);
            allocator.free(stack);
        }
        // Reuse keeps each stack's protection.
        let again: Vec<Stack> = (0..MPROTECT_GUARD_BUDGET + 8)
            .map(|_| allocator.alloc())
            .collect();
        assert_eq!(
            again.iter().filter(|s| s.is_guarded()).count(),
            MPROTECT_GUARD_BUDGET
        );
        eprintln!("overflow child: mprotect budget ok");
    }

    /// Recurses with 512-byte frames until the frame is below `stop_below` (never, for 0), then
    /// writes a 5 KiB frame. Every frame is fully written, so nothing is optimised away.
    #[inline(never)]
    fn recurse(depth: u64, stop_below: usize) -> u64 {
        let mut frame = [0u8; 512];
        frame.fill(depth as u8);
        black_box(&mut frame);
        if (frame.as_ptr() as usize) < stop_below {
            return smash() + u64::from(frame[0]);
        }
        recurse(depth + 1, stop_below)
            .wrapping_add(u64::from(black_box(&frame)[depth as usize % 512]))
    }

    /// A 5 KiB frame, fully written (stack-probed, since it is larger than a page).
    #[inline(never)]
    fn smash() -> u64 {
        let mut frame = [0xA5u8; 5 * 1024];
        black_box(&mut frame);
        frame.iter().map(|&byte| u64::from(byte)).sum()
    }

    /// The child side of the overflow tests; does nothing unless `GORT_TEST_OVERFLOW_CHILD` is set.
    #[test]
    fn overflow_child() {
        let Ok(scenario) = std::env::var(CHILD_ENV) else {
            return;
        };
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit only reads the struct; lowering our own core limit is always allowed.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        install_overflow_handler();
        install_thread_signal_stack();
        set_running_goroutine(7);
        if scenario == "wild" {
            let page = page_size();
            let inaccessible = map_anonymous(page, libc::PROT_NONE, 0).expect("mmap");
            // SAFETY: deliberately writes to an inaccessible page of our own: this raises a
            // SIGSEGV that is not a stack overflow, which must kill the process.
            unsafe { ptr::write_volatile(inaccessible as *mut u8, 1) };
            std::process::exit(3);
        }
        if scenario == "budget" {
            exhaust_mprotect_budget();
            return;
        }
        let expected = GuardMode::parse(&scenario).expect("scenario is a guard mode");
        let allocator = StackAllocator::new(64 * KIB);
        assert_eq!(
            allocator.mode, expected,
            "GORT_STACK_GUARD was not honoured"
        );
        // Overflow the second of two adjacent stacks, so that a canary-mode overflow that runs
        // past the red zone still lands in mapped memory (the first stack) and not in a hole.
        let below = allocator.alloc();
        let stack = allocator.alloc();
        assert_eq!(stack.limit(), below.base());
        assert_eq!(stack.is_guarded(), expected != GuardMode::Canary);
        let checker = stack.overflow_checker();
        // Guarded: recurse until the guard page faults. Canary: stop 4 KiB above the canary; the
        // final 5 KiB frame then covers the canary word and ends inside the one-page red zone.
        let stop_below = if stack.is_guarded() {
            0
        } else {
            checker.canary_addr + 4096
        };
        let mut coroutine = Coroutine::with_stack(stack, move |yielder: &Yielder<(), ()>, ()| {
            let result = recurse(0, stop_below);
            yielder.suspend(());
            result
        });
        let _ = coroutine.resume(());
        // The scheduler's check after the goroutine switched out.
        checker.check(7);
        eprintln!("overflow child: the overflow was not detected");
        std::process::exit(3);
    }
}
