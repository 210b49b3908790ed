//! Unit tests that need the crate's internals (the counts word).

use crate::{collect, Gc};

#[test]
fn handle_counter_overflow_panics_and_restores_the_count() {
    let g = Gc::new(7u64);
    let h = g.header();
    h.set_handles_for_test(crate::header::MAX_HANDLES);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.clone()));
    let msg = r
        .err()
        .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()));
    assert!(msg.unwrap().contains("more than 2^30 Gc handles"));
    assert_eq!(
        crate::header::handles_of(h.counts.load(std::sync::atomic::Ordering::SeqCst)),
        crate::header::MAX_HANDLES
    );
    h.set_handles_for_test(1);
    drop(g);
    collect();
}

#[test]
fn size_classes_keep_alignment_and_headers_are_two_words() {
    use crate::heap::{class_of, CLASS_SIZES};
    let size = |size, align| class_of(size, align).map(|c| CLASS_SIZES[c]);
    assert_eq!(size(40, 8), Some(40));
    assert_eq!(size(40, 16), Some(48));
    assert_eq!(size(17, 8), Some(24));
    assert_eq!(size(17, 16), Some(32));
    assert_eq!(size(57, 8), Some(64));
    assert_eq!(size(32768, 16), Some(32768));
    assert_eq!(size(32769, 8), None);
    assert_eq!(size(8, 32), None);
    assert_eq!(std::mem::size_of::<crate::header::Header>(), 16);
    // A binary-trees node: a header and two optional handles.
    type Node = crate::header::GcBox<(Option<Gc<u8>>, Option<Gc<u8>>)>;
    assert_eq!(std::mem::size_of::<Node>(), 32);
}

#[test]
fn weak_slots_live_in_the_side_table_until_the_sweep() {
    let g = Gc::new(5u32);
    let w1 = Gc::downgrade(&g);
    let w2 = Gc::downgrade(&g);
    assert!(g.header().has_weak());
    assert_eq!(w1.upgrade().as_deref(), Some(&5));
    drop(g);
    collect();
    assert!(w1.upgrade().is_none());
    assert!(w2.upgrade().is_none());
}

#[test]
fn the_sweep_tests_read_the_marks_byte_right() {
    use crate::header::{Marks, ALLOC, DEAD, FREE, LEAKED, MARKED, RESERVED, STAMPED};
    use std::sync::atomic::AtomicU8;
    let at = |b: u8| AtomicU8::new(b);
    let dead = |b: u8| Marks(&at(b)).is_dead();
    let swept = |b: u8| Marks(&at(b)).is_swept();
    // Live at the snapshot, or allocated since: neither dead nor swept.
    assert!(!dead(ALLOC | STAMPED | MARKED) && !swept(ALLOC | STAMPED | MARKED));
    assert!(!dead(ALLOC) && !swept(ALLOC));
    assert!(!dead(ALLOC | MARKED) && !swept(ALLOC | MARKED));
    // Found dead: both, until the sweep drops the value; then only `is_swept` still says so (the
    // store of `DEAD` drops the stamp), which is why a handle's drop in `Sweep` asks `is_swept`.
    assert!(dead(ALLOC | STAMPED) && swept(ALLOC | STAMPED));
    assert!(!dead(DEAD) && swept(DEAD));
    assert!(swept(LEAKED));
    // Marking touches allocated slots only.
    for b in [FREE, RESERVED, DEAD, LEAKED] {
        assert!(!Marks(&at(b)).try_mark(), "marked a slot in state {b}");
        assert!(!Marks(&at(b)).stamp(), "stamped a slot in state {b}");
    }
    let m = at(ALLOC | STAMPED | MARKED);
    assert!(Marks(&m).stamp(), "the clear pass stamps and unmarks");
    assert_eq!(m.into_inner(), ALLOC | STAMPED);
}
