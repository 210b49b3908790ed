//! Per-P local run queues.
//!
//! Every P owns one [`LocalQueue`]: a fixed ring of [`LOCAL_QUEUE_CAPACITY`]
//! slots plus a single extra slot, `runnext`, that holds the goroutine the P
//! should run next. This is the Rust counterpart of the `runq`, `runqhead`,
//! `runqtail` and `runnext` fields of Go's `p` and of the `runqput`,
//! `runqputslow`, `runqget`, `runqgrab`, `runqsteal`, `runqdrain` and
//! `runqempty` functions in Go's `runtime/proc.go`. The algorithm is Go's; the
//! code and the memory-ordering argument are written for Rust's (C++20) memory
//! model.
//!
//! # What is queued
//!
//! The queue stores opaque, nonzero `usize` tokens. The scheduler decides what
//! a token means (it stores tagged pointers to its goroutine records); this
//! module never dereferences a token, and uses the value zero to mean "empty"
//! in `runnext`. Because every slot is an atomic integer and nothing here is
//! `unsafe`, no interleaving of calls can cause undefined behaviour: breaking
//! the calling rules below can lose or duplicate tokens, never memory safety.
//!
//! # Who may call what
//!
//! * The *owner* — whichever thread currently holds the P — is the only caller
//!   of [`LocalQueue::push`], [`LocalQueue::pop`] and [`LocalQueue::drain`],
//!   and the only thread that passes the queue as `dst` to
//!   [`LocalQueue::steal_into`]. Ownership may move between threads (a P is
//!   handed from one M to another), but the hand-off must itself synchronize
//!   (the scheduler's P hand-off does), so at any moment there is one owner and
//!   it sees everything the previous owner did.
//! * Any thread may call [`LocalQueue::steal_into`] on a queue it does not own
//!   (the *victim*), passing the queue it does own as `dst`, and any thread may
//!   call [`LocalQueue::len`] and [`LocalQueue::is_empty`].
//!
//! So the ring is single-producer / multi-consumer: only the owner adds
//! tokens, while the owner and any number of thieves remove them.
//!
//! # The ring
//!
//! `head` and `tail` are free-running `u32` *positions* that wrap with
//! two's-complement arithmetic; position `p` lives in slot
//! `p % LOCAL_QUEUE_CAPACITY` (the capacity is a power of two, so a position
//! maps to the same slot before and after wrapping). The tokens in the queue
//! are the positions `head .. tail`, oldest at `head`.
//!
//! * `tail` is stored only by the owner. The owner writes a token into the slot
//!   of position `tail` and then publishes it by storing `tail + 1`.
//! * `head` is advanced only by compare-and-swap, by whoever removes tokens:
//!   the owner popping one, a thief claiming a batch, the owner moving half the
//!   ring to the global queue when it overflows, or the owner draining it. A
//!   consumer first reads the slots it wants, then tries to move `head` past
//!   them; if the CAS fails, somebody else took (some of) them and the consumer
//!   starts over with the new `head`. A successful CAS is what makes the tokens
//!   read beforehand belong to the consumer.
//! * Slots are only ever written by the owner of the queue — either in `push`,
//!   or, when the queue is the `dst` of a steal, by its owner copying stolen
//!   tokens in. Only positions at or after `tail` are written, never inside
//!   `head .. tail`.
//!
//! Invariants (at every instant, in the modification orders of `head` and
//! `tail`): `0 <= tail - head <= LOCAL_QUEUE_CAPACITY` (wrapping difference);
//! `head` and `tail` never move backwards; the slot of each position in
//! `head .. tail` holds the token that was published at that position.
//!
//! # runnext
//!
//! `runnext` holds at most one token, which [`LocalQueue::pop`] returns before
//! anything in the ring. When a goroutine readies another one (a channel send
//! waking a receiver, say), Go puts the woken goroutine in `runnext` so that it
//! runs next on the same P and inherits the rest of the time slice: a pair of
//! goroutines that ping-pong then behave like one. Pushing with `next == true`
//! swaps the new token in and kicks the old one, if any, to the tail of the
//! ring. Only the owner stores a nonzero value into `runnext`; thieves can only
//! clear it, by a CAS from the token they saw to zero.
//!
//! Stealing `runnext` is a last resort: a thief only tries it when the ring is
//! empty and the caller asks for it, and then first backs off for about 3 µs
//! (a yield under loom), because the common case is that the victim's running
//! goroutine has just readied that token and is about to block, at which point
//! the victim runs it itself. Taking it in that window would only bounce the
//! goroutine between Ps.
//!
//! # Overflow
//!
//! When the owner pushes onto a full ring, it claims the older half of the ring
//! with one CAS on `head` and hands those tokens, followed by the token being
//! pushed (or the one kicked out of `runnext`), to the caller's `overflow`
//! callback in one batch, oldest first. The scheduler appends the batch to the
//! global run queue, as Go's `runqputslow` does. If the CAS fails, a thief has
//! just made room, and the push is retried on the ring.
//!
//! # Stealing
//!
//! A thief claims the older half of the victim's ring, rounded up (so a single
//! token can be stolen). It copies all but the last claimed token straight into
//! free slots of its own ring, at positions `dst.tail ..`, *before* the CAS on
//! the victim's `head`; those positions are past `dst.tail`, so no consumer of
//! `dst` reads them as live tokens, and if the CAS fails they are simply
//! overwritten on the next attempt. After a successful CAS the thief publishes
//! them by storing `dst.tail` and returns the last claimed token for its caller
//! to run at once. Go assumes the thief's own ring is empty; here the number of
//! tokens taken is additionally capped by the free room in `dst` (plus the one
//! returned), so a thief whose own queue is not empty still never overflows it.
//!
//! # Memory ordering
//!
//! Why the orderings used are enough (all arguments are about the C++20 model,
//! which is what Rust and loom implement):
//!
//! 1. *Publication, ring.* The owner writes a slot (Relaxed) and then stores
//!    `tail` with Release. A consumer loads `tail` with Acquire before reading
//!    slots, and reads only positions below the `tail` it loaded. The slot
//!    write of every such position is sequenced before the owner's Release
//!    store of the `tail` value the consumer read, so the load synchronizes
//!    with that store and the slot write happens-before the consumer's slot
//!    read: the consumer sees the token, or a later write to the same slot
//!    (point 2 deals with those).
//!    Everything the owner did before `push` — such as initializing the
//!    goroutine a token refers to — also happens-before the consumer's use of
//!    the token. Tokens that a thief copies into its own ring are published by
//!    its own Release store of `dst.tail`, and happens-before is transitive, so
//!    a token may be stolen again and again without losing this guarantee.
//!    The owner reading its own slots needs no ordering at all.
//! 2. *Slot reuse.* A consumer may read a slot and then lose the CAS, and in
//!    the meantime the owner may have wrapped around and rewritten that slot;
//!    that racy read is why slots are atomics (with Relaxed accesses it is not
//!    a data race) and its value is discarded with the failed CAS. The other
//!    direction matters more: a consumer whose CAS *succeeds* must not have
//!    read a value that the owner wrote for a later lap. Every CAS on `head`
//!    is Release and the owner loads `head` with Acquire before it writes any
//!    slot (in `push`, and on `dst` in `steal_into`). The owner only rewrites
//!    the slot of position `p` (for position `p + LOCAL_QUEUE_CAPACITY`)
//!    after it has loaded a `head` beyond `p`. Every modification of `head`
//!    is a read-modify-write, so that value is in the release sequence of the
//!    CAS that claimed `p`, and the Acquire load synchronizes with that CAS:
//!    the claiming consumer's slot reads happen-before the rewrite and cannot
//!    observe it.
//! 3. *Consistent snapshots.* A consumer loads `head` (Acquire) and then
//!    `tail` (Acquire). The `head` value it sees was stored by a CAS (Release)
//!    of a consumer that had already seen a `tail` at least that large (or it
//!    is in the release sequence of such a CAS), so that consumer's `tail`
//!    load happens-before ours, and by read-read coherence ours returns a
//!    `tail` at least as large:
//!    `tail - head` never goes "negative". Since the owner never lets
//!    `tail - head` exceed the capacity, a snapshot is therefore always
//!    consistent; the code still checks and retries, as Go does, because the
//!    check costs nothing.
//! 4. *runnext.* The owner stores a token into `runnext` with a Release swap;
//!    a thief takes it with an Acquire CAS, which reads the latest value and
//!    so synchronizes with the swap that stored it — point 1's publication
//!    guarantee, for `runnext`. The owner's own pop uses a Release swap to zero
//!    so that an observer that sees `runnext` empty also sees every earlier
//!    `tail` store, which `is_empty` relies on. Only the owner stores nonzero
//!    values, so a stale token seen by a thief makes its CAS fail unless the
//!    very same token is in `runnext` again, in which case taking it is right.
//! 5. *Wrap-around.* Positions are 32-bit. A consumer that read `head == h`
//!    and is then delayed while `head` advances by exactly 2^32 would succeed
//!    with its CAS on stale slot values (ABA). This needs four billion tokens
//!    to pass through one P during a window of a few instructions; Go accepts
//!    the same bound, and so do we.
//! 6. *Wake-up protocols.* `push` publishes with Release only (no StoreLoad
//!    barrier), and [`LocalQueue::is_empty`] / [`LocalQueue::len`] load with
//!    Acquire. A scheduler that does "push, then check whether anyone is
//!    spinning" on one side and "stop spinning, then check every queue" on the
//!    other (Go's wake-up dance) must put a `fence(SeqCst)` (or a SeqCst
//!    read-modify-write) between the two steps on *both* sides; with that, a
//!    check that follows the other side's fence sees the pushed token.
//!
//! # Testing
//!
//! When the crate's unit tests are built with `--cfg loom` (`cfg(all(loom,
//! test))`, see `scripts/loom.sh`), the atomics come from loom, the 3 µs
//! back-off becomes `loom::thread::yield_now`, and the capacity shrinks to 4
//! so that the loom models (module `loom_tests`) reach the overflow and
//! wrap-around paths in a handful of operations. loom is only a
//! dev-dependency, so a non-test build under `--cfg loom` (the library half
//! of `cargo clippy --all-targets`, say) keeps std's atomics and the real
//! capacity.

use std::fmt;

/// The atomics and the back-off used by the queue: loom's in loom test
/// builds.
#[cfg(all(loom, test))]
mod sync {
    pub(super) use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    /// Gives a victim's owner the chance to run its `runnext` before a thief
    /// takes it; loom cannot sleep, so this is a yield there.
    pub(super) fn runnext_backoff() {
        loom::thread::yield_now();
    }
}

/// The atomics and the back-off used by the queue: std's outside loom test
/// builds.
#[cfg(not(all(loom, test)))]
mod sync {
    pub(super) use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    /// Gives a victim's owner the chance to run its `runnext` before a thief
    /// takes it: about 3 µs, as Go's `runqgrab` does (the OS may round it up).
    pub(super) fn runnext_backoff() {
        std::thread::sleep(std::time::Duration::from_micros(3));
    }
}

use sync::{AtomicU32, AtomicUsize, Ordering};

/// Capacity of the ring, as in Go (256). In loom test builds it is 4, to keep
/// the loom models small.
#[cfg(not(all(loom, test)))]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 256;

/// Capacity of the ring, as in Go (256). In loom test builds it is 4, to keep
/// the loom models small.
#[cfg(all(loom, test))]
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 4;

/// Half the capacity: the most a single steal takes, and how many ring tokens
/// an overflowing push moves out.
const HALF: usize = LOCAL_QUEUE_CAPACITY / 2;

/// Maps a position to its slot index.
const MASK: u32 = (LOCAL_QUEUE_CAPACITY - 1) as u32;

// Positions are `u32` and map to slots by masking, which is only right for a
// power-of-two capacity well below 2^32; the upper bound also keeps the
// on-stack batches of `push` and `drain` small.
const _: () = assert!(LOCAL_QUEUE_CAPACITY.is_power_of_two());
const _: () = assert!(LOCAL_QUEUE_CAPACITY >= 2 && LOCAL_QUEUE_CAPACITY <= 1 << 16);

/// A P's run queue: a [`LOCAL_QUEUE_CAPACITY`]-slot single-producer /
/// multi-consumer ring plus the `runnext` slot.
///
/// The owning P pushes and pops; any other P may steal. See the module
/// documentation for the exact rules, the invariants and the memory-ordering
/// argument.
pub(crate) struct LocalQueue {
    /// Position of the oldest token in the ring. Advanced by CAS (Release) by
    /// every consumer; loaded with Acquire.
    head: AtomicU32,
    /// Position one past the newest token in the ring. Stored (Release) only
    /// by the owner.
    tail: AtomicU32,
    /// The token to run next, or 0. Only the owner stores a nonzero value.
    runnext: AtomicUsize,
    /// The ring. Accessed Relaxed; `head`/`tail` carry the synchronization.
    slots: [AtomicUsize; LOCAL_QUEUE_CAPACITY],
}

impl LocalQueue {
    /// Creates an empty queue.
    pub(crate) fn new() -> LocalQueue {
        LocalQueue::starting_at(0)
    }

    /// Creates an empty queue whose positions start at `pos`; tests use it to
    /// cross the `u32` wrap-around quickly.
    fn starting_at(pos: u32) -> LocalQueue {
        LocalQueue {
            head: AtomicU32::new(pos),
            tail: AtomicU32::new(pos),
            runnext: AtomicUsize::new(0),
            slots: std::array::from_fn(|_| AtomicUsize::new(0)),
        }
    }

    /// The slot that holds position `pos`.
    fn slot(&self, pos: u32) -> &AtomicUsize {
        &self.slots[(pos & MASK) as usize]
    }

    /// Owner only. Adds `item` (nonzero) to the queue.
    ///
    /// With `next == false` the item goes to the tail of the ring. With
    /// `next == true` it goes to `runnext`, and whatever was in `runnext` is
    /// kicked to the tail of the ring instead (Go's `runqput`).
    ///
    /// If the ring is full, the older half of the ring followed by the item
    /// that was to be appended (the new one or the kicked one) are moved out,
    /// and `overflow` is called exactly once with that batch of
    /// `LOCAL_QUEUE_CAPACITY / 2 + 1` items, oldest first; the scheduler puts
    /// them on the global queue (Go's `runqputslow`). `overflow` is not called
    /// otherwise.
    ///
    /// Returns true when the item went into an empty `runnext` and nothing
    /// else moved: the queue holds no more work for other Ms than before (the
    /// scheduler's "a readied G does not wake an M" rule, see `sched.rs`).
    pub(crate) fn push(
        &self,
        item: usize,
        next: bool,
        overflow: &mut dyn FnMut(&mut dyn Iterator<Item = usize>),
    ) -> bool {
        debug_assert_ne!(item, 0, "run queue tokens must be nonzero");
        let mut item = item;
        if next {
            // Release: publishes the caller's writes to a thief that takes the
            // token with its Acquire CAS. The old value was stored by this
            // owner (or is a thief's zero), so nothing needs acquiring.
            let kicked = self.runnext.swap(item, Ordering::Release);
            if kicked == 0 {
                return true;
            }
            item = kicked;
        }
        loop {
            // Acquire: our slot write below must come after the slot reads of
            // whoever claimed the positions we are about to reuse.
            let head = self.head.load(Ordering::Acquire);
            // Only this thread stores `tail`, so it sees its own latest value.
            let tail = self.tail.load(Ordering::Relaxed);
            let len = tail.wrapping_sub(head) as usize;
            if len < LOCAL_QUEUE_CAPACITY {
                self.slot(tail).store(item, Ordering::Relaxed);
                // Release: publishes the slot (and the caller's writes).
                self.tail.store(tail.wrapping_add(1), Ordering::Release);
                return false;
            }
            debug_assert_eq!(len, LOCAL_QUEUE_CAPACITY, "run queue length out of range");
            if self.push_overflow(item, head, overflow) {
                return false;
            }
            // A thief took some tokens, so there is room now: go round again.
        }
    }

    /// Owner only, from `push` on a full ring whose head was `head`: claims
    /// the `HALF` oldest ring tokens and hands them plus `item` to `overflow`.
    /// Returns false, having done nothing, if a consumer moved `head` first.
    fn push_overflow(
        &self,
        item: usize,
        head: u32,
        overflow: &mut dyn FnMut(&mut dyn Iterator<Item = usize>),
    ) -> bool {
        // Release, like every CAS on `head` (module doc, points 2 and 3).
        if self
            .head
            .compare_exchange(
                head,
                head.wrapping_add(HALF as u32),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        // The claimed slots are ours now, and only this thread ever writes
        // them, so reading them after the CAS is fine. Copy them out before
        // running the callback, which may well push onto this queue again.
        let mut batch = [0usize; HALF + 1];
        for (i, out) in batch[..HALF].iter_mut().enumerate() {
            *out = self
                .slot(head.wrapping_add(i as u32))
                .load(Ordering::Relaxed);
        }
        batch[HALF] = item;
        overflow(&mut batch.iter().copied());
        true
    }

    /// Owner only. Removes the next item to run: the one in `runnext` if
    /// there is one, otherwise the oldest one in the ring.
    ///
    /// Returns the item and whether it came from `runnext`; the scheduler
    /// lets an item from `runnext` inherit the current time slice, as Go does.
    pub(crate) fn pop(&self) -> Option<(usize, bool)> {
        // Only this thread stores nonzero values, so a zero here is reliable;
        // a nonzero one may already have been stolen, which the swap tells.
        if self.runnext.load(Ordering::Relaxed) != 0 {
            // Release: see module doc, point 4 (`is_empty`'s re-check).
            let next = self.runnext.swap(0, Ordering::Release);
            if next != 0 {
                return Some((next, true));
            }
        }
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let tail = self.tail.load(Ordering::Relaxed);
            if head == tail {
                return None;
            }
            let item = self.slot(head).load(Ordering::Relaxed);
            match self.head.compare_exchange(
                head,
                head.wrapping_add(1),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some((item, false)),
                Err(current) => head = current,
            }
        }
    }

    /// Called by a thief on a victim queue (`self`): moves about half of the
    /// victim's ring into `dst`, the thief's own queue, and returns one more
    /// stolen item for the thief to run now (Go's `runqsteal`).
    ///
    /// The thief takes the older half of the victim's ring, rounded up; all
    /// but the newest of those go to the tail of `dst` and the newest is
    /// returned. At most as many items go into `dst` as it has free slots (Go
    /// requires `dst` to be empty; here a nonempty `dst` just means a smaller
    /// steal), so this never overflows `dst`.
    ///
    /// If the victim's ring is empty and `steal_runnext` is true, the victim's
    /// `runnext` is taken and returned instead, after a back-off of about 3 µs
    /// (a yield under loom) that gives the victim the chance to run it itself.
    /// The caller passes `steal_runnext` only when that is worth it (Go: on the
    /// last stealing round, and sleeping only if the victim is running).
    ///
    /// Returns `None` if there was nothing to steal, or if `dst` is `self`.
    /// The caller must be `dst`'s owner.
    #[cfg(test)]
    pub(crate) fn steal_into(&self, dst: &LocalQueue, steal_runnext: bool) -> Option<usize> {
        self.steal_into_if(dst, steal_runnext, || true)
    }

    /// [`steal_into`](Self::steal_into), where taking `runnext` after the back-off also needs
    /// `still_stuck()`: the scheduler passes "the victim has not switched goroutines meanwhile", so
    /// a P that is busy running goroutine after goroutine (a ping-pong pair handing each other
    /// the `runnext` slot) keeps them, and only a G stuck behind a long-running one is taken.
    pub(crate) fn steal_into_if(
        &self,
        dst: &LocalQueue,
        steal_runnext: bool,
        still_stuck: impl FnOnce() -> bool,
    ) -> Option<usize> {
        let mut still_stuck = Some(still_stuck);
        if std::ptr::eq(self, dst) {
            return None;
        }
        // We own `dst`: its tail is ours, and its head only grows, so the room
        // computed here can only be an underestimate.
        let dst_tail = dst.tail.load(Ordering::Relaxed);
        // Acquire: the slot writes below must come after the slot reads of
        // whoever claimed those positions of `dst` last (module doc, point 2).
        let dst_head = dst.head.load(Ordering::Acquire);
        let dst_room = LOCAL_QUEUE_CAPACITY - dst_tail.wrapping_sub(dst_head) as usize;

        let mut head = self.head.load(Ordering::Acquire);
        loop {
            // Acquire: makes the victim's slot writes below `tail` visible.
            let tail = self.tail.load(Ordering::Acquire);
            let len = tail.wrapping_sub(head) as usize;
            if len > LOCAL_QUEUE_CAPACITY {
                // Inconsistent snapshot (see module doc, point 3): retry.
                head = self.head.load(Ordering::Acquire);
                continue;
            }
            let n = (len - len / 2).min(dst_room + 1);
            if n == 0 {
                if !steal_runnext {
                    return None;
                }
                let next = self.runnext.load(Ordering::Relaxed);
                if next == 0 {
                    return None;
                }
                sync::runnext_backoff();
                if !still_stuck.take().is_some_and(|f| f()) {
                    return None;
                }
                // Acquire: synchronizes with the owner's Release swap that
                // stored `next` (module doc, point 4).
                if self
                    .runnext
                    .compare_exchange(next, 0, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(next);
                }
                // The owner ran it, replaced it, or kicked it into the ring.
                head = self.head.load(Ordering::Acquire);
                continue;
            }
            // Copy the batch into `dst`'s free slots before claiming it; if the
            // claim fails these unpublished slots are overwritten next time.
            let last = (n - 1) as u32;
            for i in 0..last {
                let item = self.slot(head.wrapping_add(i)).load(Ordering::Relaxed);
                dst.slot(dst_tail.wrapping_add(i))
                    .store(item, Ordering::Relaxed);
            }
            let item = self.slot(head.wrapping_add(last)).load(Ordering::Relaxed);
            match self.head.compare_exchange(
                head,
                head.wrapping_add(n as u32),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if last > 0 {
                        // Release: publishes the copied slots to consumers of
                        // `dst` (module doc, point 1).
                        dst.tail
                            .store(dst_tail.wrapping_add(last), Ordering::Release);
                    }
                    return Some(item);
                }
                Err(current) => head = current,
            }
        }
    }

    /// Approximate number of queued items, `runnext` included. Exact when the
    /// queue is quiescent; while it changes, it is some value the queue had or
    /// was about to have. For statistics and "is there work" checks.
    pub(crate) fn len(&self) -> usize {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        let ring = (tail.wrapping_sub(head) as usize).min(LOCAL_QUEUE_CAPACITY);
        ring + usize::from(self.runnext.load(Ordering::Acquire) != 0)
    }

    /// Whether the queue, `runnext` included, is empty.
    ///
    /// Like Go's `runqempty`, it does not answer "empty" merely because it saw
    /// an empty ring and then an empty `runnext` while the owner was moving an
    /// item from one to the other (`push(_, true)` kicking the old `runnext`
    /// into the ring and then `pop` emptying `runnext`): it re-reads `tail`
    /// and retries if the ring changed meanwhile. For the guarantee it gives
    /// to a wake-up protocol, see the module doc (point 6).
    pub(crate) fn is_empty(&self) -> bool {
        loop {
            let head = self.head.load(Ordering::Acquire);
            let tail = self.tail.load(Ordering::Acquire);
            let next = self.runnext.load(Ordering::Acquire);
            if tail == self.tail.load(Ordering::Acquire) {
                return head == tail && next == 0;
            }
        }
    }

    /// Owner only: removes every item, `runnext` first and then the ring
    /// oldest first, and passes each to `f` (e.g. to move the items to the
    /// global queue when a P is destroyed). All items are claimed before `f`
    /// runs; items that are stolen concurrently are not passed to `f`.
    pub(crate) fn drain(&self, f: &mut dyn FnMut(usize)) {
        let mut batch = [0usize; LOCAL_QUEUE_CAPACITY + 1];
        let mut count = 0;
        // Release: as in `pop`. Acquire is not needed, we stored it.
        let next = self.runnext.swap(0, Ordering::Release);
        if next != 0 {
            batch[0] = next;
            count = 1;
        }
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let tail = self.tail.load(Ordering::Relaxed);
            let len = tail.wrapping_sub(head);
            if len == 0 {
                break;
            }
            match self
                .head
                .compare_exchange(head, tail, Ordering::Release, Ordering::Acquire)
            {
                Ok(_) => {
                    // Claimed; only this thread writes these slots.
                    for i in 0..len {
                        batch[count] = self.slot(head.wrapping_add(i)).load(Ordering::Relaxed);
                        count += 1;
                    }
                    break;
                }
                Err(current) => head = current,
            }
        }
        for &item in &batch[..count] {
            f(item);
        }
    }
}

impl Default for LocalQueue {
    /// Same as [`LocalQueue::new`].
    fn default() -> LocalQueue {
        LocalQueue::new()
    }
}

impl fmt::Debug for LocalQueue {
    /// Shows a racy snapshot of the positions and `runnext`, not the tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalQueue")
            .field("head", &self.head.load(Ordering::Relaxed))
            .field("tail", &self.tail.load(Ordering::Relaxed))
            .field("runnext", &self.runnext.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::{Arc, Barrier, Mutex};

    /// Overflow callback for pushes that must not overflow.
    fn no_overflow(batch: &mut dyn Iterator<Item = usize>) {
        panic!("unexpected overflow: {:?}", batch.collect::<Vec<_>>());
    }

    /// Pushes without expecting an overflow.
    fn put(q: &LocalQueue, item: usize, next: bool) {
        q.push(item, next, &mut no_overflow);
    }

    /// Pushes, returning the overflow batch if there was one.
    fn put_overflowing(q: &LocalQueue, item: usize, next: bool) -> Option<Vec<usize>> {
        let mut out = None;
        q.push(item, next, &mut |batch| {
            assert!(out.is_none(), "overflow called twice");
            out = Some(batch.collect());
        });
        out
    }

    /// Pops everything, runnext flags included.
    fn pop_all(q: &LocalQueue) -> Vec<(usize, bool)> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn push_reports_an_item_alone_in_runnext() {
        // The scheduler wakes no M for an item that went into an empty runnext (`sched.rs`), and
        // does for anything that reaches the ring, where thieves can take it.
        let q = LocalQueue::new();
        assert!(q.push(1, true, &mut no_overflow), "empty runnext");
        assert!(
            !q.push(2, true, &mut no_overflow),
            "1 was kicked into the ring"
        );
        assert!(!q.push(3, false, &mut no_overflow), "the ring");
        assert_eq!(q.pop(), Some((2, true)));
        assert!(q.push(4, true, &mut no_overflow), "runnext empty again");
        let thief = LocalQueue::new();
        assert!(q.steal_into_if(&thief, true, || true).is_some());
        assert_eq!(pop_all(&q).len() + pop_all(&thief).len(), 2);
        assert!(q.push(5, true, &mut no_overflow));
    }

    /// Pops everything, dropping the runnext flags.
    fn pop_items(q: &LocalQueue) -> Vec<usize> {
        pop_all(q).into_iter().map(|(item, _)| item).collect()
    }

    #[test]
    fn fifo_order() {
        let q = LocalQueue::new();
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
        for item in 1..=LOCAL_QUEUE_CAPACITY {
            put(&q, item, false);
        }
        assert_eq!(q.len(), LOCAL_QUEUE_CAPACITY);
        assert!(!q.is_empty());
        let expected: Vec<_> = (1..=LOCAL_QUEUE_CAPACITY).map(|i| (i, false)).collect();
        assert_eq!(pop_all(&q), expected);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn fifo_across_position_wraparound() {
        // Positions cross u32::MAX -> 0 part-way through.
        let q = LocalQueue::starting_at(u32::MAX - 10);
        let mut next_in = 1;
        let mut next_out = 1;
        for round in 0..3 * LOCAL_QUEUE_CAPACITY {
            for _ in 0..(round % 5) {
                if q.len() < LOCAL_QUEUE_CAPACITY {
                    put(&q, next_in, false);
                    next_in += 1;
                }
            }
            for _ in 0..(round % 3) {
                if let Some((item, from_next)) = q.pop() {
                    assert_eq!((item, from_next), (next_out, false));
                    next_out += 1;
                }
            }
        }
        let rest = pop_items(&q);
        assert_eq!(rest, (next_out..next_in).collect::<Vec<_>>());
        assert!(next_in > 2 * LOCAL_QUEUE_CAPACITY);
    }

    #[test]
    fn runnext_is_popped_first_and_kicks_to_tail() {
        let q = LocalQueue::new();
        put(&q, 1, false);
        put(&q, 2, true);
        assert_eq!(q.len(), 2);
        // 3 replaces 2 in runnext; 2 goes behind 1.
        put(&q, 3, true);
        assert_eq!(q.len(), 3);
        put(&q, 4, false);
        assert_eq!(
            pop_all(&q),
            vec![(3, true), (1, false), (2, false), (4, false)]
        );
        assert!(q.is_empty());

        // runnext alone.
        put(&q, 5, true);
        assert_eq!(q.len(), 1);
        assert!(!q.is_empty());
        assert_eq!(pop_all(&q), vec![(5, true)]);
    }

    #[test]
    fn overflow_moves_oldest_half_plus_new_item() {
        let q = LocalQueue::new();
        for item in 1..=LOCAL_QUEUE_CAPACITY {
            assert_eq!(put_overflowing(&q, item, false), None);
        }
        let new = LOCAL_QUEUE_CAPACITY + 1;
        let batch = put_overflowing(&q, new, false).expect("a full ring overflows");
        let mut expected: Vec<_> = (1..=HALF).collect();
        expected.push(new);
        assert_eq!(batch.len(), HALF + 1);
        assert_eq!(batch, expected);
        // The newer half stays, in order.
        assert_eq!(q.len(), LOCAL_QUEUE_CAPACITY - HALF);
        assert_eq!(
            pop_items(&q),
            (HALF + 1..=LOCAL_QUEUE_CAPACITY).collect::<Vec<_>>()
        );
    }

    #[test]
    fn overflow_carries_the_kicked_runnext() {
        let q = LocalQueue::new();
        for item in 1..=LOCAL_QUEUE_CAPACITY {
            put(&q, item, false);
        }
        let old_next = 1000;
        let new_next = 1001;
        assert_eq!(put_overflowing(&q, old_next, true), None);
        let batch = put_overflowing(&q, new_next, true).expect("the kick overflows");
        let mut expected: Vec<_> = (1..=HALF).collect();
        expected.push(old_next);
        assert_eq!(batch, expected);
        let mut rest = vec![(new_next, true)];
        rest.extend((HALF + 1..=LOCAL_QUEUE_CAPACITY).map(|i| (i, false)));
        assert_eq!(pop_all(&q), rest);
    }

    #[test]
    fn overflow_after_wraparound() {
        let q = LocalQueue::starting_at(u32::MAX - 3);
        for item in 1..=LOCAL_QUEUE_CAPACITY {
            put(&q, item, false);
        }
        let batch = put_overflowing(&q, 9999, false).unwrap();
        assert_eq!(&batch[..HALF], &(1..=HALF).collect::<Vec<_>>()[..]);
        assert_eq!(batch[HALF], 9999);
        assert_eq!(
            pop_items(&q),
            (HALF + 1..=LOCAL_QUEUE_CAPACITY).collect::<Vec<_>>()
        );
    }

    #[test]
    fn steal_takes_older_half_rounded_up() {
        for count in [1usize, 2, 7, 10, LOCAL_QUEUE_CAPACITY] {
            let victim = LocalQueue::new();
            let thief = LocalQueue::new();
            for item in 1..=count {
                put(&victim, item, false);
            }
            let taken = count - count / 2;
            assert_eq!(
                victim.steal_into(&thief, false),
                Some(taken),
                "count {count}"
            );
            assert_eq!(thief.len(), taken - 1);
            assert_eq!(pop_items(&thief), (1..taken).collect::<Vec<_>>());
            assert_eq!(pop_items(&victim), (taken + 1..=count).collect::<Vec<_>>());
        }
    }

    #[test]
    fn steal_leaves_runnext_alone_while_the_ring_has_items() {
        let victim = LocalQueue::new();
        let thief = LocalQueue::new();
        put(&victim, 1, false);
        put(&victim, 2, true);
        assert_eq!(victim.steal_into(&thief, true), Some(1));
        assert!(thief.is_empty());
        assert_eq!(pop_all(&victim), vec![(2, true)]);
    }

    #[test]
    fn steal_of_runnext_only_when_asked() {
        let victim = LocalQueue::new();
        let thief = LocalQueue::new();
        assert_eq!(victim.steal_into(&thief, true), None);
        put(&victim, 7, true);
        assert_eq!(victim.steal_into(&thief, false), None);
        assert_eq!(victim.len(), 1);
        assert_eq!(victim.steal_into(&thief, true), Some(7));
        assert!(victim.is_empty());
        assert!(thief.is_empty());
        assert_eq!(victim.pop(), None);
    }

    #[test]
    fn steal_is_capped_by_room_in_dst() {
        let victim = LocalQueue::new();
        let thief = LocalQueue::new();
        for item in 1..=LOCAL_QUEUE_CAPACITY {
            put(&victim, item, false);
        }
        let mut thief_items: Vec<_> = (1..=LOCAL_QUEUE_CAPACITY - 2).map(|i| 1000 + i).collect();
        for &item in &thief_items {
            put(&thief, item, false);
        }
        // Two free slots: two items land in dst and a third is returned.
        assert_eq!(victim.steal_into(&thief, false), Some(3));
        assert_eq!(thief.len(), LOCAL_QUEUE_CAPACITY);
        // No room at all: the oldest item is returned directly.
        assert_eq!(victim.steal_into(&thief, false), Some(4));
        assert_eq!(thief.len(), LOCAL_QUEUE_CAPACITY);
        thief_items.extend([1, 2]);
        assert_eq!(pop_items(&thief), thief_items);
        assert_eq!(
            pop_items(&victim),
            (5..=LOCAL_QUEUE_CAPACITY).collect::<Vec<_>>()
        );
    }

    #[test]
    fn steal_into_itself_does_nothing() {
        let q = LocalQueue::new();
        put(&q, 1, false);
        put(&q, 2, true);
        assert_eq!(q.steal_into(&q, true), None);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn steal_across_wraparound_on_both_sides() {
        let victim = LocalQueue::starting_at(u32::MAX - 2);
        let thief = LocalQueue::starting_at(u32::MAX);
        for item in 1..=8 {
            put(&victim, item, false);
        }
        assert_eq!(victim.steal_into(&thief, false), Some(4));
        assert_eq!(pop_items(&thief), vec![1, 2, 3]);
        assert_eq!(pop_items(&victim), vec![5, 6, 7, 8]);
    }

    #[test]
    fn drain_takes_runnext_then_ring_in_order() {
        let q = LocalQueue::starting_at(u32::MAX - 1);
        for item in 1..=LOCAL_QUEUE_CAPACITY {
            put(&q, item, false);
        }
        put(&q, 5000, true);
        assert_eq!(q.len(), LOCAL_QUEUE_CAPACITY + 1);
        let mut got = Vec::new();
        q.drain(&mut |item| got.push(item));
        let mut expected = vec![5000];
        expected.extend(1..=LOCAL_QUEUE_CAPACITY);
        assert_eq!(got, expected);
        assert!(q.is_empty());
        q.drain(&mut |item| panic!("drained {item} from an empty queue"));
        // Still usable.
        put(&q, 1, false);
        assert_eq!(pop_all(&q), vec![(1, false)]);
    }

    #[test]
    fn debug_and_default() {
        let q = LocalQueue::default();
        put(&q, 3, true);
        let shown = format!("{q:?}");
        assert!(shown.contains("runnext: 3"), "{shown}");
    }

    /// Tiny xorshift generator, so the stress test needs no dependencies.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// State shared by the stress test's threads.
    struct Stress {
        /// Queue 0 is the producer's; queue `i > 0` is thief `i`'s.
        queues: Vec<LocalQueue>,
        /// One bit per item: set when the item is delivered.
        seen: Vec<AtomicU64>,
        /// Stand-in for the global queue.
        global: Mutex<Vec<usize>>,
        overflows: AtomicUsize,
        /// Successful `steal_into` calls, and the items they took.
        steals: AtomicUsize,
        stolen: AtomicUsize,
        producer_done: AtomicBool,
        /// Starts all threads together, so the thieves overlap the producer.
        start: Barrier,
    }

    impl Stress {
        /// Records the delivery of `item`, failing on a duplicate.
        fn deliver(&self, item: usize) {
            let bit = 1u64 << (item % 64);
            let before = self.seen[item / 64].fetch_or(bit, Ordering::Relaxed);
            assert_eq!(before & bit, 0, "item {item} delivered twice");
        }
    }

    #[test]
    fn stress_owner_and_two_thieves_deliver_every_item_once() {
        const ITEMS: usize = 1_000_000;
        const THIEVES: usize = 2;
        let shared = Arc::new(Stress {
            queues: (0..=THIEVES).map(|_| LocalQueue::new()).collect(),
            seen: (0..=ITEMS / 64).map(|_| AtomicU64::new(0)).collect(),
            global: Mutex::new(Vec::new()),
            overflows: AtomicUsize::new(0),
            steals: AtomicUsize::new(0),
            stolen: AtomicUsize::new(0),
            producer_done: AtomicBool::new(false),
            start: Barrier::new(1 + THIEVES),
        });

        let producer = {
            let sh = Arc::clone(&shared);
            std::thread::spawn(move || {
                let q = &sh.queues[0];
                sh.start.wait();
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
                let mut overflow = |batch: &mut dyn Iterator<Item = usize>| {
                    let batch: Vec<usize> = batch.collect();
                    assert_eq!(batch.len(), HALF + 1);
                    sh.overflows.fetch_add(1, Ordering::Relaxed);
                    sh.global.lock().unwrap().extend(batch);
                };
                for item in 1..=ITEMS {
                    let r = rng.next();
                    q.push(item, r % 8 == 0, &mut overflow);
                    // Pop about 3 times in 4, so the ring grows and overflows
                    // now and then unless the thieves keep it short.
                    if (r >> 8) % 4 != 0 {
                        if let Some((got, _)) = q.pop() {
                            sh.deliver(got);
                        }
                    }
                    // With 2 cores and 3 threads, let the thieves in now and then.
                    if item % 256 == 0 {
                        std::thread::yield_now();
                    }
                }
                while let Some((got, _)) = q.pop() {
                    sh.deliver(got);
                }
                sh.producer_done.store(true, Ordering::Release);
            })
        };

        let thieves: Vec<_> = (1..=THIEVES)
            .map(|me| {
                let sh = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let own = &sh.queues[me];
                    sh.start.wait();
                    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ me as u64);
                    loop {
                        if let Some((got, _)) = own.pop() {
                            sh.deliver(got);
                            continue;
                        }
                        let done = sh.producer_done.load(Ordering::Acquire);
                        let r = rng.next();
                        // Mostly rob the producer, sometimes the other thief.
                        let victim = if r % 4 == 0 { 1 + me % THIEVES } else { 0 };
                        if let Some(got) = sh.queues[victim].steal_into(own, (r >> 8) % 64 == 0) {
                            sh.steals.fetch_add(1, Ordering::Relaxed);
                            sh.stolen.fetch_add(1 + own.len(), Ordering::Relaxed);
                            sh.deliver(got);
                        } else if done {
                            break;
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                })
            })
            .collect();

        producer.join().unwrap();
        for t in thieves {
            t.join().unwrap();
        }
        // Whatever is left (a thief may have robbed the other after it left).
        for q in &shared.queues {
            q.drain(&mut |item| shared.deliver(item));
        }
        let global = std::mem::take(&mut *shared.global.lock().unwrap());
        for &item in &global {
            shared.deliver(item);
        }

        let delivered: u32 = shared
            .seen
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum();
        assert_eq!(delivered as usize, ITEMS);
        for item in 1..=ITEMS {
            let word = shared.seen[item / 64].load(Ordering::Relaxed);
            assert_ne!(word & (1 << (item % 64)), 0, "item {item} lost");
        }
        eprintln!(
            "stress: {ITEMS} items, {} overflow batches ({} items to the global queue), \
             {} steals (about {} items)",
            shared.overflows.load(Ordering::Relaxed),
            global.len(),
            shared.steals.load(Ordering::Relaxed),
            shared.stolen.load(Ordering::Relaxed),
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Loom models of the queue (capacity 4). Each item carries a payload
    //! that its pusher writes (Relaxed) just before pushing it and that its
    //! receiver checks (Relaxed) on receipt: loom lets a Relaxed load return
    //! any value not ruled out by happens-before, so a missing
    //! synchronization edge in the queue shows up as a stale payload. Every
    //! model then checks that each item was delivered exactly once.

    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Per-item payloads, indexed by `item - 1`.
    struct Payloads(Vec<AtomicUsize>);

    impl Payloads {
        /// Payloads for items `1..=n`, all unpublished.
        fn new(n: usize) -> Payloads {
            Payloads((0..n).map(|_| AtomicUsize::new(0)).collect())
        }

        /// The payload value of `item`.
        fn expected(item: usize) -> usize {
            item * 100 + 1
        }

        /// Called by the pusher right before pushing `item`.
        fn publish(&self, item: usize) {
            self.0[item - 1].store(Self::expected(item), Ordering::Relaxed);
        }

        /// Called by whoever receives `item`; records it in `got`.
        fn receive(&self, item: usize, got: &mut Vec<usize>) {
            let seen = self.0[item - 1].load(Ordering::Relaxed);
            assert_eq!(
                seen,
                Self::expected(item),
                "item {item} arrived before its payload"
            );
            got.push(item);
        }
    }

    /// Asserts that `got` holds each of `1..=n` exactly once.
    fn assert_exactly_once(mut got: Vec<usize>, n: usize) {
        got.sort_unstable();
        assert_eq!(got, (1..=n).collect::<Vec<_>>(), "items lost or duplicated");
    }

    /// Overflow callback for pushes that must not overflow.
    fn no_overflow(batch: &mut dyn Iterator<Item = usize>) {
        panic!("unexpected overflow: {:?}", batch.collect::<Vec<_>>());
    }

    /// Publishes and pushes `item`, which must not overflow.
    fn put(q: &LocalQueue, pay: &Payloads, item: usize, next: bool) {
        pay.publish(item);
        q.push(item, next, &mut no_overflow);
    }

    /// Pops everything left in `q` (its owner calling).
    fn pop_rest(q: &LocalQueue, pay: &Payloads, got: &mut Vec<usize>) {
        while let Some((item, _)) = q.pop() {
            pay.receive(item, got);
        }
    }

    /// A thief: steals once from `victim` into a fresh queue of its own, then
    /// runs everything it got. Returns the items it received.
    fn spawn_thief(
        victim: &Arc<LocalQueue>,
        pay: &Arc<Payloads>,
        steal_runnext: bool,
    ) -> thread::JoinHandle<Vec<usize>> {
        let victim = Arc::clone(victim);
        let pay = Arc::clone(pay);
        thread::spawn(move || {
            let mine = LocalQueue::new();
            let mut got = Vec::new();
            if let Some(item) = victim.steal_into(&mine, steal_runnext) {
                pay.receive(item, &mut got);
            }
            pop_rest(&mine, &pay, &mut got);
            got
        })
    }

    /// Runs `f` under loom, exhaustively unless `LOOM_MAX_PREEMPTIONS` says
    /// otherwise or `bound` is given.
    fn check(bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() && bound.is_some() {
            builder.preemption_bound = bound;
        }
        builder.check(f);
    }

    #[test]
    fn loom_owner_push_pop_vs_one_thief() {
        check(None, || {
            // Start just below the u32 wrap so positions cross it.
            let q = Arc::new(LocalQueue::starting_at(u32::MAX - 1));
            let pay = Arc::new(Payloads::new(3));
            let thief = spawn_thief(&q, &pay, false);
            let mut got = Vec::new();
            for item in 1..=3 {
                put(&q, &pay, item, false);
            }
            if let Some((item, _)) = q.pop() {
                pay.receive(item, &mut got);
            }
            got.extend(thief.join().unwrap());
            pop_rest(&q, &pay, &mut got);
            assert_exactly_once(got, 3);
        });
    }

    #[test]
    fn loom_owner_push_pop_vs_two_thieves() {
        // Exhaustive search takes far too long with three threads; a bound of
        // 4 preemptions takes seconds (5: ~30 s, 6: ~2 min).
        check(Some(4), || {
            let q = Arc::new(LocalQueue::new());
            let pay = Arc::new(Payloads::new(3));
            let first = spawn_thief(&q, &pay, false);
            let second = spawn_thief(&q, &pay, false);
            let mut got = Vec::new();
            for item in 1..=3 {
                put(&q, &pay, item, false);
            }
            if let Some((item, _)) = q.pop() {
                pay.receive(item, &mut got);
            }
            got.extend(first.join().unwrap());
            got.extend(second.join().unwrap());
            pop_rest(&q, &pay, &mut got);
            assert_exactly_once(got, 3);
        });
    }

    #[test]
    fn loom_stolen_items_are_stolen_again() {
        check(None, || {
            // P0 pushes; P1 robs P0 into its own queue; P2 robs P1.
            let p0 = Arc::new(LocalQueue::new());
            let p1 = Arc::new(LocalQueue::new());
            let pay = Arc::new(Payloads::new(3));
            let first = {
                let (p0, p1, pay) = (Arc::clone(&p0), Arc::clone(&p1), Arc::clone(&pay));
                thread::spawn(move || {
                    let mut got = Vec::new();
                    if let Some(item) = p0.steal_into(&p1, false) {
                        pay.receive(item, &mut got);
                    }
                    pop_rest(&p1, &pay, &mut got);
                    got
                })
            };
            let second = spawn_thief(&p1, &pay, false);
            for item in 1..=3 {
                put(&p0, &pay, item, false);
            }
            let mut got = first.join().unwrap();
            got.extend(second.join().unwrap());
            pop_rest(&p0, &pay, &mut got);
            assert_exactly_once(got, 3);
        });
    }

    /// An overflowing push races with a steal; `next` says whether the push
    /// goes through `runnext` (kicking the old `runnext` into the full ring).
    fn overflow_vs_steal(next: bool) {
        let q = Arc::new(LocalQueue::new());
        let extra = usize::from(next);
        let total = LOCAL_QUEUE_CAPACITY + 1 + extra;
        let pay = Arc::new(Payloads::new(total));
        // Fill the ring (and runnext) before the thief exists.
        for item in 1..=LOCAL_QUEUE_CAPACITY + extra {
            put(&q, &pay, item, next && item > LOCAL_QUEUE_CAPACITY);
        }
        let thief = spawn_thief(&q, &pay, false);
        let mut got = Vec::new();
        let mut overflowed = false;
        pay.publish(total);
        q.push(total, next, &mut |batch| {
            overflowed = true;
            let batch: Vec<usize> = batch.collect();
            assert_eq!(batch.len(), HALF + 1);
            // Oldest first: consecutive ring items, then the pushed/kicked one.
            for pair in batch[..HALF].windows(2) {
                assert_eq!(pair[0] + 1, pair[1]);
            }
            assert_eq!(
                batch[HALF],
                if next {
                    LOCAL_QUEUE_CAPACITY + 1
                } else {
                    total
                }
            );
            for item in batch {
                pay.receive(item, &mut got);
            }
        });
        let stolen = thief.join().unwrap();
        if overflowed {
            // The overflow took the oldest half, so the thief got newer ones.
            assert!(stolen.iter().all(|&item| item > HALF), "{stolen:?}");
        }
        got.extend(stolen);
        pop_rest(&q, &pay, &mut got);
        assert_exactly_once(got, total);
    }

    #[test]
    fn loom_overflow_races_with_steal() {
        check(None, || overflow_vs_steal(false));
    }

    #[test]
    fn loom_overflow_of_kicked_runnext_races_with_steal() {
        check(None, || overflow_vs_steal(true));
    }

    #[test]
    fn loom_runnext_steal_races_with_owner_pop() {
        check(None, || {
            let q = Arc::new(LocalQueue::new());
            let pay = Arc::new(Payloads::new(2));
            let thief = spawn_thief(&q, &pay, true);
            let mut got = Vec::new();
            put(&q, &pay, 1, true);
            // Kicks 1 into the ring.
            put(&q, &pay, 2, true);
            if let Some((item, from_next)) = q.pop() {
                assert_eq!(from_next, item == 2);
                pay.receive(item, &mut got);
            }
            got.extend(thief.join().unwrap());
            pop_rest(&q, &pay, &mut got);
            assert_exactly_once(got, 2);
        });
    }

    #[test]
    fn loom_is_empty_never_answers_empty_while_an_item_moves() {
        check(None, || {
            let q = Arc::new(LocalQueue::new());
            // Item 1 stays in the queue throughout: it only moves from
            // runnext into the ring.
            q.push(1, true, &mut no_overflow);
            let observer = {
                let q = Arc::clone(&q);
                thread::spawn(move || assert!(!q.is_empty()))
            };
            q.push(2, true, &mut no_overflow);
            assert_eq!(q.pop(), Some((2, true)));
            observer.join().unwrap();
            assert_eq!(q.pop(), Some((1, false)));
        });
    }
}
