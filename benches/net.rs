//! Network round trips on loopback: gort's `gort::net` against tokio's `tokio::net`, in the same
//! groups. (HTTP under `wrk` and the echo servers under our load client are in
//! `scripts/bench_net.sh`; these are the criterion counterparts `cargo bench` runs.)
//!
//! * `tcp_echo_rtt`: one connection, 64-byte messages echoed back one at a time (per round trip):
//!   the latency of a park on `WouldBlock` and a wake by the poller.
//! * `tcp_echo_100conns`: 100 connections at once, each echoing 64-byte messages back to back
//!   (per message): the poller and the scheduler under many ready sockets.
//!
//! Servers and clients both run on the runtime measured: goroutines for gort, tasks for tokio.
//! `GORT_BENCH_QUICK=1` shrinks the workloads.

mod common;
use common::{gort_rt, quick, scaled, tokio_rt, Drivers};

use std::io::{Read, Write};
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MSG: usize = 64;
const CONNS: usize = 100;

/// A gort echo server for `conns` connections; returns its address.
fn gort_echo_server(conns: usize) -> SocketAddr {
    let listener = gort::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    gort::spawn(move || {
        for _ in 0..conns {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            gort::spawn(move || {
                let mut buf = [0u8; MSG];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(&buf).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn gort_client(addr: SocketAddr, msgs: usize) {
    let mut s = gort::net::TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let msg = [7u8; MSG];
    let mut back = [0u8; MSG];
    for _ in 0..msgs {
        s.write_all(&msg).expect("write");
        s.read_exact(&mut back).expect("read");
    }
}

fn gort_echo(conns: usize, msgs: usize) {
    let addr = gort_echo_server(conns);
    let clients: Vec<_> = (0..conns)
        .map(|_| gort::spawn(move || gort_client(addr, msgs)))
        .collect();
    for c in clients {
        c.join().expect("client goroutine panicked");
    }
}

async fn tokio_echo(conns: usize, msgs: usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    tokio::spawn(async move {
        for _ in 0..conns {
            let (mut s, _) = listener.accept().await.expect("accept");
            s.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
                let mut buf = [0u8; MSG];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let clients: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                let msg = [7u8; MSG];
                let mut back = [0u8; MSG];
                for _ in 0..msgs {
                    s.write_all(&msg).await.expect("write");
                    s.read_exact(&mut back).await.expect("read");
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client task panicked");
    }
}

fn echo(c: &mut Criterion, name: &str, conns: usize, msgs: usize) {
    let gort = gort_rt();
    let rt = tokio_rt(Drivers::Io);
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements((conns * msgs) as u64));
    if quick() {
        g.warm_up_time(std::time::Duration::from_millis(10));
        g.measurement_time(std::time::Duration::from_millis(100));
    }
    g.bench_function("gort", |b| {
        b.iter(|| gort.run(move || gort_echo(conns, msgs)))
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            rt.block_on(async move { tokio::spawn(tokio_echo(conns, msgs)).await })
                .expect("driver task panicked")
        })
    });
    g.finish();
}

fn tcp_echo_rtt(c: &mut Criterion) {
    echo(c, "tcp_echo_rtt", 1, scaled(20_000).max(10));
}

fn tcp_echo_100conns(c: &mut Criterion) {
    echo(c, "tcp_echo_100conns", CONNS, scaled(500).max(10));
}

criterion_group!(benches, tcp_echo_rtt, tcp_echo_100conns);
criterion_main!(benches);
