//! The atomics the heap's protocols use, swapped for loom's in the loom models (`cfg(loom)`), and
//! the collector's back-off while it waits for pinned operations.

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
