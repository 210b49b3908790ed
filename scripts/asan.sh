#!/usr/bin/env bash
# Runs gort-goroutine's unit tests, goroutines end to end, and the traced heap (gort-gc) under
# AddressSanitizer.
#
# Needs a nightly toolchain (`rustup toolchain install nightly`): -Zsanitizer is unstable.
# The explicit --target keeps RUSTFLAGS away from build scripts and proc macros, and the
# `sanitizer` feature tells corosensei to announce every stack switch to ASan
# (__sanitizer_start/finish_switch_fiber), without which ASan misreads goroutine stacks.
#
# The stack-overflow tests in goroutine/src/stack.rs re-run the test binary as a child that
# overflows a stack on purpose and must die by SIGABRT. Under ASan the sanitizer owns the
# SIGSEGV path and reports the fault itself, so those tests skip themselves when the
# `sanitizer` feature is on; GORT_SKIP_OVERFLOW_TESTS=1 below says the same explicitly.
#
# Extra arguments are passed to the test binaries, e.g. `scripts/asan.sh stack::tests`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! rustup toolchain list | grep '^nightly' >/dev/null; then
    echo "asan.sh: no nightly toolchain installed; run 'rustup toolchain install nightly'" >&2
    exit 1
fi

# detect_leaks=0: LeakSanitizer needs ptrace, which containers often forbid, and gort keeps
#   process-lifetime allocations (stack regions, their registry) on purpose.
# abort_on_error=1: a report kills the process with SIGABRT, so the failing test is obvious.
# allow_user_segv_handler=1: let gort's SIGSEGV handler (guard-page overflow reports) replace
#   ASan's; faults that are not stack overflows are chained back to ASan's handler.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allow_user_segv_handler=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export GORT_SKIP_OVERFLOW_TESTS=1
export RUSTFLAGS="-Zsanitizer=address${RUSTFLAGS:+ $RUSTFLAGS}"

# The crate's own unit tests: stacks, run queue, futex notes, wakers.
cargo +nightly test --target x86_64-unknown-linux-gnu -p gort-goroutine --features sanitizer --lib -- "$@"
# Goroutines end to end through the facade: context switches, parking, stealing, G and stack reuse,
# goroutines locked to their threads (handed between Ms).
# (The million-goroutine test is left out: ASan's shadow memory makes it too slow to be useful.)
cargo +nightly test --target x86_64-unknown-linux-gnu -p gort --features sanitizer --test goroutines --test thread_lock -- "$@"
# The traced heap: its unit tests and doc-free soundness suites, with freed heap slots poisoned
# (the `sanitizer` feature makes the allocator call __asan_poison_memory_region on every freed slot
# and unpoison it on reuse), so a use of a collected object is a reported use-after-poison.
cargo +nightly test --target x86_64-unknown-linux-gnu -p gort-gc --features sanitizer --lib -- "$@"
cargo +nightly test --target x86_64-unknown-linux-gnu -p gort --features sanitizer --test gc --test gc_trace_panic --test gc_stress --test gc_prompt --test gc_sweep_races --test gc_workers --test gc_panic_payloads -- "$@"
