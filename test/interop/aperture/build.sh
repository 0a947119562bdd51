#!/usr/bin/env bash
# Builds plannt-aperture (main.go: aperture v0.5.0's l402 and mint packages behind a JSON CLI, for
# test/interop/aperture.test.ts and lnget-agent.test.ts) into a cache outside the repository keyed by its
# go.mod, go.sum and main.go, and links it into the git-ignored bin/. Only the first run on a machine builds
# (about 4 minutes of CPU on 2 cores: it compiles lnd's lnrpc, which aperture's client imports); later runs
# only link. Usage: test/interop/aperture/build.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"

command -v go >/dev/null || {
  echo "interop: Go is required to build the aperture wrapper (install Go >= 1.26 from https://go.dev/dl/)" >&2
  exit 1
}

key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)"
dir="${PLANNT_TOOLS_CACHE:-$HOME/.cache/plannt/tools}/plannt-aperture-$key"

if [ "${1:-}" = "--force" ] || ! [ -x "$dir/plannt-aperture" ]; then
  echo "interop: building plannt-aperture (aperture $(grep 'lightninglabs/aperture ' "$here/go.mod" | awk '{print $NF}')) with $(go version | awk '{print $3}')…"
  start=$SECONDS
  mkdir -p "$dir.tmp"
  (cd "$here" && go mod download && CGO_ENABLED=0 go build -trimpath -o "$dir.tmp/plannt-aperture" .)
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  echo "interop: built in $((SECONDS - start)) s"
fi

mkdir -p "$repo/bin"
ln -sfn "$dir/plannt-aperture" "$repo/bin/plannt-aperture"
echo "interop: bin/plannt-aperture (cache $dir)"
