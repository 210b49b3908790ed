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
    assert!(msg.unwrap().contains("more than 2^31 Gc handles"));
    assert_eq!(
        crate::header::handles_of(h.counts.load(std::sync::atomic::Ordering::SeqCst)),
        crate::header::MAX_HANDLES
    );
    h.set_handles_for_test(1);
    drop(g);
    collect();
}
