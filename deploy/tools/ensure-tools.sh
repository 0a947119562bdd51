#!/usr/bin/env bash
# Builds the tools that check deploy/ — helm (from its own Go module, pinned, with upstream's go.sum) and
# kubecheck (./kubecheck) — into a cache outside the repository keyed by their versions, and links them
# into the git-ignored bin/. CI runs on a fresh clone of the same machine, so only the first run builds
# (about 10 minutes on 2 cores, mostly downloading modules); later runs only link.
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

command -v go >/dev/null || {
  echo "ensure-tools: Go is required to build helm and kubecheck (install Go >= 1.26 into /usr/local/go)" >&2
  exit 1
}

root="${PLANNT_TOOLS_CACHE:-$HOME/.cache/plannt/tools}"
helm_dir="$root/helm-$HELM_VERSION"
kubecheck_key="$(cat "$here/kubecheck/go.mod" "$here/kubecheck/go.sum" "$here/kubecheck/main.go" | sha256sum | cut -c1-16)"
kubecheck_dir="$root/kubecheck-$kubecheck_key"

if [ "${1:-}" = "--force" ] || ! [ -x "$helm_dir/helm" ]; then
  echo "ensure-tools: building helm $HELM_VERSION with $(go version | cut -d' ' -f3) (first time: several minutes)…"
  mkdir -p "$root" && tmp="$(mktemp -d "$root/.helm-build.XXXXXX")"
  # The version stamp helm's Makefile sets, so `helm version` reports the pin.
  CGO_ENABLED=0 GOBIN="$tmp" go install -v -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" 2>&1 | progress helm
  rm -rf "$helm_dir" && mkdir -p "$root" && mv "$tmp" "$helm_dir"
fi

if [ "${1:-}" = "--force" ] || ! [ -x "$kubecheck_dir/kubecheck" ]; then
  echo "ensure-tools: building kubecheck (Kubernetes $(grep 'k8s.io/client-go ' "$here/kubecheck/go.mod" | awk '{print $2}'), $(grep 'prometheus-operator' "$here/kubecheck/go.mod" | head -1 | awk '{print $1" "$2}' | sed 's#.*/pkg/apis/##'))…"
  mkdir -p "$kubecheck_dir.tmp"
  (cd "$here/kubecheck" && CGO_ENABLED=0 go build -v -trimpath -o "$kubecheck_dir.tmp/kubecheck" . 2>&1) |
    progress kubecheck
  rm -rf "$kubecheck_dir" && mv "$kubecheck_dir.tmp" "$kubecheck_dir"
fi

mkdir -p "$repo/bin"
ln -sf "$helm_dir/helm" "$repo/bin/helm"
ln -sf "$kubecheck_dir/kubecheck" "$repo/bin/kubecheck"
echo "ensure-tools: bin/helm $("$repo/bin/helm" version --short), bin/kubecheck (cache $root)"
