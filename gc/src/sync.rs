//! The atomics the heap's protocols use, swapped for loom's in the loom models (`cfg(loom)`), the
//! collector's back-off while it waits for pinned operations, and a cache prefetch hint.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// One round of waiting for a pinned operation to finish: spin briefly, then give the CPU away
/// (the pinned thread may have been descheduled mid-operation).
pub(crate) fn backoff(round: u32) {
    #[cfg(not(loom))]
    {
        if round < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
}

/// Hints the CPU to bring `p`'s cache line in (a no-op off x86-64).
#[inline(always)]
pub(crate) fn prefetch(_p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and has no visible effect, whatever the
    // address; SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(_p.cast::<i8>())
    };
}
