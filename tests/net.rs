//! gort::net: TCP, UDP and Unix sockets from goroutines, threads and async tasks, deadlines, and
//! the faults a server meets (resets, half-closed peers, peers that never read, closing a socket
//! under a blocked goroutine). Loopback only; every wait is bounded by a generous hang guard.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use gort::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};

/// Hang guard: a goroutine that should finish does so well within this.
const GUARD: Duration = Duration::from_secs(30);

fn join_within<T: Send + 'static>(h: gort::JoinHandle<T>) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(h.join());
    });
    match rx.recv_timeout(GUARD) {
        Ok(r) => r.expect("the goroutine panicked"),
        Err(_) => panic!(
            "hang guard: the goroutine did not finish\n{}\n{}\n{}",
            gort::runtime::stats(),
            gort::net::poller_state(),
            gort::runtime::dump()
        ),
    }
}

#[test]
fn echo_many_goroutines() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    const CONNS: usize = 50;
    const ROUNDS: usize = 100;
    let server = gort::go!(move || {
        for _ in 0..CONNS {
            let (mut c, _) = listener.accept().unwrap();
            gort::go!(move || {
                let mut buf = [0u8; 64];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => c.write_all(&buf[..n]).unwrap(),
                        Err(e) => panic!("server read: {e}"),
                    }
                }
            });
        }
    });
    let clients: Vec<_> = (0..CONNS)
        .map(|i| {
            gort::go!(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_nodelay(true).unwrap();
                let msg = [i as u8; 64];
                let mut back = [0u8; 64];
                for _ in 0..ROUNDS {
                    c.write_all(&msg).unwrap();
                    c.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg);
                }
                ROUNDS
            })
        })
        .collect();
    let total: usize = clients.into_iter().map(join_within).sum();
    assert_eq!(total, CONNS * ROUNDS);
    join_within(server);
}

#[test]
fn plain_thread_and_goroutine_talk() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = gort::go!(move || {
        let (mut c, peer) = listener.accept().unwrap();
        assert_eq!(c.peer_addr().unwrap(), peer);
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap(); // until the client shuts down its write half
        c.write_all(s.to_uppercase().as_bytes()).unwrap();
    });
    // A plain thread: the same calls block the thread.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"half-closed peer").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    assert_eq!(s, "HALF-CLOSED PEER");
    join_within(server);
}

#[test]
fn async_task_echo() {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = gort::spawn_async(async move {
        let (mut c, _) = listener.accept_async().await.unwrap();
        let mut buf = [0u8; 5];
        AsyncReadExt::read_exact(&mut c, &mut buf).await.unwrap();
        AsyncWriteExt::write_all(&mut c, &buf).await.unwrap();
    });
    let client = gort::spawn_async(async move {
        let mut c = TcpStream::connect_async(addr).await.unwrap();
        AsyncWriteExt::write_all(&mut c, b"async").await.unwrap();
        let mut buf = [0u8; 5];
        AsyncReadExt::read_exact(&mut c, &mut buf).await.unwrap();
        buf
    });
    assert_eq!(&join_within(client), b"async");
    join_within(server);
}

#[test]
fn read_timeout_then_still_usable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = gort::go!(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(50)));
        let t = Instant::now();
        let e = c.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(e.to_string().contains("gort:"), "{e}");
        // The socket is still fine after a timeout.
        s.write_all(b"late").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");
        let e = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    });
    join_within(h);
}

#[test]
fn peer_that_never_reads_write_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = gort::go!(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let (_never_reads, _) = listener.accept().unwrap();
        c.set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let chunk = vec![7u8; 1 << 16];
        let mut written = 0usize;
        let err = loop {
            match c.write(&chunk) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            assert!(written < 1 << 30, "the kernel buffered a gigabyte?");
        };
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(written > 0);
    });
    join_within(h);
}

#[test]
fn connection_reset_is_an_error_not_a_hang() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = gort::go!(move || {
        let c = TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().unwrap();
        // SO_LINGER 0 then close: the peer gets an RST.
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: a valid socket and a correctly sized linger struct.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &l as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        drop(s);
        let mut c = c;
        let mut buf = [0u8; 16];
        let r = c.read(&mut buf);
        let e = r.expect_err("a reset connection reads an error");
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        // Writing to it fails too (EPIPE or ECONNRESET), without hanging.
        let mut failed = false;
        for _ in 0..10 {
            if c.write(b"x").is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    });
    join_within(h);
}

#[test]
fn close_wakes_a_blocked_reader_and_acceptor() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = {
        let l = listener.try_clone().unwrap();
        gort::go!(move || {
            let _first = l.accept().unwrap();
            l.accept().map(|_| ()).unwrap_err() // blocked until close
        })
    };
    let c = TcpStream::connect(addr).unwrap();
    let reader = {
        let c = c.try_clone().unwrap();
        gort::go!(move || (&c).read(&mut [0u8; 8]).unwrap_err())
    };
    // Give both time to park (not needed for correctness: close also fails later calls).
    gort::time::sleep(Duration::from_millis(50));
    c.close();
    listener.close();
    let e = join_within(reader);
    assert_eq!(e.kind(), ErrorKind::NotConnected, "{e}");
    assert!(e.to_string().contains("use of closed network connection"));
    let e = join_within(acceptor);
    assert_eq!(e.kind(), ErrorKind::NotConnected, "{e}");
    assert!(c.is_closed());
    assert_eq!(
        (&c).write(b"x").unwrap_err().kind(),
        ErrorKind::NotConnected
    );
}

#[test]
fn connect_refused_names_the_address() {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = gort::go!(move || TcpStream::connect(("127.0.0.1", port)).unwrap_err());
    let e = join_within(h);
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    let e = TcpListener::bind("no-such-host.invalid:80").unwrap_err();
    assert!(e.to_string().starts_with("gort: bind"), "{e}");
}

#[test]
fn udp_round_trip() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a_addr = a.local_addr().unwrap();
    let b_addr = b.local_addr().unwrap();
    let h = gort::go!(move || {
        let mut buf = [0u8; 32];
        for _ in 0..10 {
            let (n, from) = b.recv_from(&mut buf).unwrap();
            b.send_to(&buf[..n], from).unwrap();
        }
    });
    let c = gort::go!(move || {
        a.connect(b_addr).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b_addr);
        let mut buf = [0u8; 32];
        for i in 0..10u8 {
            a.send(&[i; 16]).unwrap();
            let n = a.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 16]);
        }
        a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(a.recv(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
        a_addr
    });
    join_within(c);
    join_within(h);
}

#[test]
fn unix_stream_echo_and_pair() {
    let dir = std::env::temp_dir().join(format!("gort-net-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = gort::go!(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut s = Vec::new();
        c.read_to_end(&mut s).unwrap();
        c.write_all(&s).unwrap();
    });
    let p2 = path.clone();
    let client = gort::go!(move || {
        let mut c = UnixStream::connect(&p2).unwrap();
        c.write_all(b"over a unix socket").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    });
    assert_eq!(join_within(client), "over a unix socket");
    join_within(server);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);

    let (mut a, mut b) = UnixStream::pair().unwrap();
    let h = gort::go!(move || {
        let mut buf = [0u8; 3];
        b.read_exact(&mut buf).unwrap();
        buf
    });
    a.write_all(b"abc").unwrap();
    assert_eq!(&join_within(h), b"abc");
}

#[test]
fn many_goroutines_parked_on_sockets_wake() {
    // 500 goroutines each parked in read on a socket pair; one byte each wakes them all.
    const N: usize = 500;
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..N {
        let (a, mut b) = UnixStream::pair().unwrap();
        writers.push(a);
        readers.push(gort::go!(move || {
            let mut buf = [0u8; 1];
            b.read_exact(&mut buf).unwrap();
            buf[0]
        }));
    }
    gort::time::sleep(Duration::from_millis(20));
    for w in &mut writers {
        w.write_all(&[9]).unwrap();
    }
    let sum: usize = readers.into_iter().map(|h| join_within(h) as usize).sum();
    assert_eq!(sum, 9 * N);
}

#[test]
fn unix_datagrams() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let h = gort::go!(move || {
        let mut buf = [0u8; 16];
        let n = b.recv(&mut buf).unwrap();
        b.send(&buf[..n]).unwrap();
    });
    a.send(b"datagram").unwrap();
    let mut buf = [0u8; 16];
    a.set_read_timeout(Some(GUARD)).unwrap();
    let n = a.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"datagram");
    join_within(h);
}

#[test]
fn the_network_is_noticed_while_every_processor_runs_a_hog() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // One processor, taken by a goroutine that makes no runtime call: only sysmon (its 10 ms
    // network poll and its preemption) can get the reader going.
    let rt = gort::runtime::Builder::new().max_procs(1).build();
    let (mut w, mut r) = UnixStream::pair().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let read_while_hogged = rt.run({
        let stop = stop.clone();
        move || {
            let reader = gort::go!(move || {
                let mut buf = [0u8; 1];
                r.read_exact(&mut buf).unwrap();
                buf[0]
            });
            gort::yield_now(); // let the reader park
            let hog_stop = stop.clone();
            let hog = gort::go!(move || {
                let start = Instant::now();
                while !hog_stop.load(Ordering::Relaxed) && start.elapsed() < GUARD {
                    std::hint::spin_loop();
                }
                hog_stop.load(Ordering::Relaxed)
            });
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                w.write_all(&[42]).unwrap();
            });
            let got = reader.join().unwrap();
            stop.store(true, Ordering::Relaxed);
            assert!(
                hog.join().unwrap(),
                "the reader only ran after the hog gave up"
            );
            got
        }
    });
    assert_eq!(read_while_hogged, 42);
}

#[test]
fn udp_from_async_tasks() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b_addr = b.local_addr().unwrap();
    let echo = gort::spawn_async(async move {
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from_async(&mut buf).await.unwrap();
        b.send_to_async(&buf[..n], from).await.unwrap();
    });
    let ask = gort::spawn_async(async move {
        a.send_to_async(b"udp task", b_addr).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = a.recv_from_async(&mut buf).await.unwrap();
        assert_eq!(from, b_addr);
        buf[..n].to_vec()
    });
    assert_eq!(join_within(ask), b"udp task");
    join_within(echo);
}

#[test]
fn clones_share_one_connection_across_goroutines() {
    // One goroutine writes while another reads the same connection (try_clone shares it).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = gort::go!(move || {
        let mut conn = listener.incoming().next().unwrap().unwrap();
        std::io::copy(&mut conn.try_clone().unwrap(), &mut conn).unwrap(); // echo until EOF
    });
    let c = TcpStream::connect(addr).unwrap();
    let (mut w, mut r) = (c.try_clone().unwrap(), c);
    const N: usize = 200_000;
    let writer = gort::go!(move || {
        let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let reader = gort::go!(move || {
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        got
    });
    let got = join_within(reader);
    assert_eq!(got.len(), N);
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    join_within(writer);
    join_within(server);
}

#[test]
fn bad_timeouts_are_errors() {
    let addr = "127.0.0.1:9".parse().unwrap();
    let e = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().starts_with("gort:"), "{e}");
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        s.set_write_timeout(Some(Duration::ZERO))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(1)));
    s.set_write_timeout(None).unwrap();
    assert_eq!(s.write_timeout().unwrap(), None);
}

#[test]
fn the_network_is_polled_after_the_busy_processor_blocks() {
    // Two processors. While one M holds a processor, the idle Ms leave the poller to it (it polls
    // whenever it runs dry). Here that M then blocks in a marked blocking section and its processor
    // goes idle behind it: somebody must take up the poller, or the reader never wakes.
    let rt = gort::runtime::Builder::new().max_procs(2).build();
    let (mut w, mut r) = UnixStream::pair().unwrap();
    let reader = rt.spawn(move || {
        let mut buf = [0u8; 1];
        r.read_exact(&mut buf).unwrap();
        buf[0]
    });
    std::thread::sleep(Duration::from_millis(20)); // let the reader park
    let blocker = rt.spawn(|| gort::blocking(|| std::thread::sleep(Duration::from_millis(300))));
    std::thread::sleep(Duration::from_millis(50));
    w.write_all(&[9]).unwrap();
    assert_eq!(join_within(reader), 9);
    join_within(blocker);
}

#[test]
fn goroutines_a_poll_readies_that_compute_get_a_second_processor() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // A network poll's goroutines stay on the polling M's processor unless they are worth another
    // one (sched.rs, "Network poll batches"): ones that compute 200 us per message are, busy
    // machine or not. They run in short pieces (each parks on its socket between messages), so
    // no preemption spreads them; after the warm-up rounds, the spawns' own wake-ups are behind
    // them too. Whatever spreads them (the poll's share decision, or at worst sysmon noticing
    // the network unpolled), they must not all stay on one processor.
    const CONNS: usize = 4;
    const WARM_UP: usize = 50;
    const WORK: Duration = Duration::from_micros(200);
    let rt = gort::runtime::Builder::new().max_procs(2).build();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let acceptor = {
        let (running, most) = (running.clone(), most.clone());
        rt.spawn(move || {
            for _ in 0..CONNS {
                let (mut c, _) = listener.accept().unwrap();
                let (running, most) = (running.clone(), most.clone());
                gort::go!(move || {
                    let mut b = [0u8; 1];
                    while c.read_exact(&mut b).is_ok() {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let start = Instant::now();
                        while start.elapsed() < WORK {
                            std::hint::spin_loop();
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                        if c.write_all(&b).is_err() {
                            break;
                        }
                    }
                });
            }
        })
    };
    let mut conns: Vec<std::net::TcpStream> = (0..CONNS)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    join_within(acceptor);
    let start = Instant::now();
    for round in 0.. {
        if round == WARM_UP {
            most.store(0, Ordering::SeqCst);
        }
        if round > WARM_UP && (most.load(Ordering::SeqCst) >= 2 || start.elapsed() > GUARD) {
            break;
        }
        for c in &mut conns {
            c.write_all(&[7]).unwrap();
        }
        for c in &mut conns {
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
        }
    }
    assert!(
        most.load(Ordering::SeqCst) >= 2,
        "goroutines that compute 200 us per message never ran on two processors at once in {GUARD:?}"
    );
}
