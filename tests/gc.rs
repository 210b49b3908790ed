//! Soundness tests of the traced heap through the facade: cycles, rings, outside handles, handles
//! moving between heap and stacks while collections run, a shared graph mutated by many
//! goroutines with a reachability check, dumpster's randomized graph workload, drops that touch
//! dead objects, panicking `Trace` and `Drop`, and the derive. Tests share one heap, so they count
//! their own objects (drop counters) rather than reading global statistics. Under
//! `scripts/asan.sh` freed slots are poisoned, so any use-after-free here is reported.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use gort::gc::{self, Gc, GcCell, Weak};
use gort::Trace;

/// A node that counts its drops and checks its canary on every visit.
#[derive(Trace)]
struct Node {
    #[gc(skip)]
    id: u64,
    #[gc(skip)]
    canary: u64,
    edges: GcCell<Vec<Gc<Node>>>,
    #[gc(skip)]
    drops: Arc<AtomicUsize>,
}

const CANARY: u64 = 0x5eed_cafe_f00d_beef;

impl Node {
    fn new(id: u64, drops: &Arc<AtomicUsize>) -> Gc<Node> {
        Gc::new(Node {
            id,
            canary: CANARY ^ id,
            edges: GcCell::new(Vec::new()),
            drops: drops.clone(),
        })
    }
    fn check(&self) {
        assert_eq!(
            self.canary,
            CANARY ^ self.id,
            "gort test: node {} corrupted",
            self.id
        );
    }
    fn link(&self, to: &Gc<Node>) {
        self.edges.borrow_mut().push(to.clone());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.check();
        self.canary = 0;
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

#[test]
fn a_two_node_cycle_is_collected() {
    let drops = counter();
    let a = Node::new(1, &drops);
    let b = Node::new(2, &drops);
    a.link(&b);
    b.link(&a);
    let weak = Gc::downgrade(&a);
    gc::collect();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "reachable objects were freed"
    );
    assert!(weak.upgrade().is_some());
    drop((a, b));
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert!(weak.upgrade().is_none());
}

#[test]
fn a_long_ring_is_kept_while_held_and_collected_after() {
    let drops = counter();
    const N: u64 = 20_000;
    let first = Node::new(0, &drops);
    let mut prev = first.clone();
    for id in 1..N {
        let n = Node::new(id, &drops);
        prev.link(&n);
        prev = n;
    }
    prev.link(&first);
    drop(prev);
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    // Walk the whole ring: every node intact.
    let mut cur = first.clone();
    for _ in 0..N {
        cur.check();
        let next = cur.edges.borrow()[0].clone();
        cur = next;
    }
    assert!(Gc::ptr_eq(&cur, &first));
    drop((cur, first));
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), N as usize);
}

#[test]
fn handles_in_vecs_and_boxes_outside_the_heap_are_roots() {
    let drops = counter();
    let kept: Vec<Gc<Node>> = (0..1000).map(|i| Node::new(i, &drops)).collect();
    let boxed: Box<Gc<Node>> = Box::new(Node::new(5000, &drops));
    // Each kept node points at a garbage node that points back (cycles hanging off roots).
    for (i, k) in kept.iter().enumerate() {
        let g = Node::new(10_000 + i as u64, &drops);
        g.link(k);
        k.link(&g);
    }
    for _ in 0..3 {
        gc::collect();
    }
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    for k in &kept {
        k.check();
        k.edges.borrow()[0].check();
    }
    boxed.check();
    // Cut the cycles: the hanging nodes become garbage, the kept ones stay.
    for k in &kept {
        k.edges.borrow_mut().clear();
    }
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 1000);
    drop(kept);
    drop(boxed);
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2001);
}

#[test]
fn handles_moved_between_heap_and_stacks_during_collections() {
    let drops = counter();
    let holder = Node::new(0, &drops);
    for i in 1..=64 {
        holder.link(&Node::new(i, &drops));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                gc::collect();
                n += 1;
            }
            n
        })
    };
    let movers: Vec<_> = (0..4)
        .map(|w| {
            let holder = holder.clone();
            gort::go!(move || {
                let mut on_stack: Vec<Gc<Node>> = Vec::new();
                for round in 0..3000u64 {
                    if round % 2 == 0 {
                        // heap -> stack: the only handle leaves the heap.
                        if let Some(n) = holder.edges.borrow_mut().pop() {
                            n.check();
                            on_stack.push(n);
                        }
                    } else if let Some(n) = on_stack.pop() {
                        // stack -> heap, through a fresh object that is itself on the stack
                        // for a while.
                        let wrapper = Node::new(1_000_000 + w * 10_000 + round, &n.drops);
                        wrapper.link(&n);
                        drop(n);
                        gort::yield_now();
                        let inner = wrapper.edges.borrow_mut().pop().unwrap();
                        inner.check();
                        holder.link(&inner);
                    }
                }
                for n in on_stack {
                    holder.link(&n);
                }
            })
        })
        .collect();
    for m in movers {
        m.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    assert!(collector.join().unwrap() > 0);
    let kept = holder.edges.borrow().len();
    assert_eq!(kept, 64, "a node was lost");
    for n in holder.edges.borrow().iter() {
        n.check();
    }
    gc::collect(); // the wrappers made along the way
    let before = drops.load(Ordering::SeqCst);
    drop(holder);
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), before + 65);
}

/// xorshift, so the workloads are reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A node that records in a shared table when it is dropped, for reachability checks.
#[derive(Trace)]
struct Vertex {
    #[gc(skip)]
    id: usize,
    edges: GcCell<Vec<Gc<Vertex>>>,
    #[gc(skip)]
    dropped: Arc<Vec<AtomicBool>>,
}

impl Drop for Vertex {
    fn drop(&mut self) {
        let was = self.dropped[self.id].swap(true, Ordering::SeqCst);
        assert!(!was, "vertex {} dropped twice", self.id);
    }
}

#[test]
fn many_goroutines_mutate_one_graph_while_collections_run_back_to_back() {
    const N: usize = 2000;
    let dropped: Arc<Vec<AtomicBool>> = Arc::new((0..N).map(|_| AtomicBool::new(false)).collect());
    let vertices: Vec<Gc<Vertex>> = (0..N)
        .map(|id| {
            Gc::new(Vertex {
                id,
                edges: GcCell::new(Vec::new()),
                dropped: dropped.clone(),
            })
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for v in &vertices {
        for _ in 0..3 {
            v.edges.borrow_mut().push(vertices[rng.below(N)].clone());
        }
    }
    // Roots: the first 8 vertices; the rest live only through edges.
    let roots: Vec<Gc<Vertex>> = vertices[..8].to_vec();
    drop(vertices);
    let stop = Arc::new(AtomicBool::new(false));
    let collections = Arc::new(AtomicU64::new(0));
    let collector = {
        let (stop, collections) = (stop.clone(), collections.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                gc::collect();
                collections.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let workers: Vec<_> = (0..6u64)
        .map(|w| {
            let roots = roots.clone();
            gort::go!(move || {
                let mut rng = Rng(0x1234_5678 + w * 7919);
                for _ in 0..4000 {
                    // Walk a few steps from a random root, then rewire: move an edge of the
                    // current vertex to another reachable vertex, or drop one, or copy one.
                    let mut cur = roots[rng.below(roots.len())].clone();
                    for _ in 0..rng.below(6) {
                        let next = {
                            let e = cur.edges.borrow();
                            if e.is_empty() {
                                break;
                            }
                            e[rng.below(e.len())].clone()
                        };
                        assert!(!cur.dropped[next.id].load(Ordering::SeqCst));
                        cur = next;
                    }
                    let other = roots[rng.below(roots.len())].clone();
                    match rng.below(3) {
                        0 => {
                            let taken = {
                                let mut e = cur.edges.borrow_mut();
                                let len = e.len();
                                (len > 0).then(|| e.swap_remove(rng.below(len)))
                            };
                            if let Some(t) = taken {
                                gort::yield_now();
                                other.edges.borrow_mut().push(t);
                            }
                        }
                        1 => {
                            let mut e = cur.edges.borrow_mut();
                            if e.len() > 1 {
                                let i = rng.below(e.len());
                                e.swap_remove(i);
                            }
                        }
                        _ => {
                            let copy = other.edges.borrow().first().cloned();
                            if let Some(c) = copy {
                                let mut e = cur.edges.borrow_mut();
                                if e.len() < 8 {
                                    e.push(c);
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    collector.join().unwrap();
    assert!(collections.load(Ordering::SeqCst) > 0);
    gc::collect();
    // Reachability check: nothing reachable from the roots was dropped.
    let mut seen = HashSet::new();
    let mut stack: Vec<Gc<Vertex>> = roots.clone();
    while let Some(v) = stack.pop() {
        if !seen.insert(v.id) {
            continue;
        }
        assert!(
            !dropped[v.id].load(Ordering::SeqCst),
            "reachable vertex {} was dropped",
            v.id
        );
        stack.extend(v.edges.borrow().iter().cloned());
    }
    // And everything unreachable was.
    for id in 0..N {
        if !seen.contains(&id) {
            assert!(
                dropped[id].load(Ordering::SeqCst),
                "unreachable vertex {id} survived a full collection"
            );
        }
    }
    drop((roots, stack));
    gc::collect();
    assert!(dropped.iter().all(|d| d.load(Ordering::SeqCst)));
}

/// dumpster's randomized test workload (its `sync` tests): a pool of handles; at random, make a
/// new node, clone a handle, drop one, link two nodes, or unlink; collect now and then; at the end
/// everything is dropped exactly once.
#[test]
fn dumpster_style_randomized_graph() {
    let drops = counter();
    let mut rng = Rng(0xdead_beef_1234_5678);
    let mut pool: Vec<Gc<Node>> = Vec::new();
    let mut made = 0u64;
    for step in 0..20_000 {
        match rng.below(6) {
            0 | 1 => {
                pool.push(Node::new(made, &drops));
                made += 1;
            }
            2 if !pool.is_empty() => {
                let h = pool[rng.below(pool.len())].clone();
                pool.push(h);
            }
            3 if !pool.is_empty() => {
                let i = rng.below(pool.len());
                pool.swap_remove(i);
            }
            4 if !pool.is_empty() => {
                let (a, b) = (rng.below(pool.len()), rng.below(pool.len()));
                pool[a].link(&pool[b]);
            }
            5 if !pool.is_empty() => {
                let a = rng.below(pool.len());
                let mut e = pool[a].edges.borrow_mut();
                if !e.is_empty() {
                    let i = rng.below(e.len());
                    e.swap_remove(i);
                }
            }
            _ => {}
        }
        if step % 2500 == 0 {
            gc::collect();
            for h in &pool {
                h.check();
                for e in h.edges.borrow().iter() {
                    e.check();
                }
            }
        }
    }
    drop(pool);
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst) as u64, made);
}

/// A dead object whose Drop dereferences another dead object.
#[derive(Trace)]
struct Toucher {
    other: GcCell<Option<Gc<Toucher>>>,
    #[gc(skip)]
    weak_other: GcCell<Option<Weak<Toucher>>>,
    #[gc(skip)]
    saw: Arc<AtomicUsize>,
}

impl Drop for Toucher {
    fn drop(&mut self) {
        if let Some(w) = self.weak_other.get_mut().as_ref() {
            // Resurrection attempt: must fail.
            assert!(w.upgrade().is_none(), "a dead object was resurrected");
            self.saw.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(o) = self.other.get_mut().as_ref() {
            // Dereferencing a dead object must panic, not read freed memory.
            let _ = o.weak_other.try_borrow();
        }
    }
}

#[test]
fn drops_that_touch_dead_objects_panic_and_cannot_resurrect() {
    let saw = counter();
    let before = gc::stats().drop_panics;
    let mk = || {
        Gc::new(Toucher {
            other: GcCell::new(None),
            weak_other: GcCell::new(None),
            saw: saw.clone(),
        })
    };
    let (a, b) = (mk(), mk());
    *a.other.borrow_mut() = Some(b.clone());
    *b.other.borrow_mut() = Some(a.clone());
    *a.weak_other.borrow_mut() = Some(Gc::downgrade(&b));
    *b.weak_other.borrow_mut() = Some(Gc::downgrade(&a));
    drop((a, b));
    gc::collect();
    assert_eq!(saw.load(Ordering::SeqCst), 2, "both drops ran");
    assert!(
        gc::stats().drop_panics >= before + 2,
        "both dereferenced a cleared handle"
    );
}

/// Handles that a dead object's `Drop` moved out of the heap.
static ESCAPED: std::sync::Mutex<Vec<Gc<Escaper>>> = std::sync::Mutex::new(Vec::new());

/// A dead object whose Drop smuggles its handle to another dead object into a global.
#[derive(Trace)]
struct Escaper {
    other: GcCell<Option<Gc<Escaper>>>,
    #[gc(skip)]
    payload: String,
}

impl Drop for Escaper {
    fn drop(&mut self) {
        if let Some(o) = self.other.get_mut().take() {
            ESCAPED.lock().unwrap().push(o);
        }
    }
}

#[test]
fn a_handle_smuggled_out_by_a_drop_panics_and_never_reaches_a_reused_slot() {
    let mk = |s: &str| {
        Gc::new(Escaper {
            other: GcCell::new(None),
            payload: s.to_string(),
        })
    };
    let (a, b) = (mk("a"), mk("b"));
    *a.other.borrow_mut() = Some(b.clone());
    *b.other.borrow_mut() = Some(a.clone());
    let leaked_before = gc::stats().leaked_objects;
    drop((a, b));
    gc::collect();
    let escaped: Vec<Gc<Escaper>> = std::mem::take(&mut *ESCAPED.lock().unwrap());
    assert_eq!(escaped.len(), 2, "both drops ran and kept a handle");
    // Their objects are leaked rather than freed, so allocating more cannot reuse their slots.
    assert!(gc::stats().leaked_objects >= leaked_before + 2);
    let fresh: Vec<_> = (0..1000).map(|i| mk(&i.to_string())).collect();
    for e in &escaped {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.payload.len()));
        assert!(r.is_err(), "dereferencing a collected object must panic");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.clone()));
        assert!(
            r.is_err(),
            "cloning a handle to a collected object must panic"
        );
    }
    drop(escaped); // dropping them is fine
    drop(fresh);
    gc::collect();
}

struct Bomb;
impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("bomb");
    }
}
// SAFETY: holds no handles.
unsafe impl Trace for Bomb {
    fn trace(&self, _: &mut gc::Tracer<'_>) {}
}

#[test]
fn a_panicking_drop_is_reported_and_the_collector_goes_on() {
    let drops = counter();
    let before = gc::stats().drop_panics;
    drop(Gc::new(Bomb));
    drop(Node::new(1, &drops));
    gc::collect();
    assert!(gc::stats().drop_panics > before);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    drop(Node::new(2, &drops));
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[derive(Trace)]
enum Tree<T> {
    Leaf(#[gc(skip)] T),
    Branch {
        left: Gc<Tree<T>>,
        right: Gc<Tree<T>>,
    },
    Empty,
}

#[derive(Trace)]
struct Tuple(Gc<u32>, #[gc(skip)] String, Option<Gc<u32>>);

#[test]
fn derive_handles_generics_enums_tuples_and_skip() {
    let leaf = Gc::new(Tree::Leaf(7u8));
    let t = Gc::new(Tree::Branch {
        left: leaf.clone(),
        right: Gc::new(Tree::Empty),
    });
    let tup = Gc::new(Tuple(Gc::new(1), "x".into(), Some(Gc::new(2))));
    drop(leaf);
    gc::collect();
    match &*t {
        Tree::Branch { left, .. } => assert!(matches!(**left, Tree::Leaf(7))),
        _ => unreachable!(),
    }
    assert_eq!(*tup.0 + *tup.2.clone().unwrap(), 3);
    assert_eq!(tup.1, "x");
}

#[test]
fn std_containers_are_traced() {
    use std::collections::{BTreeMap, HashMap, VecDeque};
    let drops = counter();
    #[derive(Trace)]
    struct Bag {
        v: VecDeque<Gc<Node>>,
        m: HashMap<u32, Gc<Node>>,
        b: BTreeMap<u32, (Gc<Node>, Box<Gc<Node>>)>,
        r: Result<Gc<Node>, ()>,
        a: [Option<Gc<Node>>; 2],
    }
    let bag = Gc::new(Bag {
        v: (0..3).map(|i| Node::new(i, &drops)).collect(),
        m: (0..3)
            .map(|i| (i as u32, Node::new(10 + i, &drops)))
            .collect(),
        b: (0..3)
            .map(|i| {
                (
                    i as u32,
                    (
                        Node::new(20 + i, &drops),
                        Box::new(Node::new(30 + i, &drops)),
                    ),
                )
            })
            .collect(),
        r: Ok(Node::new(40, &drops)),
        a: [Some(Node::new(50, &drops)), None],
    });
    // Cycles through every container: each node points back to a node in the bag.
    let back = bag.v[0].clone();
    for n in bag.m.values() {
        n.link(&back);
    }
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(back);
    drop(bag);
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 14);
}

#[test]
fn weak_upgrade_and_stats() {
    let strong = Gc::new(String::from("hi"));
    let weak = Gc::downgrade(&strong);
    let again = weak.upgrade().unwrap();
    assert!(Gc::ptr_eq(&strong, &again));
    drop((strong, again));
    gc::collect();
    assert!(weak.upgrade().is_none());
    let s = gc::stats();
    assert!(s.collections >= 1);
    assert!(s.heap_goal >= 4 << 20);
    let old = gc::set_percent(200);
    assert_eq!(gc::set_percent(old), 200);
}

#[test]
fn gc_cell_contention_parks_the_goroutine() {
    let cell = Gc::new(GcCell::new(0u64));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let cell = cell.clone();
            gort::go!(move || {
                for _ in 0..500 {
                    let mut g = cell.borrow_mut();
                    let v = *g;
                    gort::yield_now(); // hold the lock across a switch
                    *g = v + 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(*cell.borrow(), 4000);
}

#[test]
fn handles_are_send_and_sync_when_the_value_is() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Gc<Node>>();
    assert_send_sync::<GcCell<Vec<Gc<Node>>>>();
    assert_send_sync::<Weak<Node>>();
    // Values cross threads and are collected from the collector thread.
    let drops = counter();
    let n = Node::new(1, &drops);
    let m = n.clone();
    std::thread::spawn(move || m.check()).join().unwrap();
    drop(n);
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// Cells inside cells: the inner cells' handles move in and out of the heap's accounting with the
/// outer guard, and a guard forgotten with `mem::forget` only leaks.
#[test]
fn nested_cells_and_forgotten_guards() {
    let drops = counter();
    type Inner = GcCell<Option<Gc<Node>>>;
    let outer: Gc<GcCell<Vec<Inner>>> = Gc::new(GcCell::new(Vec::new()));
    for i in 0..100 {
        let inner = GcCell::new(Some(Node::new(i, &drops)));
        outer.borrow_mut().push(inner);
    }
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    // Swap nodes between inner cells through the outer guard, collecting in between.
    for round in 0..10 {
        {
            let mut o = outer.borrow_mut();
            let a = o[round].borrow_mut().take();
            let b = o[99 - round].get_mut().take();
            *o[round].get_mut() = b;
            *o[99 - round].borrow_mut() = a;
        }
        gc::collect();
        for cell in outer.borrow().iter() {
            cell.borrow().as_ref().unwrap().check();
        }
    }
    // Write through an inner cell alone (the outer is only read-locked).
    for cell in outer.borrow().iter().take(10) {
        let n = cell.borrow_mut().take().unwrap();
        *cell.borrow_mut() = Some(Node::new(1000 + n.id, &drops));
    }
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 10);
    // A forgotten write guard: the cell stays locked, its contents count as outside handles (a
    // root) while its holder lives, and go away normally when the holder is collected.
    let stuck = Gc::new(GcCell::new(Some(Node::new(5000, &drops))));
    std::mem::forget(stuck.borrow_mut());
    gc::collect();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        10,
        "the locked cell's node is kept"
    );
    drop(stuck);
    drop(outer);
    gc::collect();
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 111);
}

/// Objects over 32 KiB (their own spans) and over-aligned objects hold and lose handles too.
#[test]
fn large_and_over_aligned_objects() {
    let drops = counter();
    #[derive(Trace)]
    struct Big {
        #[gc(skip)]
        bytes: [u8; 40_000],
        child: Gc<Node>,
    }
    #[derive(Trace)]
    #[repr(align(64))]
    struct Aligned {
        child: Gc<Node>,
    }
    let big = Gc::new(Big {
        bytes: [7; 40_000],
        child: Node::new(1, &drops),
    });
    let aligned = Gc::new(Aligned {
        child: Node::new(2, &drops),
    });
    assert_eq!(Gc::as_ptr(&aligned) as usize % 64, 0);
    gc::collect();
    big.child.check();
    aligned.child.check();
    assert_eq!(big.bytes[39_999], 7);
    drop((big, aligned));
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

/// Threads that allocate and exit give their reserved slots back, and what they made is collected.
#[test]
fn exiting_threads_return_their_slots() {
    let drops = counter();
    let kept: Vec<Gc<Node>> = (0..4)
        .map(|t| {
            let drops = drops.clone();
            std::thread::spawn(move || {
                let mut last = Node::new(t * 1000, &drops);
                for i in 1..500 {
                    let n = Node::new(t * 1000 + i, &drops);
                    n.link(&last);
                    last = n;
                }
                last
            })
            .join()
            .unwrap()
        })
        .collect();
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    for k in &kept {
        k.check();
    }
    drop(kept);
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2000);
}

/// Two runtimes in one process: their Ps share indices, so their allocation caches must not.
#[test]
fn two_runtimes_allocate_side_by_side() {
    let drops = counter();
    let rt = gort::runtime::Builder::new().max_procs(2).build();
    let d2 = drops.clone();
    let other = std::thread::spawn(move || {
        rt.run(move || {
            let hs: Vec<_> = (0..4)
                .map(|w| {
                    let d = d2.clone();
                    gort::go!(move || (0..2000)
                        .map(|i| Node::new(w * 10_000 + i, &d))
                        .collect::<Vec<_>>())
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    });
    let mine: Vec<_> = (0..4)
        .map(|w| {
            let d = drops.clone();
            gort::go!(move || (0..2000)
                .map(|i| Node::new(100_000 + w * 10_000 + i, &d))
                .collect::<Vec<_>>())
        })
        .collect();
    let mine: Vec<Gc<Node>> = mine.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let theirs = other.join().unwrap();
    let mut seen = HashSet::new();
    for n in mine.iter().chain(theirs.iter()) {
        n.check();
        assert!(
            seen.insert(Gc::as_ptr(n) as usize),
            "two objects in one slot"
        );
    }
    drop((mine, theirs));
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 16_000);
}

/// `plain_drop` as `#[derive(Trace)]` computes it.
mod plain_drop {
    use gort::gc::{Gc, GcCell};
    use gort::Trace;

    #[derive(Trace)]
    struct Leafy {
        left: Option<Gc<Leafy>>,
        cells: GcCell<Vec<Gc<Leafy>>>,
        n: u64,
        name: String,
    }

    #[derive(Trace)]
    struct WithDrop {
        _x: Option<Gc<Leafy>>,
    }
    impl Drop for WithDrop {
        fn drop(&mut self) {}
    }

    #[derive(Trace)]
    struct SkipsAnArc {
        #[gc(skip)]
        _shared: std::sync::Arc<u8>,
    }

    #[derive(Trace)]
    struct Holds<T> {
        _v: Vec<T>,
    }

    #[derive(Trace)]
    struct DropsGeneric<T> {
        _v: T,
    }
    impl<T> Drop for DropsGeneric<T> {
        fn drop(&mut self) {}
    }

    #[derive(Trace)]
    #[allow(dead_code)]
    enum Either {
        A(Gc<Leafy>),
        B { d: WithDrop },
    }

    /// Lifetimes, const generics and where clauses go through the overrides.
    #[derive(Trace)]
    struct Borrowing<'a, T, const N: usize>
    where
        T: Copy,
    {
        #[gc(skip)]
        _r: &'a [T; N],
        _h: [Option<Gc<Leafy>>; N],
    }

    /// An unsized type parameter: no override (the default, false).
    #[derive(Trace)]
    struct MaybeUnsized<T: ?Sized + Trace> {
        _b: Box<T>,
    }

    type Bytes = [u8];

    /// An unsized last field, spelled through an alias (the derive cannot see it is unsized).
    #[derive(Trace)]
    struct AliasTail {
        _n: u32,
        _rest: Bytes,
    }

    /// The same, skipped.
    #[derive(Trace)]
    struct SkippedAliasTail {
        _n: u32,
        #[gc(skip)]
        _rest: Bytes,
    }

    /// A sized last field still counts: this one has a `Drop` impl.
    #[derive(Trace)]
    struct DropTail {
        _n: u32,
        _last: WithDrop,
    }

    #[test]
    fn derive_handles_lifetimes_const_generics_and_unsized_parameters() {
        assert!(Borrowing::<'static, u8, 2>::plain_drop());
        assert!(Borrowing::<'static, u8, 2>::drop_is_handles_only());
        assert!(!MaybeUnsized::<u8>::plain_drop());
        // Unsized types have no `plain_drop` to call; their fields' answers must still compile.
        fn traces<T: Trace + ?Sized>() {}
        traces::<AliasTail>();
        traces::<SkippedAliasTail>();
        assert!(
            !DropTail::plain_drop(),
            "the last field's Drop impl is user code"
        );
        assert!(!DropTail::drop_is_handles_only());
    }

    #[test]
    fn derive_computes_plain_drop() {
        assert!(Leafy::plain_drop());
        assert!(!WithDrop::plain_drop(), "a Drop impl is user code");
        assert!(!SkipsAnArc::plain_drop(), "a skipped field that needs drop");
        assert!(Holds::<Gc<Leafy>>::plain_drop());
        assert!(!Holds::<WithDrop>::plain_drop());
        assert!(!DropsGeneric::<u8>::plain_drop(), "a generic Drop impl");
        assert!(!Either::plain_drop(), "one variant holds a WithDrop");
        assert!(<(u8, Gc<Leafy>)>::plain_drop());
        // Handles only: a String or a Vec owns memory, a Drop impl is code.
        assert!(!Leafy::drop_is_handles_only());
        assert!(!WithDrop::drop_is_handles_only());
        assert!(<(u8, Option<Gc<Leafy>>)>::drop_is_handles_only());
        assert!(!Holds::<Gc<Leafy>>::drop_is_handles_only());
        assert!(
            !<GcCell<Option<Gc<Leafy>>>>::drop_is_handles_only(),
            "a cell owns a waiter list"
        );
        let _ = |l: &Leafy| (l.left.is_some(), l.cells.borrow().len(), l.n, l.name.len());
    }
}

/// A dead object holding a handle to a live one must still be dropped (its drop gives the handle
/// back), even though its type's drop only drops handles.
#[test]
fn a_dead_holder_of_a_live_object_gives_its_handle_back() {
    #[derive(Trace)]
    struct Link {
        next: Option<Gc<Link>>,
    }
    assert!(<Link as gort::gc::Trace>::drop_is_handles_only());
    let keep = Gc::new(Link { next: None });
    let holder = Gc::new(Link {
        next: Some(keep.clone()),
    });
    assert!(holder.next.is_some());
    drop(holder);
    gc::collect();
    let w = Gc::downgrade(&keep);
    drop(keep);
    gc::collect();
    assert!(
        w.upgrade().is_none(),
        "the live object kept a phantom handle"
    );
}
