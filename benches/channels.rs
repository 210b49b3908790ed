//! Channel benchmarks: gort's channels on goroutines beside crossbeam-channel and flume on OS threads
//! and tokio's `mpsc` in async tasks.
//!
//! Two parts, all in one run. Every group sets `Throughput::Elements`, so criterion's `thrpt` line is
//! the time per element (per message, round trip or goroutine, as each group says) and the `time` line
//! is one whole run.
//!
//! # crossbeam-channel's matrix
//!
//! The shape of crossbeam-channel's own benchmark suite (`crossbeam-channel/benchmarks/`), over
//! [`MATRIX_MESSAGES`] `usize` messages. Group names are `WORKLOAD/CAPACITY`, the capacity being
//! `bounded0` (Go's unbuffered rendezvous), `bounded1`, `boundedN` (capacity = the message count)
//! or `unbounded`. Elements are messages.
//!
//! * `seq`: one thread sends every message, then receives them all. Only `boundedN` and `unbounded`:
//!   with capacity 0 or 1 the lone thread would block on its second send forever.
//! * `spsc`: one sender, one receiver (the driver), FIFO order checked.
//! * `mpsc`: [`THREADS`] senders, the driver receives.
//! * `mpmc`: [`THREADS`] senders and [`THREADS`] receivers on one channel.
//! * `select_rx`: [`THREADS`] channels, one sender on each; the driver receives every message through
//!   a select over all [`THREADS`] receivers.
//! * `select_both`: [`THREADS`] channels; [`THREADS`] senders each send through a select over all
//!   [`THREADS`] senders, and [`THREADS`] receivers each receive through a select over all
//!   [`THREADS`] receivers (crossbeam-channel's `select_both`).
//!
//! In each group: `gort` runs every sender and receiver as a goroutine, the driver being a goroutine
//! too (`Runtime::run` on one explicit runtime with a P per CPU); `crossbeam` and `flume` run them on
//! std threads started for the run (the driver is the bench thread), selecting with
//! `crossbeam_channel::select!` and `flume::Selector`; `tokio` runs them as tasks on a multi-thread
//! runtime with a worker per CPU, selecting with `tokio::select!`, the driver being a task spawned
//! from `block_on` (so it runs on a worker, as the gort driver runs on a P; the same holds for the
//! Go anchors below). tokio's cells that are missing, and why:
//!
//! * every `bounded0` cell: `tokio::sync::mpsc::channel(0)` panics; tokio has no rendezvous channel;
//! * every `mpmc` cell: `mpsc::Receiver` is not `Clone`, so a channel has one receiver;
//! * every `select_both` cell: it needs several receivers per channel (as `mpmc`), and a select over
//!   sends.
//!
//! flume has no `select_both` cells: with several threads selecting on both sides at once,
//! `flume::Selector` (0.12) can stop making progress, every thread parked in `Selector::wait` for
//! good. In a standalone test of this shape (4 selecting senders, 4 selecting receivers, 4
//! channels) it stalled in 3 of 3 runs at capacity 0 and 2 of 2 at capacity 1 (1,000 messages), and
//! in 1 of 5 runs each at capacity N and unbounded (100,000 messages); see also flume issue
//! #135 (messages lost when several threads select on one receiver).
//!
//! # The Go anchors
//!
//! The channel workloads of Go's reference programs, `shared/anchors/go/main.go`, with the same sizes
//! and shapes; run the Go side with `scripts/go_anchors.sh NAME` and compare with the goals in
//! `shared/DESIGN.md` section 4.
//!
//! * `pingpong_unbuffered`: 1M round trips over two unbuffered channels to an echo goroutine (Go:
//!   `pingPong`, `go_anchors.sh pingpong`, ns per round trip; elements are round trips). tokio: two
//!   `mpsc::channel(1)`s, its closest to unbuffered, as in DESIGN.md's table.
//! * `select2`: a goroutine sends 1M values alternately into two channels of capacity 64; the driver
//!   takes each with a two-way select (Go: `selectTwo`, `go_anchors.sh select`, ns per select).
//!   tokio: `tokio::select!` over two `mpsc::channel(64)` receivers. As in Go, neither channel is
//!   closed while the driver selects.
//! * `mpmc_4x4_cap128`, `mpmc_4x4_cap0`: 4 producers and 4 consumers on one channel of capacity 128
//!   (2M messages) or 0 (500k messages), a `WaitGroup` waiting for all eight (Go: `mpmc`,
//!   `go_anchors.sh mpmc`, ns per message). tokio: the 4 consumers share the receiver through an
//!   `Arc<tokio::sync::Mutex<Receiver>>` (DESIGN.md's "shared rx"), and `cap0` uses `mpsc::channel(1)`.
//! * `skynet_1m_channels`: skynet over 1M leaves, 1,111,111 goroutines; each goroutine sends its sum
//!   to its parent over the parent's channel of capacity 10, the root over an unbuffered one (Go:
//!   `skynet`, `go_anchors.sh skynet`, prints the whole run in ms, which is criterion's `time` line;
//!   elements are goroutines). tokio: tasks and `mpsc::channel(10)`, the root's `mpsc::channel(1)`.
//!
//! `GORT_BENCH_QUICK=1` shrinks every workload 100x and shortens the measurement, for smoke runs
//! (`GORT_BENCH_QUICK=1 cargo bench --bench channels -- --test`).

mod common;
use common::{gort_rt, quick, scaled, tokio_rt, tokio_run, Drivers, SKYNET_DIV};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use gort::sync::WaitGroup;

/// Messages per run of a matrix cell (crossbeam-channel's own suite sends 5M; fewer here keeps the
/// whole run short on two cores).
const MATRIX_MESSAGES: usize = 100_000;

/// Senders (and receivers, and channels in the select workloads) per matrix cell, as crossbeam's.
const THREADS: usize = 4;

/// Ten flat samples of whole runs, `warm_up` then `measure` seconds at full size.
fn configure(
    group: &mut BenchmarkGroup<'_, WallTime>,
    elements: usize,
    warm_up: f64,
    measure: f64,
) {
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(elements as u64));
    if quick() {
        group.warm_up_time(Duration::from_millis(100));
        group.measurement_time(Duration::from_millis(300));
    } else {
        group.warm_up_time(Duration::from_secs_f64(warm_up));
        group.measurement_time(Duration::from_secs_f64(measure));
    }
}

/// The sum of `0..m`, what a sender of `m` messages contributes.
fn sum_below(m: usize) -> usize {
    m * m.saturating_sub(1) / 2
}

// ---------------------------------------------------------------------------------------------
// The matrix: one set of workloads for every blocking implementation.

/// A channel implementation used through blocking calls, with its way of starting a concurrent
/// sender or receiver: gort on goroutines, crossbeam-channel and flume on OS threads.
trait Blocking {
    type Tx: Clone + Send + 'static;
    type Rx: Clone + Send + 'static;
    type Handle<T: Send + 'static>;

    /// `Some(cap)`: bounded (0 is a rendezvous); `None`: unbounded.
    fn channel(cap: Option<usize>) -> (Self::Tx, Self::Rx);
    fn send(tx: &Self::Tx, v: usize);
    fn recv(rx: &Self::Rx) -> usize;
    fn start<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(f: F) -> Self::Handle<T>;
    fn join<T: Send + 'static>(h: Self::Handle<T>) -> T;
    /// Receives one value through a select over all of `rxs`.
    fn select_recv(rxs: &[Self::Rx; THREADS]) -> usize;
    /// Sends `v` through a select over all of `txs`.
    fn select_send(txs: &[Self::Tx; THREADS], v: usize);
}

struct Gort;

impl Blocking for Gort {
    type Tx = gort::chan::Sender<usize>;
    type Rx = gort::chan::Receiver<usize>;
    type Handle<T: Send + 'static> = gort::JoinHandle<T>;

    fn channel(cap: Option<usize>) -> (Self::Tx, Self::Rx) {
        match cap {
            Some(cap) => gort::chan::bounded(cap),
            None => gort::chan::unbounded(),
        }
    }

    #[inline]
    fn send(tx: &Self::Tx, v: usize) {
        tx.send(v).expect("gort: every receiver is gone");
    }

    #[inline]
    fn recv(rx: &Self::Rx) -> usize {
        rx.recv().expect("gort: channel closed")
    }

    fn start<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(f: F) -> Self::Handle<T> {
        gort::spawn(f)
    }

    fn join<T: Send + 'static>(h: Self::Handle<T>) -> T {
        h.join().expect("goroutine panicked")
    }

    #[inline]
    fn select_recv(rxs: &[Self::Rx; THREADS]) -> usize {
        let res = gort::select! {
            recv(rxs[0]) -> res => res,
            recv(rxs[1]) -> res => res,
            recv(rxs[2]) -> res => res,
            recv(rxs[3]) -> res => res,
        };
        res.expect("gort: channel closed")
    }

    #[inline]
    fn select_send(txs: &[Self::Tx; THREADS], v: usize) {
        let res = gort::select! {
            send(txs[0], v) -> res => res,
            send(txs[1], v) -> res => res,
            send(txs[2], v) -> res => res,
            send(txs[3], v) -> res => res,
        };
        res.expect("gort: every receiver is gone");
    }
}

struct Crossbeam;

impl Blocking for Crossbeam {
    type Tx = crossbeam_channel::Sender<usize>;
    type Rx = crossbeam_channel::Receiver<usize>;
    type Handle<T: Send + 'static> = std::thread::JoinHandle<T>;

    fn channel(cap: Option<usize>) -> (Self::Tx, Self::Rx) {
        match cap {
            Some(cap) => crossbeam_channel::bounded(cap),
            None => crossbeam_channel::unbounded(),
        }
    }

    #[inline]
    fn send(tx: &Self::Tx, v: usize) {
        tx.send(v).expect("crossbeam: every receiver is gone");
    }

    #[inline]
    fn recv(rx: &Self::Rx) -> usize {
        rx.recv().expect("crossbeam: channel closed")
    }

    fn start<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(f: F) -> Self::Handle<T> {
        std::thread::spawn(f)
    }

    fn join<T: Send + 'static>(h: Self::Handle<T>) -> T {
        h.join().expect("thread panicked")
    }

    #[inline]
    fn select_recv(rxs: &[Self::Rx; THREADS]) -> usize {
        let res = crossbeam_channel::select! {
            recv(rxs[0]) -> res => res,
            recv(rxs[1]) -> res => res,
            recv(rxs[2]) -> res => res,
            recv(rxs[3]) -> res => res,
        };
        res.expect("crossbeam: channel closed")
    }

    #[inline]
    fn select_send(txs: &[Self::Tx; THREADS], v: usize) {
        let res = crossbeam_channel::select! {
            send(txs[0], v) -> res => res,
            send(txs[1], v) -> res => res,
            send(txs[2], v) -> res => res,
            send(txs[3], v) -> res => res,
        };
        res.expect("crossbeam: every receiver is gone");
    }
}

struct Flume;

impl Blocking for Flume {
    type Tx = flume::Sender<usize>;
    type Rx = flume::Receiver<usize>;
    type Handle<T: Send + 'static> = std::thread::JoinHandle<T>;

    fn channel(cap: Option<usize>) -> (Self::Tx, Self::Rx) {
        match cap {
            Some(cap) => flume::bounded(cap),
            None => flume::unbounded(),
        }
    }

    #[inline]
    fn send(tx: &Self::Tx, v: usize) {
        tx.send(v).expect("flume: every receiver is gone");
    }

    #[inline]
    fn recv(rx: &Self::Rx) -> usize {
        rx.recv().expect("flume: channel closed")
    }

    fn start<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(f: F) -> Self::Handle<T> {
        std::thread::spawn(f)
    }

    fn join<T: Send + 'static>(h: Self::Handle<T>) -> T {
        h.join().expect("thread panicked")
    }

    #[inline]
    fn select_recv(rxs: &[Self::Rx; THREADS]) -> usize {
        flume::Selector::new()
            .recv(&rxs[0], |res| res)
            .recv(&rxs[1], |res| res)
            .recv(&rxs[2], |res| res)
            .recv(&rxs[3], |res| res)
            .wait()
            .expect("flume: channel closed")
    }

    #[inline]
    fn select_send(txs: &[Self::Tx; THREADS], v: usize) {
        flume::Selector::new()
            .send(&txs[0], v, |res| res)
            .send(&txs[1], v, |res| res)
            .send(&txs[2], v, |res| res)
            .send(&txs[3], v, |res| res)
            .wait()
            .expect("flume: every receiver is gone");
    }
}

fn seq<B: Blocking>(cap: Option<usize>, n: usize) {
    let (tx, rx) = B::channel(cap);
    for i in 0..n {
        B::send(&tx, i);
    }
    for i in 0..n {
        assert_eq!(B::recv(&rx), i, "seq: out of order");
    }
}

fn spsc<B: Blocking>(cap: Option<usize>, n: usize) {
    let (tx, rx) = B::channel(cap);
    let sender = B::start(move || {
        for i in 0..n {
            B::send(&tx, i);
        }
    });
    for i in 0..n {
        assert_eq!(B::recv(&rx), i, "spsc: out of order");
    }
    B::join(sender);
}

/// [`THREADS`] senders of `n / THREADS` messages each on `tx`.
fn start_senders<B: Blocking>(tx: &B::Tx, n: usize) -> Vec<B::Handle<()>> {
    (0..THREADS)
        .map(|_| {
            let tx = tx.clone();
            B::start(move || {
                for i in 0..n / THREADS {
                    B::send(&tx, i);
                }
            })
        })
        .collect()
}

fn mpsc<B: Blocking>(cap: Option<usize>, n: usize) {
    let (tx, rx) = B::channel(cap);
    let senders = start_senders::<B>(&tx, n);
    let sum: usize = (0..n).map(|_| B::recv(&rx)).sum();
    senders.into_iter().for_each(B::join);
    assert_eq!(sum, THREADS * sum_below(n / THREADS), "mpsc: lost messages");
}

fn mpmc<B: Blocking>(cap: Option<usize>, n: usize) {
    let (tx, rx) = B::channel(cap);
    let senders = start_senders::<B>(&tx, n);
    let receivers: Vec<_> = (0..THREADS)
        .map(|_| {
            let rx = rx.clone();
            B::start(move || (0..n / THREADS).map(|_| B::recv(&rx)).sum::<usize>())
        })
        .collect();
    senders.into_iter().for_each(B::join);
    let sum: usize = receivers.into_iter().map(B::join).sum();
    assert_eq!(sum, THREADS * sum_below(n / THREADS), "mpmc: lost messages");
}

/// [`THREADS`] channels. The caller keeps its ends alive for the whole run, so no channel closes
/// while others still carry messages (a closed channel is always ready in a select).
fn channels<B: Blocking>(cap: Option<usize>) -> ([B::Tx; THREADS], [B::Rx; THREADS]) {
    let pairs: [(B::Tx, B::Rx); THREADS] = std::array::from_fn(|_| B::channel(cap));
    let txs = std::array::from_fn(|i| pairs[i].0.clone());
    let rxs = pairs.map(|(_, rx)| rx);
    (txs, rxs)
}

fn select_rx<B: Blocking>(cap: Option<usize>, n: usize) {
    let (txs, rxs) = channels::<B>(cap);
    let senders: Vec<_> = txs
        .iter()
        .map(|tx| {
            let tx = tx.clone();
            B::start(move || {
                for i in 0..n / THREADS {
                    B::send(&tx, i);
                }
            })
        })
        .collect();
    let sum: usize = (0..n).map(|_| B::select_recv(&rxs)).sum();
    senders.into_iter().for_each(B::join);
    assert_eq!(
        sum,
        THREADS * sum_below(n / THREADS),
        "select_rx: lost messages"
    );
}

fn select_both<B: Blocking>(cap: Option<usize>, n: usize) {
    let (txs, rxs) = channels::<B>(cap);
    let senders: Vec<_> = (0..THREADS)
        .map(|_| {
            let txs = txs.clone();
            B::start(move || {
                for i in 0..n / THREADS {
                    B::select_send(&txs, i);
                }
            })
        })
        .collect();
    let receivers: Vec<_> = (0..THREADS)
        .map(|_| {
            let rxs = rxs.clone();
            B::start(move || {
                (0..n / THREADS)
                    .map(|_| B::select_recv(&rxs))
                    .sum::<usize>()
            })
        })
        .collect();
    senders.into_iter().for_each(B::join);
    let sum: usize = receivers.into_iter().map(B::join).sum();
    assert_eq!(
        sum,
        THREADS * sum_below(n / THREADS),
        "select_both: lost messages"
    );
}

// tokio's side of the matrix: its bounded and unbounded mpsc behind one type.

#[derive(Clone)]
enum TokioTx {
    Bounded(tokio::sync::mpsc::Sender<usize>),
    Unbounded(tokio::sync::mpsc::UnboundedSender<usize>),
}

enum TokioRx {
    Bounded(tokio::sync::mpsc::Receiver<usize>),
    Unbounded(tokio::sync::mpsc::UnboundedReceiver<usize>),
}

impl TokioTx {
    async fn send(&self, v: usize) {
        match self {
            TokioTx::Bounded(tx) => tx.send(v).await.expect("tokio: receiver gone"),
            TokioTx::Unbounded(tx) => tx.send(v).expect("tokio: receiver gone"),
        }
    }
}

impl TokioRx {
    /// Cancel-safe (tokio's `recv` is), so it can be a `tokio::select!` branch.
    async fn recv(&mut self) -> usize {
        match self {
            TokioRx::Bounded(rx) => rx.recv().await,
            TokioRx::Unbounded(rx) => rx.recv().await,
        }
        .expect("tokio: channel closed")
    }
}

fn tokio_channel(cap: Option<usize>) -> (TokioTx, TokioRx) {
    match cap {
        Some(0) => unreachable!("tokio's mpsc has no rendezvous channel"),
        Some(cap) => {
            let (tx, rx) = tokio::sync::mpsc::channel(cap);
            (TokioTx::Bounded(tx), TokioRx::Bounded(rx))
        }
        None => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (TokioTx::Unbounded(tx), TokioRx::Unbounded(rx))
        }
    }
}

async fn tokio_seq(cap: Option<usize>, n: usize) {
    let (tx, mut rx) = tokio_channel(cap);
    for i in 0..n {
        tx.send(i).await;
    }
    for i in 0..n {
        assert_eq!(rx.recv().await, i, "seq: out of order");
    }
}

async fn tokio_spsc(cap: Option<usize>, n: usize) {
    let (tx, mut rx) = tokio_channel(cap);
    let sender = tokio::spawn(async move {
        for i in 0..n {
            tx.send(i).await;
        }
    });
    for i in 0..n {
        assert_eq!(rx.recv().await, i, "spsc: out of order");
    }
    sender.await.expect("sender task panicked");
}

fn tokio_start_senders(tx: &TokioTx, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..THREADS)
        .map(|_| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..n / THREADS {
                    tx.send(i).await;
                }
            })
        })
        .collect()
}

async fn tokio_mpsc(cap: Option<usize>, n: usize) {
    let (tx, mut rx) = tokio_channel(cap);
    let senders = tokio_start_senders(&tx, n);
    let mut sum = 0;
    for _ in 0..n {
        sum += rx.recv().await;
    }
    for s in senders {
        s.await.expect("sender task panicked");
    }
    assert_eq!(sum, THREADS * sum_below(n / THREADS), "mpsc: lost messages");
}

async fn tokio_select_rx(cap: Option<usize>, n: usize) {
    let pairs: [(TokioTx, TokioRx); THREADS] = std::array::from_fn(|_| tokio_channel(cap));
    // Kept until the end, as in `channels`.
    let txs: Vec<TokioTx> = pairs.iter().map(|(tx, _)| tx.clone()).collect();
    let [mut r0, mut r1, mut r2, mut r3] = pairs.map(|(_, rx)| rx);
    let senders: Vec<_> = txs
        .iter()
        .map(|tx| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..n / THREADS {
                    tx.send(i).await;
                }
            })
        })
        .collect();
    let mut sum = 0;
    for _ in 0..n {
        sum += tokio::select! {
            v = r0.recv() => v,
            v = r1.recv() => v,
            v = r2.recv() => v,
            v = r3.recv() => v,
        };
    }
    for s in senders {
        s.await.expect("sender task panicked");
    }
    drop(txs);
    assert_eq!(
        sum,
        THREADS * sum_below(n / THREADS),
        "select_rx: lost messages"
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Seq,
    Spsc,
    Mpsc,
    Mpmc,
    SelectRx,
    SelectBoth,
}

impl Workload {
    const ALL: [Workload; 6] = [
        Workload::Seq,
        Workload::Spsc,
        Workload::Mpsc,
        Workload::Mpmc,
        Workload::SelectRx,
        Workload::SelectBoth,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Seq => "seq",
            Workload::Spsc => "spsc",
            Workload::Mpsc => "mpsc",
            Workload::Mpmc => "mpmc",
            Workload::SelectRx => "select_rx",
            Workload::SelectBoth => "select_both",
        }
    }

    fn run<B: Blocking>(self, cap: Option<usize>, n: usize) {
        match self {
            Workload::Seq => seq::<B>(cap, n),
            Workload::Spsc => spsc::<B>(cap, n),
            Workload::Mpsc => mpsc::<B>(cap, n),
            Workload::Mpmc => mpmc::<B>(cap, n),
            Workload::SelectRx => select_rx::<B>(cap, n),
            Workload::SelectBoth => select_both::<B>(cap, n),
        }
    }

    /// Whether tokio's mpsc can run this cell (see the header).
    fn tokio_can(self, cap: Cap) -> bool {
        cap != Cap::Zero
            && matches!(
                self,
                Workload::Seq | Workload::Spsc | Workload::Mpsc | Workload::SelectRx
            )
    }

    async fn run_tokio(self, cap: Option<usize>, n: usize) {
        match self {
            Workload::Seq => tokio_seq(cap, n).await,
            Workload::Spsc => tokio_spsc(cap, n).await,
            Workload::Mpsc => tokio_mpsc(cap, n).await,
            Workload::SelectRx => tokio_select_rx(cap, n).await,
            Workload::Mpmc | Workload::SelectBoth => {
                unreachable!("tokio cannot run {}", self.name())
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cap {
    Zero,
    One,
    N,
    Unbounded,
}

impl Cap {
    const ALL: [Cap; 4] = [Cap::Zero, Cap::One, Cap::N, Cap::Unbounded];

    fn name(self) -> &'static str {
        match self {
            Cap::Zero => "bounded0",
            Cap::One => "bounded1",
            Cap::N => "boundedN",
            Cap::Unbounded => "unbounded",
        }
    }

    /// The capacity for a run of `n` messages (`None`: unbounded).
    fn of(self, n: usize) -> Option<usize> {
        match self {
            Cap::Zero => Some(0),
            Cap::One => Some(1),
            Cap::N => Some(n),
            Cap::Unbounded => None,
        }
    }
}

fn matrix(c: &mut Criterion) {
    let n = scaled(MATRIX_MESSAGES);
    let gort_rt = gort_rt();
    let rt = tokio_rt(Drivers::None);
    for workload in Workload::ALL {
        for cap in Cap::ALL {
            // One thread alone cannot fill a channel of capacity 0 or 1 with two messages.
            if workload == Workload::Seq && matches!(cap, Cap::Zero | Cap::One) {
                continue;
            }
            let capacity = cap.of(n);
            let mut group = c.benchmark_group(format!("{}/{}", workload.name(), cap.name()));
            configure(&mut group, n, 0.3, 1.2);
            group.bench_function("gort", |b| {
                b.iter(|| gort_rt.run(move || workload.run::<Gort>(capacity, n)))
            });
            group.bench_function("crossbeam", |b| {
                b.iter(|| workload.run::<Crossbeam>(capacity, n))
            });
            if workload != Workload::SelectBoth {
                group.bench_function("flume", |b| b.iter(|| workload.run::<Flume>(capacity, n)));
            }
            if workload.tokio_can(cap) {
                group.bench_function("tokio", |b| {
                    b.iter(|| tokio_run(&rt, workload.run_tokio(capacity, n)))
                });
            }
            group.finish();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pingpong_unbuffered

fn gort_pingpong(n: usize) {
    let (a_tx, a_rx) = gort::chan::bounded::<usize>(0);
    let (b_tx, b_rx) = gort::chan::bounded::<usize>(0);
    let echo = gort::spawn(move || {
        for v in a_rx.iter() {
            b_tx.send(v).expect("pingpong: driver gone");
        }
    });
    for i in 0..n {
        a_tx.send(i).expect("pingpong: echo gone");
        assert_eq!(b_rx.recv().expect("pingpong: echo closed"), i);
    }
    drop(a_tx);
    echo.join().expect("echo goroutine panicked");
}

async fn tokio_pingpong(n: usize) {
    let (a_tx, mut a_rx) = tokio::sync::mpsc::channel::<usize>(1);
    let (b_tx, mut b_rx) = tokio::sync::mpsc::channel::<usize>(1);
    let echo = tokio::spawn(async move {
        while let Some(v) = a_rx.recv().await {
            b_tx.send(v).await.expect("pingpong: driver gone");
        }
    });
    for i in 0..n {
        a_tx.send(i).await.expect("pingpong: echo gone");
        assert_eq!(b_rx.recv().await.expect("pingpong: echo closed"), i);
    }
    drop(a_tx);
    echo.await.expect("echo task panicked");
}

fn pingpong_unbuffered(c: &mut Criterion) {
    let n = scaled(1_000_000);
    let gort_rt = gort_rt();
    let rt = tokio_rt(Drivers::None);
    let mut group = c.benchmark_group("pingpong_unbuffered");
    configure(&mut group, n, 1.0, 3.0);
    group.bench_function("gort", |b| b.iter(|| gort_rt.run(move || gort_pingpong(n))));
    group.bench_function("tokio", |b| b.iter(|| tokio_run(&rt, tokio_pingpong(n))));
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// select2

fn gort_select2(n: usize) {
    let (a_tx, a_rx) = gort::chan::bounded::<usize>(64);
    let (b_tx, b_rx) = gort::chan::bounded::<usize>(64);
    // Go's channels stay open: keep a sender of each until the driver is done.
    let keep = (a_tx.clone(), b_tx.clone());
    let producer = gort::spawn(move || {
        for i in 0..n {
            let tx = if i % 2 == 0 { &a_tx } else { &b_tx };
            tx.send(i).expect("select2: driver gone");
        }
    });
    let mut sum = 0;
    for _ in 0..n {
        let res = gort::select! {
            recv(a_rx) -> res => res,
            recv(b_rx) -> res => res,
        };
        sum += res.expect("select2: channel closed");
    }
    producer.join().expect("producer goroutine panicked");
    drop(keep);
    assert_eq!(sum, sum_below(n), "select2: lost messages");
}

async fn tokio_select2(n: usize) {
    let (a_tx, mut a_rx) = tokio::sync::mpsc::channel::<usize>(64);
    let (b_tx, mut b_rx) = tokio::sync::mpsc::channel::<usize>(64);
    let keep = (a_tx.clone(), b_tx.clone());
    let producer = tokio::spawn(async move {
        for i in 0..n {
            let tx = if i % 2 == 0 { &a_tx } else { &b_tx };
            tx.send(i).await.expect("select2: driver gone");
        }
    });
    let mut sum = 0;
    for _ in 0..n {
        let res = tokio::select! {
            res = a_rx.recv() => res,
            res = b_rx.recv() => res,
        };
        sum += res.expect("select2: channel closed");
    }
    producer.await.expect("producer task panicked");
    drop(keep);
    assert_eq!(sum, sum_below(n), "select2: lost messages");
}

fn select2(c: &mut Criterion) {
    let n = scaled(1_000_000);
    let gort_rt = gort_rt();
    let rt = tokio_rt(Drivers::None);
    let mut group = c.benchmark_group("select2");
    configure(&mut group, n, 1.0, 3.0);
    group.bench_function("gort", |b| b.iter(|| gort_rt.run(move || gort_select2(n))));
    group.bench_function("tokio", |b| b.iter(|| tokio_run(&rt, tokio_select2(n))));
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// mpmc_4x4_cap128, mpmc_4x4_cap0

const MPMC_PRODUCERS: usize = 4;
const MPMC_CONSUMERS: usize = 4;

fn gort_mpmc_4x4(n: usize, cap: usize) {
    let (tx, rx) = gort::chan::bounded::<usize>(cap);
    let wg = WaitGroup::new();
    wg.add(MPMC_PRODUCERS + MPMC_CONSUMERS);
    for _ in 0..MPMC_PRODUCERS {
        let (tx, wg) = (tx.clone(), wg.clone());
        gort::spawn(move || {
            for i in 0..n / MPMC_PRODUCERS {
                tx.send(i).expect("mpmc: every consumer is gone");
            }
            wg.done();
        });
    }
    for _ in 0..MPMC_CONSUMERS {
        let (rx, wg) = (rx.clone(), wg.clone());
        gort::spawn(move || {
            for _ in 0..n / MPMC_CONSUMERS {
                rx.recv().expect("mpmc: channel closed");
            }
            wg.done();
        });
    }
    wg.wait();
}

/// tokio's mpsc has one receiver: the consumers take turns on it behind an async mutex. tokio has
/// no rendezvous channel, so `cap` 0 becomes 1.
async fn tokio_mpmc_4x4(n: usize, cap: usize) {
    let (tx, rx) = tokio::sync::mpsc::channel::<usize>(cap.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut tasks = Vec::with_capacity(MPMC_PRODUCERS + MPMC_CONSUMERS);
    for _ in 0..MPMC_PRODUCERS {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / MPMC_PRODUCERS {
                tx.send(i).await.expect("mpmc: receiver gone");
            }
        }));
    }
    for _ in 0..MPMC_CONSUMERS {
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / MPMC_CONSUMERS {
                rx.lock().await.recv().await.expect("mpmc: channel closed");
            }
        }));
    }
    for t in tasks {
        t.await.expect("mpmc task panicked");
    }
}

fn mpmc_4x4(c: &mut Criterion) {
    let gort_rt = gort_rt();
    let rt = tokio_rt(Drivers::None);
    for (name, n, cap) in [
        ("mpmc_4x4_cap128", scaled(2_000_000), 128),
        ("mpmc_4x4_cap0", scaled(500_000), 0),
    ] {
        let mut group = c.benchmark_group(name);
        configure(&mut group, n, 1.0, 3.0);
        group.bench_function("gort", |b| {
            b.iter(|| gort_rt.run(move || gort_mpmc_4x4(n, cap)))
        });
        group.bench_function("tokio", |b| {
            b.iter(|| tokio_run(&rt, tokio_mpmc_4x4(n, cap)))
        });
        group.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// skynet_1m_channels

/// Go's `skynet`: the leaves send their number, the others the sum of their children's.
fn gort_skynet(parent: gort::chan::Sender<usize>, num: usize, size: usize) {
    if size == 1 {
        parent.send(num).expect("skynet: parent gone");
        return;
    }
    let (tx, rx) = gort::chan::bounded(SKYNET_DIV);
    let sub = size / SKYNET_DIV;
    for i in 0..SKYNET_DIV {
        let tx = tx.clone();
        gort::spawn(move || gort_skynet(tx, num + i * sub, sub));
    }
    let sum = (0..SKYNET_DIV)
        .map(|_| rx.recv().expect("skynet: children gone"))
        .sum();
    parent.send(sum).expect("skynet: parent gone");
}

fn gort_skynet_root(size: usize) -> usize {
    let (tx, rx) = gort::chan::bounded(0);
    gort::spawn(move || gort_skynet(tx, 0, size));
    rx.recv().expect("skynet: root gone")
}

fn tokio_skynet(
    parent: tokio::sync::mpsc::Sender<usize>,
    num: usize,
    size: usize,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if size == 1 {
            parent.send(num).await.expect("skynet: parent gone");
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(SKYNET_DIV);
        let sub = size / SKYNET_DIV;
        for i in 0..SKYNET_DIV {
            tokio::spawn(tokio_skynet(tx.clone(), num + i * sub, sub));
        }
        let mut sum = 0;
        for _ in 0..SKYNET_DIV {
            sum += rx.recv().await.expect("skynet: children gone");
        }
        parent.send(sum).await.expect("skynet: parent gone");
    })
}

async fn tokio_skynet_root(size: usize) -> usize {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(tokio_skynet(tx, 0, size));
    rx.recv().await.expect("skynet: root gone")
}

/// Goroutines a skynet of `size` leaves starts, the root included.
fn skynet_goroutines(size: usize) -> usize {
    if size == 1 {
        1
    } else {
        1 + SKYNET_DIV * skynet_goroutines(size / SKYNET_DIV)
    }
}

fn skynet_1m_channels(c: &mut Criterion) {
    let size = scaled(1_000_000);
    let expected = sum_below(size);
    let gort_rt = gort_rt();
    let rt = tokio_rt(Drivers::None);
    let mut group = c.benchmark_group("skynet_1m_channels");
    configure(&mut group, skynet_goroutines(size), 1.0, 5.0);
    group.bench_function("gort", |b| {
        b.iter(|| assert_eq!(gort_rt.run(move || gort_skynet_root(size)), expected))
    });
    group.bench_function("tokio", |b| {
        b.iter(|| assert_eq!(tokio_run(&rt, tokio_skynet_root(size)), expected))
    });
    group.finish();
}

criterion_group!(
    benches,
    pingpong_unbuffered,
    select2,
    mpmc_4x4,
    skynet_1m_channels,
    matrix
);
criterion_main!(benches);
