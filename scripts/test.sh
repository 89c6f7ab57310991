#!/usr/bin/env bash
# Everything `make test` runs: lint, then every test with the race detector,
# including the fuzz seed corpora and the end-to-end tests against a real
# etcd server process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
scripts/lint.sh
export MESHPOOL_E2E=1
go test -race -count=1 -timeout 15m ./...
