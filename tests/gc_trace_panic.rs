//! A `Trace` that panics: in `Gc::new` the value is leaked and the panic reaches the caller; during
//! marking the cycle frees nothing (so nothing reachable from the panicking object is lost). In its
//! own test binary: while its Trace panics, every collection in the process frees nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use gort::gc::{self, Gc, GcCell};
use gort::Trace;

#[derive(Trace)]
struct Node {
    #[gc(skip)]
    id: u64,
    edges: GcCell<Vec<Gc<Node>>>,
    #[gc(skip)]
    drops: Arc<AtomicUsize>,
}

impl Node {
    fn new(id: u64, drops: &Arc<AtomicUsize>) -> Gc<Node> {
        Gc::new(Node {
            id,
            edges: GcCell::new(Vec::new()),
            drops: drops.clone(),
        })
    }
    fn check(&self) {
        assert!(self.id < 10);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// A value whose Trace panics on demand.
struct Grumpy {
    fail: Arc<AtomicBool>,
    child: Option<Gc<Node>>,
}
// SAFETY: reports its one handle (or panics first, which the heap tolerates).
unsafe impl Trace for Grumpy {
    fn trace(&self, t: &mut gc::Tracer<'_>) {
        if self.fail.load(Ordering::SeqCst) {
            panic!("grumpy trace");
        }
        self.child.trace(t);
    }
}

#[test]
fn panics_during_trace_leak_instead_of_freeing_live_objects() {
    let drops = counter();
    let fail = Arc::new(AtomicBool::new(true));
    // In Gc::new: the panic reaches the caller and the value is leaked.
    let r = std::panic::catch_unwind(|| {
        Gc::new(Grumpy {
            fail: fail.clone(),
            child: Some(Node::new(1, &drops)),
        })
    });
    assert!(r.is_err());
    // During marking: the cycle frees nothing, so the child of a grumpy root stays valid.
    fail.store(false, Ordering::SeqCst);
    let g = Gc::new(Grumpy {
        fail: fail.clone(),
        child: Some(Node::new(2, &drops)),
    });
    let garbage = Node::new(3, &drops);
    drop(garbage);
    fail.store(true, Ordering::SeqCst);
    gc::collect();
    g.child.as_ref().unwrap().check();
    fail.store(false, Ordering::SeqCst);
    gc::collect();
    assert!(
        drops.load(Ordering::SeqCst) >= 1,
        "garbage is collected once Trace behaves"
    );
    g.child.as_ref().unwrap().check();
    drop(g);
    gc::collect();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        2,
        "node 1 stays leaked; 2 and 3 are freed"
    );
}
