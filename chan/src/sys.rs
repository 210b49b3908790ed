//! What the channel code needs from below it, in one place, so that `cfg(loom)` can swap it.
//!
//! Normally: std's atomics, the parking core of `gort-goroutine` (one wait path for goroutines and
//! plain threads), the monotonic clock, and a per-thread random generator for `select!`'s poll
//! order. Under `cfg(loom)` (the models in `loom_tests.rs`, run by `scripts/loom_chan.sh`): loom's
//! atomics and cells, loom's thread park/unpark behind the same [`Waker`] interface, every deadline
//! already in the past (so each timed wait races its own abort against the partner), and a fixed
//! poll order (loom replays executions and needs them deterministic).

#[cfg(not(loom))]
use std::task::Waker;
use std::time::Instant;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// A cell whose accesses loom can check for data races; a plain `UnsafeCell` otherwise.
///
/// Every access goes through a raw pointer handed to a closure; the caller of `with_mut` promises
/// the access is exclusive, by the protocol that owns the cell.
pub(crate) struct Slot<T> {
    #[cfg(not(loom))]
    cell: std::cell::UnsafeCell<T>,
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<T>,
}

impl<T> Slot<T> {
    pub(crate) fn new(value: T) -> Slot<T> {
        Slot {
            #[cfg(not(loom))]
            cell: std::cell::UnsafeCell::new(value),
            #[cfg(loom)]
            cell: loom::cell::UnsafeCell::new(value),
        }
    }

    /// Runs `f` with a pointer for writing.
    ///
    /// # Safety
    /// The access must be exclusive (the caller's protocol orders every other access before or after).
    #[inline]
    pub(crate) unsafe fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(loom))]
        {
            f(self.cell.get())
        }
        #[cfg(loom)]
        {
            self.cell.with_mut(f)
        }
    }

    /// The value, through exclusive access.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        {
            self.cell.get_mut()
        }
        #[cfg(loom)]
        {
            // SAFETY: `&mut self` proves nobody else can reach the cell.
            unsafe { &mut *self.cell.with_mut(|p| p) }
        }
    }
}

/// A waker that ends the current wait of the calling goroutine or thread.
#[cfg(not(loom))]
#[inline]
pub(crate) fn current_waker() -> Waker {
    gort_goroutine::park::current_waker()
}

pub(crate) use gort_goroutine::park::WaitReason;

/// Parks the calling goroutine or thread until its waker fires (may return spuriously); goroutine
/// dumps show `reason`.
#[cfg(not(loom))]
#[inline]
pub(crate) fn park(reason: WaitReason) {
    gort_goroutine::park::park_with(reason)
}

/// Like [`park`], returning by `deadline` at the latest.
#[cfg(not(loom))]
#[inline]
pub(crate) fn park_until(deadline: Instant, reason: WaitReason) {
    gort_goroutine::park::park_until_with(deadline, reason)
}

/// A preemption check (Go's safe point): yields if sysmon asked the running goroutine to. Every
/// channel operation that completes without parking ends with one, after releasing its locks (an
/// operation that parks has yielded anyway).
#[cfg(not(loom))]
#[inline]
pub(crate) fn safe_point() {
    gort_goroutine::runtime::safe_point()
}

#[cfg(loom)]
pub(crate) fn safe_point() {}

/// Whether `deadline` has passed.
#[cfg(not(loom))]
#[inline]
pub(crate) fn expired(deadline: Instant) -> bool {
    Instant::now() >= deadline
}

#[cfg(loom)]
mod loom_park {
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Unparker(loom::thread::Thread);

    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    pub(crate) fn current_waker() -> Waker {
        Waker::from(Arc::new(Unparker(loom::thread::current())))
    }
}

#[cfg(loom)]
pub(crate) use loom_park::current_waker;

#[cfg(loom)]
pub(crate) fn park(_reason: WaitReason) {
    loom::thread::park()
}

#[cfg(loom)]
pub(crate) fn park_until(_deadline: Instant, _reason: WaitReason) {
    loom::thread::yield_now()
}

#[cfg(loom)]
pub(crate) fn expired(_deadline: Instant) -> bool {
    true
}

/// 64 random bits from a per-thread xorshift64* generator.
///
/// Only `select!`'s poll order uses it; it needs speed and spread, not secrecy.
#[cfg(not(loom))]
#[inline(never)] // a goroutine may move between threads: read the thread-local afresh each call
fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        // 0 until first use; seeded then (a `const` thread-local costs no lazy-init check).
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            // Seed from the thread-local's own address and the clock: distinct per thread and run.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            x = (t ^ (s as *const Cell<u64> as u64).rotate_left(32)) | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// Uniform draws below small bounds, several per 64 random bits: each draw multiplies the
/// remaining fraction by `n` and keeps the integer part (Lemire's multiply-shift, batched), and
/// fresh bits are fetched once the fraction has fewer than 32 bits of precision left, so the bias
/// stays below `n / 2^32`. A 4-case `select!` shuffles with one generator call instead of four.
pub(crate) struct Dice {
    bits: u64,
    /// Bits of precision left in the fraction (each draw below `n` uses up about `log2(n)`).
    precision: u32,
}

impl Dice {
    pub(crate) fn new() -> Dice {
        Dice {
            bits: 0,
            precision: 0,
        }
    }

    /// A uniformly random number below `n` (`n > 0`).
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let cost = u64::BITS - n.saturating_sub(1).leading_zeros();
        if self.precision < 32 + cost {
            self.bits = random_u64();
            self.precision = u64::BITS;
        }
        self.precision -= cost;
        let m = u128::from(self.bits) * u128::from(n);
        self.bits = m as u64;
        (m >> 64) as usize
    }

    /// Loom models want a deterministic order: always the first.
    #[cfg(loom)]
    pub(crate) fn below(&mut self, _n: usize) -> usize {
        let _ = (self.bits, self.precision);
        0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Dice;

    #[test]
    fn dice_covers_every_value_of_a_large_bound() {
        let mut dice = Dice::new();
        let mut seen = [false; 100];
        for _ in 0..100_000 {
            seen[dice.below(100)] = true;
        }
        assert!(seen.iter().all(|&s| s), "a value below 100 never came up");
    }
}
