//! `runtime::lock_os_thread`: a locked goroutine resumes on its own thread after every kind of
//! switch, that thread runs nothing else meanwhile, guards nest, and the scheduler carries on
//! around locked threads (Go's `LockOSThread` tests, `runtime/proc_test.go`, in behaviour).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gort::runtime::{lock_os_thread, Builder};

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

/// A small number naming the calling OS thread (read afresh each time: goroutines migrate).
fn thread() -> u64 {
    THREAD.with(|t| *t)
}

#[test]
fn a_locked_goroutine_stays_on_its_thread_and_has_it_to_itself() {
    let rt = Builder::new().max_procs(2).build();
    let locked_thread = Arc::new(AtomicU64::new(0));
    let intruders = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Churn: goroutines that park, yield and wake each other all along, and check where they run.
    let churn: Vec<_> = (0..16)
        .map(|_| {
            let (locked_thread, intruders, stop) =
                (locked_thread.clone(), intruders.clone(), stop.clone());
            rt.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if thread() == locked_thread.load(Ordering::SeqCst) {
                        intruders.fetch_add(1, Ordering::Relaxed);
                    }
                    gort::time::sleep(Duration::from_micros(20));
                    gort::yield_now();
                }
            })
        })
        .collect();
    let (tx, rx) = gort::chan::bounded::<u32>(0);
    let feeder = rt.spawn(move || {
        for i in 0..200 {
            tx.send(i).unwrap();
        }
    });
    let lt = locked_thread.clone();
    let moves = rt
        .spawn(move || {
            let _lock = lock_os_thread();
            let home = thread();
            lt.store(home, Ordering::SeqCst);
            let mut moves = 0;
            let mut check = |what: &str| {
                if thread() != home {
                    moves += 1;
                    eprintln!("moved after {what}");
                }
            };
            for i in 0..200 {
                assert_eq!(rx.recv().unwrap(), i);
                check("a channel receive");
                gort::yield_now();
                check("a yield");
                if i % 10 == 0 {
                    gort::time::sleep(Duration::from_micros(100));
                    check("a sleep");
                    gort::blocking(|| std::thread::sleep(Duration::from_millis(1)));
                    check("a blocking section");
                    // A CPU burst long enough for sysmon to preempt it (10 ms).
                    let until = std::time::Instant::now() + Duration::from_millis(15);
                    while std::time::Instant::now() < until {
                        gort::runtime::safe_point();
                    }
                    check("a preemption");
                }
            }
            lt.store(0, Ordering::SeqCst);
            moves
        })
        .join()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    churn.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(moves, 0, "the locked goroutine resumed on another thread");
    assert_eq!(
        intruders.load(Ordering::Relaxed),
        0,
        "other goroutines ran on the locked thread"
    );
}

#[test]
fn guards_nest_and_the_last_one_unlocks() {
    let rt = Builder::new().max_procs(2).build();
    rt.run(|| {
        let outer = lock_os_thread();
        let home = thread();
        {
            let _inner = lock_os_thread();
            gort::time::sleep(Duration::from_millis(1));
            assert_eq!(thread(), home);
        }
        // Still locked by `outer`.
        for _ in 0..50 {
            gort::time::sleep(Duration::from_micros(50));
            assert_eq!(thread(), home, "unlocked by the inner guard");
        }
        drop(outer);
        // Unlocked: the goroutine may move again, and everything keeps running.
        for _ in 0..50 {
            gort::yield_now();
        }
    });
}

#[test]
fn many_locked_goroutines_on_few_procs() {
    // More locked goroutines than Ps: each holds a thread of its own while it waits, and they all
    // still get Ps to run on, handed around through the run queues.
    let rt = Builder::new().max_procs(2).build();
    let (tx, rx) = gort::chan::unbounded::<u64>();
    let hs: Vec<_> = (0..8)
        .map(|_| {
            let tx = tx.clone();
            rt.spawn(move || {
                let _lock = lock_os_thread();
                let home = thread();
                for _ in 0..100 {
                    gort::time::sleep(Duration::from_micros(10));
                    assert_eq!(thread(), home);
                }
                tx.send(home).unwrap();
            })
        })
        .collect();
    drop(tx);
    hs.into_iter().for_each(|h| h.join().unwrap());
    let mut homes: Vec<u64> = rx.into_iter().collect();
    homes.sort_unstable();
    homes.dedup();
    assert_eq!(homes.len(), 8, "two locked goroutines shared a thread");
}

#[test]
fn a_goroutine_that_ends_locked_gives_its_thread_back() {
    let rt = Builder::new().max_procs(1).build();
    rt.spawn(|| std::mem::forget(lock_os_thread()))
        .join()
        .unwrap();
    // The runtime goes on: on one P, every goroutine below needs the scheduler to run.
    let hs: Vec<_> = (0..100)
        .map(|i| {
            rt.spawn(move || {
                gort::yield_now();
                i
            })
        })
        .collect();
    let sum: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 4950);
}

#[test]
fn off_a_goroutine_the_guard_does_nothing() {
    let guard = lock_os_thread();
    std::thread::sleep(Duration::from_millis(1));
    drop(guard);
    // And inside an async task's poll.
    let rt = Builder::new().max_procs(1).build();
    rt.block_on(async {
        let _g = lock_os_thread();
    });
}
