//! A tour of gort: what the runtime does, chapter by chapter.
//!
//! `cargo run --release --example tour`
//!
//! Chapter 1 — goroutines: 100,000 stackful goroutines parked at once, then skynet over a million
//! goroutines, and the scheduler's own view of it all.
//!
//! Chapter 2 — channels: a pipeline of goroutines joined by channels, a fan-in of several producers
//! driven by `select!`, with a ticker for progress and a deadline from `time::after`.
//!
//! Chapter 3 — sysmon: goroutines spinning without a single runtime call and goroutines stuck in
//! blocking calls, and a ticker that keeps ticking on time beside them.
//!
//! Chapter 4 — the network: an echo server in a goroutine, clients in goroutines (blocking-style
//! `Read`/`Write` that park only the goroutine) and in an async task (`AsyncRead`/`AsyncWrite`), and
//! the round-trip times they measure.
//!
//! Chapter 5 — the traced heap: a cyclic graph shared by goroutines that rewire it while the
//! collector runs, then dropped and collected, with the collector's statistics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

    chapter_channels();
    chapter_sysmon();
    chapter_network();
    chapter_gc();
}

/// Channels and select: generate -> square (4 workers) -> fan-in, with a ticker and a deadline.
fn chapter_channels() {
    println!("\n-- chapter 2: channels and select --");
    let start = Instant::now();
    let (numbers, to_square) = gort::chan::bounded::<u64>(0); // unbuffered: rendezvous
    gort::go!(move || {
        for n in 1..=200_000u64 {
            numbers.send(n).unwrap();
        }
    }); // dropping the last sender closes the channel
        // Four squaring goroutines, each with its own output channel: fanned back in by select!.
    let outputs: Vec<_> = (0..4)
        .map(|_| {
            let (tx, rx) = gort::chan::bounded::<u64>(64);
            let input = to_square.clone();
            gort::go!(move || {
                for n in input.iter() {
                    tx.send(n * n).unwrap();
                }
            });
            rx
        })
        .collect();
    drop(to_square);
    let ticker = gort::time::Ticker::new(Duration::from_millis(50));
    let deadline = gort::time::after(Duration::from_secs(30));
    let (mut sum, mut received, mut ticks, mut open) = (0u64, 0u64, 0u32, [true; 4]);
    while open.iter().any(|&o| o) {
        gort::select! {
            recv(outputs[0]) -> v => match v { Ok(v) => { sum += v; received += 1 } Err(_) => open[0] = false },
            recv(outputs[1]) -> v => match v { Ok(v) => { sum += v; received += 1 } Err(_) => open[1] = false },
            recv(outputs[2]) -> v => match v { Ok(v) => { sum += v; received += 1 } Err(_) => open[2] = false },
            recv(outputs[3]) -> v => match v { Ok(v) => { sum += v; received += 1 } Err(_) => open[3] = false },
            recv(ticker.receiver()) -> _ => ticks += 1,
            recv(deadline) -> _ => panic!("the pipeline missed its 30 s deadline"),
        }
    }
    let n = 200_000u64;
    assert_eq!(
        sum,
        n * (n + 1) * (2 * n + 1) / 6,
        "every square arrived exactly once"
    );
    println!(
        "{received} values through generate -> 4 squarers -> select! fan-in in {:.1} ms ({ticks} ticker ticks on the way); sum of squares {sum}",
        start.elapsed().as_secs_f64() * 1e3
    );
}

/// CPU hogs and blocking calls do not freeze the other goroutines.
fn chapter_sysmon() {
    println!("\n-- chapter 3: sysmon --");
    let stop = Arc::new(AtomicBool::new(false));
    let hogs = gort::runtime::max_procs() + 1;
    for _ in 0..hogs {
        let stop = stop.clone();
        gort::go!(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = std::hint::black_box(x + 1); // no runtime call: only sysmon can move it aside
            }
        });
    }
    for _ in 0..4 {
        gort::go!(|| gort::blocking(|| std::thread::sleep(Duration::from_millis(300))));
        gort::go!(|| std::thread::sleep(Duration::from_millis(300))); // not even marked
    }
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        gort::time::sleep(Duration::from_millis(10));
        worst = worst.max(t.elapsed() - Duration::from_millis(10));
    }
    println!(
        "{hogs} goroutines spinning and 8 blocked in sleeps on {} procs: a 10 ms ticker was at worst {:.1} ms late",
        gort::runtime::max_procs(),
        worst.as_secs_f64() * 1e3
    );
    stop.store(true, Ordering::Relaxed);
    println!("runtime stats: {}", gort::runtime::stats());
}

/// The network: the echo server of `examples/echo_server.rs` in a goroutine, clients in goroutines
/// and in an async task, and the round trips they time.
fn chapter_network() {
    use std::io::{Read, Write};
    println!("\n-- chapter 4: the network --");
    let listener = gort::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().unwrap();
    gort::go!(move || {
        while let Ok((mut conn, _)) = listener.accept() {
            gort::go!(move || {
                let _ = conn.set_nodelay(true);
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    println!("echo server listening on {addr}");

    const CLIENTS: usize = 8;
    const ROUNDS: usize = 1_000;
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            gort::go!(move || {
                let mut c = gort::net::TcpStream::connect(addr).expect("connect");
                c.set_nodelay(true).unwrap();
                let msg = [i as u8; 64];
                let mut back = [0u8; 64];
                let mut best = Duration::MAX;
                for _ in 0..ROUNDS {
                    let t = Instant::now();
                    c.write_all(&msg).unwrap();
                    c.read_exact(&mut back).unwrap();
                    best = best.min(t.elapsed());
                    assert_eq!(back, msg);
                }
                best
            })
        })
        .collect();
    let best = clients
        .into_iter()
        .map(|h| h.join().unwrap())
        .min()
        .unwrap();
    let took = start.elapsed();
    println!(
        "{CLIENTS} goroutines at once, {ROUNDS} round trips of 64 bytes each: {:.1} us per round trip on average, best {:.1} us",
        took.as_secs_f64() * 1e6 / ROUNDS as f64,
        best.as_secs_f64() * 1e6
    );

    let from_task = gort::spawn_async(async move {
        use futures::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = gort::net::TcpStream::connect_async(addr)
            .await
            .expect("connect");
        c.set_nodelay(true).unwrap();
        let t = Instant::now();
        for _ in 0..ROUNDS {
            AsyncWriteExt::write_all(&mut c, b"ping from an async task")
                .await
                .unwrap();
            let mut back = [0u8; 23];
            AsyncReadExt::read_exact(&mut c, &mut back).await.unwrap();
        }
        t.elapsed() / ROUNDS as u32
    });
    let rtt = from_task.join().unwrap();
    println!(
        "an async task, {ROUNDS} round trips: {:.1} us each",
        rtt.as_secs_f64() * 1e6
    );
}

/// A graph node in the traced heap: its edges change under the GcCell's write barrier.
#[derive(gort::Trace)]
struct GraphNode {
    #[gc(skip)]
    id: usize,
    edges: gort::gc::GcCell<Vec<gort::gc::Gc<GraphNode>>>,
}

/// The traced heap: a cyclic graph shared by goroutines, rewired during collections, then dropped.
fn chapter_gc() {
    use gort::gc::{self, Gc, GcCell};
    println!("\n-- chapter 5: the traced heap --");
    let n = 20_000;
    let nodes: Vec<Gc<GraphNode>> = (0..n)
        .map(|id| {
            Gc::new(GraphNode {
                id,
                edges: GcCell::new(Vec::new()),
            })
        })
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        // A ring plus a chord: every node is on a cycle.
        let mut e = node.edges.borrow_mut();
        e.push(nodes[(i + 1) % n].clone());
        e.push(nodes[(i * 7 + 3) % n].clone());
    }
    let entry = nodes[0].clone();
    let weak = Gc::downgrade(&nodes[n / 2]);
    drop(nodes); // from here on the graph lives only through `entry` and its own cycles
    let before = gc::stats();
    let start = Instant::now();
    let walkers: Vec<_> = (0..4)
        .map(|w| {
            let entry = entry.clone();
            gort::go!(move || {
                let mut cur = entry;
                let mut visited = 0u64;
                for step in 0..300_000usize {
                    let next = cur.edges.borrow()[(step + w) % 2].clone();
                    if step % 64 == 0 {
                        // Rewire: point this node's chord at the node we are about to visit.
                        cur.edges.borrow_mut()[1] = next.clone();
                    }
                    visited += next.id as u64 % 2;
                    cur = next;
                }
                visited
            })
        })
        .collect();
    let mut collections = 0;
    while walkers.iter().any(|w| !w.is_finished()) && collections < 50 {
        gc::collect(); // collections run back to back while the walkers rewire
        collections += 1;
    }
    let odd: u64 = walkers.into_iter().map(|w| w.join().unwrap()).sum();
    println!(
        "4 goroutines walked and rewired a {n}-node cyclic graph ({odd} odd ids seen) during {collections} collections in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    assert!(weak.upgrade().is_some(), "the graph is still reachable");
    drop(entry);
    gc::collect();
    let after = gc::stats();
    println!(
        "dropped the graph: collected, {} objects freed (weak handle now {}); {} collections in all, longest pause {} us",
        after.freed_objects - before.freed_objects,
        weak.upgrade().map(|_| "alive").unwrap_or("gone"),
        after.collections,
        after.max_pause.as_micros()
    );
    println!("gc stats: {after:?}");
}
