//! Liveness beside CPU hogs and blocking calls: gort against tokio, shaped like Go's
//! `shared/anchors/go/hog` (run it with `scripts/go_anchors.sh` from the `hog` folder, see below).
//!
//! These are not criterion benches: each workload runs once and prints one figure, as the Go
//! program does, because what matters is the worst case and whether the runtime starves.
//!
//! * `hog_ticker_worst_late_ms`: 2xP goroutines spin without any runtime call; another goroutine
//!   sleeps 10 ms, 50 times, and the worst lateness of those ticks is printed (Go: 10-29 ms on this
//!   machine per `shared/DESIGN.md`; issue 4's target for gort: at most 25 ms). tokio's tasks cannot
//!   be preempted: with every worker spinning, its ticker starves; the bench gives it 3 s, then
//!   stops the hogs and reports how many ticks it managed.
//! * `progress_during_blocking_calls_yields_per_s`: 4xP goroutines call `std::thread::sleep(200 ms)`
//!   (unmarked, and again marked with `gort::blocking`); another goroutine yields in a loop; the
//!   number of yields it completes in the first 100 ms, scaled to a rate, is printed (issue 4's
//!   target: over 1M/s). tokio's blocked workers stop everything until the sleeps end.
//!
//! * `readied_consumer_lag_us`: a producer computes 5 µs per value and sends it into a roomy
//!   buffered channel (it never blocks); the consumer, woken by the first send of each burst, takes
//!   the values and averages how long each waited. The producer's wake-up of the consumer must not
//!   stay parked behind the producer (a runtime that keeps a woken goroutine in its own `runnext`
//!   or LIFO slot without waking another thread delays it until the producer stops). Printed as
//!   the average and worst wait, in µs. tokio: the same with `mpsc::channel` and tasks.
//!
//! `cargo bench --bench liveness`; with `-- --test` (the CI smoke run) the workloads are shortened.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);

fn procs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

struct Sizes {
    ticks: u32,
    window: Duration,
    block: Duration,
    tokio_patience: Duration,
}

fn gort_hog_ticker(s: &Sizes) -> f64 {
    let rt = gort::runtime::Builder::new().build();
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..2 * rt.max_procs() {
        let stop = stop.clone();
        drop(rt.spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = std::hint::black_box(x + 1);
            }
        }));
    }
    let ticks = s.ticks;
    let worst = rt.run(move || {
        let mut worst = Duration::ZERO;
        for _ in 0..ticks {
            let t = Instant::now();
            gort::time::sleep(TICK);
            worst = worst.max(t.elapsed().saturating_sub(TICK));
        }
        worst
    });
    stop.store(true, Ordering::Relaxed);
    worst.as_secs_f64() * 1e3
}

/// Returns (worst lateness in ms, ticks completed before the hogs were stopped).
fn tokio_hog_ticker(s: &Sizes) -> (f64, u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..2 * procs() {
        let stop = stop.clone();
        rt.spawn(async move {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = std::hint::black_box(x + 1);
            }
        });
    }
    let done = Arc::new(AtomicU64::new(0));
    let worst_us = Arc::new(AtomicU64::new(0));
    let (d, w, ticks) = (done.clone(), worst_us.clone(), s.ticks);
    let ticker = rt.spawn(async move {
        for _ in 0..ticks {
            let t = Instant::now();
            tokio::time::sleep(TICK).await;
            let late = t.elapsed().saturating_sub(TICK).as_micros() as u64;
            w.fetch_max(late, Ordering::Relaxed);
            d.fetch_add(1, Ordering::Relaxed);
        }
    });
    let start = Instant::now();
    while done.load(Ordering::Relaxed) < u64::from(ticks) && start.elapsed() < s.tokio_patience {
        std::thread::sleep(Duration::from_millis(5));
    }
    let made = done.load(Ordering::Relaxed) as u32;
    let worst = if made < ticks {
        start.elapsed()
    } else {
        Duration::from_micros(worst_us.load(Ordering::Relaxed))
    };
    stop.store(true, Ordering::Relaxed);
    rt.block_on(ticker).unwrap();
    (worst.as_secs_f64() * 1e3, made)
}

fn gort_progress(s: &Sizes, marked: bool) -> f64 {
    let rt = gort::runtime::Builder::new().build();
    let start = Instant::now();
    let block = s.block;
    let blockers: Vec<_> = (0..4 * rt.max_procs())
        .map(|_| {
            rt.spawn(move || {
                if marked {
                    gort::blocking(|| std::thread::sleep(block));
                } else {
                    std::thread::sleep(block);
                }
            })
        })
        .collect();
    let window = s.window;
    let n = rt.run(move || {
        let mut n = 0u64;
        while start.elapsed() < window {
            gort::yield_now();
            n += 1;
        }
        n
    });
    for b in blockers {
        b.join().unwrap();
    }
    n as f64 / window.as_secs_f64()
}

fn tokio_progress(s: &Sizes) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
        .unwrap();
    let start = Instant::now();
    let block = s.block;
    let blockers: Vec<_> = (0..4 * procs())
        .map(|_| rt.spawn(async move { std::thread::sleep(block) }))
        .collect();
    let window = s.window;
    let n = rt.block_on(async move {
        tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < window {
                tokio::task::yield_now().await;
                n += 1;
            }
            n
        })
        .await
        .unwrap()
    });
    rt.block_on(async {
        for b in blockers {
            b.await.unwrap();
        }
    });
    n as f64 / window.as_secs_f64()
}

/// Work between two values of the producer in `readied_consumer_lag_us`.
const PRODUCE: Duration = Duration::from_micros(5);

/// Spins for `d` without any runtime call.
fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Folds one wait into (sum µs, worst µs, count).
fn note_lag(acc: &mut (f64, f64, u64), sent: Instant) {
    let us = sent.elapsed().as_secs_f64() * 1e6;
    acc.0 += us;
    acc.1 = acc.1.max(us);
    acc.2 += 1;
}

/// Returns (average µs, worst µs) of the consumer's waits.
fn gort_consumer_lag(s: &Sizes) -> (f64, f64) {
    let rt = gort::runtime::Builder::new().build();
    let window = s.window;
    rt.run(move || {
        let (tx, rx) = gort::chan::bounded::<Instant>(1 << 20);
        let consumer = gort::spawn(move || {
            let mut acc = (0.0, 0.0, 0);
            for sent in rx.iter() {
                note_lag(&mut acc, sent);
            }
            acc
        });
        let start = Instant::now();
        while start.elapsed() < window {
            busy(PRODUCE);
            tx.send(Instant::now()).unwrap();
        }
        drop(tx);
        let (sum, worst, n) = consumer.join().unwrap();
        (sum / n.max(1) as f64, worst)
    })
}

/// Returns (average µs, worst µs) of the consumer's waits.
fn tokio_consumer_lag(s: &Sizes) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread().build().unwrap();
    let window = s.window;
    rt.block_on(async move {
        tokio::spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Instant>(1 << 20);
            let consumer = tokio::spawn(async move {
                let mut acc = (0.0, 0.0, 0);
                while let Some(sent) = rx.recv().await {
                    note_lag(&mut acc, sent);
                }
                acc
            });
            let start = Instant::now();
            while start.elapsed() < window {
                busy(PRODUCE);
                tx.send(Instant::now()).await.unwrap();
            }
            drop(tx);
            let (sum, worst, n) = consumer.await.unwrap();
            (sum / n.max(1) as f64, worst)
        })
        .await
        .unwrap()
    })
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let s = if smoke {
        Sizes {
            ticks: 3,
            window: Duration::from_millis(30),
            block: Duration::from_millis(40),
            tokio_patience: Duration::from_millis(200),
        }
    } else {
        Sizes {
            ticks: 50,
            window: Duration::from_millis(100),
            block: Duration::from_millis(200),
            tokio_patience: Duration::from_secs(3),
        }
    };
    let hogs = 2 * procs();
    println!(
        "liveness ({} procs{})",
        procs(),
        if smoke { ", smoke run" } else { "" }
    );
    println!(
        "hog_ticker_worst_late_ms gort {:.1} (hogs {hogs}, {} ticks)",
        gort_hog_ticker(&s),
        s.ticks
    );
    let (late, made) = tokio_hog_ticker(&s);
    if made < s.ticks {
        println!(
            "hog_ticker_worst_late_ms tokio starved: {made} of {} ticks in {late:.0} ms",
            s.ticks
        );
    } else {
        println!("hog_ticker_worst_late_ms tokio {late:.1}");
    }
    println!(
        "progress_during_blocking_calls_yields_per_s gort {:.0} (unmarked std::thread::sleep)",
        gort_progress(&s, false)
    );
    println!(
        "progress_during_blocking_calls_yields_per_s gort {:.0} (gort::blocking)",
        gort_progress(&s, true)
    );
    println!(
        "progress_during_blocking_calls_yields_per_s tokio {:.0}",
        tokio_progress(&s)
    );
    let (avg, worst) = gort_consumer_lag(&s);
    println!("readied_consumer_lag_us gort {avg:.0} (average; worst {worst:.0})");
    let (avg, worst) = tokio_consumer_lag(&s);
    println!("readied_consumer_lag_us tokio {avg:.0} (average; worst {worst:.0})");
    if smoke {
        println!("liveness smoke run: ok");
    }
}
