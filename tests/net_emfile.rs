//! EMFILE on accept: with the process out of descriptors, `accept` returns the error (it does not
//! hang or spin the poller), and the server serves the waiting connection once descriptors free up.
//! Its own test binary, because it lowers the process's descriptor limit.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn accept_survives_emfile() {
    let listener = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The client connects before descriptors run out; the connection waits in the backlog.
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    // Lower the soft limit near what is open, then use up the rest.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let low = libc::rlimit {
        rlim_cur: (open + 32).min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    let mut filler = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => filler.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("unexpected error filling descriptors: {e}"),
        }
        assert!(filler.len() < 100_000, "the descriptor limit did not apply");
    }

    let emfiles = Arc::new(AtomicUsize::new(0));
    let seen = emfiles.clone();
    let server = gort::go!(move || {
        let mut backoff = Duration::from_millis(1);
        loop {
            match listener.accept() {
                Ok((mut c, _)) => {
                    c.write_all(b"served").unwrap();
                    return;
                }
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                    seen.fetch_add(1, Ordering::SeqCst);
                    gort::time::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    // Wait (bounded) until the server has met EMFILE, then free the descriptors.
    for _ in 0..30_000 {
        if emfiles.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        emfiles.load(Ordering::SeqCst) > 0,
        "accept never reported EMFILE"
    );
    drop(filler);
    let mut buf = [0u8; 6];
    match client.read_exact(&mut buf) {
        Ok(()) => assert_eq!(&buf, b"served"),
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
            panic!("hang guard: the server never served after descriptors freed up")
        }
        Err(e) => panic!("client read: {e}"),
    }
    server.join().unwrap();
    // SAFETY: restores the limit read above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}
