//! Panics inside goroutines: caught at the goroutine's root, reported once, handed to `join`.
//!
//! The process-wide panic hook is wrapped once: when the panicking thread is running a goroutine or an
//! async task, the report reads `goroutine N panicked at FILE:LINE:COL:` followed by the message (and a
//! backtrace when `RUST_BACKTRACE` asks for one), as Go prints `goroutine N [running]`. Elsewhere the
//! previous hook runs unchanged. The payload itself travels to the goroutine's `JoinHandle`, so the
//! panic is reported exactly once, by the hook, and never again by `join`.

use std::panic::PanicHookInfo;
use std::sync::Once;

/// Installs gort's panic hook in front of whatever hook is set now. Idempotent.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match crate::sched::current_id() {
            Some(id) => report(id.as_u64(), info),
            None => previous(info),
        }));
    });
}

fn report(id: u64, info: &PanicHookInfo<'_>) {
    let msg = payload_str(info.payload());
    let location = info
        .location()
        .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()));
    let backtrace = std::backtrace::Backtrace::capture();
    let mut out = format!(
        "goroutine {id} panicked{}:\n{msg}\n",
        location.unwrap_or_default()
    );
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        out.push_str(&format!("stack backtrace:\n{backtrace}\n"));
    }
    // One formatted write, so concurrent reports do not interleave line by line (and test harness
    // output capture still applies).
    eprint!("{out}");
}

/// The text of a panic payload (`&str` or `String`), as std's hook shows it.
pub(crate) fn payload_str(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
