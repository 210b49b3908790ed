//! The channel API as users see it: creation, every send and receive flavour, close and drop rules,
//! errors, lengths, iterators. Goroutines come from `gort_goroutine::spawn`; plain threads block.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort_chan::{
    bounded, unbounded, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use gort_goroutine::spawn;

/// Counts its drops, to see which values a channel dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn buffered_fifo_len_and_capacity() {
    let (tx, rx) = bounded(3);
    assert_eq!(
        (tx.len(), tx.capacity(), rx.capacity()),
        (0, Some(3), Some(3))
    );
    assert!(tx.is_empty() && !tx.is_full());
    for i in 0..3 {
        tx.send(i).unwrap();
    }
    assert_eq!(tx.try_send(9), Err(TrySendError::Full(9)));
    assert_eq!((rx.len(), rx.is_full()), (3, true));
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    let (tx0, _rx0) = bounded::<u8>(0);
    assert!(tx0.is_full() && tx0.is_empty());
    let (txu, _rxu) = unbounded::<u8>();
    assert_eq!(txu.capacity(), None);
    assert!(!txu.is_full());
}

#[test]
fn unbuffered_send_waits_for_its_receiver() {
    let (tx, rx) = bounded::<u32>(0);
    assert_eq!(
        tx.try_send(1),
        Err(TrySendError::Full(1)),
        "no receiver waits"
    );
    let started = Instant::now();
    let h = spawn(move || {
        gort_goroutine::time::sleep(Duration::from_millis(30));
        rx.recv().unwrap()
    });
    tx.send(5).unwrap(); // returns only once the goroutine took it
    assert!(started.elapsed() >= Duration::from_millis(25));
    assert_eq!(h.join().unwrap(), 5);
}

#[test]
fn try_send_hands_off_to_a_waiting_receiver() {
    let (tx, rx) = bounded::<u32>(0);
    let h = std::thread::spawn(move || rx.recv());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tx.try_send(3) {
            Ok(()) => break,
            Err(TrySendError::Full(_)) if Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(h.join().unwrap(), Ok(3));
}

#[test]
fn close_drains_then_fails_and_rejects_sends() {
    let (tx, rx) = bounded(4);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert!(tx.close());
    assert!(!tx.close(), "closing twice is a no-op");
    assert!(tx.is_closed() && rx.is_closed());
    assert_eq!(tx.send(3), Err(SendError(3)));
    assert_eq!(tx.try_send(4), Err(TrySendError::Disconnected(4)));
    assert_eq!(
        tx.send_timeout(5, Duration::from_millis(1)),
        Err(SendTimeoutError::Disconnected(5))
    );
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.recv(), Err(RecvError));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Disconnected)
    );
}

#[test]
fn close_wakes_every_waiting_receiver_and_sender() {
    let (tx, rx) = bounded::<u32>(0);
    let receivers: Vec<_> = (0..8)
        .map(|_| {
            let rx = rx.clone();
            spawn(move || rx.recv())
        })
        .collect();
    let (ftx, _frx) = bounded::<u32>(0);
    let senders: Vec<_> = (0..8)
        .map(|i| {
            let ftx = ftx.clone();
            spawn(move || ftx.send(i))
        })
        .collect();
    gort_goroutine::time::sleep(Duration::from_millis(20)); // let them all block
    tx.close();
    ftx.close();
    for h in receivers {
        assert_eq!(h.join().unwrap(), Err(RecvError));
    }
    let mut back: Vec<u32> = senders
        .into_iter()
        .map(|h| h.join().unwrap().unwrap_err().into_inner())
        .collect();
    back.sort();
    assert_eq!(
        back,
        (0..8).collect::<Vec<_>>(),
        "every sender got its value back"
    );
}

#[test]
fn dropping_every_sender_closes() {
    let (tx, rx) = bounded::<u32>(1);
    let tx2 = tx.clone();
    let h = spawn(move || rx.iter().collect::<Vec<_>>());
    tx.send(1).unwrap();
    drop(tx);
    tx2.send(2).unwrap();
    drop(tx2);
    assert_eq!(h.join().unwrap(), vec![1, 2]);
}

#[test]
fn dropping_every_receiver_fails_sends_and_drops_the_buffer() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = bounded(2);
    tx.send(Counted(drops.clone())).unwrap();
    tx.send(Counted(drops.clone())).unwrap();
    // A sender blocked on the full channel gets its value back when the last receiver goes.
    let tx2 = tx.clone();
    let d2 = drops.clone();
    let blocked = spawn(move || tx2.send(Counted(d2)).map_err(|e| e.into_inner()));
    gort_goroutine::time::sleep(Duration::from_millis(20));
    let rx2 = rx.clone();
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "a receiver remains");
    drop(rx2);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        2,
        "the buffered values were dropped"
    );
    let back = blocked.join().unwrap().expect_err("the send must fail");
    assert!(tx.is_closed());
    assert!(matches!(tx.send(Counted(drops.clone())), Err(SendError(_))));
    drop(back);
    assert_eq!(drops.load(Ordering::SeqCst), 4);
}

#[test]
fn timeouts_on_threads_and_goroutines() {
    for in_goroutine in [false, true] {
        let run = move || {
            let (tx, rx) = bounded::<u32>(0);
            let t = Instant::now();
            assert_eq!(
                rx.recv_timeout(Duration::from_millis(20)),
                Err(RecvTimeoutError::Timeout)
            );
            assert!(t.elapsed() >= Duration::from_millis(20));
            let t = Instant::now();
            assert_eq!(
                tx.send_timeout(7, Duration::from_millis(20)),
                Err(SendTimeoutError::Timeout(7))
            );
            assert!(t.elapsed() >= Duration::from_millis(20));
            assert_eq!(
                rx.recv_deadline(Instant::now()),
                Err(RecvTimeoutError::Timeout)
            );
            // A timed receive that a sender satisfies in time.
            let h = spawn(move || tx.send_timeout(8, Duration::from_secs(10)));
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(8));
            assert_eq!(h.join().unwrap(), Ok(()));
        };
        if in_goroutine {
            spawn(run).join().unwrap();
        } else {
            run();
        }
    }
}

#[test]
fn mpmc_delivers_every_value_exactly_once() {
    for cap in [0, 1, 16] {
        let (tx, rx) = bounded::<u64>(cap);
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let tx = tx.clone();
                spawn(move || {
                    for i in 0..2000 {
                        tx.send(p * 10_000 + i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                spawn(move || {
                    // Per producer, values must come out in the order they went in.
                    let mut last = [None::<u64>; 4];
                    let mut got = Vec::new();
                    for v in &rx {
                        let p = (v / 10_000) as usize;
                        if let Some(prev) = last[p] {
                            assert!(prev < v, "FIFO broken: {v} after {prev}");
                        }
                        last[p] = Some(v);
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        drop(rx);
        for p in producers {
            p.join().unwrap();
        }
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort();
        let want: Vec<u64> = (0..4u64)
            .flat_map(|p| (0..2000).map(move |i| p * 10_000 + i))
            .collect();
        assert_eq!(all, want, "cap {cap}");
    }
}

#[test]
fn unbounded_never_blocks_and_iterates() {
    let (tx, rx) = unbounded();
    for i in 0..10_000 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.len(), 10_000);
    drop(tx);
    let v: Vec<i32> = rx.into_iter().collect();
    assert_eq!(v.len(), 10_000);
    assert!(v.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn zero_sized_values() {
    let (tx, rx) = bounded::<()>(0);
    let h = spawn(move || (0..100).map(|_| rx.recv().unwrap()).count());
    for _ in 0..100 {
        tx.send(()).unwrap();
    }
    assert_eq!(h.join().unwrap(), 100);
    let (tx, rx) = bounded::<[u8; 0]>(1);
    tx.send([]).unwrap();
    assert_eq!(rx.recv(), Ok([]));
}

#[test]
fn handles_are_send_sync_clone_and_debug() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<gort_chan::Sender<String>>();
    assert_send_sync::<gort_chan::Receiver<String>>();
    let (tx, rx) = bounded::<u8>(1);
    assert!(tx.same_channel(&tx.clone()) && rx.same_channel(&rx.clone()));
    let (tx2, _rx2) = bounded::<u8>(1);
    assert!(!tx.same_channel(&tx2));
    assert_eq!(format!("{tx:?} {rx:?}"), "Sender { .. } Receiver { .. }");
}

#[test]
fn errors_display_and_convert() {
    assert_eq!(SendError(1).to_string(), "gort: send on a closed channel");
    assert_eq!(SendError(1).into_inner(), 1);
    assert_eq!(format!("{:?}", SendError(1)), "SendError { .. }");
    assert!(TrySendError::Full(1).is_full() && TrySendError::Disconnected(1).is_disconnected());
    assert_eq!(
        TrySendError::from(SendError(2)),
        TrySendError::Disconnected(2)
    );
    assert!(SendTimeoutError::Timeout(1).is_timeout());
    assert_eq!(SendTimeoutError::Timeout(3).into_inner(), 3);
    assert_eq!(TryRecvError::from(RecvError), TryRecvError::Disconnected);
    assert!(TryRecvError::Empty.is_empty());
    assert!(RecvTimeoutError::Timeout.is_timeout());
    assert_eq!(
        RecvTimeoutError::from(RecvError),
        RecvTimeoutError::Disconnected
    );
    for msg in [
        RecvError.to_string(),
        TryRecvError::Empty.to_string(),
        RecvTimeoutError::Timeout.to_string(),
        TrySendError::Full(()).to_string(),
        SendTimeoutError::Timeout(()).to_string(),
    ] {
        assert!(msg.starts_with("gort: "), "{msg}");
    }
    let boxed: Box<dyn std::error::Error> = Box::new(SendError(1));
    assert!(boxed.to_string().contains("closed"));
}

#[test]
fn many_messages_through_a_buffered_channel() {
    let consumer = spawn(|| {
        let (tx, rx) = bounded::<u32>(128);
        let h = spawn(move || {
            for i in 0..200_000 {
                tx.send(i).unwrap();
            }
        });
        let mut expect = 0;
        for v in rx.iter() {
            assert_eq!(v, expect);
            expect += 1;
        }
        h.join().unwrap();
        expect
    });
    assert_eq!(consumer.join().unwrap(), 200_000);
}

#[test]
fn ping_pong_between_goroutines() {
    let main = spawn(|| {
        let (a_tx, a_rx) = bounded::<u32>(0);
        let (b_tx, b_rx) = bounded::<u32>(0);
        let echo = spawn(move || {
            for v in &a_rx {
                b_tx.send(v + 1).unwrap();
            }
        });
        let mut v = 0;
        for _ in 0..10_000 {
            a_tx.send(v).unwrap();
            v = b_rx.recv().unwrap();
        }
        drop(a_tx);
        echo.join().unwrap();
        v
    });
    assert_eq!(main.join().unwrap(), 10_000);
}

#[test]
fn threads_and_goroutines_interoperate() {
    // A plain thread sends to a goroutine and receives from it (blocking the thread, parking the
    // goroutine), on an unbuffered channel both ways.
    let (to_g, from_thread) = bounded::<u32>(0);
    let (to_thread, from_g) = bounded::<u32>(0);
    let g = spawn(move || {
        for v in &from_thread {
            to_thread.send(v * 2).unwrap();
        }
    });
    for i in 0..50 {
        to_g.send(i).unwrap();
        assert_eq!(from_g.recv(), Ok(i * 2));
    }
    drop(to_g);
    g.join().unwrap();
}
