#!/bin/sh
# Builds bin/meshpool and measures a loopback cluster of real processes
# (etcd from the PATH, meshpool nodes on 127.0.X.Y) into BENCHMARKS.md.
# On a fresh machine without etcd it installs Debian's etcd-server (as root).
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
if ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: etcd is not on the PATH and this is not root; install Debian's etcd-server first" >&2
    exit 1
  fi
  echo "bench: installing etcd-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  # The package starts a system etcd on 127.0.0.1:2379; the bench runs its
  # own. Stop just that one, by its service user, as install-test-deps.sh does.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop etcd >/dev/null 2>&1 || true; fi
  pkill -u etcd >/dev/null 2>&1 || true
fi
# The version names the measured commit; -dirty only when something other
# than the report itself differs from it.
if [ -z "${VERSION:-}" ]; then
  VERSION=$(git describe --always 2>/dev/null || echo dev)
  if [ -n "$(git status --porcelain -- . ':!BENCHMARKS.md' 2>/dev/null)" ]; then
    VERSION="$VERSION-dirty"
  fi
fi
CGO_ENABLED=0 "$GO" build -ldflags "-X main.version=$VERSION" -o bin/meshpool ./cmd/meshpool
exec "$GO" run ./bench -binary bin/meshpool -out BENCHMARKS.md "$@"
