#!/bin/sh
# Builds bin/meshpool and measures a loopback cluster of real processes
# (etcd built from the module meshpool pins, bin/etcd, first on PATH;
# meshpool nodes on 127.0.X.Y) into BENCHMARKS.md.
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
CGO_ENABLED=0 "$GO" build -o bin/etcd ./internal/cmd/etcd
export PATH="$PWD/bin:$PATH"
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
