#!/usr/bin/env bash
# Builds the tools that check deploy/ into a cache outside the repository keyed by their versions, and
# links them into the git-ignored bin/:
#   helm       from its own Go module, pinned, with upstream's go.sum;
#   kubecheck  (./kubecheck) the API server's own validation code from k8s.io/kubernetes;
#   meshcheck  (./meshcheck) go-control-plane's ValidateAll() for Envoy, istio.io/api's types for Istio.
# Each Go tool's cache key is the hash of its go.mod, go.sum and main.go. CI runs on a fresh clone of the
# same machine, so only the first run builds; later runs only link. Cold, on 2 busy cores: see README.
# Usage: deploy/tools/ensure-tools.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
HELM_VERSION=v3.22.0
export PATH="/usr/local/go/bin:$PATH"

# go -v names every package it compiles: show one line per 50 of them, and every download or error whole.
progress() {
  awk -v label="$1" '/ |:/ { print "  [" label "] " $0; fflush(); next }
    { n++; if (n % 50 == 0) { print "  [" label "] " n " packages compiled, at " $0; fflush() } }
    END { print "  [" label "] done: " n + 0 " packages compiled" }'
}

# caddy, prometheus and openssl from Debian's packages (installed when missing and running as root).
"$here/ensure-system-tools.sh"

command -v go >/dev/null || {
  echo "ensure-tools: Go is required to build helm, kubecheck and meshcheck (install Go >= 1.26 into /usr/local/go)" >&2
  exit 1
}

root="${PLANNT_TOOLS_CACHE:-$HOME/.cache/plannt/tools}"
helm_dir="$root/helm-$HELM_VERSION"
force="${1:-}"

if [ "$force" = "--force" ] || ! [ -x "$helm_dir/helm" ]; then
  echo "ensure-tools: building helm $HELM_VERSION with $(go version | cut -d' ' -f3) (first time: several minutes)…"
  mkdir -p "$root" && tmp="$(mktemp -d "$root/.helm-build.XXXXXX")"
  # The version stamp helm's Makefile sets, so `helm version` reports the pin.
  CGO_ENABLED=0 GOBIN="$tmp" go install -v -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" 2>&1 | progress helm
  rm -rf "$helm_dir" && mkdir -p "$root" && mv "$tmp" "$helm_dir"
fi

# Builds the Go module deploy/tools/$1 into the cache (once per content hash) and prints its directory.
build_tool() {
  local name="$1" src="$here/$1" key dir start
  key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)"
  dir="$root/$name-$key"
  if [ "$force" = "--force" ] || ! [ -x "$dir/$name" ]; then
    start=$SECONDS
    echo "ensure-tools: building $name ($(grep -E '^\s+(k8s.io/kubernetes|github.com/envoyproxy/go-control-plane/envoy|istio.io/api) ' "$src/go.mod" | awk '{print $1" "$2}' | paste -sd, -))…" >&2
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    (cd "$src" && CGO_ENABLED=0 go build -v -trimpath -o "$dir.tmp/$name" . 2>&1) | progress "$name" >&2
    [ -x "$dir.tmp/$name" ] || { echo "ensure-tools: building $name failed (output above)" >&2; exit 1; }
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    echo "ensure-tools: $name built in $((SECONDS - start)) s" >&2
  fi
  echo "$dir/$name"
}

kubecheck="$(build_tool kubecheck)"
meshcheck="$(build_tool meshcheck)"

mkdir -p "$repo/bin"
ln -sf "$helm_dir/helm" "$repo/bin/helm"
ln -sf "$kubecheck" "$repo/bin/kubecheck"
ln -sf "$meshcheck" "$repo/bin/meshcheck"
echo "ensure-tools: bin/helm $("$repo/bin/helm" version --short), bin/kubecheck, bin/meshcheck (cache $root)"
