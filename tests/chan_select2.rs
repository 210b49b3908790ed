//! The behaviour of Go's `test/chan/select2.go`: 100,000 selects between a receive that a sender
//! goroutine always meets and one that never fires, run twice; the second run must not grow the
//! heap (Go allows 110 kB). gort's waiting select allocates nothing, so this counts allocations
//! instead, with a global allocator (hence a test binary of its own), and allows a handful.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use gort::chan::{bounded, Receiver};
use gort::select;

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

const N: usize = 100_000;

fn receiver(c: &Receiver<i32>, dummy: &Receiver<i32>, n: usize) {
    for _ in 0..n {
        select! {
            recv(c) -> v => { v.unwrap(); }
            recv(dummy) -> _v => panic!("dummy"),
        }
    }
}

#[gort::test]
fn select2() {
    let (c_tx, c) = bounded::<i32>(0);
    let (_dummy_tx, dummy) = bounded::<i32>(0);
    let sender = |n: usize| {
        let tx = c_tx.clone();
        gort::go!(move || {
            for _ in 0..n {
                tx.send(1).unwrap();
            }
        })
    };
    // Warm up.
    let h = sender(N);
    receiver(&c, &dummy, N);
    h.join().unwrap();
    // The second time must not allocate per select. The sender goroutine is spawned before the
    // count starts.
    let h = sender(N);
    let before = ALLOCS.load(Ordering::Relaxed);
    receiver(&c, &dummy, N);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    h.join().unwrap();
    assert!(allocs < 100, "BUG: {allocs} allocations for {N} selects");
}
