//! The behaviour of Go's `test/chan` programs (Go 1.19), ported as gort tests: doubleselect, fifo,
//! goroutines, nonblock, select, select2 (in `chan_select2.rs`), select3 to select8, sendstmt,
//! sieve1, sieve2, zerosize; powser1 and powser2 are in `chan_powser.rs`, and perm.go's direction
//! checks are compile-fail doctests in gort-chan's crate docs (`Sender`/`Receiver` make direction
//! static). Sizes are scaled to keep the suite quick in debug builds.
//!
//! Where Go and gort differ by design the test says so: a send on a closed channel returns the value
//! in an error instead of panicking, a nil channel is an `Option` set to `None`, and a `select!` send
//! case evaluates its value only if it fires.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gort::chan::{bounded, Receiver, SendError, Sender, TrySendError};
use gort::select;

const PRIMES: [u64; 25] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
];

/// doubleselect.go: a select with four send cases of the same value, raced by four forwarders; no
/// value may be sent twice (two cases of one select firing) or lost.
#[gort::test]
fn doubleselect() {
    const N: u32 = 20_000;
    let (outs, ins): (Vec<Sender<u32>>, Vec<Receiver<u32>>) = (0..4).map(|_| bounded(0)).unzip();
    gort::go!(move || {
        for i in 0..N {
            select! {
                send(outs[0], i) -> r => r.unwrap(),
                send(outs[1], i) -> r => r.unwrap(),
                send(outs[2], i) -> r => r.unwrap(),
                send(outs[3], i) -> r => r.unwrap(),
            }
        } // the four senders drop here: Go's deferred closes
    });
    let (mux_tx, mux_rx) = bounded::<u32>(0);
    let (done_tx, done_rx) = bounded::<()>(0);
    for input in ins {
        let (out, done) = (mux_tx.clone(), done_tx.clone());
        gort::go!(move || {
            for v in input {
                out.send(v).unwrap();
            }
            done.send(()).unwrap();
        });
    }
    gort::go!(move || {
        for _ in 0..4 {
            done_rx.recv().unwrap();
        }
        mux_tx.close();
    });
    let mut seen = HashSet::new();
    for v in mux_rx {
        assert!(seen.insert(v), "got duplicate value {v}");
    }
    assert_eq!(seen.len(), N as usize);
}

/// fifo.go: a buffered channel is FIFO, and so is an unbuffered one read by a daisy chain of
/// goroutines that take turns.
#[gort::test]
fn fifo() {
    const N: u32 = 10;
    let (tx, rx) = bounded(N as usize);
    for i in 0..N {
        tx.send(i).unwrap();
    }
    for i in 0..N {
        assert_eq!(rx.recv(), Ok(i), "bad receive");
    }

    let (tx, rx) = bounded::<u32>(0);
    let (start, mut turn) = bounded::<()>(0);
    for i in 0..N {
        let (next_tx, next_rx) = bounded::<()>(0);
        let rx = rx.clone();
        gort::go!(move || {
            turn.recv().unwrap();
            assert_eq!(rx.recv(), Ok(i));
            next_tx.send(()).unwrap();
        });
        turn = next_rx;
    }
    start.send(()).unwrap();
    for i in 0..N {
        tx.send(i).unwrap();
    }
    turn.recv().unwrap();
}

/// goroutines.go: ten thousand goroutines in a chain, each forwarding one value leftwards.
#[gort::test]
fn goroutines() {
    const N: usize = 10_000;
    let (leftmost_tx, leftmost_rx) = bounded::<u32>(0);
    let mut left = leftmost_tx;
    for _ in 0..N {
        let (right_tx, right_rx) = bounded::<u32>(0);
        let l = left;
        gort::go!(move || l.send(right_rx.recv().unwrap()).unwrap());
        left = right_tx;
    }
    gort::go!(move || left.send(1).unwrap());
    assert_eq!(leftmost_rx.recv(), Ok(1));
}

/// nonblock.go, for one element type: non-blocking receives on an empty channel take `default`;
/// non-blocking sends and receives eventually meet a partner goroutine, on buffered and unbuffered
/// channels.
fn nonblock_for<T: Clone + PartialEq + Debug + Send + 'static>(to_receiver: T, from_sender: T) {
    const MAX_TRIES: usize = 10_000;
    let sleep = || {
        gort::time::sleep(Duration::from_micros(10));
        for _ in 0..3 {
            gort::yield_now();
        }
    };
    let (strobe_tx, strobe_rx) = bounded::<()>(0);
    for buffer in 0..2 {
        let (tx, rx) = bounded::<T>(buffer);
        select! {
            recv(rx) -> _v => panic!("blocked sender"),
            default => {}
        }

        let (want, r, s) = (to_receiver.clone(), rx.clone(), strobe_tx.clone());
        gort::go!(move || {
            assert_eq!(r.recv().unwrap(), want);
            s.send(()).unwrap();
        });
        let mut tries = 0;
        loop {
            let sent = select! {
                send(tx, to_receiver.clone()) -> r => { r.unwrap(); true },
                default => false,
            };
            if sent {
                break;
            }
            tries += 1;
            assert!(tries <= MAX_TRIES, "receiver, buffer={buffer}");
            sleep();
        }
        strobe_rx.recv().unwrap();

        let (v, t, s) = (from_sender.clone(), tx.clone(), strobe_tx.clone());
        gort::go!(move || {
            t.send(v).unwrap();
            s.send(()).unwrap();
        });
        if buffer > 0 {
            strobe_rx.recv().unwrap();
        }
        let mut tries = 0;
        let got = loop {
            let got = select! {
                recv(rx) -> v => Some(v.unwrap()),
                default => None,
            };
            if let Some(v) = got {
                break v;
            }
            tries += 1;
            assert!(tries <= MAX_TRIES, "sender, buffer={buffer}");
            sleep();
        };
        assert_eq!(got, from_sender);
        if buffer == 0 {
            strobe_rx.recv().unwrap();
        }
    }
}

/// nonblock.go over its four element types.
#[gort::test]
fn nonblock() {
    nonblock_for::<i32>(123, 234);
    nonblock_for::<i64>(123_456, 234_567);
    nonblock_for::<bool>(true, true);
    nonblock_for::<String>("hello".into(), "hello again".into());
}

/// select.go: a loop of selects over two buffered send cases and `default`, disabling each case
/// (Go's `c = nil`) once it fired. gort evaluates a send case's value only when it fires, so the
/// value function runs once per send (3 times), where Go runs it for every case of every select
/// (10 times).
#[gort::test]
fn select_send_loop() {
    let counter = AtomicUsize::new(0);
    let mut shift = 0;
    let get_value = |shift: u32| {
        counter.fetch_add(1, Ordering::SeqCst);
        1u32 << shift
    };
    let mut send = |a: Option<&Sender<u32>>, b: Option<&Sender<u32>>| {
        let (mut a, mut b) = (a, b);
        let mut sent = 0;
        loop {
            let fired = select! {
                send(a, get_value(shift)) -> r => { r.unwrap(); a = None; true },
                send(b, get_value(shift)) -> r => { r.unwrap(); b = None; true },
                default => false,
            };
            if !fired {
                break;
            }
            sent += 1;
            shift += 1;
        }
        sent
    };
    let (a_tx, a_rx) = bounded::<u32>(1);
    let (b_tx, b_rx) = bounded::<u32>(1);
    assert_eq!(send(Some(&a_tx), Some(&b_tx)), 2);
    let (av, bv) = (a_rx.recv().unwrap(), b_rx.recv().unwrap());
    assert_eq!(av | bv, 3, "bad values {av} {bv}");
    assert_eq!(send(Some(&a_tx), None), 1);
    assert_eq!(a_rx.recv(), Ok(4));
    assert_eq!(counter.load(Ordering::SeqCst), 3);
}

/// select3.go's probe: whether `f` blocks, judged by whether it finishes within `wait`.
fn blocks(wait: Duration, f: impl FnOnce() + Send + 'static) -> bool {
    let (done_tx, done_rx) = bounded::<()>(1);
    gort::go!(move || {
        f();
        let _ = done_tx.send(());
    }); // a blocked probe stays parked; as in Go, nothing reclaims it
    done_rx.recv_timeout(wait).is_err()
}

/// select3.go: what blocks and what does not. "Always blocks" is judged after 20 ms, "never
/// blocks" with 10 s to spare, as Go does.
#[gort::test]
fn select3() {
    const ALWAYS: Duration = Duration::from_millis(20);
    const NEVER: Duration = Duration::from_secs(10);
    let nil_rx: Option<Receiver<i32>> = None;
    let nil_tx: Option<Sender<i32>> = None;
    let (closed_tx, closed_rx) = bounded::<i32>(0);
    closed_tx.close();

    // A select over only nil channels blocks; with a default it does not, and never picks them.
    assert!(blocks(
        ALWAYS,
        move || select! { recv(None::<Receiver<i32>>) -> _v => unreachable!() }
    ));
    assert!(blocks(
        ALWAYS,
        || select! { send(None::<Sender<i32>>, 7) -> _r => unreachable!() }
    ));
    assert!(blocks(ALWAYS, || {
        select! {
            recv(None::<Receiver<i32>>) -> _v => unreachable!(),
            send(None::<Sender<i32>>, 7) -> _r => unreachable!(),
        }
    }));
    select! { recv(nil_rx) -> _v => unreachable!(), default => {} }
    select! { send(nil_tx, 7) -> _r => unreachable!(), default => {} }

    // Sending to a buffered channel with room never blocks.
    assert!(!blocks(NEVER, || bounded::<i32>(1).0.send(7).unwrap()));
    // Receiving from a closed channel never blocks, and reports the close.
    let r = closed_rx.clone();
    assert!(!blocks(NEVER, move || {
        for _ in 0..10 {
            assert!(r.recv().is_err());
        }
    }));
    // Sending to a closed channel fails (Go panics): the value comes back.
    assert_eq!(closed_tx.send(7), Err(SendError(7)));
    // Receiving from a channel that is not ready blocks.
    assert!(blocks(ALWAYS, || {
        let (_tx, rx) = bounded::<i32>(0);
        let _ = rx.recv();
    }));
    // Empty selects always block.
    assert!(blocks(ALWAYS, || select! {}));
    // Selects over channels that are not ready block.
    assert!(blocks(ALWAYS, || {
        let (_tx, rx) = bounded::<i32>(0);
        select! { recv(rx) -> _v => unreachable!() }
    }));
    // Selects with a default do not.
    assert!(!blocks(NEVER, || select! { default => {} }));
    assert!(!blocks(
        NEVER,
        || select! { recv(None::<Receiver<i32>>) -> _v => unreachable!(), default => {} }
    ));
    // Selects with ready channels do not.
    assert!(!blocks(NEVER, || {
        let (tx, _rx) = bounded::<i32>(1);
        select! { send(tx, 7) -> r => r.unwrap(), default => unreachable!() }
    }));
    assert!(!blocks(NEVER, || {
        let (tx, rx) = bounded::<i32>(1);
        tx.send(7).unwrap();
        select! { recv(rx) -> v => assert_eq!(v, Ok(7)), default => unreachable!() }
    }));
    // Selects with closed channels behave like plain operations.
    let r = closed_rx.clone();
    assert!(!blocks(
        NEVER,
        move || select! { recv(r) -> v => assert!(v.is_err()) }
    ));
    let t = closed_tx.clone();
    assert!(!blocks(
        NEVER,
        move || select! { send(t, 7) -> r => assert_eq!(r, Err(SendError(7))) }
    ));
    // A select does not get confused if it sees itself.
    assert!(blocks(ALWAYS, || {
        let (tx, rx) = bounded::<i32>(0);
        select! {
            send(tx, 1) -> _r => unreachable!(),
            recv(rx) -> _v => unreachable!(),
        }
    }));
}

/// select4.go: only the chosen case's receive target is touched (Go: the left-hand side of an
/// unchosen case is never evaluated; here, its body never runs).
#[gort::test]
fn select4() {
    let touched = AtomicUsize::new(0);
    let (tx, rx) = bounded::<i32>(1);
    let (_tx1, rx1) = bounded::<i32>(0);
    tx.send(42).unwrap();
    let mut x = 0;
    select! {
        recv(rx1) -> _v => { touched.fetch_add(1, Ordering::SeqCst); }
        recv(rx) -> v => x = v.unwrap(),
    }
    assert_eq!(x, 42);
    assert_eq!(
        touched.load(Ordering::SeqCst),
        0,
        "BUG: evaluated the other case"
    );
}

/// select5.go, in spirit: single-goroutine sends and receives on a buffered channel, phrased as
/// selects with a default before or after the real case, dummy cases on a channel that is never
/// ready, and nil cases. The real case always fires, the others never; channel operands are
/// evaluated in order, before any send value, which only the firing case evaluates.
#[gort::test]
fn select5() {
    let (c_tx, c_rx) = bounded::<i32>(1);
    let (dummy_tx, dummy_rx) = bounded::<i32>(0);
    let nil_tx: Option<&Sender<i32>> = None;
    let nil_rx: Option<&Receiver<i32>> = None;
    let mut n = 1;

    // Receives.
    c_tx.send(n).unwrap();
    let x = select! {
        default => panic!("nonblock"),
        recv(c_rx) -> v => v.unwrap(),
        send(dummy_tx, 1) -> _r => panic!("dummy send"),
        recv(dummy_rx) -> _v => panic!("dummy receive"),
        send(nil_tx, 1) -> _r => panic!("nil send"),
        recv(nil_rx) -> _v => panic!("nil receive"),
    };
    assert_eq!(x, n);
    n += 1;
    c_tx.send(n).unwrap();
    let x = select! {
        recv(dummy_rx) -> _v => panic!("dummy receive"),
        recv(c_rx) -> v => v.unwrap(),
        default => panic!("nonblock"),
    };
    assert_eq!(x, n);
    n += 1;
    c_tx.send(n).unwrap();
    let x = select! { recv(c_rx) -> v => v.unwrap() };
    assert_eq!(x, n);
    n += 1;

    // Sends.
    select! {
        send(c_tx, n) -> r => r.unwrap(),
        recv(dummy_rx) -> _v => panic!("dummy receive"),
        send(nil_tx, 1) -> _r => panic!("nil send"),
        default => panic!("nonblock"),
    }
    assert_eq!(c_rx.recv(), Ok(n));
    n += 1;
    select! {
        default => panic!("nonblock"),
        send(dummy_tx, 1) -> _r => panic!("dummy send"),
        send(c_tx, n) -> r => r.unwrap(),
    }
    assert_eq!(c_rx.recv(), Ok(n));
    n += 1;

    // Order of evaluation: channel operands left to right, then only the firing case's value.
    let order = std::sync::Mutex::new(Vec::new());
    let log = |what: &'static str| order.lock().unwrap().push(what);
    let fc = |c: &Sender<i32>, what: &'static str| -> Sender<i32> {
        log(what);
        c.clone()
    };
    let fr = |c: &Receiver<i32>, what: &'static str| -> Receiver<i32> {
        log(what);
        c.clone()
    };
    let fnv = |v: i32, what: &'static str| -> i32 {
        log(what);
        v
    };
    select! {
        send(fc(&c_tx, "c"), fnv(n, "value of c")) -> r => r.unwrap(),
        send(fc(&dummy_tx, "dummy"), fnv(1, "value of dummy")) -> _r => panic!("dummy send"),
        recv(fr(&dummy_rx, "dummy receive")) -> _v => panic!("dummy receive"),
        default => panic!("nonblock"),
    }
    assert_eq!(
        *order.lock().unwrap(),
        ["c", "dummy", "dummy receive", "value of c"]
    );
    assert_eq!(c_rx.recv(), Ok(n));

    // Non-blocking with nothing ready: the default fires and the receive target is not touched.
    let mut x = n;
    select! {
        send(dummy_tx, 1) -> _r => panic!("dummy <- 1"),
        send(nil_tx, 1) -> _r => panic!("nil <- 1"),
        recv(dummy_rx) -> v => x = v.unwrap(),
        recv(nil_rx) -> v => x = v.unwrap(),
        default => {}
    }
    assert_eq!(x, n);
}

/// select6.go: a select woken through one channel must leave no trace in the other channel's queue,
/// or a later send on that channel would be handed to the departed select.
#[gort::test]
fn select6() {
    let (c1_tx, c1_rx) = bounded::<bool>(0);
    let (c2_tx, c2_rx) = bounded::<bool>(0);
    let (c3_tx, c3_rx) = bounded::<bool>(0);
    let r1 = c1_rx.clone();
    gort::go!(move || {
        r1.recv().unwrap();
    });
    let r1 = c1_rx.clone();
    gort::go!(move || {
        select! {
            recv(r1) -> _v => panic!("dummy"),
            recv(c2_rx) -> _v => c3_tx.send(true).unwrap(),
        }
        r1.recv().unwrap();
    });
    gort::go!(move || c2_tx.send(true).unwrap());
    c3_rx.recv().unwrap();
    c1_tx.send(true).unwrap();
    c1_tx.send(true).unwrap();
}

/// select7.go: every pairing of a plain, a one-case select and a two-case select receive with a
/// plain, one-case select and two-case select send, on an unbuffered channel.
#[gort::test]
fn select7() {
    fn recv1(c: Receiver<i32>) {
        c.recv().unwrap();
    }
    fn recv2(c: Receiver<i32>) {
        select! { recv(c) -> v => { v.unwrap(); } }
    }
    fn recv3(c: Receiver<i32>) {
        let (_c2_tx, c2) = bounded::<i32>(0);
        select! {
            recv(c) -> v => { v.unwrap(); }
            recv(c2) -> _v => unreachable!(),
        }
    }
    fn send1(recv: fn(Receiver<i32>)) {
        let (tx, rx) = bounded(0);
        let h = gort::go!(recv(rx));
        gort::yield_now();
        tx.send(1).unwrap();
        h.join().unwrap();
    }
    fn send2(recv: fn(Receiver<i32>)) {
        let (tx, rx) = bounded(0);
        let h = gort::go!(recv(rx));
        gort::yield_now();
        select! { send(tx, 1) -> r => r.unwrap() }
        h.join().unwrap();
    }
    fn send3(recv: fn(Receiver<i32>)) {
        let (tx, rx) = bounded(0);
        let h = gort::go!(recv(rx));
        gort::yield_now();
        let (c2, _c2_rx) = bounded::<i32>(0);
        select! {
            send(tx, 1) -> r => r.unwrap(),
            send(c2, 1) -> _r => unreachable!(),
        }
        h.join().unwrap();
    }
    for recv in [recv1 as fn(Receiver<i32>), recv2, recv3] {
        send1(recv);
        send2(recv);
        send3(recv);
    }
}

/// select8.go: `break` and the rest of control flow inside case bodies.
#[gort::test]
#[allow(clippy::never_loop)] // each loop exists to be broken out of from inside a select
fn select8() {
    let (tx, rx) = bounded::<i32>(0);
    gort::go!(move || while tx.send(5).is_ok() {});
    let mut reached = 0;
    loop {
        select! {
            recv(rx) -> v => { assert_eq!(v, Ok(5)); break; }
        }
    }
    reached += 1;
    loop {
        select! { default => break }
    }
    reached += 1;
    // With a ready channel and a default, the channel may or may not be ready at this instant (the
    // sender loops); either way the body breaks out.
    loop {
        select! {
            recv(rx) -> v => { assert_eq!(v, Ok(5)); break; }
            default => break,
        }
    }
    reached += 1;
    let (tx2, _rx2) = bounded::<i32>(0);
    loop {
        select! {
            recv(rx) -> _v => break,
            send(tx2, 10) -> _r => panic!("unreachable"),
            default => break,
        }
    }
    reached += 1;
    assert_eq!(reached, 4);
}

/// sendstmt.go: the channel operand of a send case may itself come from a receive (`<-cc <- 2`),
/// evaluated when the select starts; and the sent value is a whole expression.
#[gort::test]
fn sendstmt() {
    let (cc_tx, cc_rx) = bounded::<Sender<i32>>(1);
    let (c_tx, c_rx) = bounded::<i32>(1);
    cc_tx.send(c_tx).unwrap();
    select! {
        send(cc_rx.recv().unwrap(), 2) -> r => r.unwrap(),
        default => panic!("nonblock"),
    }
    assert_eq!(c_rx.recv(), Ok(2), "bad receive");

    let (tx, rx) = bounded::<bool>(1);
    let (f, t) = (false, std::hint::black_box(true));
    tx.send(f || t).unwrap(); // the whole expression is sent: Go's `c <- false || true`
    assert!(rx.recv().unwrap(), "sent false");
}

/// sieve1.go: the concurrent prime sieve, a daisy chain of filter goroutines. When the test drops its
/// receiver, every goroutine's send fails and the chain winds down.
#[gort::test]
fn sieve1() {
    fn generate(ch: Sender<u64>) {
        let mut i = 2;
        while ch.send(i).is_ok() {
            i += 1;
        }
    }
    fn filter(input: Receiver<u64>, out: Sender<u64>, prime: u64) {
        for i in input {
            if i % prime != 0 && out.send(i).is_err() {
                return;
            }
        }
    }
    fn sieve(primes: Sender<u64>) {
        let (tx, mut ch) = bounded(0);
        gort::go!(generate(tx));
        loop {
            let Ok(prime) = ch.recv() else { return };
            if primes.send(prime).is_err() {
                return;
            }
            let (tx1, ch1) = bounded(0);
            gort::go!(filter(ch, tx1, prime));
            ch = ch1;
        }
    }
    let (tx, primes) = bounded(0);
    gort::go!(sieve(tx));
    for want in PRIMES {
        assert_eq!(primes.recv(), Ok(want));
    }
}

/// sieve2.go: a prime sieve that merges the multiples of each prime through a heap of peekable
/// channels, with a send proxy that buffers without bound by disabling its send case (`c = nil`)
/// while empty.
#[gort::test]
fn sieve2() {
    fn odds() -> Receiver<u64> {
        let (tx, rx) = bounded(50);
        gort::go!(move || {
            let mut n = 5;
            while tx.send(n).is_ok() {
                n += 2;
            }
        });
        rx
    }
    fn multiples(p: u64) -> Receiver<u64> {
        let (tx, rx) = bounded(10);
        gort::go!(move || {
            let mut n = p * p;
            while tx.send(n).is_ok() {
                n += 2 * p;
            }
        });
        rx
    }
    /// A channel in front of `out` that never blocks its sender: values queue in a growing buffer.
    fn send_proxy(out: Sender<u64>) -> Sender<u64> {
        let (proxy_tx, proxy_rx) = bounded::<u64>(10);
        gort::go!(move || {
            let mut buf = VecDeque::with_capacity(16);
            loop {
                // Buffer empty: disable the output case.
                let c = if buf.is_empty() { None } else { Some(&out) };
                let head = buf.front().copied().unwrap_or(0);
                select! {
                    recv(proxy_rx) -> e => match e {
                        Ok(e) => buf.push_back(e),
                        Err(_) => return,
                    },
                    send(c, head) -> r => {
                        if r.is_err() {
                            return;
                        }
                        buf.pop_front();
                    }
                }
            }
        });
        proxy_tx
    }
    fn sieve() -> Receiver<u64> {
        let (out, out_rx) = bounded(10);
        out.send(2).unwrap();
        out.send(3).unwrap();
        let (composites_tx, composites) = bounded::<u64>(50);
        let (primes_tx, primes_rx) = bounded::<u64>(10);
        primes_tx.send(3).unwrap();
        // Merge the multiples of every prime into `composites`, in increasing order.
        gort::go!(move || {
            // A min-heap of (head, channel): Go's PeekChHeap.
            let mut heap: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
            let mut chans: Vec<Receiver<u64>> = Vec::new();
            let mut min = 15;
            loop {
                let Ok(p) = primes_rx.recv() else { return };
                let m = multiples(p);
                let Ok(head) = m.recv() else { return };
                while min < head {
                    if composites_tx.send(min).is_err() {
                        return;
                    }
                    let Reverse((h, i)) = heap.pop().unwrap();
                    min = h;
                    let Ok(next) = chans[i].recv() else { return };
                    heap.push(Reverse((next, i)));
                }
                while min == head {
                    let Reverse((h, i)) = heap.pop().unwrap();
                    min = h;
                    let Ok(next) = chans[i].recv() else { return };
                    heap.push(Reverse((next, i)));
                }
                if composites_tx.send(head).is_err() {
                    return;
                }
                let Ok(first) = m.recv() else { return };
                chans.push(m);
                heap.push(Reverse((first, chans.len() - 1)));
            }
        });
        // Sieve the composites out of the odd candidates.
        gort::go!(move || {
            let primes = send_proxy(primes_tx);
            let candidates = odds();
            let Ok(mut p) = candidates.recv() else { return };
            loop {
                let Ok(c) = composites.recv() else { return };
                while p < c {
                    if primes.send(p).is_err() || out.send(p).is_err() {
                        return;
                    }
                    let Ok(next) = candidates.recv() else { return };
                    p = next;
                }
                if p == c {
                    let Ok(next) = candidates.recv() else { return };
                    p = next;
                }
            }
        });
        out_rx
    }
    let primes = sieve();
    for want in PRIMES {
        assert_eq!(primes.recv(), Ok(want));
    }
}

/// zerosize.go: channels of zero-sized values, unbuffered and buffered.
#[gort::test]
fn zerosize() {
    let (tx, rx) = bounded::<[u8; 0]>(0);
    gort::go!(move || tx.send([]).unwrap());
    assert_eq!(rx.recv(), Ok([]));
    let (tx, rx) = bounded::<[u8; 0]>(1);
    tx.send([]).unwrap();
    assert_eq!(tx.try_send([]), Err(TrySendError::Full([])));
    assert_eq!(rx.recv(), Ok([]));
    let (tx, rx) = bounded::<()>(0);
    gort::go!(move || tx.send(()).unwrap());
    assert_eq!(rx.recv(), Ok(()));
    let (tx, rx) = bounded::<()>(1);
    tx.send(()).unwrap();
    assert_eq!(rx.len(), 1);
    assert_eq!(rx.recv(), Ok(()));
}
