//! Benchmarks of the traced heap (`gort::gc`).
//!
//! * `binary_trees` (printed, not a criterion group): the Benchmarks Game workload exactly as the Go
//!   anchor `shared/anchors/go/bintree` runs it (stretch tree, long-lived tree, one goroutine per
//!   depth allocating and checking trees), at depth 21 by default (`GORT_BINTREE_DEPTH` overrides;
//!   12 in quick or `--test` runs). Prints wall time, collections, the longest pause (mark
//!   termination) and peak RSS, to set beside `scripts/go_anchors.sh bintree` run in the same
//!   sitting. It runs first so the peak RSS is its own.
//! * `gc_handles/clone_drop`: one clone and one drop of a handle, `Gc` against `Arc`.
//! * `gc_dumpster_workload`: dumpster's benchmark workload (its `dumpster_bench` single-threaded
//!   test, re-implemented here): a pool of 50 nodes, each a vector of handles; one million random
//!   operations — allocate a node, add a handle from one node to another, drop a pool handle,
//!   drop a node's handle — then drop everything and collect. gort's `Gc` + `GcCell` against
//!   dumpster's `sync::Gc` + `Mutex`, `Arc` + `Mutex` (leaks its cycles) and `Rc` + `RefCell`
//!   (leaks them too). 20,000 operations in quick runs.
//!
//! `GORT_BENCH_QUICK=1` shrinks every workload for smoke runs.
//!
//! Figures, beside Go's from the same sitting: `BENCHMARKS.md` (`cargo run --release -p xtask --
//! bench-report`).
//!
//! gort's pause is its mark termination (only `GcCell` writes and upgrades can wait in it); Go's
//! is stop-the-world. In binary-trees almost every node is freed promptly, when its tree's root
//! handle is dropped (the crate docs' *Prompt reclamation*): the collector runs only while the
//! heap grows, and a node is 32 bytes (a two-word header) against Go's 16. Allocation never waits
//! for the collector (it helps instead: the bench prints the mark assists), and the bench prints
//! how many objects were freed promptly.

mod common;
use common::quick;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use gort::gc::{self, Gc, GcCell};

fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

// ---- binary-trees ------------------------------------------------------------------------------

#[derive(gort::Trace)]
struct Node {
    left: Option<Gc<Node>>,
    right: Option<Gc<Node>>,
}

fn create(d: u32) -> Gc<Node> {
    if d == 0 {
        Gc::new(Node {
            left: None,
            right: None,
        })
    } else {
        Gc::new(Node {
            left: Some(create(d - 1)),
            right: Some(create(d - 1)),
        })
    }
}

fn check(n: &Node) -> u64 {
    match (&n.left, &n.right) {
        (Some(l), Some(r)) => 1 + check(l) + check(r),
        _ => 1,
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn binary_trees(n: u32) {
    let start = Instant::now();
    let (min_depth, max_depth) = (4, n.max(6));
    println!(
        "stretch tree of depth {}\t check: {}",
        max_depth + 1,
        check(&create(max_depth + 1))
    );
    let long = create(max_depth);
    let workers: Vec<_> = (min_depth..=max_depth)
        .step_by(2)
        .map(|d| {
            gort::go!(move || {
                let iters = 1u64 << (max_depth - d + min_depth);
                let mut chk = 0;
                for _ in 0..iters {
                    chk += check(&create(d));
                }
                format!("{iters}\t trees of depth {d}\t check: {chk}")
            })
        })
        .collect();
    for w in workers {
        println!("{}", w.join().unwrap());
    }
    println!(
        "long lived tree of depth {max_depth}\t check: {}",
        check(&long)
    );
    let s = gc::stats();
    println!(
        "gort binary_trees_{n}_ms {:.0} gc_cycles {} max_pause_us {} peak_rss_mib {:.0} assists {} \
         span_assists {} freed_promptly {} freed {}",
        start.elapsed().as_secs_f64() * 1000.0,
        s.collections,
        s.max_pause.as_micros(),
        peak_rss_kib() as f64 / 1024.0,
        s.assists,
        s.span_assists,
        s.freed_promptly,
        s.freed_objects,
    );
}

// ---- handles -----------------------------------------------------------------------------------

fn handles(c: &mut Criterion) {
    let mut g = c.benchmark_group("gc_handles");
    configure(&mut g);
    let gc = Gc::new(5u64);
    g.bench_function("clone_drop/gort_gc", |b| {
        b.iter(|| drop(std::hint::black_box(gc.clone())))
    });
    let arc = Arc::new(5u64);
    g.bench_function("clone_drop/arc", |b| {
        b.iter(|| drop(std::hint::black_box(arc.clone())))
    });
    g.finish();
}

fn configure(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(if quick() { 10 } else { 500 }));
    g.measurement_time(Duration::from_millis(if quick() { 50 } else { 3000 }));
}

// ---- dumpster's workload -----------------------------------------------------------------------

/// A node of the workload: a vector of handles to other nodes, behind the kind's cell.
trait Multiref: Clone {
    fn new(refs: Vec<Self>) -> Self;
    fn apply(&self, f: impl FnOnce(&mut Vec<Self>));
    fn collect();
}

#[derive(gort::Trace)]
struct GortNode(GcCell<Vec<Gc<GortNode>>>);
impl Multiref for Gc<GortNode> {
    fn new(refs: Vec<Self>) -> Self {
        Gc::new(GortNode(GcCell::new(refs)))
    }
    fn apply(&self, f: impl FnOnce(&mut Vec<Self>)) {
        f(&mut self.0.borrow_mut());
    }
    fn collect() {
        gc::collect();
    }
}

#[derive(dumpster::Trace)]
struct DumpsterNode(Mutex<Vec<dumpster::sync::Gc<DumpsterNode>>>);
impl Multiref for dumpster::sync::Gc<DumpsterNode> {
    fn new(refs: Vec<Self>) -> Self {
        dumpster::sync::Gc::new(DumpsterNode(Mutex::new(refs)))
    }
    fn apply(&self, f: impl FnOnce(&mut Vec<Self>)) {
        f(&mut self.0.lock().unwrap());
    }
    fn collect() {
        dumpster::sync::collect();
    }
}

struct ArcNode(Mutex<Vec<Arc<ArcNode>>>);
impl Multiref for Arc<ArcNode> {
    fn new(refs: Vec<Self>) -> Self {
        Arc::new(ArcNode(Mutex::new(refs)))
    }
    fn apply(&self, f: impl FnOnce(&mut Vec<Self>)) {
        f(&mut self.0.lock().unwrap());
    }
    fn collect() {}
}

struct RcNode(RefCell<Vec<Rc<RcNode>>>);
impl Multiref for Rc<RcNode> {
    fn new(refs: Vec<Self>) -> Self {
        Rc::new(RcNode(RefCell::new(refs)))
    }
    fn apply(&self, f: impl FnOnce(&mut Vec<Self>)) {
        f(&mut self.0.borrow_mut());
    }
    fn collect() {}
}

/// xorshift64: the same operation sequence for every kind.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn workload<M: Multiref>(ops: usize) -> Duration {
    let mut rng = Rng(12345);
    let mut pool: Vec<M> = (0..50).map(|_| M::new(Vec::new())).collect();
    let start = Instant::now();
    for _ in 0..ops {
        if pool.is_empty() {
            pool.push(M::new(Vec::new()));
            continue;
        }
        match rng.below(4) {
            0 => pool.push(M::new(Vec::new())),
            1 => {
                if pool.len() > 1 {
                    let (from, to) = (rng.below(pool.len()), rng.below(pool.len()));
                    let h = pool[to].clone();
                    pool[from].apply(|v| v.push(h));
                }
            }
            2 => {
                let i = rng.below(pool.len());
                pool.swap_remove(i);
            }
            _ => {
                let from = rng.below(pool.len());
                let r = &mut rng;
                pool[from].apply(|v| {
                    if !v.is_empty() {
                        let i = r.below(v.len());
                        v.swap_remove(i);
                    }
                });
            }
        }
    }
    drop(pool);
    M::collect();
    start.elapsed()
}

fn dumpster_workload(c: &mut Criterion) {
    let ops = if quick() || test_mode() {
        20_000
    } else {
        1_000_000
    };
    let mut g = c.benchmark_group("gc_dumpster_workload");
    configure(&mut g);
    g.bench_function("gort_gc", |b| {
        b.iter_custom(|n| (0..n).map(|_| workload::<Gc<GortNode>>(ops)).sum())
    });
    g.bench_function("dumpster_sync", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| workload::<dumpster::sync::Gc<DumpsterNode>>(ops))
                .sum()
        })
    });
    g.bench_function("arc_leaks_cycles", |b| {
        b.iter_custom(|n| (0..n).map(|_| workload::<Arc<ArcNode>>(ops)).sum())
    });
    g.bench_function("rc_leaks_cycles", |b| {
        b.iter_custom(|n| (0..n).map(|_| workload::<Rc<RcNode>>(ops)).sum())
    });
    g.finish();
}

criterion_group!(benches, handles, dumpster_workload);

fn main() {
    // A positional argument is criterion's filter: run binary-trees only when it matches.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && a != "--bench");
    if filter
        .as_deref()
        .map_or(true, |f| "binary_trees".contains(f))
    {
        let depth = std::env::var("GORT_BINTREE_DEPTH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick() || test_mode() { 12 } else { 21 });
        binary_trees(depth);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
