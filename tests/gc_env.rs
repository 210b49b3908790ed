//! `GORT_GC` sets the collector's default percentage (Go's `GOGC`), read once when the heap
//! starts. In its own test binary: the variable must be set before the first use of the heap.

use gort::gc::{self, Gc};

#[test]
fn gort_gc_sets_the_default_percent_and_off_disables_the_goal() {
    std::env::set_var("GORT_GC", "off");
    drop(Gc::new(1u8)); // starts the heap, which reads GORT_GC
    let s = gc::stats();
    assert_eq!(s.percent, -1);
    assert_eq!(s.heap_goal, u64::MAX, "automatic collection is off");
    gc::collect(); // an explicit collection still works
    assert!(gc::stats().collections >= 1);
    assert_eq!(gc::set_percent(150), -1);
    assert_eq!(gc::stats().percent, 150);
    assert!(gc::stats().heap_goal >= 4 << 20 && gc::stats().heap_goal < u64::MAX);
}
