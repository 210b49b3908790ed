#!/usr/bin/env bash
# Runs gort-gc's loom models (gc/src/loom_tests.rs): the collection protocol's core — pins and
# phase changes (phase.rs), the counts word with DIRTY, marks and scan stamps (header.rs) — driven
# by a mutator and the collector over a two-object heap, checking that an object the mutator can
# still reach is never found dead.
#
# `--cfg loom` builds only the protocol core of the crate, with loom's atomics; loom is a
# dev-dependency only, so just the unit-test build (`--lib`) uses it. The build goes to
# target/loom so that the changed RUSTFLAGS don't invalidate the normal build in target/.
# The models are bounded to 3 preemptions; LOOM_MAX_PREEMPTIONS overrides the bound.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
exec cargo test -p gort-gc --release --lib -- loom "$@"
