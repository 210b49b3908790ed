//! sysmon keeps a runtime moving: a CPU hog or a blocking call never freezes the other goroutines.
//! One-P runtimes make the point sharp: without preemption or hand-off, the second goroutine could
//! never run. Bounds are generous (behaviour, not speed).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits for `h` on this plain thread, failing the test if it takes more than `limit`.
fn join_within<T: Send + 'static>(h: gort::JoinHandle<T>, limit: Duration, what: &str) -> T {
    let start = Instant::now();
    while !h.is_finished() {
        assert!(
            start.elapsed() < limit,
            "{what}: still not done after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    h.join().unwrap()
}

#[test]
fn a_tight_loop_does_not_freeze_the_other_goroutines() {
    let rt = gort::runtime::Builder::new().max_procs(1).build();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let hog = rt.spawn(move || {
        let mut spins = 0u64;
        while !s.load(Ordering::Relaxed) {
            spins = std::hint::black_box(spins + 1); // no runtime call at all
        }
        spins
    });
    std::thread::sleep(Duration::from_millis(5)); // let the hog take the only P
    let other = rt.spawn(|| (0..1000u64).sum::<u64>());
    assert_eq!(
        join_within(other, Duration::from_secs(20), "goroutine behind a hog"),
        499_500
    );
    stop.store(true, Ordering::Relaxed);
    join_within(hog, Duration::from_secs(20), "the hog");
}

#[test]
fn a_hog_with_safe_points_yields_when_asked() {
    let rt = gort::runtime::Builder::new().max_procs(1).build();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let hog = rt.spawn(move || {
        while !s.load(Ordering::Relaxed) {
            gort::runtime::safe_point();
        }
    });
    std::thread::sleep(Duration::from_millis(5));
    let threads_before = rt.stats().threads;
    let other = rt.spawn(|| 5);
    assert_eq!(
        join_within(
            other,
            Duration::from_secs(20),
            "goroutine behind a polite hog"
        ),
        5
    );
    stop.store(true, Ordering::Relaxed);
    join_within(hog, Duration::from_secs(20), "the hog");
    // Preemption, not a hand-off, let the other goroutine in: no extra thread was needed.
    assert!(rt.stats().threads <= threads_before + 1, "{}", rt.stats());
}

#[test]
fn blocking_sections_hand_their_processor_over() {
    let rt = gort::runtime::Builder::new().max_procs(1).build();
    let order = Arc::new(AtomicUsize::new(0));
    let (o1, o2) = (order.clone(), order.clone());
    let blocker = rt.spawn(move || {
        gort::blocking(|| std::thread::sleep(Duration::from_millis(300)));
        o1.fetch_add(1, Ordering::SeqCst) // 1 if the other goroutine finished first
    });
    std::thread::sleep(Duration::from_millis(20));
    let other = rt.spawn(move || o2.fetch_add(1, Ordering::SeqCst));
    assert_eq!(
        join_within(
            other,
            Duration::from_secs(20),
            "goroutine beside a blocking call"
        ),
        0
    );
    assert_eq!(
        join_within(blocker, Duration::from_secs(20), "the blocking goroutine"),
        1
    );
}

#[test]
fn unmarked_blocking_calls_are_caught_like_hogs() {
    let rt = gort::runtime::Builder::new().max_procs(1).build();
    let order = Arc::new(AtomicUsize::new(0));
    let (o1, o2) = (order.clone(), order.clone());
    let sleeper = rt.spawn(move || {
        std::thread::sleep(Duration::from_millis(400)); // not marked with gort::blocking
        o1.fetch_add(1, Ordering::SeqCst)
    });
    std::thread::sleep(Duration::from_millis(20));
    let other = rt.spawn(move || o2.fetch_add(1, Ordering::SeqCst));
    assert_eq!(
        join_within(
            other,
            Duration::from_secs(20),
            "goroutine beside std::thread::sleep"
        ),
        0
    );
    assert_eq!(
        join_within(sleeper, Duration::from_secs(20), "the sleeping goroutine"),
        1
    );
}

#[test]
fn blocking_returns_its_value_and_propagates_panics() {
    let rt = gort::runtime::Builder::new().max_procs(2).build();
    assert_eq!(rt.run(|| gort::blocking(|| 40 + 2)), 42);
    let h = rt.spawn(|| gort::blocking(|| -> u8 { panic!("inside blocking") }));
    let err = join_within(
        rt.spawn(move || h.join().unwrap_err().to_string()),
        Duration::from_secs(20),
        "join",
    );
    assert!(err.contains("inside blocking"), "{err}");
    // The runtime is still usable, with its P back.
    assert_eq!(rt.run(|| 1), 1);
    assert_eq!(
        gort::blocking(|| 3),
        3,
        "off goroutines it just runs the closure"
    );
}

#[test]
fn many_blocking_goroutines_leave_room_for_others() {
    // 4xP goroutines stuck in blocking calls; another goroutine still gets to run many times.
    let rt = gort::runtime::Builder::new().max_procs(2).build();
    let stop = Arc::new(AtomicBool::new(false));
    let mut blockers = Vec::new();
    for _ in 0..8 {
        let s = stop.clone();
        blockers.push(rt.spawn(move || {
            while !s.load(Ordering::Relaxed) {
                gort::blocking(|| std::thread::sleep(Duration::from_millis(20)));
            }
        }));
    }
    let yields = rt.spawn(|| {
        for _ in 0..10_000 {
            gort::yield_now();
        }
    });
    join_within(yields, Duration::from_secs(30), "the yielding goroutine");
    stop.store(true, Ordering::Relaxed);
    for b in blockers {
        join_within(b, Duration::from_secs(30), "a blocking goroutine");
    }
}

#[test]
fn runtime_calls_inside_a_blocking_section_work() {
    // `f` of `blocking(f)` may itself spawn, send and join: those calls find the P on offer to
    // other threads and take the paths that need no P; afterwards the goroutine gets a P back.
    let rt = gort::runtime::Builder::new().max_procs(1).build();
    let h = rt.spawn(|| {
        let (tx, rx) = gort::chan::bounded::<u32>(1);
        let inner = gort::blocking(move || {
            std::thread::sleep(Duration::from_millis(5));
            let child = gort::spawn(move || tx.send(7).unwrap());
            child.join().unwrap();
            rx.recv().unwrap()
        });
        // Back on a P: the runtime works as usual.
        let after = gort::spawn(|| 35).join().unwrap();
        inner + after
    });
    assert_eq!(
        join_within(h, Duration::from_secs(20), "blocking section"),
        42
    );
}
