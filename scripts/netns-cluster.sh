#!/usr/bin/env bash
# The Vagrant topology without VMs: network namespaces etcd, a, b, c on one
# bridge, each with eth1 at the VM's IP (172.28.128.x), an etcd process in the
# etcd namespace and a `meshpool node` in each node namespace, started like
# the VM's systemd unit: a clean environment holding deploy/vagrant/meshpool.env.
#
# Needs root and iproute2. Never touches the host's interfaces or routes: the
# bridge lives in a namespace of its own (PREFIX-br), and every veth is made
# there with its other end created directly in a node's namespace, so the
# 172.28.128.0/24 range exists only inside these namespaces (and bridged
# traffic never meets the host's firewall through bridge-nf).
#
# Environment:
#   MESHPOOL_BIN         the binary (default bin/meshpool)
#   MESHPOOL_NETNS_DIR   state: pids, logs, env files, etcd data (default /tmp/meshpool-netns)
#   MESHPOOL_NETNS_ENV   extra KEY=VALUE words appended to every node's env file,
#                        e.g. "MESHPOOL_TTL=3s MESHPOOL_TASK_INTERVAL=1s"
#   MESHPOOL_NETNS_PREFIX  namespace name prefix (default mpv)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${MESHPOOL_BIN:-bin/meshpool}
STATE=${MESHPOOL_NETNS_DIR:-/tmp/meshpool-netns}
PREFIX=${MESHPOOL_NETNS_PREFIX:-mpv}
EXTRA_ENV=${MESHPOOL_NETNS_ENV:-}
ENV_TEMPLATE=$ROOT/deploy/vagrant/meshpool.env
ETCD_IP=172.28.128.26
NODES=(a b c)
declare -A IPS=([etcd]=$ETCD_IP [a]=172.28.128.11 [b]=172.28.128.12 [c]=172.28.128.13)

usage() {
  cat >&2 <<USAGE
usage: $0 up | down | kill NODE | partition NODE | heal NODE | status [--json]
  NODE is one of: ${NODES[*]}
USAGE
  exit 2
}

die() {
  echo "netns-cluster: $*" >&2
  exit 1
}

log() { echo "netns-cluster: $*" >&2; }

ns() { echo "$PREFIX-$1"; }

bridge_ns() { echo "$PREFIX-br"; }

# our_namespaces lists the namespaces with this script's prefix.
our_namespaces() {
  ip netns list | awk '{print $1}' | grep -E "^${PREFIX}-(br|etcd|$(IFS='|'; echo "${NODES[*]}"))\$" || true
}

require() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces)"
  command -v ip >/dev/null 2>&1 || die "no ip command (install iproute2)"
}

# add_host NAME: namespace PREFIX-NAME with lo up and eth1 at NAME's IP,
# joined to the bridge through veth v-NAME.
add_host() {
  local name=$1 inside
  inside=$(ns "$name")
  ip netns add "$inside"
  ip -n "$(bridge_ns)" link add "v-$name" type veth peer name eth1 netns "$inside"
  ip -n "$(bridge_ns)" link set "v-$name" master br0 up
  ip -n "$inside" link set lo up
  ip -n "$inside" addr add "${IPS[$name]}/24" dev eth1
  ip -n "$inside" link set eth1 up
}

make_network() {
  ip netns add "$(bridge_ns)"
  ip -n "$(bridge_ns)" link add br0 type bridge
  ip -n "$(bridge_ns)" link set br0 up
  local h
  for h in etcd "${NODES[@]}"; do
    add_host "$h"
  done
}

# spawn NAME CMD...: runs CMD in the background in a session of its own, with
# its output in STATE/NAME.log and its pid in STATE/NAME.pid.
spawn() {
  local name=$1
  shift
  setsid "$@" </dev/null >>"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

start_etcd() {
  command -v etcd >/dev/null 2>&1 || die "no etcd on PATH (install etcd-server)"
  spawn etcd ip netns exec "$(ns etcd)" etcd --name etcd --data-dir "$STATE/etcd-data" \
    --listen-client-urls "http://$ETCD_IP:2379,http://127.0.0.1:2379" \
    --advertise-client-urls "http://$ETCD_IP:2379" \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster etcd=http://127.0.0.1:2380 --log-level warn --logger zap
  for _ in $(seq 1 100); do
    if ip netns exec "$(ns etcd)" bash -c "exec 3<>/dev/tcp/$ETCD_IP/2379" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  die "etcd does not listen on $ETCD_IP:2379 after 20s"
}

# write_env NODE: the VM's env file, the node's name (a VM takes it from its
# host name) and MESHPOOL_NETNS_ENV.
write_env() {
  local node=$1 word
  {
    cat "$ENV_TEMPLATE"
    echo "MESHPOOL_NAME=$node"
    for word in $EXTRA_ENV; do
      [[ $word == *=* ]] || die "MESHPOOL_NETNS_ENV: $word is not KEY=VALUE"
      echo "$word"
    done
  } >"$STATE/$node.env"
}

# env_words FILE: the KEY=VALUE lines of an env file, without comments.
env_words() {
  grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$1"
}

start_node() {
  local node=$1 words
  write_env "$node"
  mapfile -t words < <(env_words "$STATE/$node.env")
  # Like systemd: a clean environment with only the env file's variables.
  spawn "$node" ip netns exec "$(ns "$node")" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    "${words[@]}" "$BIN" node
}

# up_failed shows the logs so far, then removes everything up made.
up_failed() {
  log "up failed; the logs so far:"
  tail -n 20 "$STATE"/*.log >&2 2>/dev/null || true
  log "removing what up made"
  cmd_down >/dev/null 2>&1 || true
}

cmd_up() {
  require
  [[ -x $BIN ]] || die "no binary at $BIN (make build, or set MESHPOOL_BIN)"
  BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
  [[ -z "$(our_namespaces)" ]] || die "already up (namespaces $(our_namespaces | tr '\n' ' ')); run down first"
  mkdir -p "$STATE"
  # Anything that fails from here on leaves nothing behind.
  trap up_failed EXIT
  make_network
  start_etcd
  local node
  for node in "${NODES[@]}"; do
    start_node "$node"
  done
  trap - EXIT
  log "up: etcd at $ETCD_IP:2379, nodes ${NODES[*]} at ${IPS[a]}, ${IPS[b]}, ${IPS[c]}; state in $STATE"
}

# kill_pidfile FILE: SIGKILL the process of a pid file, then remove the file.
kill_pidfile() {
  local file=$1 pid
  pid=$(cat "$file" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]]; then
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

# remove_ns NS: kill what still runs in NS, then delete it.
remove_ns() {
  local name=$1 pid
  for pid in $(ip netns pids "$name" 2>/dev/null || true); do
    kill -9 "$pid" 2>/dev/null || true
  done
  ip netns del "$name"
}

cmd_down() {
  require
  local file name
  for file in "$STATE"/*.pid; do
    [[ -e $file ]] && kill_pidfile "$file"
  done
  for name in $(our_namespaces); do
    remove_ns "$name"
  done
  [[ -z "$(our_namespaces)" ]] || die "could not remove $(our_namespaces | tr '\n' ' ')"
  rm -rf "$STATE"
  log "down"
}

check_node() {
  local node=${1:-} n
  for n in "${NODES[@]}"; do
    [[ $node == "$n" ]] && return 0
  done
  usage
}

cmd_kill() {
  require
  check_node "${1:-}"
  [[ -f $STATE/$1.pid ]] || die "node $1 is not running (no $STATE/$1.pid)"
  kill_pidfile "$STATE/$1.pid"
  log "killed $1 (SIGKILL)"
}

# set_link NODE up|down: the bridge's end of NODE's veth.
set_link() {
  require
  check_node "${1:-}"
  ip -n "$(bridge_ns)" link set "v-$1" "$2"
  log "link of $1 $2"
}

cmd_status() {
  require
  [[ -x $BIN ]] || die "no binary at $BIN (make build, or set MESHPOOL_BIN)"
  ip netns exec "$(ns etcd)" "$BIN" status --etcd "$ETCD_IP:2379" "$@"
}

main() {
  [[ $# -ge 1 ]] || usage
  local cmd=$1
  shift
  case $cmd in
  up) [[ $# -eq 0 ]] || usage; cmd_up ;;
  down) [[ $# -eq 0 ]] || usage; cmd_down ;;
  kill) [[ $# -eq 1 ]] || usage; cmd_kill "$1" ;;
  partition) [[ $# -eq 1 ]] || usage; set_link "$1" down ;;
  heal) [[ $# -eq 1 ]] || usage; set_link "$1" up ;;
  status) cmd_status "$@" ;;
  *) usage ;;
  esac
}

main "$@"
