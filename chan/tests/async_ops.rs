//! Async use: `send_async`, `recv_async`, `Receiver` as a `Stream`, `select_async!`, and
//! cancel-safety: a future dropped before it completes neither loses nor duplicates a value.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::StreamExt;
use gort_chan::{bounded, select_async, unbounded, RecvError, SendError};
use gort_goroutine::{block_on, spawn, spawn_async};

/// A waker that counts its wakes.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let w = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (w.clone(), Waker::from(w))
}

/// Polls `fut` once with `waker`.
fn poll_once<F: Future>(fut: std::pin::Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

#[test]
fn send_and_recv_futures_between_tasks_and_goroutines() {
    let (tx, rx) = bounded::<u32>(0);
    let consumer = spawn_async(async move {
        let mut sum = 0;
        while let Ok(v) = rx.recv_async().await {
            sum += v;
        }
        sum
    });
    let producer = spawn(move || {
        block_on(async {
            for i in 1..=100 {
                tx.send_async(i).await.unwrap();
            }
        })
    });
    producer.join().unwrap();
    assert_eq!(block_on(consumer).unwrap(), 5050);
}

#[test]
fn receiver_is_a_stream_that_ends_at_close() {
    let (tx, rx) = unbounded::<u32>();
    let h = spawn(move || {
        for i in 0..50 {
            tx.send(i).unwrap();
            if i % 10 == 0 {
                gort_goroutine::yield_now();
            }
        }
    });
    let got: Vec<u32> = block_on(rx.collect());
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    h.join().unwrap();
}

#[test]
fn async_send_to_a_closed_channel_gives_the_value_back() {
    let (tx, rx) = bounded::<String>(0);
    drop(rx);
    let r = block_on(tx.send_async(String::from("x")));
    assert_eq!(r, Err(SendError(String::from("x"))));
    let (tx, rx) = bounded::<u8>(0);
    drop(tx);
    assert_eq!(block_on(rx.recv_async()), Err(RecvError));
}

#[test]
fn dropped_recv_future_puts_a_delivered_value_back_in_order() {
    let (tx, rx) = bounded::<u32>(0);
    let (_counter, waker) = counting_waker();
    {
        let mut fut = pin!(rx.recv_async());
        assert!(poll_once(fut.as_mut(), &waker).is_pending());
        // The sender finds the future waiting and hands 1 straight to it: the send completes.
        tx.send(1).unwrap();
        // Dropped without being polled again: 1 must not be lost.
    }
    let h = spawn({
        let tx = tx.clone();
        move || tx.send(2).unwrap()
    });
    assert_eq!(rx.recv(), Ok(1), "the put-back value comes first");
    assert_eq!(rx.recv(), Ok(2));
    h.join().unwrap();
}

#[test]
fn dropped_send_future_sends_nothing() {
    struct Loud(Arc<AtomicUsize>);
    impl Drop for Loud {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = bounded::<Loud>(0);
    let (_c, waker) = counting_waker();
    {
        let mut fut = pin!(tx.send_async(Loud(drops.clone())));
        assert!(poll_once(fut.as_mut(), &waker).is_pending());
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the unsent value was dropped with the future"
    );
    assert!(rx.try_recv().is_err(), "and never arrives");
}

#[test]
fn a_repoll_with_a_new_waker_is_the_one_woken() {
    let (tx, rx) = bounded::<u32>(0);
    let (first, w1) = counting_waker();
    let (second, w2) = counting_waker();
    let mut fut = pin!(rx.recv_async());
    assert!(poll_once(fut.as_mut(), &w1).is_pending());
    assert!(poll_once(fut.as_mut(), &w2).is_pending());
    tx.send(9).unwrap();
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll_once(fut.as_mut(), &w2), Poll::Ready(Ok(9)));
}

#[test]
fn stream_keeps_a_value_handed_to_a_pending_poll() {
    let (tx, mut rx) = bounded::<u32>(0);
    let (_c, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(rx.poll_next_unpin(&mut cx).is_pending());
    tx.send(4).unwrap(); // handed to the stream's waiting state
    let mut rx = Box::new(rx); // the receiver may move between polls (here onto the heap)
    assert_eq!(rx.poll_next_unpin(&mut cx), Poll::Ready(Some(4)));
    // A value handed to a pending stream whose receiver is then dropped is not lost for others.
    let rx2 = rx.clone();
    assert!(rx.poll_next_unpin(&mut cx).is_pending());
    tx.send(5).unwrap();
    drop(rx);
    assert_eq!(rx2.recv(), Ok(5));
}

#[test]
fn select_async_receives_sends_and_defaults() {
    let (tx, rx) = bounded::<u32>(1);
    let (otx, orx) = bounded::<u32>(0);
    let got = block_on(async {
        let first = select_async! {
            send(tx, 3) -> r => { r.unwrap(); "sent" },
            recv(orx) -> _v => "other",
        };
        let second = select_async! {
            recv(rx) -> v => { assert_eq!(v, Ok(3)); "received" },
            recv(orx) -> _v => "other",
        };
        let third = select_async! {
            recv(rx) -> _v => "received",
            default => "nothing ready",
        };
        (first, second, third)
    });
    assert_eq!(got, ("sent", "received", "nothing ready"));
    drop(otx);
}

#[test]
fn select_async_waits_and_is_woken_by_a_goroutine() {
    let (tx, rx) = bounded::<u32>(0);
    let task = spawn_async(async move {
        select_async! {
            recv(rx) -> v => v.unwrap() * 2,
        }
    });
    let h = spawn(move || {
        gort_goroutine::time::sleep(Duration::from_millis(10));
        tx.send(21).unwrap();
    });
    assert_eq!(block_on(task).unwrap(), 42);
    h.join().unwrap();
}

#[test]
fn select_async_receive_binds_to_a_waiting_select_send() {
    // A goroutine's select! send case waits on an unbuffered channel; its message is computed only
    // once a receiver takes the case, so the async receive binds to it and waits for the value.
    let (tx, rx) = bounded::<u32>(0);
    let (go_tx, go_rx) = bounded::<u32>(0);
    let sender = spawn(move || {
        gort_chan::select! {
            send(tx, go_rx.recv().unwrap() + 1) -> r => r.unwrap(),
        }
    });
    gort_goroutine::time::sleep(Duration::from_millis(20)); // the select parks
    let (counter, waker) = counting_waker();
    let mut fut = pin!(async {
        select_async! {
            recv(rx) -> v => v.unwrap(),
        }
    });
    assert!(
        poll_once(fut.as_mut(), &waker).is_pending(),
        "bound, waiting for the value"
    );
    go_tx.send(41).unwrap(); // the sender's message is ready now
    sender.join().unwrap();
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "the value's arrival woke the task"
    );
    assert_eq!(poll_once(fut.as_mut(), &waker), Poll::Ready(42));
}

#[test]
fn dropped_select_async_loses_nothing() {
    let (tx1, rx1) = bounded::<u32>(0);
    let (_tx2, rx2) = bounded::<u32>(0);
    let (_c, waker) = counting_waker();
    {
        let mut fut = pin!(async {
            select_async! {
                recv(rx1) -> v => v.unwrap(),
                recv(rx2) -> v => v.unwrap(),
            }
        });
        assert!(poll_once(fut.as_mut(), &waker).is_pending());
        tx1.send(8).unwrap(); // delivered to the select's waiting receive case
    } // dropped before it could return 8
    assert_eq!(rx1.try_recv(), Ok(8), "the value went back to its channel");
}

#[test]
fn dropped_select_async_send_case_gives_its_place_back() {
    let (tx, rx) = bounded::<u32>(0);
    let (_msg_tx, msg_rx) = bounded::<u32>(0);
    let (_c, waker) = counting_waker();
    let receiver = spawn(move || rx.recv());
    gort_goroutine::time::sleep(Duration::from_millis(20)); // the receiver parks
    {
        let mut fut = pin!(async {
            select_async! {
                // The message is itself awaited: the case fires (claiming the parked receiver)
                // and then waits for its value, which never comes.
                send(tx, msg_rx.recv_async().await.unwrap()) -> r => r.unwrap(),
            }
        });
        assert!(poll_once(fut.as_mut(), &waker).is_pending());
    } // dropped: the claim is withdrawn and the receiver waits on
      // Closing the channel now must show the receiver a close, not a phantom value.
    drop(tx);
    assert_eq!(receiver.join().unwrap(), Err(RecvError));
}

#[test]
fn abandoned_select_async_send_case_lets_a_later_send_through() {
    let (tx, rx) = bounded::<u32>(0);
    let keep = tx.clone();
    let (_msg_tx, msg_rx) = bounded::<u32>(0);
    let (_c, waker) = counting_waker();
    let receiver = spawn(move || rx.recv());
    gort_goroutine::time::sleep(Duration::from_millis(20));
    {
        let mut fut = pin!(async {
            select_async! {
                send(tx, msg_rx.recv_async().await.unwrap()) -> r => r.unwrap(),
            }
        });
        assert!(poll_once(fut.as_mut(), &waker).is_pending());
    }
    keep.send(7).unwrap();
    assert_eq!(receiver.join().unwrap(), Ok(7));
}
