#!/usr/bin/env bash
# Provisions the etcd machine: Debian's etcd-server (its user, unit and
# defaults) running the etcd that `make build` builds from the module
# meshpool pins (/vagrant/bin/etcd, 3.6 or later: 3.4 and 3.5 skip their
# permission checks while the NOSPACE alarm is raised), listening for clients
# on the private IP (and loopback). Idempotent: run it again to no effect.
# On a fresh machine: an etcd data directory of 3.4 cannot be opened by 3.7.
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

# use_module_etcd: the package's unit runs /usr/local/bin/etcd, a copy of
# /vagrant/bin/etcd. Prints "changed" when the binary or the unit changed.
use_module_etcd() {
  local src=/vagrant/bin/etcd dst=/usr/local/bin/etcd dir=/etc/systemd/system/etcd.service.d want changed=
  if [[ ! -x $src ]]; then
    echo "no $src: run make build on the host first (it builds etcd from the module)" >&2
    exit 1
  fi
  if ! cmp -s "$src" "$dst"; then
    install -m 0755 "$src" "$dst"
    changed=1
  fi
  want="# Written by deploy/vagrant/provision-etcd.sh: etcd built from meshpool's module.
[Service]
ExecStart=
ExecStart=$dst"
  mkdir -p "$dir"
  if [[ ! -f $dir/meshpool.conf || "$(cat "$dir/meshpool.conf")" != "$want" ]]; then
    printf '%s\n' "$want" >"$dir/meshpool.conf"
    systemctl daemon-reload
    changed=1
  fi
  [[ -n $changed ]] && echo changed
  return 0
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
  local binary config
  binary=$(use_module_etcd)
  config=$(write_config "$ip")
  if [[ $binary == changed || $config == changed ]] || ! systemctl is-active --quiet etcd; then
    systemctl restart etcd
  fi
  wait_healthy "$ip"
}

main "$@"
