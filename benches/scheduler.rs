//! Scheduler benchmarks: gort against a multi-thread tokio runtime, workload by workload.
//!
//! Each workload is one criterion group with two functions side by side, `gort` and `tokio` (tokio
//! with one worker thread per CPU, built once per group). The workloads mirror Go's reference
//! programs in `shared/anchors/go/main.go` (run them with `scripts/go_anchors.sh NAME`), and the
//! goals are the "Numbers to beat" table in `shared/DESIGN.md` section 4. Every group sets
//! `Throughput::Elements`, so criterion's `thrpt` line gives the time per element that the Go
//! anchor prints; the `time` line is one whole run.
//!
//! * `spawn_1m`: spawn 1M trivial goroutines that each call `done()` on one `WaitGroup`, then wait.
//!   Go: `spawnMany` (`go_anchors.sh spawn`, prints ns per goroutine). tokio: 1M `tokio::spawn`ed
//!   tasks decrementing an atomic counter; the last one notifies the driver.
//! * `skynet_1m`: skynet over 1M leaves (1,111,111 goroutines): each parent spawns 10 children and
//!   sums their `join()` results. Go: `skynet` (`go_anchors.sh skynet`, prints the total in ms,
//!   which is criterion's `time` line; elements here are goroutines). Go's version hands results
//!   back over channels; gort has no channels yet, so joins are used here.
//! * `chained_spawn_1m`: goroutine n spawns goroutine n-1 and returns, down to 0, which signals
//!   completion (Go: `chained`, `go_anchors.sh chained`, ns per spawn). gort signals through a
//!   `WaitGroup` of 1, tokio through a oneshot.
//! * `yield_1000x1000`: 1000 goroutines each yield 1000 times, then `done()` (Go: `yieldMany`,
//!   `go_anchors.sh yield`, ns per yield). tokio: `tokio::task::yield_now().await`.
//!
//! As in Go, where `main` is itself a goroutine, every driver runs on a runtime thread: gort's
//! through `Runtime::run` (a goroutine), tokio's as a task spawned from `rt.block_on` (spawns from
//! a worker thread go to its local queue, as gort's and Go's do, not to the injection queue).
//!
//! `GORT_BENCH_QUICK=1` shrinks every workload 100x and shortens the measurement, for smoke runs
//! (`GORT_BENCH_QUICK=1 cargo bench --bench scheduler -- --test`).

mod common;
use common::{quick, scaled, tokio_rt, tokio_run, Drivers, SKYNET_DIV};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use gort::runtime::Runtime;
use gort::sync::WaitGroup;

/// Ten flat samples of whole runs; `secs` is the measurement time at full size (about ten runs).
fn configure(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    elements: usize,
    secs: u64,
) {
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(elements as u64));
    if quick() {
        group.warm_up_time(Duration::from_millis(200));
        group.measurement_time(Duration::from_secs(1));
    } else {
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(secs));
    }
}

/// A countdown for tokio tasks: the task that takes it to zero wakes the waiter.
struct Countdown {
    left: AtomicUsize,
    notify: tokio::sync::Notify,
}

impl Countdown {
    fn new(n: usize) -> Arc<Countdown> {
        Arc::new(Countdown {
            left: AtomicUsize::new(n),
            notify: tokio::sync::Notify::new(),
        })
    }

    fn done(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            // `notify_one` stores a permit if the waiter has not started waiting yet.
            self.notify.notify_one();
        }
    }

    async fn wait(&self) {
        while self.left.load(Ordering::Acquire) != 0 {
            self.notify.notified().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// spawn_1m

fn gort_spawn_many(n: usize) {
    let wg = WaitGroup::new();
    wg.add(n);
    for _ in 0..n {
        let wg = wg.clone();
        gort::spawn(move || wg.done());
    }
    wg.wait();
}

async fn tokio_spawn_many(n: usize) {
    let cd = Countdown::new(n);
    for _ in 0..n {
        let cd = cd.clone();
        tokio::spawn(async move { cd.done() });
    }
    cd.wait().await;
}

fn spawn_1m(c: &mut Criterion) {
    let n = scaled(1_000_000);
    let gort_rt = Runtime::global();
    let rt = tokio_rt(Drivers::None);
    let mut group = c.benchmark_group("spawn_1m");
    configure(&mut group, n, 8);
    group.bench_function("gort", |b| {
        b.iter(|| gort_rt.run(move || gort_spawn_many(n)))
    });
    group.bench_function("tokio", |b| b.iter(|| tokio_run(&rt, tokio_spawn_many(n))));
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// skynet_1m

fn gort_skynet(num: usize, size: usize) -> usize {
    if size == 1 {
        return num;
    }
    let sub = size / SKYNET_DIV;
    let children: [gort::JoinHandle<usize>; SKYNET_DIV] =
        std::array::from_fn(|i| gort::spawn(move || gort_skynet(num + i * sub, sub)));
    children
        .into_iter()
        .map(|h| h.join().expect("skynet child panicked"))
        .sum()
}

fn tokio_skynet(num: usize, size: usize) -> Pin<Box<dyn Future<Output = usize> + Send>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let sub = size / SKYNET_DIV;
        let children: [tokio::task::JoinHandle<usize>; SKYNET_DIV] =
            std::array::from_fn(|i| tokio::spawn(tokio_skynet(num + i * sub, sub)));
        let mut sum = 0;
        for h in children {
            sum += h.await.expect("skynet child panicked");
        }
        sum
    })
}

/// Goroutines a skynet of `size` leaves starts, the root included.
fn skynet_goroutines(size: usize) -> usize {
    if size == 1 {
        1
    } else {
        1 + SKYNET_DIV * skynet_goroutines(size / SKYNET_DIV)
    }
}

fn skynet_1m(c: &mut Criterion) {
    let size = scaled(1_000_000);
    let expected = size * (size - 1) / 2;
    let gort_rt = Runtime::global();
    let rt = tokio_rt(Drivers::None);
    let mut group = c.benchmark_group("skynet_1m");
    configure(&mut group, skynet_goroutines(size), 12);
    group.bench_function("gort", |b| {
        b.iter(|| assert_eq!(gort_rt.run(move || gort_skynet(0, size)), expected))
    });
    group.bench_function("tokio", |b| {
        b.iter(|| assert_eq!(tokio_run(&rt, tokio_skynet(0, size)), expected))
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// chained_spawn_1m

/// Spawns the next link and returns, as Go's `chained`; link 0 signals.
fn gort_chain(n: usize, wg: WaitGroup) {
    if n == 0 {
        wg.done();
        return;
    }
    gort::spawn(move || gort_chain(n - 1, wg));
}

fn gort_chained(depth: usize) {
    let wg = WaitGroup::new();
    wg.add(1);
    let link = wg.clone();
    gort::spawn(move || gort_chain(depth, link));
    wg.wait();
}

fn tokio_chain(n: usize, done: tokio::sync::oneshot::Sender<()>) {
    if n == 0 {
        let _ = done.send(());
        return;
    }
    tokio::spawn(async move { tokio_chain(n - 1, done) });
}

async fn tokio_chained(depth: usize) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move { tokio_chain(depth, tx) });
    rx.await.expect("chain dropped its sender");
}

fn chained_spawn_1m(c: &mut Criterion) {
    let depth = scaled(1_000_000);
    let gort_rt = Runtime::global();
    let rt = tokio_rt(Drivers::None);
    let mut group = c.benchmark_group("chained_spawn_1m");
    configure(&mut group, depth, 5);
    group.bench_function("gort", |b| {
        b.iter(|| gort_rt.run(move || gort_chained(depth)))
    });
    group.bench_function("tokio", |b| b.iter(|| tokio_run(&rt, tokio_chained(depth))));
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// yield_1000x1000

fn gort_yield_many(tasks: usize, yields: usize) {
    let wg = WaitGroup::new();
    wg.add(tasks);
    for _ in 0..tasks {
        let wg = wg.clone();
        gort::spawn(move || {
            for _ in 0..yields {
                gort::yield_now();
            }
            wg.done();
        });
    }
    wg.wait();
}

async fn tokio_yield_many(tasks: usize, yields: usize) {
    let cd = Countdown::new(tasks);
    for _ in 0..tasks {
        let cd = cd.clone();
        tokio::spawn(async move {
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            cd.done();
        });
    }
    cd.wait().await;
}

fn yield_1000x1000(c: &mut Criterion) {
    // 100x fewer yields in quick mode: 100 tasks x 100 yields.
    let (tasks, yields) = if quick() { (100, 100) } else { (1000, 1000) };
    let gort_rt = Runtime::global();
    let rt = tokio_rt(Drivers::None);
    let mut group = c.benchmark_group("yield_1000x1000");
    configure(&mut group, tasks * yields, 5);
    group.bench_function("gort", |b| {
        b.iter(|| gort_rt.run(move || gort_yield_many(tasks, yields)))
    });
    group.bench_function("tokio", |b| {
        b.iter(|| tokio_run(&rt, tokio_yield_many(tasks, yields)))
    });
    group.finish();
}

criterion_group!(
    benches,
    spawn_1m,
    skynet_1m,
    chained_spawn_1m,
    yield_1000x1000
);
criterion_main!(benches);
