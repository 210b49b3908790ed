//! The echo load client of `scripts/bench_net.sh`: N connections (default 100), each sending a
//! message of S bytes (default 64) and waiting for the echo, back to back, for at most T seconds
//! (default 5) or M messages in all (default 5,000,000), whichever comes first. Prints messages per
//! second and latency percentiles.
//!
//! `cargo run --release --example net_load -- ADDR [CONNS] [SIZE] [SECS] [MAX_MSGS]`
//!
//! It runs on plain OS threads with blocking std sockets, so it favours neither runtime it measures.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    match std::env::args().nth(i) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("net_load: argument {i} ({v:?}) is not a number");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let conns: usize = arg(2, 100);
    let size: usize = arg(3, 64);
    let secs: f64 = arg(4, 5.0);
    let max_msgs: u64 = arg(5, 5_000_000);
    if conns == 0 || size == 0 || secs <= 0.0 {
        eprintln!("net_load: CONNS, SIZE and SECS must be positive");
        std::process::exit(2);
    }
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..conns)
        .map(|i| {
            let addr = addr.clone();
            let sent = sent.clone();
            std::thread::spawn(move || -> Result<Vec<u32>, String> {
                let mut c = std::net::TcpStream::connect(&addr)
                    .map_err(|e| format!("connect to {addr}: {e}"))?;
                c.set_nodelay(true).map_err(|e| e.to_string())?;
                c.set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                let msg = vec![i as u8; size];
                let mut back = vec![0u8; size];
                let mut lat = Vec::new();
                while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max_msgs {
                    let t = Instant::now();
                    c.write_all(&msg).map_err(|e| format!("write: {e}"))?;
                    c.read_exact(&mut back).map_err(|e| format!("read: {e}"))?;
                    lat.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
                    if back != msg {
                        return Err("the echo differs from what was sent".into());
                    }
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        match w.join().expect("load thread panicked") {
            Ok(l) => all.extend(l),
            Err(e) => {
                eprintln!("net_load: {e}");
                std::process::exit(1);
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        if all.is_empty() {
            0.0
        } else {
            all[((all.len() - 1) as f64 * p) as usize] as f64 / 1e3
        }
    };
    let rate = all.len() as f64 / elapsed;
    println!(
        "echo {addr}: {conns} conns x {size} B: {} msgs in {elapsed:.2} s = {rate:.0} msg/s, p50 {:.0} us, p99 {:.0} us",
        all.len(),
        pct(0.50),
        pct(0.99)
    );
    println!("RESULT rate={rate:.0} p99_us={:.0}", pct(0.99));
}
