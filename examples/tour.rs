//! A tour of gort: what the runtime does, chapter by chapter.
//!
//! `cargo run --release --example tour`
//!
//! Chapter 1 — goroutines: 100,000 stackful goroutines parked at once, then skynet over a million
//! goroutines, and the scheduler's own view of it all.

use std::time::Instant;

use gort::sync::WaitGroup;

/// Skynet: each goroutine spawns 10 children and sums what they return, down to 1M leaves.
fn skynet(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let sub = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| gort::go!(skynet(num + i * sub, sub)))
        .collect();
    children
        .into_iter()
        .map(|h| h.join().expect("skynet child panicked"))
        .sum()
}

#[gort::main]
fn main() {
    println!("== gort tour ==");
    println!(
        "{} procs, goroutine {} is main",
        gort::runtime::max_procs(),
        gort::runtime::current_id().unwrap()
    );

    println!("\n-- chapter 1: goroutines --");
    let n = 100_000;
    let parked = WaitGroup::new();
    let release = WaitGroup::new();
    parked.add(n);
    release.add(1);
    let start = Instant::now();
    for _ in 0..n {
        let (parked, release) = (parked.clone(), release.clone());
        gort::go!(move || {
            parked.done();
            release.wait(); // blocks: only this goroutine waits, its thread runs others
        });
    }
    parked.wait();
    println!(
        "spawned {n} goroutines, all parked, in {:.1} ms: num_goroutine() = {}",
        start.elapsed().as_secs_f64() * 1e3,
        gort::runtime::num_goroutine()
    );
    release.done();

    let start = Instant::now();
    let sum = skynet(0, 1_000_000);
    println!(
        "skynet over 1,000,000 goroutines: sum {sum} in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    println!("runtime stats: {}", gort::runtime::stats());
}
