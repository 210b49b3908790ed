//! Prompt reclamation: an object whose last handle goes away while no collection runs is freed
//! at once (with everything that dies with it); objects in cycles, with weak handles, or with a
//! user `Drop` wait for the collector. In its own test binary, with automatic collection off, so
//! that no other test's collection runs meanwhile (during a cycle, reclamation waits for its end).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gort::gc::{self, Gc, GcCell};
use gort::Trace;

/// Tests in this binary take turns: each counts the heap's frees around its own drops.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    gc::set_percent(-1);
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Trace)]
struct Link {
    next: Option<Gc<Link>>,
}

#[derive(Trace)]
struct Tree {
    left: Option<Gc<Tree>>,
    right: Option<Gc<Tree>>,
    label: String,
}

fn tree(depth: u32) -> Gc<Tree> {
    let kid = |d| (depth > 0).then(|| tree(d));
    Gc::new(Tree {
        left: kid(depth.saturating_sub(1)),
        right: kid(depth.saturating_sub(1)),
        label: format!("node at depth {depth}"),
    })
}

#[test]
fn a_dropped_tree_is_freed_without_a_collection() {
    let _t = turn();
    let before = gc::stats();
    let t = tree(12); // 8191 nodes, each with a String: the non-handles-only path
    assert_eq!(t.left.as_ref().unwrap().label, "node at depth 11");
    let live = gc::stats().live_objects;
    drop(t);
    let after = gc::stats();
    assert_eq!(after.freed_promptly - before.freed_promptly, 8191);
    assert_eq!(after.collections, before.collections, "no collection ran");
    assert_eq!(live - after.live_objects, 8191);
}

#[test]
fn a_long_list_is_freed_in_constant_stack_on_a_goroutine() {
    let _t = turn();
    let before = gc::stats().freed_promptly;
    // 200,000 links dropped from the head on a goroutine's small stack: recursion would overflow.
    gort::go!(|| {
        let mut head: Option<Gc<Link>> = None;
        for _ in 0..200_000 {
            head = Some(Gc::new(Link { next: head }));
        }
        drop(head);
    })
    .join()
    .unwrap();
    assert_eq!(gc::stats().freed_promptly - before, 200_000);
}

#[test]
fn freed_slots_are_reused() {
    let _t = turn();
    let a = Gc::new(Link { next: None });
    let addr = Gc::as_ptr(&a) as usize;
    drop(a);
    let b = Gc::new(Link { next: None });
    assert_eq!(
        Gc::as_ptr(&b) as usize,
        addr,
        "the freed slot is the next one allocated"
    );
}

#[test]
fn shared_children_outlive_a_freed_parent() {
    let _t = turn();
    let shared = tree(3);
    let parent = Gc::new(Tree {
        left: Some(shared.clone()),
        right: None,
        label: "parent".into(),
    });
    let before = gc::stats().freed_promptly;
    drop(parent);
    assert_eq!(
        gc::stats().freed_promptly - before,
        1,
        "only the parent had no other handle"
    );
    assert_eq!(shared.left.as_ref().unwrap().label, "node at depth 2");
    // The child's counts are exact again: held only outside the heap, it is a root, and the
    // collector keeps it; dropping it then frees its subtree at once.
    gc::collect();
    assert_eq!(shared.label, "node at depth 3");
    let before = gc::stats().freed_promptly;
    drop(shared);
    assert_eq!(gc::stats().freed_promptly - before, 15);
}

struct Noisy {
    drops: Arc<AtomicUsize>,
}

impl Drop for Noisy {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: holds no handles.
unsafe impl Trace for Noisy {
    fn trace(&self, _: &mut gc::Tracer<'_>) {}
}

#[test]
fn user_drops_weak_targets_and_cycles_wait_for_the_collector() {
    let _t = turn();
    let drops = Arc::new(AtomicUsize::new(0));
    let before = gc::stats().freed_promptly;

    // A user Drop runs on the collector's threads, never inside an unrelated handle's drop.
    drop(Gc::new(Noisy {
        drops: drops.clone(),
    }));
    assert_eq!(drops.load(Ordering::SeqCst), 0);

    // An object with a weak handle is freed by the collector, so the weak handle sees it die.
    let strong = Gc::new(Link { next: None });
    let weak = Gc::downgrade(&strong);
    drop(strong);
    assert!(weak.upgrade().is_some(), "not collected yet");

    // A cycle keeps its own counts up.
    #[derive(Trace)]
    struct Ring {
        next: GcCell<Option<Gc<Ring>>>,
    }
    let a = Gc::new(Ring {
        next: GcCell::new(None),
    });
    let b = Gc::new(Ring {
        next: GcCell::new(Some(a.clone())),
    });
    *a.next.borrow_mut() = Some(b.clone());
    drop((a, b));

    assert_eq!(
        gc::stats().freed_promptly,
        before,
        "none of these is freed promptly"
    );
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(weak.upgrade().is_none());
}

#[test]
fn a_freed_holder_leaves_exact_counts_in_what_it_cannot_free() {
    let _t = turn();
    // A holder whose drop only drops handles is freed promptly; its child has a user Drop, so it
    // is the collector's. The child's counts must be exact then: the collector frees it (a stale
    // count would make the sweep leak it as if a Drop had kept a handle to it).
    #[derive(Trace)]
    struct Holder {
        child: Option<Gc<Noisy>>,
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let before = gc::stats();
    drop(Gc::new(Holder {
        child: Some(Gc::new(Noisy {
            drops: drops.clone(),
        })),
    }));
    assert_eq!(gc::stats().freed_promptly - before.freed_promptly, 1);
    gc::collect();
    let after = gc::stats();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(
        after.leaked_objects, before.leaked_objects,
        "the child was leaked"
    );
    assert_eq!(after.freed_objects - before.freed_objects, 2);
}

#[test]
fn goroutines_free_trees_in_parallel() {
    let _t = turn();
    let before = gc::stats().freed_promptly;
    let hs: Vec<_> = (0..8)
        .map(|_| {
            gort::go!(|| {
                for _ in 0..50 {
                    let t = tree(8);
                    assert_eq!(t.right.as_ref().unwrap().label, "node at depth 7");
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(gc::stats().freed_promptly - before, 8 * 50 * 511);
}
