#!/usr/bin/env bash
# Runs gort-chan's loom models: exhaustive (preemption-bounded) interleaving checks of the channel
# commit protocol in chan/src/protocol.rs (module `loom_tests`): the select's single "selected" word,
# the waiter queues, direct hand-off, lazy send cases and their reservations, close, aborts by
# deadline, and async cancellation.
#
# `--cfg loom` swaps the crate's atomics, cells and lock for loom's, parks on loom's park/unpark, makes
# every deadline already expired and the select poll order fixed; loom is a dev-dependency only, so
# just the crate's unit-test build (`--lib`) uses it. The build goes to target/loom so the changed
# RUSTFLAGS don't invalidate the normal build in target/.
#
# Extra arguments go to the test binary, e.g. `scripts/loom_chan.sh --nocapture`. Set
# LOOM_MAX_PREEMPTIONS to override every model's preemption bound (the defaults are in the code).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
exec cargo test -p gort-chan --release --lib -- loom "$@"
