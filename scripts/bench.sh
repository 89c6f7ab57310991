#!/bin/sh
# Builds bin/meshpool and measures a loopback cluster of real processes
# (etcd from the PATH, meshpool nodes on 127.0.0.x) into BENCHMARKS.md.
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
CGO_ENABLED=0 "$GO" build -ldflags "-X main.version=$VERSION" -o bin/meshpool ./cmd/meshpool
exec "$GO" run ./bench -binary bin/meshpool -out BENCHMARKS.md "$@"
