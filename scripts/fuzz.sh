#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 30s) each.
set -euo pipefail
cd "$(dirname "$0")/.."
for target in $(go test -list '^Fuzz' ./message | grep '^Fuzz'); do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-30s}" ./message
done
