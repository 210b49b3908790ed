//! Sleeping on runtime timers: goroutines park (their threads do not sleep), timers of idle Ps are
//! fired, and many sleepers share the per-P heaps. Bounds are generous: behaviour, not speed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort_goroutine::time::sleep;

#[test]
fn sleeping_goroutines_do_not_hold_their_thread() {
    // One P: if sleep blocked the thread, 20 sleeps of 50 ms would take a second.
    let rt = gort::runtime::Builder::new().max_procs(1).build();
    let elapsed = rt.run(|| {
        let start = Instant::now();
        let hs: Vec<_> = (0..20)
            .map(|_| gort::spawn(|| sleep(Duration::from_millis(50))))
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        start.elapsed()
    });
    assert!(elapsed >= Duration::from_millis(50));
    assert!(
        elapsed < Duration::from_millis(900),
        "sleeps ran one after another: {elapsed:?}"
    );
}

#[test]
fn sleep_lasts_at_least_its_duration() {
    let rt = gort::runtime::Builder::new().max_procs(2).build();
    for ms in [0u64, 1, 5, 20] {
        let d = Duration::from_millis(ms);
        let took = rt.run(move || {
            let t = Instant::now();
            sleep(d);
            t.elapsed()
        });
        assert!(took >= d, "slept {took:?} for {d:?}");
    }
}

#[test]
fn ten_thousand_sleepers_all_wake() {
    let rt = gort::runtime::Builder::new().max_procs(2).build();
    let woke = Arc::new(AtomicUsize::new(0));
    let w = woke.clone();
    rt.run(move || {
        let hs: Vec<_> = (0..10_000u64)
            .map(|i| {
                let w = w.clone();
                gort::spawn(move || {
                    sleep(Duration::from_micros(100 * (i % 50)));
                    w.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    assert_eq!(woke.load(Ordering::Relaxed), 10_000);
}

#[test]
fn a_timer_on_an_idle_runtime_wakes_it() {
    // The runtime is idle (every M asleep); a goroutine's only way forward is its timer.
    let rt = gort::runtime::Builder::new().max_procs(2).build();
    rt.run(|| ());
    std::thread::sleep(Duration::from_millis(20));
    let h = rt.spawn(|| {
        sleep(Duration::from_millis(30));
        7
    });
    assert_eq!(h.join().unwrap(), 7);
}

#[test]
fn park_until_returns_by_its_deadline() {
    let rt = gort::runtime::Builder::new().max_procs(1).build();
    let took = rt.run(|| {
        let t = Instant::now();
        let deadline = t + Duration::from_millis(20);
        while Instant::now() < deadline {
            gort_goroutine::park::park_until(deadline);
        }
        t.elapsed()
    });
    assert!(took >= Duration::from_millis(20));
    // On a plain thread too.
    let t = Instant::now();
    gort_goroutine::park::park_until(t + Duration::from_millis(5));
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn cancelled_timers_never_fire() {
    struct Flag(AtomicUsize);
    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let flag = Arc::new(Flag(AtomicUsize::new(0)));
    let rt = gort::runtime::Builder::new().max_procs(2).build();
    let f2 = flag.clone();
    rt.run(move || {
        let deadline = Instant::now() + Duration::from_millis(10);
        let cancelled = gort_goroutine::timer::add(deadline, std::task::Waker::from(f2.clone()));
        let kept = gort_goroutine::timer::add(deadline, std::task::Waker::from(f2));
        assert!(cancelled.cancel());
        sleep(Duration::from_millis(30));
        assert!(kept.has_fired());
        assert!(!cancelled.has_fired());
    });
    assert_eq!(flag.0.load(Ordering::SeqCst), 1);
}

// ---- channel timers: after, tick, Timer, Ticker -------------------------------------------------

#[gort::test]
fn after_delivers_once_after_its_duration() {
    let start = Instant::now();
    let rx = gort::time::after(Duration::from_millis(20));
    let at = rx.recv().unwrap();
    assert!(at.duration_since(start) >= Duration::from_millis(20));
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "after fires once"
    );
}

#[gort::test]
fn tick_keeps_ticking() {
    // Ticks never come early, so the third one is stamped 15 ms after the start at the earliest
    // (a slow reader may miss ticks, which only makes it later). The gap between two received
    // ticks has no lower bound: a tick delivered late is followed by one on schedule.
    let start = std::time::Instant::now();
    let rx = gort::time::tick(Duration::from_millis(5));
    let first = rx.recv().unwrap();
    let second = rx.recv().unwrap();
    let third = rx.recv().unwrap();
    assert!(
        first < second && second < third,
        "{first:?} {second:?} {third:?}"
    );
    assert!(third.duration_since(start) >= Duration::from_millis(15));
}

#[gort::test]
fn a_stopped_timer_never_fires() {
    let t = gort::time::Timer::new(Duration::from_millis(20));
    assert!(t.stop(), "stopped before firing");
    assert!(!t.stop(), "already stopped");
    assert!(t
        .receiver()
        .recv_timeout(Duration::from_millis(60))
        .is_err());
    assert!(
        !t.reset(Duration::from_millis(5)),
        "reset of a stopped timer reports it was not pending"
    );
    t.receiver().recv().unwrap();
}

#[gort::test]
fn reset_moves_a_pending_timer() {
    let start = Instant::now();
    let t = gort::time::Timer::new(Duration::from_millis(5));
    assert!(t.reset(Duration::from_millis(40)));
    let at = t.receiver().recv().unwrap();
    assert!(at.duration_since(start) >= Duration::from_millis(40));
}

#[gort::test]
fn tickers_stop_and_reset() {
    let t = gort::time::Ticker::new(Duration::from_millis(5));
    t.receiver().recv().unwrap();
    t.stop();
    let _ = t.receiver().try_recv(); // a tick may have been waiting
    assert!(
        t.receiver()
            .recv_timeout(Duration::from_millis(40))
            .is_err(),
        "ticks after stop"
    );
    t.reset(Duration::from_millis(2));
    t.receiver().recv().unwrap();
    t.receiver().recv().unwrap();
}
