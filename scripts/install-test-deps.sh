#!/usr/bin/env bash
# Installs what the tests need and the machine may lack: iproute2 for the
# network-namespace fault suite, shellcheck and ruby for the deployment
# files, promtool for the metrics, chromium for the live page, Node.js and
# npm for the JavaScript example, and the nats CLI. Skipped for what is
# present. etcd is not installed: scripts/test.sh builds it from the module
# meshpool pins (internal/cmd/etcd).
set -euo pipefail
need=()
only_etcd=
[ "${1:-}" = etcd ] && only_etcd=1 # kept for older callers: nothing to install
if [ -z "$only_etcd" ]; then
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)       # deploy and scripts lint
  command -v ruby >/dev/null 2>&1 || need+=(ruby)                   # ruby -c on the Vagrantfile
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)         # promtool check metrics
  command -v chromium >/dev/null 2>&1 || need+=(chromium)           # the live page, in a real browser
  command -v node >/dev/null 2>&1 || need+=(nodejs)                 # the JavaScript example (examples/js)
  command -v npm >/dev/null 2>&1 || need+=(npm)
fi
# The real nats CLI, to check that `nats sub results` shows what meshpool
# watch shows. It is a Go module: installed into $(go env GOPATH)/bin, no root.
nats_cli="$(go env GOPATH)/bin/nats"
if [ -z "$only_etcd" ] && ! command -v nats >/dev/null 2>&1 && [ ! -x "$nats_cli" ]; then
  echo "install-test-deps: installing the nats CLI (go install)" >&2
  go install github.com/nats-io/natscli/nats@v0.5.0
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${need[*]} and not root; install them (Debian packages) first" >&2
  exit 1
fi
echo "install-test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The prometheus package starts its server; the tests only want promtool.
# Stop just what was installed now, by its service user.
for pkg in "${need[@]}"; do
  case "$pkg" in
    prometheus) svc=prometheus user=prometheus ;;
    *) continue ;;
  esac
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
  pkill -u "$user" >/dev/null 2>&1 || true
done
