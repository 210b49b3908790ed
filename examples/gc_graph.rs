//! A tree with parent back-pointers and cross links — cycles everywhere — built and edited by
//! goroutines in gort's traced heap, then dropped and collected.
//!
//! `cargo run --release --example gc_graph [nodes]` (default 100,000). Set `GORT_GCTRACE=1` to see
//! one line per collection, `GORT_GC=50` (or `off`) to change the pacer's target.
//!
//! What it shows: `#[derive(gort::Trace)]` with `#[gc(skip)]`, `GcCell` for the parts that change
//! (a write parks only the goroutine when another holds the cell), `Weak` for the parent link,
//! `gc::collect()` and `gc::stats()`.

use std::time::Instant;

use gort::gc::{self, Gc, GcCell, Weak};

#[derive(gort::Trace)]
struct Dir {
    #[gc(skip)]
    name: String,
    #[gc(skip)] // weak handles hold no count; they need no tracing
    parent: Option<Weak<Dir>>,
    children: GcCell<Vec<Gc<Dir>>>,
    /// Cross links ("symlinks"): make the graph cyclic.
    links: GcCell<Vec<Gc<Dir>>>,
}

fn dir(name: String, parent: Option<&Gc<Dir>>) -> Gc<Dir> {
    let d = Gc::new(Dir {
        name,
        parent: parent.map(Gc::downgrade),
        children: GcCell::new(Vec::new()),
        links: GcCell::new(Vec::new()),
    });
    if let Some(p) = parent {
        p.children.borrow_mut().push(d.clone());
    }
    d
}

fn path(d: &Gc<Dir>) -> String {
    match d.parent.as_ref().and_then(Weak::upgrade) {
        Some(p) => format!("{}/{}", path(&p), d.name),
        None => d.name.clone(),
    }
}

#[gort::main]
fn main() {
    let nodes: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("gc_graph: the argument is a node count"))
        .unwrap_or(100_000);
    let start = Instant::now();
    let root = dir("".into(), None);
    // Four goroutines grow four subtrees of the shared root concurrently.
    let builders: Vec<_> = (0..4)
        .map(|w| {
            let root = root.clone();
            gort::go!(move || {
                let top = dir(format!("w{w}"), Some(&root));
                let mut frontier = vec![top.clone()];
                let mut made = 1;
                while made < nodes / 4 {
                    let parent = frontier[(made - 1) / 4].clone(); // fan-out 4
                    let d = dir(format!("d{made}"), Some(&parent));
                    if made % 10 == 0 {
                        // A link back up to the subtree's top: a cycle through the heap.
                        d.links.borrow_mut().push(top.clone());
                    }
                    frontier.push(d);
                    made += 1;
                }
                frontier.last().cloned().unwrap()
            })
        })
        .collect();
    let deepest: Vec<Gc<Dir>> = builders.into_iter().map(|b| b.join().unwrap()).collect();
    println!(
        "built {} directories in {:.1} ms; e.g. {}",
        nodes,
        start.elapsed().as_secs_f64() * 1e3,
        path(&deepest[0])
    );
    let probe = Gc::downgrade(&deepest[1]);
    gc::collect();
    assert!(probe.upgrade().is_some(), "reachable directories survive");
    let before = gc::stats();
    println!("after a collection: {} live objects", before.live_objects);

    drop((root, deepest));
    let t = Instant::now();
    gc::collect();
    let after = gc::stats();
    println!(
        "dropped the root: a collection ({:.1} ms) freed {} directories; the probe upgrades to {}",
        t.elapsed().as_secs_f64() * 1e3,
        after.freed_objects - before.freed_objects,
        if probe.upgrade().is_some() {
            "something (bug!)"
        } else {
            "nothing"
        },
    );
    println!(
        "collections {}, longest pause {} us, heap now {} bytes",
        after.collections,
        after.max_pause.as_micros(),
        after.heap_bytes
    );
}
