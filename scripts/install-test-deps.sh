#!/usr/bin/env bash
# Installs what the tests need and the machine may lack: an etcd server
# process for the end-to-end tests (Debian's etcd-server) and iproute2 for
# the network-namespace fault suite. Skipped for what is present.
set -euo pipefail
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${need[*]} and not root; install them (Debian packages) first" >&2
  exit 1
fi
echo "install-test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The etcd-server package enables a system etcd on 127.0.0.1:2379; the tests
# start their own, so make sure the packaged one is not running.
if command -v systemctl >/dev/null 2>&1; then systemctl stop etcd >/dev/null 2>&1 || true; fi
pkill -x etcd >/dev/null 2>&1 || true
