//! `select!` as users see it: exactly one case fires, uniformly among the ready ones; a send case's
//! value is evaluated only when it fires; `default`, `default(timeout)`, disabled cases, closed
//! channels, duplicate channels, panicking message expressions, and control flow in bodies.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort_chan::{bounded, select, unbounded, Receiver, RecvError, SendError, Sender};
use gort_goroutine::spawn;

#[test]
fn exactly_one_case_fires_under_contention() {
    // Four producers, each on its own unbuffered channel, feed one selecting consumer. Every value
    // arrives exactly once, whatever the interleaving of hand-offs and wake-ups.
    const PER: u32 = 3000;
    let mut rxs = Vec::new();
    let mut producers = Vec::new();
    for p in 0..4u32 {
        let (tx, rx) = bounded::<u32>(0);
        rxs.push(rx);
        producers.push(spawn(move || {
            for i in 0..PER {
                tx.send(p * PER + i).unwrap();
            }
        }));
    }
    let consumer = spawn(move || {
        let mut seen = HashSet::new();
        let mut open: Vec<Option<&Receiver<u32>>> = rxs.iter().map(Some).collect();
        while open.iter().any(Option::is_some) {
            let (i, v) = select! {
                recv(open[0]) -> v => (0, v),
                recv(open[1]) -> v => (1, v),
                recv(open[2]) -> v => (2, v),
                recv(open[3]) -> v => (3, v),
            };
            match v {
                Ok(v) => assert!(seen.insert(v), "duplicate {v}"),
                Err(RecvError) => open[i] = None, // closed and drained: disable the case
            }
        }
        seen.len()
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap() as u32, 4 * PER);
}

#[test]
fn each_value_is_received_once_when_selects_race() {
    // Two selecting receivers and two selecting senders over the same pair of channels.
    let (tx1, rx1) = bounded::<u32>(0);
    let (tx2, rx2) = bounded::<u32>(1);
    let senders: Vec<_> = (0..2u32)
        .map(|s| {
            let (tx1, tx2) = (tx1.clone(), tx2.clone());
            spawn(move || {
                for i in 0..2000 {
                    let v = s * 10_000 + i;
                    select! {
                        send(tx1, v) -> r => r.unwrap(),
                        send(tx2, v) -> r => r.unwrap(),
                    }
                }
            })
        })
        .collect();
    drop((tx1, tx2));
    let receivers: Vec<_> = (0..2)
        .map(|_| {
            let (rx1, rx2) = (rx1.clone(), rx2.clone());
            spawn(move || {
                let mut got = Vec::new();
                let (mut r1, mut r2) = (Some(&rx1), Some(&rx2));
                while r1.is_some() || r2.is_some() {
                    select! {
                        recv(r1) -> v => match v { Ok(v) => got.push(v), Err(_) => r1 = None },
                        recv(r2) -> v => match v { Ok(v) => got.push(v), Err(_) => r2 = None },
                    }
                }
                got
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mut all: Vec<u32> = receivers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    all.sort();
    let want: Vec<u32> = (0..2u32)
        .flat_map(|s| (0..2000).map(move |i| s * 10_000 + i))
        .collect();
    assert_eq!(all, want);
}

#[test]
fn choice_among_ready_cases_is_uniform() {
    const TRIALS: usize = 30_000;
    let (tx, rxs): (Vec<Sender<u8>>, Vec<Receiver<u8>>) = (0..3).map(|_| unbounded()).unzip();
    let mut counts = [0usize; 3];
    for _ in 0..TRIALS {
        for (i, tx) in tx.iter().enumerate() {
            if rxs[i].is_empty() {
                tx.send(i as u8).unwrap();
            }
        }
        let i = select! {
            recv(rxs[0]) -> v => v.unwrap(),
            recv(rxs[1]) -> v => v.unwrap(),
            recv(rxs[2]) -> v => v.unwrap(),
        };
        counts[i as usize] += 1;
    }
    // Each count is Binomial(30000, 1/3): sd = 81.6; 6 sd is far beyond any plausible fluctuation.
    for c in counts {
        assert!(
            (c as f64 - TRIALS as f64 / 3.0).abs() < 6.0 * 81.65,
            "{counts:?}"
        );
    }
}

#[test]
fn send_value_is_evaluated_only_when_its_case_fires() {
    let evaluated = AtomicUsize::new(0);
    let value = |v: u32| {
        evaluated.fetch_add(1, Ordering::SeqCst);
        v
    };
    let (full_tx, _full_rx) = bounded::<u32>(0); // no receiver: never ready
    let (ready_tx, ready_rx) = bounded::<u32>(1);
    ready_tx.send(1).unwrap();
    for _ in 0..100 {
        let got = select! {
            send(full_tx, value(9)) -> _r => None,
            recv(ready_rx) -> v => v.ok(),
        };
        assert_eq!(got, Some(1));
        ready_tx.send(1).unwrap();
    }
    assert_eq!(evaluated.load(Ordering::SeqCst), 0);
    let (tx, rx) = bounded::<u32>(1);
    select! {
        send(tx, value(5)) -> r => r.unwrap(),
        send(full_tx, value(6)) -> _r => unreachable!(),
    }
    assert_eq!(evaluated.load(Ordering::SeqCst), 1);
    assert_eq!(rx.recv(), Ok(5));
}

#[test]
fn default_and_default_timeout() {
    let (_tx, rx) = bounded::<u32>(0);
    let r = select! {
        recv(rx) -> _v => 1,
        default => 2,
    };
    assert_eq!(r, 2);
    let t = Instant::now();
    let r = select! {
        recv(rx) -> _v => 1,
        default(Duration::from_millis(30)) => 2,
    };
    assert_eq!(r, 2);
    assert!(t.elapsed() >= Duration::from_millis(30));
    // A value that arrives within the timeout wins.
    let (tx, rx) = bounded::<u32>(0);
    let h = spawn(move || {
        gort_goroutine::time::sleep(Duration::from_millis(10));
        tx.send(4).unwrap();
    });
    let r = select! {
        recv(rx) -> v => v.unwrap(),
        default(Duration::from_secs(10)) => 0,
    };
    assert_eq!(r, 4);
    h.join().unwrap();
    // `default` alone, and a timeout with no channel case.
    assert_eq!(select! { default => 7 }, 7);
    let t = Instant::now();
    select! { default(Duration::from_millis(10)) => {} }
    assert!(t.elapsed() >= Duration::from_millis(10));
}

#[test]
fn disabled_cases_never_fire() {
    let none_rx: Option<Receiver<u32>> = None;
    let none_tx: Option<&Sender<u32>> = None;
    let r = select! {
        recv(none_rx) -> _v => 1,
        send(none_tx, 5) -> _r => 2,
        default => 3,
    };
    assert_eq!(r, 3);
    let t = Instant::now();
    let r = select! {
        recv(none_rx) -> _v => 1,
        default(Duration::from_millis(10)) => 3,
    };
    assert_eq!(r, 3);
    assert!(t.elapsed() >= Duration::from_millis(10));
    // A receiver and sender wrapped in Some work as usual.
    let (tx, rx) = bounded::<u32>(1);
    let (some_tx, some_rx) = (Some(tx), Some(&rx));
    select! { send(some_tx, 8) -> r => r.unwrap() }
    assert_eq!(select! { recv(some_rx) -> v => v.unwrap() }, 8);
}

#[test]
fn closed_channels_are_ready() {
    let (tx, rx) = bounded::<u32>(0);
    tx.close();
    assert_eq!(select! { recv(rx) -> v => v }, Err(RecvError));
    let r = select! { send(tx, 3) -> r => r };
    assert_eq!(r, Err(SendError(3)));
    // No receivers left: sends fail the same way.
    let (tx, rx) = bounded::<u32>(0);
    drop(rx);
    assert_eq!(select! { send(tx, 4) -> r => r }, Err(SendError(4)));
}

#[test]
fn a_blocked_select_sees_a_close() {
    let (tx, rx) = bounded::<u32>(0);
    let (stx, _srx) = bounded::<u32>(0);
    let stx2 = stx.clone();
    let h = spawn(move || {
        select! {
            recv(rx) -> v => v.map(|_| "value"),
            send(stx2, 1) -> r => r.map(|_| "sent").map_err(|_| RecvError),
        }
    });
    gort_goroutine::time::sleep(Duration::from_millis(20));
    tx.close();
    assert_eq!(h.join().unwrap(), Err(RecvError));
    // A blocked select send case fires with an error when its channel closes.
    let (tx, _rx) = bounded::<u32>(0);
    let tx2 = tx.clone();
    let h = spawn(move || select! { send(tx2, 1) -> r => r });
    gort_goroutine::time::sleep(Duration::from_millis(20));
    tx.close();
    assert_eq!(h.join().unwrap(), Err(SendError(1)));
    drop(stx);
}

#[test]
fn send_and_receive_on_one_channel_never_meet_themselves() {
    let (tx, rx) = bounded::<u32>(0);
    let t = Instant::now();
    let r = select! {
        send(tx, 1) -> _r => "sent",
        recv(rx) -> _v => "received",
        default(Duration::from_millis(20)) => "nothing",
    };
    assert_eq!(r, "nothing");
    assert!(t.elapsed() >= Duration::from_millis(20));
    // Two goroutines doing the same select do meet each other.
    let g = |me: u32, tx: Sender<u32>, rx: Receiver<u32>| {
        spawn(move || {
            for _ in 0..500 {
                select! {
                    send(tx, me) -> r => r.unwrap(),
                    recv(rx) -> v => assert_ne!(v.unwrap(), me, "received its own value"),
                }
            }
        })
    };
    let (a, b) = (g(1, tx.clone(), rx.clone()), g(2, tx.clone(), rx.clone()));
    // Whichever finishes first leaves the other needing partners; this goroutine serves them.
    let helper = spawn(move || loop {
        select! {
            send(tx, 3) -> r => if r.is_err() { break },
            recv(rx) -> v => if v.is_err() { break },
            default(Duration::from_millis(200)) => break,
        }
    });
    a.join().unwrap();
    b.join().unwrap();
    helper.join().unwrap();
}

#[test]
fn duplicate_channels_in_one_select() {
    let (tx, rx) = bounded::<u32>(0);
    let (_dtx, drx) = bounded::<u32>(0);
    let h = spawn({
        let rx = rx.clone();
        move || {
            select! {
                recv(rx) -> v => v.unwrap(),
                recv(rx) -> v => v.unwrap() + 100,
                recv(drx) -> _v => unreachable!(),
            }
        }
    });
    gort_goroutine::time::sleep(Duration::from_millis(10));
    tx.send(1).unwrap();
    assert!([1, 101].contains(&h.join().unwrap()));
    // The channel still works for a plain receiver afterwards (its queue was left clean).
    let h = spawn(move || rx.recv().unwrap());
    tx.send(2).unwrap();
    assert_eq!(h.join().unwrap(), 2);
}

/// A message expression that panics (typed as a value, so the select still has a send case).
fn failing_message(msg: &str) -> u32 {
    if std::hint::black_box(true) {
        panic!("{msg}");
    }
    0
}

#[test]
fn a_panicking_message_sends_nothing_and_frees_the_receiver() {
    // Unbuffered: a receiver is waiting; the select claims it, then the message panics.
    let (tx, rx) = bounded::<u32>(0);
    let waiting = spawn(move || rx.recv());
    gort_goroutine::time::sleep(Duration::from_millis(20));
    let r = catch_unwind(AssertUnwindSafe(|| {
        select! {
            send(tx, failing_message("message failed")) -> _r => {},
        }
    }));
    assert!(r.is_err());
    // The receiver was released to wait again; a normal send now reaches it.
    tx.send(5).unwrap();
    assert_eq!(waiting.join().unwrap(), Ok(5));
    // Buffered: the reserved slot is given back.
    let (tx, rx) = bounded::<u32>(1);
    let r = catch_unwind(AssertUnwindSafe(|| {
        select! { send(tx, failing_message("again")) -> _r => {} }
    }));
    assert!(r.is_err());
    assert_eq!(tx.try_send(6), Ok(()));
    assert_eq!(rx.try_recv(), Ok(6));
}

#[test]
fn a_waiting_select_send_is_met_by_a_try_recv() {
    let (tx, rx) = bounded::<String>(0);
    let h = spawn(move || {
        select! {
            send(tx, String::from("lazy")) -> r => r.unwrap(),
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        match rx.try_recv() {
            Ok(v) => break v,
            Err(_) if Instant::now() < deadline => {
                gort_goroutine::time::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(got, "lazy");
    h.join().unwrap();
}

#[test]
fn bodies_use_control_flow_and_reassign_channels() {
    let (tx, rx) = bounded::<u32>(8);
    for i in 0..8 {
        tx.send(i).unwrap();
    }
    drop(tx);
    let mut rx_opt = Some(rx);
    let mut sum = 0;
    loop {
        select! {
            recv(rx_opt) -> v => match v {
                Ok(3) => continue,
                Ok(v) => sum += v,
                Err(_) => rx_opt = None, // Go's `c = nil`
            },
            default => break,
        }
    }
    assert_eq!(sum, 28 - 3);
    fn first(rx: &Receiver<u32>) -> Result<u32, RecvError> {
        loop {
            select! {
                recv(rx) -> v => return Ok(v? * 2), // `?` and `return` act on `first`
                default(Duration::from_secs(10)) => {}
            }
        }
    }
    let (tx, rx) = bounded(1);
    tx.send(21).unwrap();
    assert_eq!(first(&rx), Ok(42));
    drop(tx);
    assert_eq!(first(&rx), Err(RecvError));
}

#[test]
fn many_cases() {
    let chans: Vec<(Sender<usize>, Receiver<usize>)> = (0..12).map(|_| bounded(1)).collect();
    let r: Vec<&Receiver<usize>> = chans.iter().map(|c| &c.1).collect();
    for (i, c) in chans.iter().enumerate() {
        c.0.send(i).unwrap();
        let got = select! {
            recv(r[0]) -> v => v, recv(r[1]) -> v => v, recv(r[2]) -> v => v,
            recv(r[3]) -> v => v, recv(r[4]) -> v => v, recv(r[5]) -> v => v,
            recv(r[6]) -> v => v, recv(r[7]) -> v => v, recv(r[8]) -> v => v,
            recv(r[9]) -> v => v, recv(r[10]) -> v => v, recv(r[11]) -> v => v,
        };
        assert_eq!(got, Ok(i));
    }
}

#[test]
fn select_with_no_cases_blocks_forever() {
    fn wait_forever() -> u32 {
        select! {}
    }
    let (done_tx, done_rx) = bounded::<u32>(1);
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = ran.clone();
    // The goroutine stays parked for the rest of the process, as Go's `select {}` would.
    drop(spawn(move || {
        ran2.fetch_add(1, Ordering::SeqCst);
        let _ = done_tx.send(wait_forever());
    }));
    assert!(done_rx.recv_timeout(Duration::from_millis(50)).is_err());
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn select_on_plain_threads_and_goroutines() {
    let (tx, rx) = bounded::<u32>(0);
    let thread = std::thread::spawn({
        let rx = rx.clone();
        move || select! { recv(rx) -> v => v.unwrap() }
    });
    let goroutine = spawn(move || select! { recv(rx) -> v => v.unwrap() });
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    let mut got = [thread.join().unwrap(), goroutine.join().unwrap()];
    got.sort();
    assert_eq!(got, [1, 2]);
}
