#!/usr/bin/env bash
# Builds btcd, btcctl, lnd and lncli from the Go modules pinned in test/regtest/tools/{btcd,lnd} into the
# git-ignored bin/ of the repository. The binaries are cached outside the repo, keyed by the pinned
# versions and the build tags, so a clean clone on the same machine (CI) only links them; a change of
# go.mod, go.sum or tags builds again. Usage: test/regtest/build-tools.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tools="$here/tools"
bin="$repo/bin"
# The RPC sub-servers Plannt and ln-service use (routerrpc pays, invoicesrpc settles, the rest for
# ln-service's wallet/chain helpers).
LND_TAGS="signrpc walletrpc chainrpc invoicesrpc routerrpc peersrpc"
export PATH="/usr/local/go/bin:$PATH"

command -v go >/dev/null || {
  echo "build-tools: Go is required to build lnd and btcd (install Go >= 1.25 from https://go.dev/dl/)" >&2
  exit 1
}

key="$(cat "$tools/lnd/go.mod" "$tools/lnd/go.sum" "$tools/btcd/go.mod" "$tools/btcd/go.sum" \
  <(echo "$LND_TAGS") | sha256sum | cut -c1-16)"
cache="${PLANNT_TOOLS_CACHE:-$HOME/.cache/plannt/tools}/$key"
names=(btcd btcctl lnd lncli)

have_all() { for n in "${names[@]}"; do [ -x "$1/$n" ] || return 1; done; }

# Prints one progress line per 25 compiled packages instead of go build -v's hundreds of names.
progress() {
  local label="$1" n=0 start=$SECONDS
  while IFS= read -r line; do
    case "$line" in
      *" "* | *:*) echo "  [$label] $line" ;; # errors and warnings are shown whole
      *) n=$((n + 1)); [ $((n % 25)) -eq 0 ] && echo "  [$label] $n packages compiled ($((SECONDS - start)) s, at $line)" ;;
    esac
  done
  echo "  [$label] done: $n packages in $((SECONDS - start)) s"
}

build() {
  local label="$1" dir="$2" module="$3" tags="$4"; shift 4
  echo "build-tools: building $module $(cd "$dir" && go list -m -f '{{.Version}}' "$module") with $(go version | awk '{print $3}')"
  echo "  downloading modules (first time only)…"
  (cd "$dir" && go mod download)
  # -v prints each package as it is compiled, which is the progress shown.
  if ! (cd "$dir" && go build -v -trimpath -tags "$tags" -o "$tmp/" "$@" 2>&1) | progress "$label"; then
    echo "build-tools: building $label failed (output above)" >&2
    exit 1
  fi
}

if [ "${1:-}" = "--force" ] || ! have_all "$cache"; then
  echo "build-tools: no cached binaries for key $key; building (about 13 minutes of CPU: 10+ minutes on 2 idle cores, more on a busy machine)"
  mkdir -p "$(dirname "$cache")"
  tmp="$(mktemp -d "$(dirname "$cache")/build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  build btcd "$tools/btcd" github.com/btcsuite/btcd "" \
    github.com/btcsuite/btcd github.com/btcsuite/btcd/cmd/btcctl
  build lnd "$tools/lnd" github.com/lightningnetwork/lnd "$LND_TAGS" \
    github.com/lightningnetwork/lnd/cmd/lnd github.com/lightningnetwork/lnd/cmd/lncli
  chmod 755 "$tmp" && rm -rf "$cache" && mv "$tmp" "$cache"
  trap - EXIT
fi

mkdir -p "$bin"
for n in "${names[@]}"; do ln -sfn "$cache/$n" "$bin/$n"; done
echo "build-tools: $(cd "$bin" && ./lnd --version | head -1); btcd $(cd "$bin" && ./btcd --version | head -1 | awk '{print $NF}') in bin/ (cache $cache)"
