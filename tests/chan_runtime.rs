//! The behaviour of the channel tests in Go's `runtime/chan_test.go` (Go 1.19), ported as gort
//! tests: TestChan, TestNonblockRecvRace, TestNonblockSelectRace(2), TestSelfSelect,
//! TestSelectStress, TestSelectFairness, TestChanSendInterface, TestPseudoRandomSend,
//! TestMultiConsumer and TestSelectDuplicateChannel. Sizes follow Go's `-short` mode where Go has
//! one, and are scaled down elsewhere to keep debug runs quick.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gort::chan::{bounded, Receiver, RecvError, Sender};
use gort::select;
use gort::sync::WaitGroup;

fn sleep_ms(ms: u64) {
    gort::time::sleep(Duration::from_millis(ms));
}

/// TestChan: for capacities 0..20, receives from an empty channel block, sends to a full one
/// block, non-blocking operations do not, a closed channel yields its buffered values then
/// "closed", close unblocks receivers, values arrive uncorrupted and in FIFO order (from one sender),
/// with several senders and receivers every value arrives once, and len/cap are right.
#[gort::test]
fn test_chan() {
    for cap in 0..20usize {
        {
            // Receiving from an empty channel blocks.
            let (tx, rx) = bounded::<i32>(cap);
            let received = Arc::new(AtomicBool::new(false));
            for _ in 0..2 {
                let (rx, received) = (rx.clone(), received.clone());
                gort::go!(move || {
                    let _ = rx.recv();
                    received.store(true, Ordering::SeqCst);
                });
            }
            sleep_ms(1);
            assert!(
                !received.load(Ordering::SeqCst),
                "chan[{cap}]: receive from empty chan"
            );
            // A non-blocking receive does not block.
            select! {
                recv(rx) -> _v => panic!("chan[{cap}]: receive from empty chan"),
                default => {}
            }
            tx.send(0).unwrap();
            tx.send(0).unwrap();
        }
        {
            // Sending to a full channel blocks.
            let (tx, rx) = bounded::<i32>(cap);
            for i in 0..cap {
                tx.send(i as i32).unwrap();
            }
            let sent = Arc::new(AtomicBool::new(false));
            let (t, s) = (tx.clone(), sent.clone());
            gort::go!(move || {
                t.send(0).unwrap();
                s.store(true, Ordering::SeqCst);
            });
            sleep_ms(1);
            assert!(
                !sent.load(Ordering::SeqCst),
                "chan[{cap}]: send to full chan"
            );
            // A non-blocking send does not block.
            select! {
                send(tx, 0) -> _r => panic!("chan[{cap}]: send to full chan"),
                default => {}
            }
            rx.recv().unwrap();
        }
        {
            // A closed channel yields its buffered values, then "closed".
            let (tx, rx) = bounded::<i32>(cap);
            for i in 0..cap {
                tx.send(i as i32).unwrap();
            }
            tx.close();
            for i in 0..cap {
                assert_eq!(rx.recv(), Ok(i as i32), "chan[{cap}]");
            }
            assert_eq!(rx.recv(), Err(RecvError));
            assert_eq!(rx.recv(), Err(RecvError));
        }
        {
            // Close unblocks a receiver.
            let (tx, rx) = bounded::<i32>(cap);
            let (done_tx, done_rx) = bounded::<bool>(0);
            gort::go!(move || done_tx.send(rx.recv() == Err(RecvError)).unwrap());
            sleep_ms(1);
            tx.close();
            assert!(
                done_rx.recv().unwrap(),
                "chan[{cap}]: received a value from a closed chan"
            );
        }
        {
            // 100 integers arrive uncorrupted, in order.
            let (tx, rx) = bounded::<i32>(cap);
            let t = tx.clone();
            gort::go!(move || {
                for i in 0..100 {
                    t.send(i).unwrap();
                }
            });
            for i in 0..100 {
                assert_eq!(rx.recv(), Ok(i), "chan[{cap}]");
            }
            // Four senders and four receivers, 1000 values each: every value arrives four times.
            const P: usize = 4;
            const L: i32 = 1000;
            for _ in 0..P {
                let t = tx.clone();
                gort::go!(move || {
                    for i in 0..L {
                        t.send(i).unwrap();
                    }
                });
            }
            let (done_tx, done_rx) = bounded::<HashMap<i32, usize>>(0);
            for _ in 0..P {
                let (r, d) = (rx.clone(), done_tx.clone());
                gort::go!(move || {
                    let mut got = HashMap::new();
                    for _ in 0..L {
                        *got.entry(r.recv().unwrap()).or_insert(0) += 1;
                    }
                    d.send(got).unwrap();
                });
            }
            let mut all: HashMap<i32, usize> = HashMap::new();
            for _ in 0..P {
                for (k, v) in done_rx.recv().unwrap() {
                    *all.entry(k).or_insert(0) += v;
                }
            }
            assert_eq!(all.len(), L as usize, "chan[{cap}]");
            assert!(all.values().all(|&v| v == P), "chan[{cap}]");
        }
        {
            // len and cap.
            let (tx, rx) = bounded::<i32>(cap);
            assert_eq!((rx.len(), rx.capacity()), (0, Some(cap)));
            for i in 0..cap {
                tx.send(i as i32).unwrap();
            }
            assert_eq!((tx.len(), tx.capacity()), (cap, Some(cap)));
        }
    }
}

/// TestNonblockRecvRace: a value buffered before a close is seen by a concurrent non-blocking
/// receive: the channel is never "not ready" in between.
#[gort::test]
fn test_nonblock_recv_race() {
    for _ in 0..1000 {
        let (tx, rx) = bounded::<i32>(1);
        tx.send(1).unwrap();
        let r = rx.clone();
        let h = gort::go!(move || {
            select! {
                recv(r) -> _v => true,
                default => false,
            }
        });
        tx.close();
        let _ = rx.recv();
        assert!(h.join().unwrap(), "chan is not ready");
    }
}

/// TestNonblockSelectRace: a select acts on the channels' state at one instant. From the moment the
/// goroutine starts, c1 or c2 is always ready, so its non-blocking select never takes `default`.
#[gort::test]
fn test_nonblock_select_race() {
    let (done_tx, done_rx) = bounded::<bool>(1);
    for _ in 0..5000 {
        let (c1_tx, c1_rx) = bounded::<i32>(1);
        let (c2_tx, c2_rx) = bounded::<i32>(1);
        c1_tx.send(1).unwrap();
        let (r1, r2, done) = (c1_rx.clone(), c2_rx.clone(), done_tx.clone());
        gort::go!(move || {
            let ready = select! {
                recv(r1) -> _v => true,
                recv(r2) -> _v => true,
                default => false,
            };
            done.send(ready).unwrap();
        });
        c2_tx.send(1).unwrap();
        select! {
            recv(c1_rx) -> _v => {}
            default => {}
        }
        assert!(done_rx.recv().unwrap(), "no chan is ready");
    }
}

/// TestNonblockSelectRace2: the same, with close(c2) making c2 ready.
#[gort::test]
fn test_nonblock_select_race2() {
    let (done_tx, done_rx) = bounded::<bool>(1);
    for _ in 0..5000 {
        let (c1_tx, c1_rx) = bounded::<i32>(1);
        let (c2_tx, c2_rx) = bounded::<i32>(0);
        c1_tx.send(1).unwrap();
        let (r1, r2, done) = (c1_rx.clone(), c2_rx.clone(), done_tx.clone());
        gort::go!(move || {
            let ready = select! {
                recv(r1) -> _v => true,
                recv(r2) -> _v => true,
                default => false,
            };
            done.send(ready).unwrap();
        });
        c2_tx.close();
        select! {
            recv(c1_rx) -> _v => {}
            default => {}
        }
        assert!(done_rx.recv().unwrap(), "no chan is ready");
    }
}

/// TestSelfSelect: selects that send and receive on the same channel, in two goroutines, neither
/// deadlock nor receive their own value from an unbuffered channel.
#[gort::test]
fn test_self_select() {
    for cap in [0usize, 10] {
        let wg = WaitGroup::new();
        wg.add(2);
        let (tx, rx) = bounded::<usize>(cap);
        for p in 0..2usize {
            let (tx, rx, wg) = (tx.clone(), rx.clone(), wg.clone());
            gort::go!(move || {
                for i in 0..1000 {
                    if p == 0 || i % 2 == 0 {
                        select! {
                            send(tx, p) -> r => r.unwrap(),
                            recv(rx) -> v => assert!(!(cap == 0 && v == Ok(p)), "self receive"),
                        }
                    } else {
                        select! {
                            recv(rx) -> v => assert!(!(cap == 0 && v == Ok(p)), "self receive"),
                            send(tx, p) -> r => r.unwrap(),
                        }
                    }
                }
                wg.done();
            });
        }
        wg.wait();
    }
}

/// TestSelectStress: plain senders and receivers on four channels (two unbuffered, two buffered)
/// interleave chaotically with a goroutine that sends to all four in one select and one that
/// receives from all four in one select, disabling each channel after N operations. Nothing
/// deadlocks and every count comes out exact.
#[gort::test]
fn test_select_stress() {
    const N: usize = 5000;
    let chans: Vec<(Sender<i32>, Receiver<i32>)> =
        vec![bounded(0), bounded(0), bounded(2), bounded(3)];
    let wg = WaitGroup::new();
    wg.add(10);
    for (tx, rx) in &chans {
        let (t, w) = (tx.clone(), wg.clone());
        gort::go!(move || {
            for _ in 0..N {
                t.send(0).unwrap();
            }
            w.done();
        });
        let (r, w) = (rx.clone(), wg.clone());
        gort::go!(move || {
            for _ in 0..N {
                r.recv().unwrap();
            }
            w.done();
        });
    }
    let senders: Vec<Sender<i32>> = chans.iter().map(|c| c.0.clone()).collect();
    let w = wg.clone();
    gort::go!(move || {
        let mut n = [0usize; 4];
        let mut c: Vec<Option<&Sender<i32>>> = senders.iter().map(Some).collect();
        for _ in 0..4 * N {
            let k = select! {
                send(c[3], 0) -> r => { r.unwrap(); 3 },
                send(c[2], 0) -> r => { r.unwrap(); 2 },
                send(c[0], 0) -> r => { r.unwrap(); 0 },
                send(c[1], 0) -> r => { r.unwrap(); 1 },
            };
            n[k] += 1;
            if n[k] == N {
                c[k] = None;
            }
        }
        w.done();
    });
    let receivers: Vec<Receiver<i32>> = chans.iter().map(|c| c.1.clone()).collect();
    let w = wg.clone();
    gort::go!(move || {
        let mut n = [0usize; 4];
        let mut c: Vec<Option<&Receiver<i32>>> = receivers.iter().map(Some).collect();
        for _ in 0..4 * N {
            let k = select! {
                recv(c[0]) -> v => { v.unwrap(); 0 },
                recv(c[1]) -> v => { v.unwrap(); 1 },
                recv(c[2]) -> v => { v.unwrap(); 2 },
                recv(c[3]) -> v => { v.unwrap(); 3 },
            };
            n[k] += 1;
            if n[k] == N {
                c[k] = None;
            }
        }
        w.done();
    });
    wg.wait();
}

/// TestSelectFairness: a select over two always-ready channels (and two never-ready ones) picks each
/// about half of the time: within the six-nines margin Go uses for 10,000 trials.
#[gort::test]
fn test_select_fairness() {
    const TRIALS: usize = 10_000;
    let (c1_tx, c1) = bounded::<u8>(TRIALS + 1);
    let (c2_tx, c2) = bounded::<u8>(TRIALS + 1);
    for _ in 0..=TRIALS {
        c1_tx.send(1).unwrap();
        c2_tx.send(2).unwrap();
    }
    let (_c3_tx, c3) = bounded::<u8>(0);
    let (_c4_tx, c4) = bounded::<u8>(0);
    let (out_tx, out) = bounded::<u8>(0);
    let (done_tx, done) = bounded::<()>(0);
    let h = gort::go!(move || loop {
        let b = select! {
            recv(c3) -> b => b.unwrap(),
            recv(c4) -> b => b.unwrap(),
            recv(c1) -> b => b.unwrap(),
            recv(c2) -> b => b.unwrap(),
        };
        select! {
            send(out_tx, b) -> r => r.unwrap(),
            recv(done) -> _d => return,
        }
    });
    let (mut cnt1, mut cnt2) = (0usize, 0usize);
    for _ in 0..TRIALS {
        match out.recv().unwrap() {
            1 => cnt1 += 1,
            2 => cnt2 += 1,
            b => panic!("unexpected value {b} on channel"),
        }
    }
    let r = cnt1 as f64 / TRIALS as f64;
    let e = (r - 0.5).abs();
    assert!(
        e <= 4.891676 / (2.0 * (TRIALS as f64).sqrt()),
        "unfair select: in {TRIALS} trials, results were {cnt1}, {cnt2}"
    );
    done_tx.close();
    h.join().unwrap();
}

/// TestChanSendInterface: channels of trait objects, in selects with default.
#[gort::test]
fn test_chan_send_interface() {
    struct Mt;
    let (tx, _rx) = bounded::<Box<dyn Any + Send>>(1);
    tx.send(Box::new(Mt)).unwrap();
    select! {
        send(tx, Box::new(Mt)) -> _r => {},
        default => {}
    }
    select! {
        send(tx, Box::new(Mt)) -> _r => {},
        send(tx, Box::new(Mt)) -> _r => {},
        default => {}
    }
}

/// TestPseudoRandomSend: a select with two send cases of different values on one channel sends
/// each value a fair share of the time, buffered or not.
#[gort::test]
fn test_pseudo_random_send() {
    const N: usize = 100;
    for cap in [0, N] {
        let (tx, rx) = bounded::<usize>(cap);
        let h = gort::go!(move || {
            (0..N)
                .map(|_| {
                    gort::yield_now();
                    rx.recv().unwrap()
                })
                .collect::<Vec<_>>()
        });
        for _ in 0..N {
            select! {
                send(tx, 1) -> r => r.unwrap(),
                send(tx, 0) -> r => r.unwrap(),
            }
        }
        let l = h.join().unwrap();
        let n1: usize = l.iter().sum();
        let n0 = N - n1;
        assert!(
            n0 > N / 10 && n1 > N / 10,
            "want pseudorandom, got {n0} zeros and {n1} ones (chan cap {cap})"
        );
    }
}

/// TestMultiConsumer: 23 workers ranging over one work channel, with the FIFO-ish order perturbed
/// by yields, feed one result channel; the sum and count of results are exact.
#[gort::test]
fn test_multi_consumer() {
    const NWORK: usize = 23;
    const NITER: usize = 50_000;
    let pn = [2usize, 3, 7, 11, 13, 17, 19, 23, 27, 31];
    let (q_tx, q_rx) = bounded::<usize>(NWORK * 3);
    let (r_tx, r_rx) = bounded::<usize>(NWORK * 3);
    let wg = WaitGroup::new();
    for w in 0..NWORK {
        wg.add(1);
        let (q, r, wg) = (q_rx.clone(), r_tx.clone(), wg.clone());
        gort::go!(move || {
            for v in q {
                if pn[w % pn.len()] == v {
                    gort::yield_now(); // mess with the FIFO-ish order of the range
                }
                r.send(v).unwrap();
            }
            wg.done();
        });
    }
    drop(q_rx);
    let expect = Arc::new(AtomicUsize::new(0));
    let e = expect.clone();
    gort::go!(move || {
        for i in 0..NITER {
            let v = pn[i % pn.len()];
            e.fetch_add(v, Ordering::SeqCst);
            q_tx.send(v).unwrap();
        }
        q_tx.close(); // no more work
        wg.wait(); // workers done
        r_tx.close(); // ... so there can be no more results
    });
    let (mut n, mut s) = (0, 0);
    for v in r_rx {
        n += 1;
        s += v;
    }
    assert_eq!((n, s), (NITER, expect.load(Ordering::SeqCst)));
}

/// TestSelectDuplicateChannel: a select queued twice on one channel, woken through another, leaves
/// that channel's queue intact for the next receiver.
#[gort::test]
fn test_select_duplicate_channel() {
    let (c_tx, c_rx) = bounded::<i32>(0);
    let (d_tx, d_rx) = bounded::<i32>(0);
    let (e_tx, e_rx) = bounded::<i32>(0);
    let c = c_rx.clone();
    gort::go!(move || {
        select! {
            recv(c) -> _v => {}
            recv(c) -> _v => {}
            recv(d_rx) -> _v => {}
        }
        e_tx.send(9).unwrap();
    });
    sleep_ms(1); // goroutine A queues on c first
    let b = gort::go!(move || c_rx.recv().unwrap());
    sleep_ms(1); // goroutine B queues on c after it
    d_tx.send(7).unwrap(); // wakes A, which dequeues itself from c
    assert_eq!(e_rx.recv(), Ok(9));
    c_tx.send(8).unwrap(); // must reach B
    assert_eq!(b.join().unwrap(), 8);
}
