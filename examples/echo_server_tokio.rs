//! The same TCP echo server on tokio, for `scripts/bench_net.sh` to compare against
//! `echo_server`.
//!
//! `cargo run --release --example echo_server_tokio [ADDR]` (default 127.0.0.1:8080).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| {
            eprintln!("echo_server_tokio: {e}");
            std::process::exit(1);
        });
    println!(
        "echo_server_tokio: listening on {}",
        listener.local_addr().unwrap()
    );
    loop {
        match listener.accept().await {
            Ok((mut conn, _)) => {
                tokio::spawn(async move {
                    let _ = conn.set_nodelay(true);
                    let mut buf = [0u8; 4096];
                    loop {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
            Err(e) => {
                eprintln!("echo_server_tokio: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
}
