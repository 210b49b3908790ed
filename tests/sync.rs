//! Behaviour of `gort::sync`'s locks as users see them: `Mutex`, `RwLock`, `Condvar` and `Once`
//! park goroutines (not threads), work across goroutines and plain threads, never poison, and keep
//! their fairness promises. Timing is only bounded generously (liveness); every wait that could
//! hang on a bug runs under [`within`], so a regression fails instead of hanging the suite.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::runtime::{Builder, Runtime};
use gort::sync::{Condvar, Mutex, Once, RwLock, WaitGroup};

/// Generous bound for anything that should finish in milliseconds.
const LIVENESS: Duration = Duration::from_secs(30);

/// Runs `f` on a helper thread and fails the test if it has not finished within [`LIVENESS`]
/// (a deadlock would otherwise hang the whole suite). A panic in `f` fails the test too.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(LIVENESS) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("gort test: {what} did not finish within {LIVENESS:?} (deadlock?)"),
    }
}

fn runtime(procs: usize) -> Runtime {
    Builder::new().max_procs(procs).build()
}

/// Yields until `cond` holds (a goroutine-friendly spin for test choreography).
fn yield_until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        gort::yield_now();
    }
}

// ---- Mutex ------------------------------------------------------------------------------------

#[gort::test]
fn mutex_counter_is_exact_under_goroutine_contention() {
    let counter = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let counter = counter.clone();
            gort::go!(move || {
                for _ in 0..2_000 {
                    // Read and write back in two steps: a lost update would show.
                    let mut g = counter.lock();
                    let v = *g;
                    *g = std::hint::black_box(v) + 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*counter.lock(), 100_000);
    assert!(!counter.is_locked());
}

#[test]
fn mutex_counter_is_exact_on_four_procs_with_guards_held_across_yields() {
    let total = within("4-P mutex counter", || {
        runtime(4).run(|| {
            let counter = Arc::new(Mutex::new(0u64));
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let counter = counter.clone();
                    gort::spawn(move || {
                        for n in 0..6_250 {
                            let mut g = counter.lock();
                            *g += 1;
                            if (n + i) % 500 == 0 {
                                // Held across a reschedule: may resume on another thread.
                                gort::yield_now();
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let total = *counter.lock();
            total
        })
    });
    assert_eq!(total, 100_000);
}

#[test]
fn contention_parks_the_goroutine_not_the_thread() {
    // One P: if a blocked `lock` held the thread, the holder could never run again to unlock.
    within("1-P contention", || {
        runtime(1).run(|| {
            let m = Arc::new(Mutex::new(Vec::new()));
            let waiting = Arc::new(AtomicUsize::new(0));
            let guard = m.lock();
            let handles: Vec<_> = (0..10)
                .map(|i| {
                    let (m, waiting) = (m.clone(), waiting.clone());
                    gort::spawn(move || {
                        waiting.fetch_add(1, Ordering::SeqCst);
                        m.lock().push(i);
                    })
                })
                .collect();
            // Every contender runs (on our only thread) and parks while we hold the lock.
            yield_until(|| waiting.load(Ordering::SeqCst) == 10);
            for _ in 0..10 {
                gort::yield_now();
            }
            assert!(guard.is_empty(), "nobody got in while we held the lock");
            drop(guard);
            for h in handles {
                h.join().unwrap();
            }
            let mut got = m.lock().clone();
            got.sort();
            assert_eq!(got, (0..10).collect::<Vec<_>>());
        })
    });
}

#[test]
fn plain_threads_and_goroutines_share_a_mutex() {
    let total = within("mixed threads and goroutines", || {
        let counter = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *counter.lock() += 1;
                    }
                })
            })
            .collect();
        let goroutines: Vec<_> = (0..4)
            .map(|_| {
                let counter = counter.clone();
                gort::spawn(move || {
                    for _ in 0..10_000 {
                        *counter.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for g in goroutines {
            g.join().unwrap();
        }
        let total = *counter.lock();
        total
    });
    assert_eq!(total, 80_000);
}

#[gort::test]
fn a_panic_while_locked_unlocks_without_poisoning() {
    let m = Arc::new(Mutex::new(0));
    let m2 = m.clone();
    let err = gort::go!(move || {
        let mut g = m2.lock();
        *g = 1;
        panic!("holder gives up");
    })
    .join()
    .unwrap_err();
    assert!(err.is_panic());
    assert!(!m.is_locked());
    // No poisoning: `lock` returns the guard, and the data is what the panicking holder left.
    let mut g = m.lock();
    assert_eq!(*g, 1);
    *g = 2;
    drop(g);

    // The same on a plain thread.
    let m3 = m.clone();
    let r = std::thread::spawn(move || {
        let _g = m3.lock();
        panic!("thread holder gives up");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(*m.lock(), 2);
}

#[gort::test]
fn try_lock_fails_while_held_and_succeeds_when_free() {
    let m = Arc::new(Mutex::new(5));
    let (locked, release) = (WaitGroup::new(), WaitGroup::new());
    locked.add(1);
    release.add(1);
    let holder = {
        let (m, locked, release) = (m.clone(), locked.clone(), release.clone());
        gort::go!(move || {
            let _g = m.lock();
            locked.done();
            release.wait(); // a guard held across a park
        })
    };
    locked.wait();
    assert!(m.try_lock().is_none());
    assert!(m.is_locked());
    release.done();
    holder.join().unwrap();
    let mut g = m.try_lock().expect("free after the holder left");
    *g += 1;
    assert!(m.try_lock().is_none(), "not re-entrant");
    drop(g);
    assert_eq!(*m.lock(), 6);
}

#[gort::test]
fn a_guard_may_be_held_across_join_and_dropped_on_another_thread() {
    let m = Arc::new(Mutex::new(Vec::new()));
    let mut g = m.lock();
    // Holding the guard across a blocking join of an unrelated goroutine is fine.
    g.push(gort::go!(move || 1).join().unwrap());
    // The guard is Send: hand it to a plain thread, which unlocks.
    std::thread::scope(|s| {
        s.spawn(move || {
            g.push(2);
            drop(g);
        });
    });
    assert_eq!(*m.lock(), [1, 2]);
}

#[test]
fn a_waiter_is_not_starved_by_a_relocking_hog() {
    // A goroutine re-locks in a tight loop; with barging alone a waiter could lose every race.
    // Starvation mode hands it the lock once it has waited over 1 ms.
    within("starvation mode", || {
        runtime(2).run(|| {
            let m = Arc::new(Mutex::new(0u64));
            let stop = Arc::new(AtomicBool::new(false));
            let hog = {
                let (m, stop) = (m.clone(), stop.clone());
                gort::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let mut g = m.lock();
                        *g += 1;
                        for _ in 0..50 {
                            std::hint::spin_loop();
                        }
                    }
                })
            };
            yield_until(|| *m.lock() > 100);
            for _ in 0..50 {
                *m.lock() += 1;
            }
            stop.store(true, Ordering::Relaxed);
            hog.join().unwrap();
        })
    });
}

// ---- RwLock -----------------------------------------------------------------------------------

#[test]
fn rwlock_readers_hold_the_lock_together() {
    // Four readers must all be inside at once; on one P that needs read guards held across yields.
    for procs in [1, 4] {
        within("parallel readers", move || {
            runtime(procs).run(|| {
                let lock = Arc::new(RwLock::new(7));
                let inside = Arc::new(AtomicUsize::new(0));
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        let (lock, inside) = (lock.clone(), inside.clone());
                        gort::spawn(move || {
                            let g = lock.read();
                            inside.fetch_add(1, Ordering::SeqCst);
                            yield_until(|| inside.load(Ordering::SeqCst) == 4);
                            *g
                        })
                    })
                    .collect();
                for h in handles {
                    assert_eq!(h.join().unwrap(), 7);
                }
            })
        });
    }
}

#[test]
fn rwlock_writers_exclude_everyone() {
    within("writer exclusion", || {
        runtime(4).run(|| {
            let lock = Arc::new(RwLock::new((0u64, 0u64)));
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let lock = lock.clone();
                    gort::spawn(move || {
                        for n in 0..2_000u64 {
                            if i % 4 == 0 {
                                let mut w = lock.write();
                                w.0 += 1;
                                if n % 100 == 0 {
                                    gort::yield_now(); // half-updated, held across a yield
                                }
                                w.1 += 1;
                            } else {
                                let r = lock.read();
                                assert_eq!(r.0, r.1, "a reader saw a writer's half-update");
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(*lock.read(), (8_000, 8_000));
        })
    });
}

#[gort::test]
fn rwlock_a_waiting_writer_blocks_new_readers() {
    let lock = Arc::new(RwLock::new(()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let first_reader = lock.read();

    let writer = {
        let (lock, log) = (lock.clone(), log.clone());
        gort::go!(move || {
            let _w = lock.write();
            log.lock().push("writer");
        })
    };
    // The writer announces itself, then waits for the first reader to leave.
    yield_until(|| lock.is_write_locked_or_pending());
    assert!(
        lock.try_read().is_none(),
        "a waiting writer blocks new readers"
    );

    let late_reader = {
        let (lock, log) = (lock.clone(), log.clone());
        gort::go!(move || {
            let _r = lock.read();
            log.lock().push("late reader");
        })
    };
    for _ in 0..20 {
        gort::yield_now();
    }
    assert!(
        log.lock().is_empty(),
        "the late reader queued behind the writer"
    );

    drop(first_reader);
    writer.join().unwrap();
    late_reader.join().unwrap();
    assert_eq!(*log.lock(), ["writer", "late reader"]);
}

#[gort::test]
fn rwlock_try_variants_and_no_poisoning() {
    let lock = Arc::new(RwLock::new(1));
    {
        let _r = lock.try_read().expect("free");
        assert!(lock.try_write().is_none());
        assert!(lock.try_read().is_some());
    }
    let l2 = lock.clone();
    let err = gort::go!(move || {
        let mut w = l2.write();
        *w = 2;
        panic!("writer gives up");
    })
    .join()
    .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(*lock.try_read().expect("released by the panic"), 2);
    *lock.try_write().expect("free") += 1;
    assert_eq!(*lock.read(), 3);
}

// ---- Condvar ----------------------------------------------------------------------------------

/// A bounded queue built from one mutex and two condition variables.
struct Bounded {
    items: Mutex<VecDeque<u64>>,
    not_empty: Condvar,
    not_full: Condvar,
    cap: usize,
}

impl Bounded {
    fn put(&self, v: u64) {
        let mut q = self
            .not_full
            .wait_while(self.items.lock(), |q| q.len() == self.cap);
        q.push_back(v);
        drop(q);
        self.not_empty.notify_one();
    }

    fn take(&self) -> u64 {
        let mut q = self
            .not_empty
            .wait_while(self.items.lock(), |q| q.is_empty());
        let v = q.pop_front().unwrap();
        drop(q);
        self.not_full.notify_one();
        v
    }
}

fn producer_consumer(procs: usize) -> (u64, u64) {
    runtime(procs).run(|| {
        let q = Arc::new(Bounded {
            items: Mutex::new(VecDeque::new()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            cap: 8,
        });
        let (producers, per, consumers) = (4u64, 2_500u64, 4u64);
        let mut handles = Vec::new();
        for p in 0..producers {
            let q = q.clone();
            handles.push(gort::spawn(move || {
                for i in 0..per {
                    q.put(p * per + i + 1);
                }
                0
            }));
        }
        for _ in 0..consumers {
            let q = q.clone();
            handles.push(gort::spawn(move || {
                (0..producers * per / consumers)
                    .map(|_| q.take())
                    .sum::<u64>()
            }));
        }
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let n = producers * per;
        (sum, n * (n + 1) / 2)
    })
}

#[test]
fn condvar_producer_consumer_delivers_everything() {
    for procs in [1, 4] {
        let (got, want) = within("producer/consumer", move || producer_consumer(procs));
        assert_eq!(got, want, "on {procs} P(s)");
    }
}

#[test]
fn condvar_notify_all_wakes_goroutines_and_threads() {
    within("notify_all", || {
        let state = Arc::new((Mutex::new((0usize, false)), Condvar::new()));
        let wait = |state: Arc<(Mutex<(usize, bool)>, Condvar)>| {
            let (m, cv) = &*state;
            let mut g = m.lock();
            g.0 += 1;
            let g = cv.wait_while(g, |s| !s.1);
            assert!(g.1);
        };
        let goroutines: Vec<_> = (0..20)
            .map(|_| {
                let s = state.clone();
                gort::spawn(move || wait(s))
            })
            .collect();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let s = state.clone();
                std::thread::spawn(move || wait(s))
            })
            .collect();
        let (m, cv) = &*state;
        while m.lock().0 < 23 {
            std::thread::sleep(Duration::from_millis(1));
        }
        m.lock().1 = true;
        cv.notify_all();
        for g in goroutines {
            g.join().unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn condvar_wait_timeout_times_out() {
    let timeout = Duration::from_millis(50);
    let check = move || {
        let m = Mutex::new(0);
        let cv = Condvar::new();
        let start = Instant::now();
        let (g, r) = cv.wait_timeout(m.lock(), timeout);
        let waited = start.elapsed();
        assert!(r.timed_out());
        assert!(waited >= timeout, "returned early: {waited:?}");
        assert!(m.is_locked(), "the mutex is locked again");
        drop(g);
        let (g, r) = cv.wait_timeout_while(m.lock(), timeout, |v| *v == 0);
        assert!(r.timed_out());
        assert_eq!(*g, 0);
    };
    within("wait_timeout in a goroutine", move || {
        gort::spawn(check).join().unwrap()
    });
    within("wait_timeout on a thread", check);
    // On one P, other goroutines keep running while one waits with a timeout.
    within("wait_timeout on one P", move || {
        runtime(1).run(move || {
            let ticks = Arc::new(AtomicUsize::new(0));
            let done = Arc::new(AtomicBool::new(false));
            let ticker = {
                let (ticks, done) = (ticks.clone(), done.clone());
                gort::spawn(move || {
                    while !done.load(Ordering::SeqCst) {
                        ticks.fetch_add(1, Ordering::SeqCst);
                        gort::yield_now();
                    }
                })
            };
            check();
            done.store(true, Ordering::SeqCst);
            ticker.join().unwrap();
            assert!(ticks.load(Ordering::SeqCst) > 0);
        })
    });
}

#[gort::test]
fn condvar_wait_timeout_returns_early_when_notified() {
    let state = Arc::new((Mutex::new(false), Condvar::new()));
    let s2 = state.clone();
    let waiter = gort::go!(move || {
        let (m, cv) = &*s2;
        let (g, r) = cv.wait_timeout_while(m.lock(), LIVENESS, |ready| !*ready);
        (*g, r.timed_out())
    });
    let (m, cv) = &*state;
    *m.lock() = true;
    cv.notify_one();
    assert_eq!(waiter.join().unwrap(), (true, false));
}

// ---- Once -------------------------------------------------------------------------------------

#[test]
fn once_runs_exactly_once_with_many_concurrent_callers() {
    within("Once", || {
        let once = Arc::new(Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let value = Arc::new(AtomicUsize::new(0));
        let call = {
            let (once, runs, value) = (once.clone(), runs.clone(), value.clone());
            move || {
                once.call_once(|| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Take a while, so that the others arrive and park meanwhile.
                    for _ in 0..20 {
                        gort::yield_now();
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    value.store(42, Ordering::Relaxed);
                });
                // Whatever the initializer did is visible once call_once returns.
                assert_eq!(value.load(Ordering::Relaxed), 42);
            }
        };
        let goroutines: Vec<_> = (0..100).map(|_| gort::spawn(call.clone())).collect();
        let threads: Vec<_> = (0..4).map(|_| std::thread::spawn(call.clone())).collect();
        for g in goroutines {
            g.join().unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(once.is_completed());
    });
}

#[gort::test]
fn once_is_done_even_if_the_initializer_panics() {
    static INIT: Once = Once::new();
    let err = gort::go!(move || INIT.call_once(|| panic!("init failed")))
        .join()
        .unwrap_err();
    assert!(err.is_panic());
    // Go's semantics: done, and the closure never runs again.
    assert!(INIT.is_completed());
    INIT.call_once(|| unreachable!("a Once runs its closure at most once"));
}
