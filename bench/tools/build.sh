#!/usr/bin/env bash
# Builds authzbench (this Go module: the allow-all ext_authz server and the load generator of
# bench/hot-path.ts) into a cache outside the repository keyed by the hash of go.mod, go.sum and the .go
# files, and links it into the git-ignored bin/. Like deploy/tools/ensure-tools.sh: only the first run builds.
# Not part of `npm test`: the suite does not need it; `npm run bench:hot-path` runs this first.
# Usage: bench/tools/build.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || {
  echo "bench/tools/build.sh: Go >= 1.26 is required to build authzbench (install it into /usr/local/go)" >&2
  exit 1
}

root="${PLANNT_TOOLS_CACHE:-$HOME/.cache/plannt/tools}"
key="$(cd "$here" && cat go.mod go.sum $(ls -- *.go | grep -v '_test\.go$' | sort) | sha256sum | cut -c1-16)"
dir="$root/authzbench-$key"
if [ "${1:-}" = "--force" ] || ! [ -x "$dir/authzbench" ]; then
  start=$SECONDS
  echo "bench/tools/build.sh: building authzbench with $(go version | cut -d' ' -f3)…" >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$dir.tmp/authzbench" .)
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  echo "bench/tools/build.sh: authzbench built in $((SECONDS - start)) s (cache $dir)" >&2
fi
mkdir -p "$repo/bin"
ln -sf "$dir/authzbench" "$repo/bin/authzbench"
