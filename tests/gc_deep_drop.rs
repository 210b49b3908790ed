//! A collected value's `Drop` runs on a worker goroutine's stack (the crate docs, *Costs and
//! limits*): a drop that recurses deeper than the default 256 KiB allows ends the process with a
//! clear stack-overflow report (never memory corruption), and `GORT_STACK_SIZE` is the remedy.
//! The collection runs in a child process, as an overflow aborts it.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gort::gc::{self, Gc, GcCell};
use gort::Trace;

struct List {
    _next: Option<Box<List>>,
    _pad: [u64; 2],
}

fn list(n: usize) -> Option<Box<List>> {
    let mut head = None;
    for _ in 0..n {
        head = Some(Box::new(List {
            _next: head,
            _pad: [0; 2],
        }));
    }
    head
}

#[derive(Trace)]
#[allow(dead_code)] // `list` is only dropped
struct Holder {
    peer: GcCell<Option<Gc<Holder>>>,
    #[gc(skip)]
    list: Option<Box<List>>,
    #[gc(skip)]
    drops: Arc<AtomicUsize>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Deep enough to overflow 256 KiB with this profile's drop frames (an optimized build's are a
/// fraction of a debug build's), shallow enough for `REMEDY`.
const DEPTH: usize = if cfg!(debug_assertions) {
    6_000
} else {
    200_000
};
const REMEDY: &str = if cfg!(debug_assertions) {
    "4MiB"
} else {
    "64MiB"
};

fn child() {
    let drops = Arc::new(AtomicUsize::new(0));
    let a = Gc::new(Holder {
        peer: GcCell::new(None),
        list: list(DEPTH),
        drops: drops.clone(),
    });
    let b = Gc::new(Holder {
        peer: GcCell::new(Some(a.clone())),
        list: None,
        drops: drops.clone(),
    });
    *a.peer.borrow_mut() = Some(b);
    drop(a);
    gc::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

/// Runs the collection in a child process with `GORT_STACK_SIZE` set to `stack` (or unset).
fn run_child(stack: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "deep_user_drops_need_a_larger_goroutine_stack",
        "--exact",
        "--nocapture",
    ])
    .env("GC_DEEP_DROP_CHILD", "1");
    match stack {
        Some(s) => cmd.env("GORT_STACK_SIZE", s),
        None => cmd.env_remove("GORT_STACK_SIZE"),
    };
    cmd.output().unwrap()
}

#[test]
fn deep_user_drops_need_a_larger_goroutine_stack() {
    if std::env::var_os("GC_DEEP_DROP_CHILD").is_some() {
        child();
        return;
    }
    if std::env::var_os("GORT_SKIP_OVERFLOW_TESTS").is_some() {
        // Under AddressSanitizer the sanitizer owns the overflow path (scripts/asan.sh).
        return;
    }
    let out = run_child(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("stack overflow"),
        "a {DEPTH}-deep drop on a default goroutine stack should end in a clear overflow report: \
         {:?}\n{stderr}",
        out.status
    );
    let out = run_child(Some(REMEDY));
    assert!(
        out.status.success(),
        "with GORT_STACK_SIZE={REMEDY} the deep drop should pass: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
