//! The collector's work runs on the runtime's Ps, in worker goroutines (the crate docs,
//! *Allocation and pacing*): a user `Drop` run by the sweep runs in a goroutine that holds a P,
//! and a collection finishes while every P is busy with other goroutines. In its own test binary,
//! so that no other test's allocations take part in these cycles.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gort::gc::{self, Gc, GcCell};
use gort::Trace;

/// Tests in this binary take turns: each looks at its own collections.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the sweep dropped it: in a goroutine, on a P?
#[derive(Default)]
struct Seen {
    drops: AtomicUsize,
    off_goroutine: AtomicUsize,
    off_p: AtomicUsize,
}

/// A node of a two-node cycle (so only a collection frees it) with a user `Drop`.
#[derive(Trace)]
struct Witness {
    peer: GcCell<Option<Gc<Witness>>>,
    #[gc(skip)]
    seen: Arc<Seen>,
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.seen.drops.fetch_add(1, Ordering::SeqCst);
        if gort::runtime::current_id().is_none() {
            self.seen.off_goroutine.fetch_add(1, Ordering::SeqCst);
        }
        if gort::runtime::with_current_proc(|p| p.is_none()) {
            self.seen.off_p.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn witness_cycle(seen: &Arc<Seen>) {
    let a = Gc::new(Witness {
        peer: GcCell::new(None),
        seen: seen.clone(),
    });
    let b = Gc::new(Witness {
        peer: GcCell::new(Some(a.clone())),
        seen: seen.clone(),
    });
    *a.peer.borrow_mut() = Some(b);
}

#[test]
fn user_drops_run_in_worker_goroutines_on_a_p() {
    let _t = turn();
    let seen = Arc::new(Seen::default());
    for _ in 0..100 {
        witness_cycle(&seen);
    }
    gc::collect();
    assert_eq!(
        seen.drops.load(Ordering::SeqCst),
        200,
        "every witness collected"
    );
    assert_eq!(
        seen.off_goroutine.load(Ordering::SeqCst),
        0,
        "a Drop ran outside a goroutine"
    );
    assert_eq!(
        seen.off_p.load(Ordering::SeqCst),
        0,
        "a Drop ran without a P"
    );
}

#[test]
fn a_collection_finishes_while_every_p_is_busy() {
    let _t = turn();
    let stop = Arc::new(AtomicBool::new(false));
    let spinning = Arc::new(AtomicUsize::new(0));
    let procs = gort::runtime::max_procs();
    let hogs: Vec<_> = (0..procs)
        .map(|_| {
            let (stop, spinning) = (stop.clone(), spinning.clone());
            gort::go!(move || {
                spinning.fetch_add(1, Ordering::SeqCst);
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    // A compute loop that makes no runtime calls passes safe points itself.
                    gort::runtime::safe_point();
                }
                x
            })
        })
        .collect();
    while spinning.load(Ordering::SeqCst) < procs {
        std::thread::yield_now();
    }
    let seen = Arc::new(Seen::default());
    for _ in 0..100 {
        witness_cycle(&seen);
    }
    // The workers share the Ps with the hogs (sysmon makes the hogs yield at their safe points).
    gc::collect();
    stop.store(true, Ordering::SeqCst);
    for h in hogs {
        h.join().unwrap();
    }
    assert_eq!(seen.drops.load(Ordering::SeqCst), 200);
}
