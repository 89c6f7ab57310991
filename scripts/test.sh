#!/usr/bin/env bash
# Everything `make test` runs: lint, then every test with the race detector,
# including the fuzz seed corpora, the end-to-end tests against a real etcd
# process and the fault suite in network namespaces. The fault suite's table
# is written to artifacts/fault-suite.md and printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# The end-to-end tests and the fault suite run etcd built from the module
# meshpool pins (etcd >= 3.6: see internal/cmd/etcd), found first on PATH.
CGO_ENABLED=0 go build -o bin/etcd ./internal/cmd/etcd
export PATH="$PWD/bin:$PATH"
scripts/lint.sh
export MESHPOOL_E2E=1
export MESHPOOL_ARTIFACTS="$PWD/artifacts"
rm -f artifacts/fault-suite.md
go test -race -count=1 -timeout 15m ./...
if [ -f artifacts/fault-suite.md ]; then
  echo
  cat artifacts/fault-suite.md
fi
