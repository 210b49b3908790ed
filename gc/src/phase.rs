//! The collector's phase word and the pins that let it change phase without stopping anyone.
//!
//! A few mutator operations must act on the *current* phase reliably: a `GcCell` write shades the
//! cell's old contents only while marking, and `Weak::upgrade` shades (while marking) or refuses
//! (while sweeping a dead target). Reading a global phase and then acting is racy on its own: the
//! reader may be descheduled between the read and the act, and the collector may move on. So these
//! operations run *pinned*, an epoch scheme in the style of SRCU:
//!
//! * The phase word holds `(cycle, sequence, phase)`; every change bumps the sequence, so its
//!   parity alternates.
//! * [`Phases::pin`] loads the word, increments one of the pin counters of that parity (striped
//!   across threads to avoid a shared cache line), and reads the word again with a
//!   read-modify-write; if it changed, it undoes and retries. A pin therefore holds a counter of the parity of the state it acts on.
//! * [`Phases::advance`] (collector only) swaps in the new state and then waits until every counter
//!   of the *old* parity is zero. When it returns, no pinned operation is still acting on the old
//!   state: each one that registered before the store is finished (the store could not be seen
//!   before the increment, so it is waited for), and each one that registered after the store saw
//!   the new state on its second load, undid and retried.
//!
//! Pins are short (a handful of atomic operations and, when marking, pushing some objects on the
//! gray queue), never span a park, and are taken only on the GcCell-write and `Weak::upgrade`
//! paths: reads, clones, drops and allocation never pin and never wait.

use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Where the collector is in a cycle. See the crate docs for what each operation does in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// No cycle running.
    Idle = 0,
    /// The clear pass: the collector is clearing every object's dirty bit.
    Clear = 1,
    /// Concurrent marking: GcCell writes shade the old contents; upgrades shade their target.
    Mark = 2,
    /// Mark termination: GcCell writes and upgrades wait (microseconds) while the collector drains
    /// the last gray objects.
    Terminating = 3,
    /// Finalizing and freeing dead objects: upgrades of dead objects fail.
    Sweep = 4,
}

impl Phase {
    fn from_bits(b: u64) -> Phase {
        match b & 0xff {
            0 => Phase::Idle,
            1 => Phase::Clear,
            2 => Phase::Mark,
            3 => Phase::Terminating,
            _ => Phase::Sweep,
        }
    }
}

/// Counters per parity. Threads hash onto them; a power of two.
#[cfg(not(loom))]
const STRIPES: usize = 32;
#[cfg(loom)]
const STRIPES: usize = 2;

#[repr(align(64))]
struct Stripe(AtomicUsize);

/// The phase word and its pin counters.
pub(crate) struct Phases {
    state: AtomicU64,
    pins: [[Stripe; STRIPES]; 2],
}

/// A decoded phase word: what a pinned operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    /// The current (or last) cycle number; cycle numbers start at 1.
    pub(crate) cycle: u32,
    pub(crate) phase: Phase,
    seq: u32,
}

impl State {
    /// For an idle state pinned after an object's last handle was dropped, with `before` the state
    /// read just before that decrement: may the object still be reclaimed (`reclaim.rs`)? Only if
    /// no clear pass began since the decrement (in `Idle`: the state is the very one read before
    /// it), or since the snapshot of the cycle it followed (the `Idle` that ends that cycle: the
    /// object was reachable at the snapshot, so that cycle did not free it). Otherwise a whole
    /// cycle may have found it dead and freed it meanwhile.
    pub(crate) fn may_reclaim_dropped_in(self, before: State) -> bool {
        debug_assert_eq!(self.phase, Phase::Idle);
        match before.phase {
            Phase::Idle => self == before,
            Phase::Mark | Phase::Terminating | Phase::Sweep => self.cycle == before.cycle,
            Phase::Clear => false,
        }
    }

    fn decode(w: u64) -> State {
        State {
            cycle: (w >> 32) as u32,
            seq: ((w >> 8) & 0xff_ffff) as u32,
            phase: Phase::from_bits(w),
        }
    }
    fn encode(self) -> u64 {
        (u64::from(self.cycle) << 32) | (u64::from(self.seq & 0xff_ffff) << 8) | self.phase as u64
    }
    fn parity(self) -> usize {
        (self.seq & 1) as usize
    }
}

/// Proof that the holder's operation acts on [`Pin::state`]; the collector cannot leave that state
/// behind until the pin is dropped.
pub(crate) struct Pin<'a> {
    counter: &'a AtomicUsize,
    pub(crate) state: State,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

fn stripe_index() -> usize {
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        use std::sync::atomic::AtomicUsize as StdAtomicUsize;
        static NEXT: StdAtomicUsize = StdAtomicUsize::new(0);
        thread_local!(static INDEX: Cell<usize> = const { Cell::new(usize::MAX) });
        INDEX.with(|i| {
            if i.get() == usize::MAX {
                i.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % STRIPES);
            }
            i.get()
        })
    }
    #[cfg(loom)]
    {
        // Loom's ThreadId has no integer accessor; its Debug form ends in the thread's number.
        let id = format!("{:?}", loom::thread::current().id());
        id.bytes().map(usize::from).sum::<usize>() % STRIPES
    }
}

impl Phases {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Phases {
        #[allow(clippy::declare_interior_mutable_const)]
        const Z: Stripe = Stripe(AtomicUsize::new(0));
        Phases {
            state: AtomicU64::new(0),
            pins: [[Z; STRIPES], [Z; STRIPES]],
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Phases {
        Phases {
            state: AtomicU64::new(0),
            pins: std::array::from_fn(|_| std::array::from_fn(|_| Stripe(AtomicUsize::new(0)))),
        }
    }

    /// The current state, unpinned: a hint (for the pacer and statistics), never a basis for a
    /// barrier decision.
    #[inline]
    pub(crate) fn peek(&self) -> State {
        State::decode(self.state.load(Ordering::SeqCst))
    }

    /// Pins the current state (see the module docs). Never blocks.
    pub(crate) fn pin(&self) -> Pin<'_> {
        let stripe = stripe_index();
        loop {
            let w = self.state.load(Ordering::SeqCst);
            let state = State::decode(w);
            let counter = &self.pins[state.parity()][stripe].0;
            counter.fetch_add(1, Ordering::SeqCst);
            // The re-check is a read-modify-write, not a load: RMWs on the phase word are totally
            // ordered with `advance`'s swap, so either this pin reads the new state (and retries)
            // or the swap reads this RMW, and `advance`'s later loads of the counters see the
            // increment (release/acquire suffices; no reliance on SeqCst loads, which loom does
            // not model).
            if self.state.fetch_add(0, Ordering::SeqCst) == w {
                return Pin { counter, state };
            }
            counter.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Pins the state if no cycle is running (`Idle`), for prompt reclamation (`reclaim.rs`): while
    /// the pin is held the collector cannot begin a cycle's clear pass. `None` if a cycle is
    /// running. Never blocks.
    pub(crate) fn pin_idle(&self) -> Option<Pin<'_>> {
        let w = self.state.load(Ordering::SeqCst);
        let state = State::decode(w);
        if state.phase != Phase::Idle {
            return None;
        }
        let counter = &self.pins[state.parity()][stripe_index()].0;
        counter.fetch_add(1, Ordering::SeqCst);
        // Unlike `pin`, the re-check is a SeqCst load: this runs once per object freed promptly
        // (at most), and a read-modify-write would bounce the phase word's cache line between
        // every thread that frees. The increment, this load, `advance`'s swap and its loads of the
        // counters are all SeqCst, so in their single total order either this load follows the
        // swap (and sees the new state) or the swap follows it, and then so do `advance`'s loads,
        // which see the increment. (Loom does not model SeqCst loads: its build re-checks with a
        // read-modify-write, as `pin` does.)
        #[cfg(not(loom))]
        let now = self.state.load(Ordering::SeqCst);
        #[cfg(loom)]
        let now = self.state.fetch_add(0, Ordering::SeqCst);
        if now == w {
            return Some(Pin { counter, state });
        }
        counter.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// Moves to `phase` of `cycle` and waits until no pinned operation acts on the old state.
    /// Only the collector calls this (one caller at a time). Returns the new state.
    pub(crate) fn advance(&self, cycle: u32, phase: Phase) -> State {
        let old = State::decode(self.state.load(Ordering::SeqCst));
        let new = State {
            cycle,
            phase,
            seq: old.seq.wrapping_add(1) & 0xff_ffff,
        };
        self.state.swap(new.encode(), Ordering::SeqCst);
        for stripe in &self.pins[old.parity()] {
            let mut spins = 0u32;
            while stripe.0.load(Ordering::SeqCst) != 0 {
                spins += 1;
                crate::sync::backoff(spins);
            }
        }
        new
    }
}

/// The gate mark assists pass through (`collector::assist`): the cycle whose marking accepts
/// assists in the high 32 bits (0: closed), the number of assists inside in the low 32 bits.
///
/// Assists do not pin the phase: a pin would make mark termination (the pause) wait for them, and
/// an assist descheduled by the OS mid-batch would stretch the pause to a time slice. Instead the
/// collector closes the gate while still in `Mark` and waits for the assists inside to leave.
/// Entering and closing are read-modify-writes of this one word, so they are totally ordered:
/// an assist that entered before the close saw the cycle and is waited for; one that entered
/// after saw 0 and backs off. A `Release` leave and the closer's `Acquire` load of a zero count
/// order what the assist did (the gray objects it pushed) before the collector goes on.
pub(crate) struct AssistGate(AtomicU64);

const GATE_COUNT: u64 = u32::MAX as u64;

impl AssistGate {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> AssistGate {
        AssistGate(AtomicU64::new(0))
    }

    #[cfg(loom)]
    pub(crate) fn new() -> AssistGate {
        AssistGate(AtomicU64::new(0))
    }

    /// A hint, for skipping the gate cheaply while it is closed.
    pub(crate) fn is_open(&self) -> bool {
        self.0.load(Ordering::Relaxed) >> 32 != 0
    }

    /// Lets assists trace for `cycle` (non-zero; the gate is closed).
    pub(crate) fn open(&self, cycle: u32) {
        debug_assert_ne!(cycle, 0);
        let prev = self.0.fetch_add(u64::from(cycle) << 32, Ordering::AcqRel);
        debug_assert_eq!(prev >> 32, 0, "gort: assist gate opened twice");
    }

    /// Enters: `Some(cycle)` if marking is open for assists (the caller must then [`leave`]),
    /// `None` if closed (nothing to undo).
    ///
    /// [`leave`]: AssistGate::leave
    pub(crate) fn enter(&self) -> Option<u32> {
        let prev = self.0.fetch_add(1, Ordering::AcqRel);
        let cycle = (prev >> 32) as u32;
        if cycle == 0 {
            self.0.fetch_sub(1, Ordering::Release);
            return None;
        }
        Some(cycle)
    }

    /// Leaves after an [`enter`](AssistGate::enter) that returned `Some`.
    pub(crate) fn leave(&self) {
        self.0.fetch_sub(1, Ordering::Release);
    }

    /// Closes the gate and returns once no assist is inside; none enters until the next `open`.
    pub(crate) fn close(&self) {
        self.0.fetch_and(GATE_COUNT, Ordering::AcqRel);
        let mut round = 0;
        while self.0.load(Ordering::Acquire) & GATE_COUNT != 0 {
            round += 1;
            crate::sync::backoff(round);
        }
    }
}
