#!/usr/bin/env bash
# Runs Go's reference workloads (shared/anchors/go/main.go) with Go 1.19 and prints their figures.
#
#   scripts/go_anchors.sh            # every workload
#   scripts/go_anchors.sh spawn      # one of: spawn skynet pingpong yield chained select mpmc mem
#   scripts/go_anchors.sh hog        # a separate program: hog, bintree or httphello
#
# Installs Go 1.19 from Debian's packages if it is missing. The anchors are copied to a temporary
# directory first, because shared/ is read-only and `go run` wants to write next to go.mod.
set -euo pipefail

GO=/usr/lib/go-1.19/bin/go
if [[ ! -x $GO ]]; then
    apt-get update
    apt-get install -y golang-1.19-go
fi

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
src=$root/../shared/anchors/go
if [[ ! -f $src/main.go ]]; then
    echo "go_anchors.sh: no Go anchors at $src" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
cd "$work"
"$GO" version
# The separate programs (hog, bintree, httphello) live in their own folders: `go_anchors.sh hog`.
if [[ $# -ge 1 && -d $work/$1 && -f $work/$1/main.go ]]; then
    cd "$work/$1"
    shift
fi
GOCACHE=/tmp/gocache "$GO" run . "$@"
