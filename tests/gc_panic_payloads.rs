//! A collected value's `Drop` (or a `Trace` during marking) panics with a payload whose own `Drop`
//! panics: the collector must drop the payload inside a `catch_unwind` too, or the second panic
//! unwinds out of a worker goroutine, its pass never finishes, and every later `collect()` hangs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gort::gc::{self, Gc, GcCell};
use gort::Trace;

struct Bomb;

/// The tests take turns: a panicking `Trace` makes the whole cycle free nothing.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the panic payload's own Drop panics");
    }
}

#[derive(Trace)]
struct Node {
    peer: GcCell<Option<Gc<Node>>>,
    #[gc(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.drops.fetch_add(1, Ordering::SeqCst) == 0 {
            std::panic::panic_any(Bomb);
        }
    }
}

#[test]
fn a_drop_panic_payload_that_panics_on_drop() {
    let _t = turn();
    let drops = Arc::new(AtomicUsize::new(0));
    let a = Gc::new(Node {
        peer: GcCell::new(None),
        drops: drops.clone(),
    });
    let b = Gc::new(Node {
        peer: GcCell::new(Some(a.clone())),
        drops: drops.clone(),
    });
    *a.peer.borrow_mut() = Some(b);
    drop(a);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        gc::collect();
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "collect() did not return in 10 s"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Its `Trace` panics with a `Bomb` once armed (after it was allocated).
struct Tricky;

// SAFETY: holds no handles.
unsafe impl Trace for Tricky {
    fn trace(&self, _t: &mut gort::gc::Tracer<'_>) {
        if ARMED.load(Ordering::SeqCst) {
            std::panic::panic_any(Bomb);
        }
    }
}

/// The same for a `Trace` that panics during marking (on a worker, inside `busy`).
#[test]
fn a_trace_panic_payload_that_panics_on_drop() {
    let _t = turn();
    let root = Gc::new(Tricky);
    ARMED.store(true, Ordering::SeqCst);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        gc::collect();
        let _ = tx.send(());
    });
    let done = rx.recv_timeout(Duration::from_secs(10)).is_ok();
    ARMED.store(false, Ordering::SeqCst);
    drop(root);
    assert!(done, "collect() did not return in 10 s");
}
