//! hyper 1.x serving HTTP/1.1 on gort — no tokio runtime anywhere in the process.
//!
//! `cargo run --release --example hyper_server [ADDR]` (default 127.0.0.1:8080), then
//! `curl http://127.0.0.1:8080/anything`.
//!
//! The accept loop is a goroutine; each connection is served by hyper in a gort async task. hyper
//! gets its runtime pieces from `gort::compat::hyper` (feature `hyper`): `gort::net::TcpStream`
//! implements hyper's I/O traits, `Timer` backs its timeouts, `Executor` runs its background tasks.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};

async fn hello(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!(
        "Hello from hyper on gort: {} {}\n",
        req.method(),
        req.uri().path()
    );
    Ok(Response::new(Full::new(Bytes::from(body))))
}

#[gort::main]
fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let listener = gort::net::TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("hyper_server: {e}");
        std::process::exit(1);
    });
    println!(
        "hyper_server: listening on http://{}",
        listener.local_addr().unwrap()
    );
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("hyper_server: accept: {e}");
                gort::time::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        gort::spawn_async(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(gort::compat::hyper::Timer)
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(stream, hyper::service::service_fn(hello));
            if let Err(e) = conn.await {
                eprintln!("hyper_server: connection: {e}");
            }
        });
    }
}
