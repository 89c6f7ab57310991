#!/usr/bin/env bash
# Provisions the etcd machine: Debian's etcd-server, listening for clients on
# the private IP (and loopback). Idempotent: run it again to no effect.
#
#   provision-etcd.sh ETCD_IP
set -euo pipefail

usage() {
  echo "usage: $0 ETCD_IP" >&2
  exit 2
}

install_etcd() {
  if ! dpkg-query -W -f='${Status}' etcd-server 2>/dev/null | grep -q 'install ok installed'; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends etcd-server
  fi
}

# write_config IP: /etc/default/etcd, read by the package's unit. The member
# name, data dir and peer URLs stay the package's (a single member). The
# master compacts etcd's history (--compaction-retention, 5m); etcd's own
# periodic compaction, keeping more, is the backstop when that is off. The
# quota is etcd's default, written out: past it etcd raises NOSPACE.
# Prints "changed" when the file changed.
write_config() {
  local ip=$1 conf=/etc/default/etcd want
  want="# Written by deploy/vagrant/provision-etcd.sh.
ETCD_LISTEN_CLIENT_URLS=http://${ip}:2379,http://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=http://${ip}:2379
ETCD_AUTO_COMPACTION_MODE=periodic
ETCD_AUTO_COMPACTION_RETENTION=1h
ETCD_QUOTA_BACKEND_BYTES=2147483648"
  if [[ -f $conf && "$(cat "$conf")" == "$want" ]]; then
    return 0
  fi
  printf '%s\n' "$want" >"$conf"
  echo changed
}

wait_healthy() {
  local ip=$1 i
  for i in $(seq 1 30); do
    if (exec 3<>"/dev/tcp/${ip}/2379") 2>/dev/null; then
      echo "etcd listens on ${ip}:2379"
      return 0
    fi
    sleep 1
  done
  echo "etcd does not listen on ${ip}:2379 after ${i}s; see journalctl -u etcd" >&2
  return 1
}

main() {
  [[ $# -eq 1 && $1 =~ ^[0-9]+(\.[0-9]+){3}$ ]] || usage
  local ip=$1
  install_etcd
  systemctl enable etcd >/dev/null 2>&1
  if [[ "$(write_config "$ip")" == changed ]] || ! systemctl is-active --quiet etcd; then
    systemctl restart etcd
  fi
  wait_healthy "$ip"
}

main "$@"
