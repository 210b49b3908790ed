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
