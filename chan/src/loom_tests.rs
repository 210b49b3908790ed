//! Loom models of the commit protocol (`protocol.rs`): the state word, the waiter queues, direct
//! hand-off, reservations, close, and async cancellation. Run by `scripts/loom_chan.sh`.
//!
//! Under `cfg(loom)` the crate's atomics, cells and lock are loom's, parking is loom's park/unpark
//! behind the same `Waker` path, every deadline is already past (so each timed wait races its own
//! abort against its partners), and the poll order is fixed. The models are the real channel code,
//! driven by two or three threads; each asserts conservation (every value ends in exactly one
//! place) and that exactly one case of a select fired. Loom itself reports any data race on the
//! cells, any lost wake-up (as a deadlock), and any leak.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use loom::thread;

use crate::error::{RecvTimeoutError, SendTimeoutError};
use crate::{bounded, select};

/// Runs `f` under loom, exhaustively or with a preemption bound (three threads with several locks
/// each explode exhaustively). `LOOM_MAX_PREEMPTIONS` overrides the bound.
/// Prints how many executions loom explored, and fails if it explored too few to mean anything.
fn model(bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = bound;
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    b.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f()
    });
    let runs = runs.load(Ordering::Relaxed);
    println!("loom explored {runs} executions");
    assert!(
        runs >= 20,
        "gort: the loom model explored only {runs} executions"
    );
}

/// A timeout that, under loom, has always expired when checked.
const SOON: Duration = Duration::from_millis(1);

/// Two senders hand values to one select over two unbuffered channels; every party may also give
/// up. Exactly one case fires, and a send succeeds iff its value was received.
#[test]
fn loom_select_commits_one_hand_off() {
    model(Some(6), || {
        let (tx1, rx1) = bounded::<u32>(0);
        let (tx2, rx2) = bounded::<u32>(0);
        let (keep1, keep2) = (tx1.clone(), tx2.clone()); // no close when the threads end
        let t1 = thread::spawn(move || tx1.send_timeout(1, SOON));
        let t2 = thread::spawn(move || tx2.send_timeout(2, SOON));
        let got = select! {
            recv(rx1) -> v => Some(v.unwrap()),
            recv(rx2) -> v => Some(v.unwrap()),
            default(SOON) => None,
        };
        let r1 = t1.join().unwrap();
        let r2 = t2.join().unwrap();
        assert_eq!(r1.is_ok(), got == Some(1), "{r1:?} {got:?}");
        assert_eq!(r2.is_ok(), got == Some(2), "{r2:?} {got:?}");
        assert!(matches!(r1, Ok(()) | Err(SendTimeoutError::Timeout(1))));
        assert!(matches!(r2, Ok(()) | Err(SendTimeoutError::Timeout(2))));
        drop((keep1, keep2));
    });
}

/// A select's lazy send case against a receiver with a deadline, both able to give up: the case
/// fires (its value evaluated and delivered) iff the receiver got the value. Covers both orders: the
/// select claiming the waiting receiver in place, and the receiver binding to the waiting select.
#[test]
fn loom_lazy_send_meets_receiver() {
    model(None, || {
        let (tx, rx) = bounded::<u32>(0);
        let tx2 = tx.clone(); // keeps the channel open after the thread ends
        let t = thread::spawn(move || {
            select! {
                send(tx2, 7) -> r => { r.unwrap(); true },
                default(SOON) => false,
            }
        });
        let got = rx.recv_timeout(SOON);
        let fired = t.join().unwrap();
        assert_eq!(fired, got == Ok(7), "{fired} {got:?}");
        if !fired {
            assert_eq!(got, Err(RecvTimeoutError::Timeout));
        }
    });
}

/// A fired lazy send whose value never comes (its expression "panicked": the case is dropped) gives
/// its reservation back; a receiver that had bound to it retries and ends empty-handed.
#[test]
fn loom_abandoned_reservation_retries() {
    model(None, || {
        let (tx, rx) = bounded::<u32>(0);
        let tx2 = tx.clone(); // keeps the channel open after the thread ends
        let t = thread::spawn(move || {
            let case = crate::__private::SendCase::new(Some(&tx2));
            let i = crate::__private::select([&case], crate::__private::Mode::timeout(SOON));
            drop(case); // abandons the reservation if the case fired
            i == 0
        });
        let got = rx.recv_timeout(SOON);
        let _fired = t.join().unwrap();
        assert_eq!(got, Err(RecvTimeoutError::Timeout));
        assert!(rx.try_recv().is_err());
    });
}

/// Plain blocking operations (solo contexts, claimed without a CAS) on a buffered channel: a
/// receiver blocked on the empty buffer, a sender blocked on the full one and moved in by the
/// receiver's refill; the values arrive in order, then the close.
#[test]
fn loom_close_wakes_receiver_after_drain() {
    model(None, || {
        let (tx, rx) = bounded::<u32>(1);
        let t = thread::spawn(move || (rx.recv(), rx.recv(), rx.recv()));
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        drop(tx);
        let (a, b, c) = t.join().unwrap();
        assert_eq!((a, b), (Ok(1), Ok(2)));
        assert!(c.is_err());
    });
}

/// A close racing a blocked select send: the select fires its case with an error, or the receiver
/// took the value first; nothing is both sent and returned.
#[test]
fn loom_close_races_select_send() {
    model(None, || {
        let (tx, rx) = bounded::<u32>(0);
        let tx2 = tx.clone();
        let t = thread::spawn(move || {
            select! {
                send(tx2, 9) -> r => r.is_ok(),
            }
        });
        let got = rx.recv_timeout(SOON);
        tx.close();
        let sent = t.join().unwrap();
        assert_eq!(sent, got == Ok(9), "{sent} {got:?}");
    });
}

/// An async receive handed a value and then dropped puts the value back: it is received once.
#[test]
fn loom_dropped_recv_future_puts_value_back() {
    model(None, || {
        let (tx, rx) = bounded::<u32>(0);
        let tx2 = tx.clone(); // keeps the channel open after the thread ends
        let t = thread::spawn(move || tx2.send_timeout(5, SOON));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let from_future = {
            let mut fut = pin!(rx.recv_async());
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(v) => Some(v.unwrap()),
                Poll::Pending => None,
            } // a pending future is dropped here
        };
        let sent = t.join().unwrap();
        let later = rx.try_recv().ok();
        let received: Vec<u32> = from_future.into_iter().chain(later).collect();
        match sent {
            Ok(()) => assert_eq!(received, vec![5]),
            Err(e) => {
                assert_eq!(e.into_inner(), 5);
                assert!(received.is_empty());
            }
        }
    });
}

/// Two selects meet: one sends on either of two unbuffered channels, the other receives from either;
/// both may give up. The send case that fired is the one whose value was received, and at most one
/// fires on each side. Exercises claiming a waiting select's receiver in place, a receiving select
/// binding to a waiting select's lazy send, and stale waiters left on the other channel.
#[test]
fn loom_select_meets_select() {
    model(None, || {
        let (tx1, rx1) = bounded::<u32>(0);
        let (tx2, rx2) = bounded::<u32>(0);
        let t = thread::spawn(move || {
            select! {
                send(tx1, 1) -> r => { r.unwrap(); Some(1) },
                send(tx2, 2) -> r => { r.unwrap(); Some(2) },
                default(SOON) => None,
            }
        });
        let got = select! {
            recv(rx1) -> v => v.ok(),
            recv(rx2) -> v => v.ok(),
            default(SOON) => None,
        };
        let sent = t.join().unwrap();
        assert_eq!(sent, got);
    });
}

/// An async select over two channels, polled once and dropped while a sender may be handing it a
/// value: the value is either received by the select, or put back (or never sent); never lost.
#[test]
fn loom_dropped_async_select_loses_nothing() {
    model(None, || {
        let (tx1, rx1) = bounded::<u32>(0);
        let (_tx2, rx2) = bounded::<u32>(0);
        let keep = tx1.clone();
        let t = thread::spawn(move || tx1.send_timeout(3, SOON));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let from_select = {
            let mut fut = pin!(async {
                crate::select_async! {
                    recv(rx1) -> v => v.ok(),
                    recv(rx2) -> v => v.ok(),
                }
            });
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(v) => v,
                Poll::Pending => None,
            }
        };
        let sent = t.join().unwrap().is_ok();
        let later = rx1.try_recv().ok();
        let received: Vec<u32> = from_select.into_iter().chain(later).collect();
        assert_eq!(received, if sent { vec![3] } else { vec![] });
        drop(keep);
    });
}
