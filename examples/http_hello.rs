//! A minimal HTTP/1.1 plaintext server on gort (TechEmpower's "plaintext" shape): one goroutine
//! per connection, keep-alive and pipelining, `Hello, World!` for every request.
//!
//! `cargo run --release --example http_hello [ADDR]` (default 127.0.0.1:8080), then
//! `curl http://127.0.0.1:8080/` or `wrk -t1 -c100 -d10s http://127.0.0.1:8080/`.
//! `examples/http_hello_tokio.rs` is the same server on tokio (`scripts/bench_net.sh` runs both).

use std::io::{Read, Write};
use std::time::Duration;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: gort\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

#[gort::main]
fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = gort::net::TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("http_hello: {e}");
        std::process::exit(1);
    });
    println!(
        "http_hello: listening on {}",
        listener.local_addr().unwrap()
    );
    let mut backoff = Duration::ZERO;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                backoff = Duration::ZERO;
                gort::go!(move || serve(conn));
            }
            Err(e) => {
                // EMFILE and friends: back off, keep serving the connections we have.
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                eprintln!("http_hello: accept: {e}; retrying in {backoff:?}");
                gort::time::sleep(backoff);
            }
        }
    }
}

/// Serves one connection: reads what is there, answers every complete request in it with one
/// write (pipelining), keeps an incomplete one for the next read.
fn serve(mut conn: gort::net::TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 8192];
    let mut have = 0;
    let mut out = Vec::with_capacity(RESPONSE.len() * 16);
    loop {
        if have == buf.len() {
            if buf.len() >= 1 << 20 {
                return; // a header block over 1 MiB: not a client we serve
            }
            buf.resize(buf.len() * 2, 0);
        }
        match conn.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let mut start = 0;
        while let Some(end) = request_end(&buf[start..have]) {
            out.extend_from_slice(RESPONSE);
            start += end;
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if !out.is_empty() {
            if conn.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// The length of the first complete request in `b` (headers, plus a `Content-Length` body).
fn request_end(b: &[u8]) -> Option<usize> {
    let head = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body = content_length(&b[..head]);
    (b.len() >= head + body).then_some(head + body)
}

fn content_length(head: &[u8]) -> usize {
    for line in head.split(|&c| c == b'\n') {
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            return std::str::from_utf8(&line[15..])
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
        }
    }
    0
}
