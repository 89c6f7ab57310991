#!/usr/bin/env bash
# Everything `make test` runs: lint, then every test with the race detector,
# including the fuzz seed corpora, the end-to-end tests against a real etcd
# process and the fault suite in network namespaces. The fault suite's table
# is written to artifacts/fault-suite.md and printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
scripts/lint.sh
export MESHPOOL_E2E=1
export MESHPOOL_ARTIFACTS="$PWD/artifacts"
rm -f artifacts/fault-suite.md
go test -race -count=1 -timeout 15m ./...
if [ -f artifacts/fault-suite.md ]; then
  echo
  cat artifacts/fault-suite.md
fi
