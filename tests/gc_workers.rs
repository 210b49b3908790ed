//! The collector's work runs on the runtime's Ps, in worker goroutines (the crate docs,
//! *Allocation and pacing*): a user `Drop` run by the sweep runs in a goroutine that holds a P,
//! also for spans an allocator deferred; cycles finish (and their workers exit) while every P is
//! busy, under mixed load, with a sweep `Drop` blocked on a lock a goroutine holds, and back to
//! back. Tests take turns, so that each looks at its own collections.

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
    off_p: AtomicUsize,
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

/// A node with a user `Drop` that parks its goroutine (a worker, in the sweep).
#[derive(Trace)]
struct Parker {
    next: GcCell<Option<Gc<Parker>>>,
    #[gc(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Parker {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.drops.load(Ordering::Relaxed) % 64 == 0 {
            gort::yield_now();
            gort::time::sleep(std::time::Duration::from_micros(50));
        }
    }
}

fn parker_ring(n: usize, drops: &Arc<AtomicUsize>) -> Gc<Parker> {
    let first = Gc::new(Parker {
        next: GcCell::new(None),
        drops: drops.clone(),
    });
    let mut last = first.clone();
    for _ in 1..n {
        let p = Gc::new(Parker {
            next: GcCell::new(None),
            drops: drops.clone(),
        });
        *last.next.borrow_mut() = Some(p.clone());
        last = p;
    }
    *last.next.borrow_mut() = Some(first.clone());
    first
}

/// Liveness under load: goroutines that write cells, upgrade weak handles, make rings with
/// parking user `Drop`s and call `collect`, hogs on every P, and a plain thread collecting in a
/// loop. Run it with `GORT_MAXPROCS=1` too. It must finish (the harness runs it under `timeout`).
#[test]
fn collections_finish_under_mixed_load() {
    let _t = turn();
    let drops = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let procs = gort::runtime::max_procs();
    let hogs: Vec<_> = (0..procs)
        .map(|_| {
            let stop = stop.clone();
            gort::go!(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    gort::runtime::safe_point();
                }
                x
            })
        })
        .collect();
    let thread_collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                gc::collect();
                n += 1;
            }
            n
        })
    };
    let shared = Gc::new(Parker {
        next: GcCell::new(None),
        drops: drops.clone(),
    });
    let weak = Gc::downgrade(&shared);
    let made = Arc::new(AtomicUsize::new(0));
    let mutators: Vec<_> = (0..6)
        .map(|w| {
            let (drops, made, weak) = (drops.clone(), made.clone(), weak.clone());
            gort::go!(move || {
                for round in 0..60 {
                    let ring = parker_ring(50, &drops);
                    made.fetch_add(50, Ordering::SeqCst);
                    if let Some(s) = weak.upgrade() {
                        *s.next.borrow_mut() = Some(ring.clone());
                    }
                    drop(ring);
                    if (round + w) % 10 == 0 {
                        gc::collect();
                    }
                    gort::yield_now();
                }
            })
        })
        .collect();
    for m in mutators {
        m.join().unwrap();
    }
    *shared.next.borrow_mut() = None;
    drop(shared);
    gc::collect();
    gc::collect();
    stop.store(true, Ordering::SeqCst);
    assert!(thread_collector.join().unwrap() > 0);
    for h in hogs {
        h.join().unwrap();
    }
    // The shared node (kept while `weak` lives? no: `weak` is not a root) and every ring.
    assert!(drops.load(Ordering::SeqCst) >= made.load(Ordering::SeqCst));
}

static SHARED_LOCK: Mutex<u64> = Mutex::new(0);

/// A node whose user `Drop` takes a std `Mutex` (blocking its thread, not parking).
#[derive(Trace)]
struct Locker {
    peer: GcCell<Option<Gc<Locker>>>,
    #[gc(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Locker {
    fn drop(&mut self) {
        *SHARED_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A sweep's user `Drop` (on a worker, holding a P) blocks its thread on a std `Mutex` held by a
/// goroutine that needs a P to release it. With one P only sysmon's retake can break the tie.
#[test]
fn a_user_drop_blocked_on_a_std_mutex_held_by_a_goroutine() {
    let _t = turn();
    let drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let a = Gc::new(Locker {
            peer: GcCell::new(None),
            drops: drops.clone(),
        });
        let b = Gc::new(Locker {
            peer: GcCell::new(Some(a.clone())),
            drops: drops.clone(),
        });
        *a.peer.borrow_mut() = Some(b);
    }
    let holding = Arc::new(AtomicBool::new(false));
    let holder = {
        let holding = holding.clone();
        gort::go!(move || {
            let g = SHARED_LOCK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            holding.store(true, Ordering::SeqCst);
            // Keep the lock across a few reschedules: the worker may block on it meanwhile.
            for _ in 0..20 {
                gort::yield_now();
                gort::time::sleep(std::time::Duration::from_millis(1));
            }
            drop(g);
        })
    };
    while !holding.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let t = std::time::Instant::now();
    gc::collect();
    eprintln!("collect() with a blocked Drop took {:?}", t.elapsed());
    holder.join().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 100);
}

/// Back-to-back cycles (collect() from several threads at once): each cycle's workers exit, none
/// is left behind parked or confused by the next cycle's board.
#[test]
fn workers_exit_across_back_to_back_cycles() {
    let _t = turn();
    let keep: Vec<Gc<Blob>> = (0..5_000).map(|_| blob()).collect();
    gc::collect();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let base = gort::runtime::num_goroutine();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..100 {
                    gc::collect();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while gort::runtime::num_goroutine() > base && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(keep);
    assert_eq!(gort::runtime::num_goroutine(), base, "workers left behind");
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
