//! `http_hello` on tokio: the same minimal HTTP/1.1 plaintext server, request parsing and response
//! bytes, on tokio's multi-threaded runtime, so `scripts/bench_net.sh` compares the runtimes and
//! nothing else.
//!
//! `cargo run --release --example http_hello_tokio [ADDR]` (default 127.0.0.1:8080).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: gort\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| {
            eprintln!("http_hello_tokio: {e}");
            std::process::exit(1);
        });
    println!(
        "http_hello_tokio: listening on {}",
        listener.local_addr().unwrap()
    );
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(serve(conn));
            }
            Err(e) => {
                eprintln!("http_hello_tokio: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
}

async fn serve(mut conn: tokio::net::TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 8192];
    let mut have = 0;
    let mut out = Vec::with_capacity(RESPONSE.len() * 16);
    loop {
        if have == buf.len() {
            if buf.len() >= 1 << 20 {
                return;
            }
            buf.resize(buf.len() * 2, 0);
        }
        match conn.read(&mut buf[have..]).await {
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
            if conn.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

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
