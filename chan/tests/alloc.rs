//! A waiting `select!`, and a blocking send or receive, allocate nothing per operation: waiters and
//! their context live on the waiting goroutine's (or thread's) stack. Counted with a global
//! allocator; this file holds only these tests, so the count is not disturbed by others.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use gort_chan::{bounded, select};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: u32 = 20_000;

/// Two parties bounce a counter through selects on unbuffered channels, so that every select has
/// to wait for the other side. Returns the allocations counted during the measured rounds.
fn bounce(spawn: impl Fn(Box<dyn FnOnce() + Send>) -> Box<dyn FnOnce()>) -> usize {
    let (ping_tx, ping_rx) = bounded::<u32>(0);
    let (pong_tx, pong_rx) = bounded::<u32>(0);
    let (_quit_tx, quit_rx) = bounded::<()>(0);
    let quit_rx2 = quit_rx.clone();
    let echo = spawn(Box::new(move || loop {
        select! {
            recv(ping_rx) -> v => match v {
                Ok(v) => select! {
                    send(pong_tx, v + 1) -> r => r.unwrap(),
                    recv(quit_rx2) -> _q => return,
                },
                Err(_) => return,
            },
            recv(quit_rx2) -> _q => return,
        }
    }));
    let round = |i: u32| {
        select! {
            send(ping_tx, i) -> r => r.unwrap(),
            recv(quit_rx) -> _q => unreachable!(),
        }
        select! {
            recv(pong_rx) -> v => assert_eq!(v, Ok(i + 1)),
            recv(quit_rx) -> _q => unreachable!(),
        }
    };
    for i in 0..1000 {
        round(i); // warm up: thread-locals, stacks, run queues
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for i in 0..ROUNDS {
        round(i);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    drop(ping_tx);
    echo();
    allocs
}

#[test]
fn waiting_selects_do_not_allocate() {
    // Between goroutines (the measuring side runs in a goroutine too).
    let allocs = gort_goroutine::spawn(|| {
        bounce(|f| {
            let h = gort_goroutine::spawn(f);
            Box::new(move || h.join().unwrap())
        })
    })
    .join()
    .unwrap();
    assert!(
        allocs < (ROUNDS / 100) as usize,
        "{allocs} allocations for {ROUNDS} rounds"
    );

    // Between plain threads.
    let allocs = bounce(|f| {
        let h = std::thread::spawn(f);
        Box::new(move || h.join().unwrap())
    });
    assert!(
        allocs < (ROUNDS / 100) as usize,
        "{allocs} allocations for {ROUNDS} rounds"
    );

    // Plain blocking sends and receives, between goroutines.
    let allocs = gort_goroutine::spawn(|| {
        let (tx, rx) = bounded::<u32>(0);
        let h = gort_goroutine::spawn(move || {
            for i in 0..ROUNDS + 1000 {
                tx.send(i).unwrap();
            }
        });
        for i in 0..1000 {
            assert_eq!(rx.recv(), Ok(i));
        }
        let before = ALLOCS.load(Ordering::Relaxed);
        for i in 1000..ROUNDS + 1000 {
            assert_eq!(rx.recv(), Ok(i));
        }
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        h.join().unwrap();
        allocs
    })
    .join()
    .unwrap();
    assert!(
        allocs < (ROUNDS / 100) as usize,
        "{allocs} allocations for {ROUNDS} sends"
    );
}
