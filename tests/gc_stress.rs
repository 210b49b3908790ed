//! Allocation pressure: goroutines churn through short-lived trees (far past the 4 MiB minimum
//! goal, so cycles run back to back, allocating goroutines assist marking and take spans of the
//! collector's clear, scan and finalize passes) while long-lived structures are read, rewired and
//! checked. In its own test binary so that the pressure is its own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gort::gc::{self, Gc, GcCell};
use gort::Trace;

#[derive(Trace)]
struct Tree {
    left: Option<Gc<Tree>>,
    right: Option<Gc<Tree>>,
    #[gc(skip)]
    drops: Option<Arc<AtomicUsize>>,
}

impl Drop for Tree {
    fn drop(&mut self) {
        if let Some(d) = &self.drops {
            d.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn build(depth: u32, drops: &Option<Arc<AtomicUsize>>) -> Gc<Tree> {
    Gc::new(Tree {
        left: (depth > 0).then(|| build(depth - 1, drops)),
        right: (depth > 0).then(|| build(depth - 1, drops)),
        drops: drops.clone(),
    })
}

fn count(t: &Tree) -> usize {
    1 + t.left.as_deref().map_or(0, count) + t.right.as_deref().map_or(0, count)
}

#[derive(Trace)]
struct Slot {
    tree: GcCell<Option<Gc<Tree>>>,
}

#[test]
fn churn_while_long_lived_data_is_rewired_and_checked() {
    let long_lived = build(12, &None);
    let slots: Arc<Vec<Gc<Slot>>> = Arc::new(
        (0..8)
            .map(|_| {
                Gc::new(Slot {
                    tree: GcCell::new(Some(build(6, &None))),
                })
            })
            .collect(),
    );
    let garbage_drops = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (slots, garbage_drops, made) = (slots.clone(), garbage_drops.clone(), made.clone());
            gort::go!(move || {
                let tag = Some(garbage_drops);
                for round in 0..60 {
                    let t = build(10, &tag); // 2047 nodes of garbage-to-be
                    assert_eq!(count(&t), 2047);
                    made.fetch_add(2047, Ordering::Relaxed);
                    // Rewire a shared slot: swap a long-lived subtree for a fresh one.
                    let s = &slots[(w * 7 + round) % slots.len()];
                    let old = s.tree.borrow_mut().replace(build(6, &None));
                    assert_eq!(count(&old.unwrap()), 127);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        count(&long_lived),
        8191,
        "the long-lived tree survived intact"
    );
    for s in slots.iter() {
        assert_eq!(count(s.tree.borrow().as_ref().unwrap()), 127);
    }
    gc::collect();
    assert_eq!(
        garbage_drops.load(Ordering::Relaxed),
        made.load(Ordering::Relaxed),
        "every churned tree was collected exactly once"
    );
    let s = gc::stats();
    println!(
        "collections {} assists {} span assists {} max pause {:?}",
        s.collections, s.assists, s.span_assists, s.max_pause
    );
    assert!(s.collections >= 2);
}
