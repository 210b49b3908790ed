//! Memory per parked goroutine, at 100k and at 1M parked goroutines.
//!
//! ```text
//! cargo run --release --example mem_probe            # both sizes, each in a fresh process
//! cargo run --release --example mem_probe -- 250000  # one size, in this process
//! ```
//!
//! For each size N the probe starts the runtime (one trivial goroutine, so its threads and their
//! stacks exist before the baseline, as Go's runtime does before `main`), reads `VmRSS` from
//! `/proc/self/status`, spawns N goroutines from a goroutine (as Go's `main` does), each of which
//! calls `done()` on a `parked` WaitGroup and then parks on `release.wait()`, waits until all N
//! have parked, reads `VmRSS` again and prints
//! `parked_goroutines=N rss_per_goroutine_bytes=(after - before) / N`, then
//! `gort::runtime::stats()`. Then it releases them and waits for them to exit.
//!
//! It also prints the growth of `VmPTE` per goroutine: the kernel's page tables for the stacks.
//! They are not part of `VmRSS`, but they are memory the goroutines cost: with stacks a few hundred
//! KiB apart in address space, every few parked goroutines need a page-table page of their own.
//!
//! Why a fresh process per size: gort never hands stack memory back to the OS on the exit path (it
//! keeps warm stacks for reuse), and the allocator keeps freed heap too. Measuring 1M in the same
//! process after a 100k batch would reuse the 100k batch's committed pages without counting them
//! and under-report. A fresh process counts everything the N goroutines cost: each stack's touched
//! pages, the goroutine records, the parked wakers and the WaitGroup clones they hold (the analogue
//! of Go's goroutine + sudog for `<-block`).
//!
//! Compare with Go's figure from `scripts/go_anchors.sh mem` (`parked_goroutine_bytes`), which is
//! the growth of `MemStats.Sys` (memory obtained from the OS, a little above what is resident) over
//! 100k goroutines parked on a channel receive; see the table in `shared/DESIGN.md` section 4.

use std::process::Command;
use std::time::Instant;

use gort::runtime::Runtime;
use gort::sync::WaitGroup;

const SIZES: [usize; 2] = [100_000, 1_000_000];

/// A `/proc/self/status` field given in kB (`VmRSS`, `VmPTE`, ...), in bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| {
            l.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kb: usize = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad {field} line: {line:?}"));
    kb * 1024
}

/// Parks `n` goroutines, measures, releases them; all in this process.
fn probe(n: usize) {
    let rt = Runtime::global();
    // Start the runtime's threads before the baseline.
    rt.run(|| ());

    let before = status_bytes("VmRSS");
    let pte_before = status_bytes("VmPTE");
    let parked = WaitGroup::new();
    let release = WaitGroup::new();
    let exited = WaitGroup::new();
    release.add(1);
    parked.add(n);
    exited.add(n);

    let start = Instant::now();
    {
        let (parked, release, exited) = (parked.clone(), release.clone(), exited.clone());
        rt.run(move || {
            for _ in 0..n {
                let (parked, release, exited) = (parked.clone(), release.clone(), exited.clone());
                gort::spawn(move || {
                    parked.done();
                    release.wait();
                    exited.done();
                });
            }
            parked.wait();
        });
    }
    let spawn_time = start.elapsed();
    let after = status_bytes("VmRSS");
    let pte_after = status_bytes("VmPTE");

    let per = after.saturating_sub(before) as f64 / n as f64;
    let pte_per = pte_after.saturating_sub(pte_before) as f64 / n as f64;
    println!("parked_goroutines={n} rss_per_goroutine_bytes={per:.0}");
    println!(
        "  rss_before={} KiB rss_parked={} KiB page_tables_per_goroutine_bytes={pte_per:.0} \
         spawn_and_park={:.1} ms num_goroutine={}",
        before / 1024,
        after / 1024,
        spawn_time.as_secs_f64() * 1e3,
        gort::runtime::num_goroutine()
    );
    println!("  stats (parked): {}", gort::runtime::stats());

    release.done();
    exited.wait();
    println!("  stats (after exit): {}", gort::runtime::stats());
}

fn main() {
    let mut args = std::env::args().skip(1);
    if let Some(arg) = args.next() {
        let n: usize = arg.replace('_', "").parse().unwrap_or_else(|_| {
            eprintln!("usage: mem_probe [N]   (N: how many goroutines to park; default: 100000 and 1000000)");
            std::process::exit(2);
        });
        probe(n);
        return;
    }
    // Each size in a fresh process, so neither inherits the other's committed memory.
    let exe = std::env::current_exe().expect("current_exe");
    for n in SIZES {
        let status = Command::new(&exe)
            .arg(n.to_string())
            .status()
            .expect("run mem_probe child");
        if !status.success() {
            eprintln!("mem_probe: the run with {n} goroutines failed: {status}");
            std::process::exit(1);
        }
    }
}
