//! The echo load client of `scripts/bench_net.sh`: N connections (default 100), each sending a
//! message of S bytes (default 64) and waiting for its echo, back to back, for at most T seconds
//! (default 5) or M messages in all (default 5,000,000), whichever comes first. Prints messages per
//! second and latency percentiles.
//!
//! `cargo run --release --example net_load -- ADDR [CONNS] [SIZE] [SECS] [MAX_MSGS]`
//!
//! Like `wrk -t1`, it is one thread driving every connection through epoll (plain `mio`), so it
//! favours neither runtime it measures and takes one core at most.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    match std::env::args().nth(i) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("net_load: argument {i} ({v:?}) is not a number");
            std::process::exit(2)
        }),
    }
}

fn fail(msg: String) -> ! {
    eprintln!("net_load: {msg}");
    std::process::exit(1)
}

struct Conn {
    sock: TcpStream,
    msg: Vec<u8>,
    written: usize,
    read: usize,
    back: Vec<u8>,
    sent_at: Instant,
}

fn main() {
    let addr_s = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let conns: usize = arg(2, 100);
    let size: usize = arg(3, 64);
    let secs: f64 = arg(4, 5.0);
    let max_msgs: u64 = arg(5, 5_000_000);
    if conns == 0 || size == 0 || secs <= 0.0 {
        fail("CONNS, SIZE and SECS must be positive".into());
    }
    let addr = addr_s
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| fail(format!("cannot resolve {addr_s}")));
    let mut poll = Poll::new().unwrap_or_else(|e| fail(format!("epoll: {e}")));
    let mut table = HashMap::new();
    for i in 0..conns {
        // A blocking connect first (simple and certain), then non-blocking for the run.
        let std_sock = std::net::TcpStream::connect(addr)
            .unwrap_or_else(|e| fail(format!("connect to {addr}: {e}")));
        std_sock.set_nodelay(true).unwrap();
        std_sock.set_nonblocking(true).unwrap();
        let mut sock = TcpStream::from_std(std_sock);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .unwrap_or_else(|e| fail(format!("register: {e}")));
        table.insert(
            i,
            Conn {
                sock,
                msg: vec![i as u8; size],
                written: 0,
                read: 0,
                back: vec![0; size],
                sent_at: Instant::now(),
            },
        );
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut sent = 0u64;
    let mut events = Events::with_capacity(1024);
    // Start every connection's first message.
    for c in table.values_mut() {
        c.sent_at = Instant::now();
        sent += 1;
    }
    let mut inflight = conns;
    while inflight > 0 {
        if Instant::now() >= deadline + Duration::from_secs(10) {
            fail("hang guard: echoes stopped coming back".into());
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap_or_else(|e| fail(format!("poll: {e}")));
        for ev in events.iter() {
            let Some(c) = table.get_mut(&ev.token().0) else {
                continue;
            };
            // Drive this connection as far as it goes without blocking.
            loop {
                if c.written < size {
                    match c.sock.write(&c.msg[c.written..]) {
                        Ok(n) => c.written += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => fail(format!("write: {e}")),
                    }
                    continue;
                }
                match c.sock.read(&mut c.back[c.read..]) {
                    Ok(0) => fail("the server closed a connection".into()),
                    Ok(n) => c.read += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => fail(format!("read: {e}")),
                }
                if c.read < size {
                    continue;
                }
                if c.back != c.msg {
                    fail("an echo differs from what was sent".into());
                }
                lat.push(u32::try_from(c.sent_at.elapsed().as_nanos()).unwrap_or(u32::MAX));
                c.read = 0;
                c.written = 0;
                if Instant::now() >= deadline || sent >= max_msgs {
                    c.written = usize::MAX; // done: never writes again
                    inflight -= 1;
                    break;
                }
                c.sent_at = Instant::now();
                sent += 1;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1e3
        }
    };
    let rate = lat.len() as f64 / elapsed;
    println!(
        "echo {addr}: {conns} conns x {size} B: {} msgs in {elapsed:.2} s = {rate:.0} msg/s, p50 {:.0} us, p99 {:.0} us",
        lat.len(),
        pct(0.50),
        pct(0.99)
    );
    println!("RESULT rate={rate:.0} p99_us={:.0}", pct(0.99));
}
