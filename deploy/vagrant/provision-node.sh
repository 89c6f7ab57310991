#!/usr/bin/env bash
# Provisions a node machine: the meshpool binary built on the host
# (/vagrant/bin/meshpool), the meshpool user, /etc/meshpool/meshpool.env, the
# systemd unit, and the nats CLI. Idempotent: run it again to no effect, or to
# roll out a new binary (make build; vagrant rsync; vagrant provision).
#
#   provision-node.sh NODE_IP
set -euo pipefail

SRC=${MESHPOOL_SRC:-/vagrant}
NATS_VERSION=${NATS_VERSION:-0.5.0}
CHANGED=0 # set to 1 when the service must be restarted

usage() {
  echo "usage: $0 NODE_IP" >&2
  exit 2
}

die() {
  echo "provision-node: $*" >&2
  exit 1
}

# put SRC DEST MODE: installs SRC as DEST when they differ; marks a change.
put() {
  local src=$1 dest=$2 mode=$3
  if ! cmp -s "$src" "$dest"; then
    install -D -m "$mode" "$src" "$dest"
    CHANGED=1
  fi
}

apt_install() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

create_user() {
  id -u meshpool >/dev/null 2>&1 && return 0
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin meshpool
}

install_binary() {
  [[ -x $SRC/bin/meshpool ]] || die "no $SRC/bin/meshpool: run 'make build' on the host first (then 'vagrant rsync' if the box syncs by rsync)"
  "$SRC/bin/meshpool" version >/dev/null 2>&1 ||
    die "$SRC/bin/meshpool does not run here (built for another OS, or against a newer glibc): build it with 'CGO_ENABLED=0 GOOS=linux make build'"
  put "$SRC/bin/meshpool" /usr/local/bin/meshpool 0755
}

# install_env IP: the env file of deploy/vagrant, with the interface that
# holds IP when the box does not call it eth1.
install_env() {
  local ip=$1 dev tmp
  dev=$(ip -4 -o addr show | awk -v ip="$ip" '{split($4, a, "/")} a[1] == ip {print $2; exit}')
  [[ -n $dev ]] || die "no interface holds $ip"
  tmp=$(mktemp)
  sed "s/^MESHPOOL_INTERFACE=.*/MESHPOOL_INTERFACE=${dev}/" "$SRC/deploy/vagrant/meshpool.env" >"$tmp"
  put "$tmp" /etc/meshpool/meshpool.env 0644
  rm -f "$tmp"
}

install_unit() {
  put "$SRC/deploy/vagrant/meshpool.service" /etc/systemd/system/meshpool.service 0644
  systemctl daemon-reload
  systemctl enable meshpool >/dev/null 2>&1
  if [[ $CHANGED -eq 1 ]] || ! systemctl is-active --quiet meshpool; then
    systemctl restart meshpool
  fi
}

# install_nats: the nats CLI in /usr/local/bin. natscli needs a newer Go than
# Debian's golang-go, so go install is used only with such a Go on the PATH;
# otherwise the release archive is downloaded and checked against its
# SHA256SUMS.
install_nats() {
  if [[ -x /usr/local/bin/nats ]] && /usr/local/bin/nats --version 2>&1 | grep -qF "$NATS_VERSION"; then
    return 0
  fi
  if command -v go >/dev/null 2>&1 && GOBIN=/usr/local/bin GOTOOLCHAIN=local \
    go install "github.com/nats-io/natscli/nats@v${NATS_VERSION}" 2>/dev/null; then
    return 0
  fi
  apt_install ca-certificates curl unzip
  local arch base url tmp
  arch=$(dpkg --print-architecture)
  base="nats-${NATS_VERSION}-linux-${arch}"
  url="https://github.com/nats-io/natscli/releases/download/v${NATS_VERSION}"
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/$base.zip" "$url/$base.zip"
  curl -fsSL -o "$tmp/SHA256SUMS" "$url/SHA256SUMS"
  (cd "$tmp" && grep " ${base}.zip\$" SHA256SUMS | sha256sum -c --quiet -)
  unzip -q -o -j "$tmp/$base.zip" -d "$tmp/x"
  install -m 0755 "$tmp/x/nats" /usr/local/bin/nats
  rm -rf "$tmp"
}

# put_nats_context IP: a system-wide default server for the nats CLI, so that
# `nats sub results` works without -s.
put_nats_context() {
  local tmp
  tmp=$(mktemp)
  printf 'export NATS_URL=nats://%s:4222\n' "$1" >"$tmp"
  if ! cmp -s "$tmp" /etc/profile.d/nats.sh; then
    install -m 0644 "$tmp" /etc/profile.d/nats.sh
  fi
  rm -f "$tmp"
}

main() {
  [[ $# -eq 1 && $1 =~ ^[0-9]+(\.[0-9]+){3}$ ]] || usage
  create_user
  install_binary
  install_env "$1"
  install_unit
  install_nats
  # Every node's client port is on its private IP, not on loopback.
  put_nats_context "$1"
  systemctl --no-pager --lines=0 status meshpool || true
}

main "$@"
