//! A TCP echo server on gort: one goroutine per connection, blocking-style `Read`/`Write` that park
//! the goroutine.
//!
//! `cargo run --release --example echo_server [ADDR]` (default 127.0.0.1:8080). Try it with
//! `nc 127.0.0.1 8080`, or load it with `cargo run --release --example net_load -- echo ADDR`.

use std::io::{Read, Write};
use std::time::Duration;

#[gort::main]
fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = gort::net::TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    });
    println!(
        "echo_server: listening on {}",
        listener.local_addr().unwrap()
    );
    serve(&listener);
}

/// Accepts forever; a connection's goroutine echoes until the peer closes.
fn serve(listener: &gort::net::TcpListener) {
    let mut backoff = Duration::ZERO;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                backoff = Duration::ZERO;
                gort::go!(move || echo(conn));
            }
            // Out of descriptors (EMFILE/ENFILE) and the like: back off and retry, as Go's
            // net/http does; the listener stays usable.
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                eprintln!("echo_server: accept: {e}; retrying in {backoff:?}");
                gort::time::sleep(backoff);
            }
        }
    }
}

fn echo(mut conn: gort::net::TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
