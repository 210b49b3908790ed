//! Futures interop both ways, on real sockets: ecosystem futures (`futures` combinators,
//! `async-channel`) unchanged on gort; hyper 1.x serving and fetching over `gort::net` with no tokio
//! runtime; tokio-reactor-bound futures (`tokio::net`) driven from goroutines via `tokio-compat`.

use std::convert::Infallible;
use std::sync::mpsc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};

const GUARD: Duration = Duration::from_secs(60);

fn join_within<T: Send + 'static>(h: gort::JoinHandle<T>) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(h.join());
    });
    rx.recv_timeout(GUARD)
        .expect("hang guard: the goroutine did not finish")
        .expect("the goroutine panicked")
}

#[test]
fn futures_combinators_in_goroutines_and_tasks() {
    let in_goroutine = gort::go!(|| {
        gort::block_on(async {
            let a = futures::future::join_all((0..100u64).map(|i| async move { i * 2 })).await;
            let s: u64 = futures::stream::iter(a)
                .then(|x| async move { x + 1 })
                .fold(0, |acc, x| async move { acc + x })
                .await;
            let raced = futures::future::select(
                futures::future::pending::<u8>().boxed(),
                futures::future::ready(9u8).boxed(),
            )
            .await
            .factor_first()
            .0;
            (s, raced)
        })
    });
    assert_eq!(join_within(in_goroutine), (100 * 99 + 100, 9));
    let task = gort::spawn_async(async {
        let (a, b) = futures::join!(async { 1 }, gort::spawn(|| 2).map(|r| r.unwrap()));
        a + b
    });
    assert_eq!(join_within(task), 3);
}

#[test]
fn async_channel_between_goroutines_and_tasks() {
    // Thousands of goroutines parked in block_on at once on an ecosystem channel.
    const N: usize = 2_000;
    let (tx, rx) = async_channel::unbounded::<usize>();
    let (done_tx, done_rx) = async_channel::bounded::<usize>(16);
    let waiters: Vec<_> = (0..N)
        .map(|_| {
            let rx = rx.clone();
            let done = done_tx.clone();
            gort::go!(move || {
                let v = gort::block_on(rx.recv()).unwrap();
                gort::block_on(done.send(v)).unwrap();
            })
        })
        .collect();
    drop(done_tx);
    let producer = gort::spawn_async(async move {
        for i in 0..N {
            tx.send(i).await.unwrap();
        }
    });
    let sum = gort::spawn_async(async move {
        let mut sum = 0;
        while let Ok(v) = done_rx.recv().await {
            sum += v;
        }
        sum
    });
    join_within(producer);
    assert_eq!(join_within(sum), N * (N - 1) / 2);
    for w in waiters {
        join_within(w);
    }
}

#[test]
fn hyper_server_and_client_on_gort() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::{Request, Response};

    let listener = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    gort::go!(move || loop {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        gort::spawn_async(async move {
            let svc =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let body = format!("hello {}", req.uri().path());
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(gort::compat::hyper::Timer)
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(stream, svc)
                .await;
        });
    });
    let client = gort::spawn_async(async move {
        let stream = gort::net::TcpStream::connect_async(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
        gort::spawn_async(conn);
        let mut bodies = Vec::new();
        for i in 0..20 {
            let req = Request::get(format!("/r{i}"))
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap();
            // hyper's http1 client takes one request at a time: wait until the connection is idle.
            sender.ready().await.unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            bodies.push(String::from_utf8(body.to_vec()).unwrap());
        }
        bodies
    });
    let bodies = join_within(client);
    assert_eq!(bodies.len(), 20);
    assert_eq!(bodies[7], "hello /r7");
}

#[test]
fn hyper_timer_sleeps() {
    use hyper::rt::Timer;
    let t = std::time::Instant::now();
    let h = gort::spawn_async(async {
        gort::compat::hyper::Timer
            .sleep(Duration::from_millis(20))
            .await;
        let mut s = gort::compat::hyper::Timer.sleep(Duration::from_secs(3600));
        gort::compat::hyper::Timer
            .reset(&mut s, std::time::Instant::now() + Duration::from_millis(5));
        s.await;
    });
    join_within(h);
    assert!(t.elapsed() >= Duration::from_millis(25));
}

#[test]
fn tokio_net_from_goroutines_parks_the_goroutine_not_the_thread() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // One processor: if waiting on tokio blocked the thread, the goroutines below would pile up
    // threads (sysmon hands the processor off from blocked threads) instead of sharing one.
    let rt = gort::runtime::Builder::new().max_procs(1).build();
    let threads = rt.run(|| {
        let listener =
            gort::compat::tokio::block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = gort::go!(move || {
            gort::compat::tokio::block_on(async move {
                for _ in 0..20 {
                    let (mut s, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4];
                        s.read_exact(&mut buf).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        s.write_all(&buf).await.unwrap();
                    });
                }
            })
        });
        let clients: Vec<_> = (0..20u32)
            .map(|i| {
                gort::go!(move || {
                    gort::compat::tokio::block_on(async move {
                        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                        c.write_all(&i.to_le_bytes()).await.unwrap();
                        let mut buf = [0u8; 4];
                        c.read_exact(&mut buf).await.unwrap();
                        u32::from_le_bytes(buf)
                    })
                })
            })
            .collect();
        let got: Vec<u32> = clients.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        server.join().unwrap();
        gort::runtime::stats().threads
    });
    assert!(
        threads <= 3,
        "20 goroutines waiting on tokio used {threads} threads on one processor"
    );
}

#[test]
fn hyper_executor_runs_futures_as_gort_tasks() {
    use hyper::rt::Executor;
    let (tx, rx) = async_channel::bounded(1);
    gort::compat::hyper::Executor.execute(async move {
        let id = gort::runtime::current_id();
        tx.send(id.is_some()).await.unwrap();
    });
    let ran_on_gort = gort::block_on(rx.recv()).unwrap();
    assert!(
        ran_on_gort,
        "the executed future did not run as a gort task"
    );
}
