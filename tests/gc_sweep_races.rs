//! Failure modes found in review of prompt reclamation and the span map, kept as regression tests.
//! In their own binary, with automatic collection off, so that each collection is the test's own.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use gort::gc::{self, Gc, GcCell, Tracer};
use gort::Trace;

/// A node whose `Drop` sends the handle it holds to another thread (an "escape": the handle
/// outlives its dead holder) and waits until that thread has dropped it.
struct Escaper {
    other: GcCell<Option<Gc<Escaper>>>,
}

// SAFETY: reports its one handle slot, which changes only through the GcCell.
unsafe impl Trace for Escaper {
    fn trace(&self, t: &mut Tracer<'_>) {
        self.other.trace(t)
    }
}

/// The tests take turns: each needs the collector idle except for its own collections.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    gc::set_percent(-1);
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Escape = (Sender<Gc<Escaper>>, Receiver<()>);
static ESCAPE: Mutex<Option<Escape>> = Mutex::new(None);

impl Drop for Escaper {
    fn drop(&mut self) {
        if let Some(g) = self.other.get_mut().take() {
            let e = ESCAPE.lock().unwrap();
            let (to_thread, dropped) = e.as_ref().unwrap();
            to_thread.send(g).unwrap();
            dropped.recv().unwrap();
        }
    }
}

/// Same size class as `Escaper` (checked below), plain drop: freed promptly.
struct Filler {
    data: Vec<u64>,
    _pad: [u64; 4],
}

// SAFETY: holds no handles; dropping a `Vec<u64>` runs no user code.
unsafe impl Trace for Filler {
    fn trace(&self, _: &mut Tracer<'_>) {}
    fn plain_drop() -> bool {
        true
    }
}

#[test]
fn a_handle_dropped_after_the_sweep_dropped_its_target_never_frees_the_slot_again() {
    let _t = turn();
    assert_eq!(
        std::mem::size_of::<Escaper>().div_ceil(16),
        std::mem::size_of::<Filler>().div_ceil(16),
        "same size class"
    );
    let (to_thread, from_drops) = channel::<Gc<Escaper>>();
    let (dropped_tx, dropped_rx) = channel::<()>();
    let (go_tx, go_rx) = channel::<()>();
    let (done_tx, done_rx) = channel::<u64>();
    *ESCAPE.lock().unwrap() = Some((to_thread, dropped_rx));
    let thread = std::thread::spawn(move || {
        // The two handles of a dead cycle arrive during the sweep's drop pass; when the second
        // arrives, its target's value is already dropped.
        for _ in 0..2 {
            drop(from_drops.recv().unwrap());
            dropped_tx.send(()).unwrap();
        }
        go_rx.recv().unwrap();
        // A prompt reclamation in Idle: it must free this object only.
        let before = gc::stats().freed_promptly;
        drop(Gc::new(Filler {
            data: vec![7; 4],
            _pad: [0; 4],
        }));
        let freed = gc::stats().freed_promptly - before;
        // Reuse whatever that put in this thread's magazine.
        std::mem::forget(
            (0..4)
                .map(|_| {
                    Gc::new(Filler {
                        data: vec![999; 4],
                        _pad: [0; 4],
                    })
                })
                .collect::<Vec<_>>(),
        );
        done_tx.send(freed).unwrap();
    });
    let a = Gc::new(Escaper {
        other: GcCell::new(None),
    });
    let b = Gc::new(Escaper {
        other: GcCell::new(Some(a.clone())),
    });
    *a.other.borrow_mut() = Some(b.clone());
    drop((a, b));
    gc::collect(); // frees the cycle (its handles escaped and were dropped meanwhile)
                   // Live objects in the freed slots.
    let fillers: Vec<Gc<Filler>> = (0..200_000)
        .map(|i| {
            Gc::new(Filler {
                data: vec![i; 4],
                _pad: [0; 4],
            })
        })
        .collect();
    go_tx.send(()).unwrap();
    let freed = done_rx.recv().unwrap();
    thread.join().unwrap();
    for (i, f) in fillers.iter().enumerate() {
        assert_eq!(f.data, vec![i as u64; 4], "live object {i} was freed");
    }
    assert_eq!(freed, 1, "a cascade freed more than its own object");
}

#[derive(Trace)]
struct Holder {
    big: Gc<Big>,
}

struct Big([u8; 36 * 1024]);

// SAFETY: holds no handles.
unsafe impl Trace for Big {
    fn trace(&self, _: &mut Tracer<'_>) {}
}

#[derive(Trace)]
struct Ring {
    next: GcCell<Option<Gc<Ring>>>,
}

#[test]
fn many_large_objects_are_each_found_by_marking() {
    let _t = turn();
    // Large objects get spans of their own; marking finds each one's marks byte by address.
    let holders: Vec<Gc<Holder>> = (0..16)
        .map(|_| {
            Gc::new(Holder {
                big: Gc::new(Big([1; 36 * 1024])),
            })
        })
        .collect();
    let a = Gc::new(Ring {
        next: GcCell::new(None),
    });
    let b = Gc::new(Ring {
        next: GcCell::new(Some(a.clone())),
    });
    *a.next.borrow_mut() = Some(b.clone());
    drop((a, b));
    let before = gc::stats();
    gc::collect();
    let after = gc::stats();
    assert!(
        after.freed_objects - before.freed_objects >= 2,
        "the garbage cycle was not freed"
    );
    assert_eq!(after.leaked_objects, before.leaked_objects);
    for h in &holders {
        assert_eq!(h.big.0[100], 1);
    }
    drop(holders);
    gc::collect();
}
