#!/usr/bin/env bash
# A cluster on this machine without root: a real etcd process (etcd from the
# PATH, its data in a temporary directory) and N `meshpool node` processes on
# 127.0.0.2, 127.0.0.3, … with the default ports. `down` stops them all.
#
#   scripts/local-cluster.sh up [N]    (N defaults to 3, at most 50)
#   scripts/local-cluster.sh down
#
# Every MESHPOOL_* variable of the caller reaches the nodes (e.g.
# MESHPOOL_TTL=3s). Environment of the script itself:
#   MESHPOOL_BIN              the binary (default bin/meshpool)
#   MESHPOOL_LOCAL_DIR        state: pids, logs (default ${TMPDIR:-/tmp}/meshpool-local)
#   MESHPOOL_LOCAL_ETCD_PORT  etcd client port on 127.0.0.1 (default 2379; the peer port is +1)
#   MESHPOOL_LOCAL_IP_BASE    last byte of the first node's IP (default 2)
set -euo pipefail

BIN=${MESHPOOL_BIN:-bin/meshpool}
STATE=${MESHPOOL_LOCAL_DIR:-${TMPDIR:-/tmp}/meshpool-local}
ETCD_PORT=${MESHPOOL_LOCAL_ETCD_PORT:-2379}
IP_BASE=${MESHPOOL_LOCAL_IP_BASE:-2}
STOP_WAIT=10 # seconds a node may take to stop cleanly before SIGKILL

usage() {
  cat >&2 <<USAGE
usage: $0 up [N] | down
  up [N]  start etcd and N nodes (default 3) on 127.0.0.$IP_BASE..
  down    stop them and remove etcd's data
USAGE
  exit 2
}

die() {
  echo "local-cluster: $*" >&2
  exit 1
}

log() { echo "local-cluster: $*" >&2; }

# spawn NAME CMD...: CMD in the background, output in STATE/NAME.log, pid in
# STATE/NAME.pid.
spawn() {
  local name=$1
  shift
  "$@" </dev/null >>"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

start_etcd() {
  command -v etcd >/dev/null 2>&1 || die "no etcd on PATH (Debian: apt install etcd-server)"
  local data client peer
  data=$(mktemp -d "${TMPDIR:-/tmp}/meshpool-local-etcd.XXXXXX")
  echo "$data" >"$STATE/etcd.data"
  client=http://127.0.0.1:$ETCD_PORT
  peer=http://127.0.0.1:$((ETCD_PORT + 1))
  spawn etcd etcd --name local --data-dir "$data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "local=$peer" --log-level warn --logger zap
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$ETCD_PORT") 2>/dev/null; then
      return 0
    fi
    alive "$STATE/etcd.pid" || die "etcd exited: $(tail -n 5 "$STATE/etcd.log")"
    sleep 0.2
  done
  die "etcd does not listen on 127.0.0.1:$ETCD_PORT after 20s"
}

start_nodes() {
  local n=$1 i ip
  for ((i = 0; i < n; i++)); do
    ip=127.0.0.$((IP_BASE + i))
    spawn "node$((i + 1))" "$BIN" node --etcd "127.0.0.1:$ETCD_PORT" --advertise "$ip" --name "n$((i + 1))"
  done
}

alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

cmd_up() {
  local n=${1:-3}
  [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 50 && $((IP_BASE + n - 1)) -le 254 ]] || usage
  [[ -x $BIN ]] || die "no binary at $BIN (make build, or set MESHPOOL_BIN)"
  [[ ! -e $STATE/etcd.pid ]] || die "already up (state in $STATE); run down first"
  mkdir -p "$STATE"
  trap 'log "up failed, stopping what was started"; cmd_down >/dev/null 2>&1 || true' EXIT
  start_etcd
  start_nodes "$n"
  trap - EXIT
  log "up: etcd at 127.0.0.1:$ETCD_PORT, $n nodes from 127.0.0.$IP_BASE; logs in $STATE"
  log "try: $BIN status --etcd 127.0.0.1:$ETCD_PORT"
}

# stop PIDFILE...: SIGTERM, up to STOP_WAIT seconds for a clean stop, then
# SIGKILL; the pid files are removed.
stop() {
  local file pid deadline=$((SECONDS + STOP_WAIT))
  for file in "$@"; do
    if alive "$file"; then kill -TERM "$(cat "$file")" 2>/dev/null || true; fi
  done
  for file in "$@"; do
    while alive "$file" && ((SECONDS < deadline)); do
      sleep 0.1
    done
    if alive "$file"; then
      kill -KILL "$(cat "$file")" 2>/dev/null || true
    fi
    rm -f "$file"
  done
}

cmd_down() {
  local nodes=()
  [[ -d $STATE ]] || { log "not up"; return 0; }
  shopt -s nullglob
  nodes=("$STATE"/node*.pid)
  shopt -u nullglob
  [[ ${#nodes[@]} -eq 0 ]] || stop "${nodes[@]}"
  [[ ! -e $STATE/etcd.pid ]] || stop "$STATE/etcd.pid"
  if [[ -f $STATE/etcd.data ]]; then
    rm -rf "$(cat "$STATE/etcd.data")"
    rm -f "$STATE/etcd.data"
  fi
  log "down (logs kept in $STATE)"
}

main() {
  [[ $# -ge 1 ]] || usage
  case $1 in
  up) [[ $# -le 2 ]] || usage; cmd_up "${2:-3}" ;;
  down) [[ $# -eq 1 ]] || usage; cmd_down ;;
  *) usage ;;
  esac
}

main "$@"
