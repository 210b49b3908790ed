//! Asymmetric memory fences: a free fence for the hot side of a Dekker-style handshake, and an
//! expensive one for the rare side that makes both correct together.
//!
//! The scheduler needs one store-load handshake on its hottest path: an M that comes back from user
//! code clears its "in user code" flag and then reads its P's status word, while sysmon, wanting to
//! retake the P, writes the status word and then reads the flag (see `sched.rs`, "Taking a P from
//! user code"). Each side must see the other's store, which on x86 takes a full fence (`mfence` or a
//! locked instruction, 20-40 cycles) between the store and the load. The M does this twice per
//! goroutine switch; sysmon does it a few times a second at most.
//!
//! So the cost moves to sysmon: the M side is [`light`], a compiler fence only, and sysmon's side is
//! [`heavy`], Linux's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which interrupts every
//! running thread of the process and makes each execute a full fence before the call returns
//! (a thread that is not running passes a full fence when it is switched back in). For any
//! `light`-side store S followed by load L, either the heavy fence lands after S (then S is visible
//! to the loads after `heavy`) or before L (then L sees the stores made before `heavy`): one of
//! the two sides always sees the other, exactly as with two full fences. The same pairing is
//! folly's `asymmetricLightBarrier`/`asymmetricHeavyBarrier` and the kernel's `smp_mb()`-vs-
//! `membarrier` idiom used by userspace RCU.
//!
//! Where `membarrier` is unavailable (kernels before 4.14, seccomp filters), [`init`] leaves the
//! fallback on: both sides issue `fence(SeqCst)`, the symmetric textbook version.
//!
//! Invariant: [`init`] runs before any thread uses [`light`] (it is called when the first runtime
//! is created, before any M exists), and the mode never changes after that.

use std::sync::atomic::{compiler_fence, fence, AtomicBool, Ordering};
use std::sync::Once;

/// Whether the process is registered for expedited private membarriers.
static EXPEDITED: AtomicBool = AtomicBool::new(false);
static INIT: Once = Once::new();

// From <linux/membarrier.h>.
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Registers the process for expedited membarriers, once. Must run before any M starts.
pub(crate) fn init() {
    INIT.call_once(|| {
        // SAFETY: membarrier takes two integer arguments and touches no memory of ours;
        // registration only enables the command for this process.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                0 as libc::c_long,
            )
        };
        EXPEDITED.store(rc == 0, Ordering::Release);
    });
}

/// The cheap side: orders an earlier store before a later load *given* that the other side uses
/// [`heavy`].
#[inline(always)]
pub(crate) fn light() {
    if EXPEDITED.load(Ordering::Relaxed) {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The expensive side: a full fence on every thread of the process that runs now.
pub(crate) fn heavy() {
    if EXPEDITED.load(Ordering::Acquire) {
        // SAFETY: as in `init`; the command was registered for this process.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_PRIVATE_EXPEDITED,
                0 as libc::c_long,
            )
        };
        // Registered commands do not fail; if one ever did, the light side's compiler fence
        // would no longer be enough, and the handshake could pair a stale flag with a stale
        // status word. Stop rather than run on.
        assert_eq!(
            rc,
            0,
            "gort: membarrier failed after registration: {}",
            std::io::Error::last_os_error()
        );
    }
    fence(Ordering::SeqCst);
}

/// Whether the asymmetric (membarrier) mode is in force, for diagnostics and tests.
#[cfg(test)]
pub(crate) fn expedited() -> bool {
    EXPEDITED.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membarrier_is_available_on_this_kernel() {
        init();
        // Linux >= 4.14 has it; the machines this project runs on are far newer.
        assert!(expedited(), "membarrier registration failed");
        heavy();
        light();
    }
}
