#!/usr/bin/env bash
# Installs what the tests need and the machine may lack: an etcd server
# process for the end-to-end tests (Debian's etcd-server). Skipped when present.
set -euo pipefail
if command -v etcd >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: etcd is missing and we are not root; install Debian's etcd-server (or put etcd on PATH)" >&2
  exit 1
fi
echo "install-test-deps: installing etcd-server" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
# The package enables a system etcd on 127.0.0.1:2379; the tests start their
# own, so make sure the packaged one is not running.
if command -v systemctl >/dev/null 2>&1; then systemctl stop etcd >/dev/null 2>&1 || true; fi
pkill -x etcd >/dev/null 2>&1 || true
