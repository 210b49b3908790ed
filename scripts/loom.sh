#!/usr/bin/env bash
# Runs gort-goroutine's loom models: the exhaustive (or preemption-bounded) interleaving checks of
# the lock-free per-P run queue in goroutine/src/runq.rs (module `runq::loom_tests`) and of the
# sync types' state words and wait queue in goroutine/src/sync/ (`sync::*::loom_tests`).
#
# `--cfg loom` swaps runq.rs's std atomics for loom's and shrinks the ring to 4 slots; loom is a
# dev-dependency only, so just the crate's unit-test build (`--lib`) uses it. The build goes to
# target/loom so that the changed RUSTFLAGS don't invalidate the normal build in target/.
# Takes well under a minute on 2 cores once built; the models' sizes and bounds are in runq.rs.
#
# Extra arguments go to the test binary, e.g. `scripts/loom.sh --nocapture`. Set
# LOOM_MAX_PREEMPTIONS to override every model's preemption bound (unset: exhaustive, except the
# two-thief model, which is bounded to 4 in the code).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
exec cargo test -p gort-goroutine --release --lib -- loom "$@"
