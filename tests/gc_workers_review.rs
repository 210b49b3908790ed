//! Review tests for the worker-goroutine collector (commit 6551370): where user `Drop`s run when
//! allocators defer `Drop` spans, and liveness of cycles under load.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gort::gc::{self, Gc, GcCell};
use gort::Trace;

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
struct Seen {
    drops: AtomicUsize,
    off_goroutine: AtomicUsize,
}

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

#[derive(Trace)]
struct Blob {
    #[gc(skip)]
    _data: [u64; 30],
}

fn blob() -> Gc<Blob> {
    Gc::new(Blob { _data: [7; 30] })
}

/// The crate docs: "Values whose drop runs user code are dropped only by the workers". An
/// allocator past the goal that claims a `Drop` span with user drops defers it; `run_pass` then
/// lets the collector *thread* (not a goroutine) drop it as soon as every span is claimed.
#[test]
fn deferred_user_drops_run_in_goroutines() {
    let _t = turn();
    let old = gc::set_percent(10);
    // A live set above the 4 MiB floor, so that a little allocation puts the heap past its goal.
    let live: Vec<Gc<Blob>> = (0..40_000).map(|_| blob()).collect();
    gc::collect();
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    // A plain thread that allocates all the time: past the goal, it helps every span pass.
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut keep = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                keep.push(blob());
                if keep.len() > 20_000 {
                    keep.clear();
                }
            }
        })
    };
    for _ in 0..10 {
        for _ in 0..5_000 {
            witness_cycle(&seen);
        }
        gc::collect();
    }
    stop.store(true, Ordering::SeqCst);
    churn.join().unwrap();
    gc::collect();
    drop(live);
    gc::set_percent(old);
    assert_eq!(seen.drops.load(Ordering::SeqCst), 100_000);
    assert_eq!(
        seen.off_goroutine.load(Ordering::SeqCst),
        0,
        "user Drops ran on the collector thread"
    );
}
