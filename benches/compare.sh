#!/usr/bin/env bash
# Fanout vs peers, in one run on this machine, with the same fanout-bench scenarios, the
# same `chatMessage(room:)` subscription and the same payloads:
#
#   async-graphql   async-graphql + axum (Rust)        benches/peers/async-graphql
#   graphql-ws      graphql-ws reference server + ws + graphql-js (Node.js)
#                                                      benches/peers/node-graphql-ws
#   strawberry      Strawberry on uvicorn (Python)     benches/peers/strawberry
#   floor           not a peer: the least any server must do to deliver the same
#                   frames (plain threads, one write per socket and event); opt-in,
#                   to read a figure against this machine's floor
#                                                      benches/peers/floor
#
#   benches/compare.sh [SERVER...]    (default: fanout async-graphql graphql-ws strawberry)
#
# Sets the peers up from the package registries (cargo, npm ci, pip into a venv under
# target/peers), starts each server alone, runs the scenarios against it, stops it, and
# prints one table with each peer's ratio to Fanout. Fanout is published to through its
# gRPC PublishStream, the peers (which have no such API) through their own
# `POST /publish` (one request in flight); at a fixed rate both keep up as long as the
# server answers a POST within the period, so only the "max rate" row depends on it. Reports: target/bench-results/compare-<time>.jsonl.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"

cleanup() {
  stop_server
  restore_loopback
}
trap cleanup EXIT

setup_peers() {
  mkdir -p "$peer_out"
  log "building the async-graphql peer"
  CARGO_TARGET_DIR="$peer_out/async-graphql" \
    cargo build --release --locked --manifest-path "$peers/async-graphql/Cargo.toml" >&2
  build_floor
  log "installing the graphql-ws peer (npm ci)"
  (cd "$peers/node-graphql-ws" && npm ci --no-audit --no-fund --silent >&2)
  log "installing the Strawberry peer (pip, venv in $peer_out/venv)"
  [ -x "$peer_out/venv/bin/python" ] || python3 -m venv "$peer_out/venv"
  "$peer_out/venv/bin/pip" install -q -r "$peers/strawberry/requirements.txt" >&2
}

# start SERVER: starts it in the background, sets $server_pid, $ws_url and $publish.
start() {
  case "$1" in
    fanout)
      start_standalone
      ws_url="ws://127.0.0.1:$sa_ws/graphql"
      publish=(--grpc "http://127.0.0.1:$sa_grpc")
      return
      ;;
    async-graphql)
      "$peer_out/async-graphql/release/peer-async-graphql" "127.0.0.1:$peer_port" \
        >"$out_dir/$1.log" 2>&1 &
      ;;
    floor)
      start_floor
      ws_url="ws://127.0.0.1:$peer_port/graphql"
      publish=(--publish "http://127.0.0.1:$peer_port/publish")
      return
      ;;
    graphql-ws)
      node "$peers/node-graphql-ws/server.mjs" "$peer_port" >"$out_dir/$1.log" 2>&1 &
      ;;
    strawberry)
      (cd "$peers/strawberry" && exec "$peer_out/venv/bin/uvicorn" app:app --host 127.0.0.1 \
        --port "$peer_port" --ws websockets --log-level warning) >"$out_dir/$1.log" 2>&1 &
      ;;
    *) echo "unknown server: $1" >&2; exit 64 ;;
  esac
  server_pid=$!
  wait_port "$peer_port" 30
  ws_url="ws://127.0.0.1:$peer_port/graphql"
  publish=(--publish "http://127.0.0.1:$peer_port/publish")
}

# The scenarios, each on a fresh server.
run_scenarios() { # server
  local s="$1"
  start "$s"
  bench "$s: idle 5k connections" --url "$ws_url" --connections 5000 --idle --idle-secs 3 \
    --server-pid "$server_pid"
  stop_server
  start "$s"
  bench "$s: broadcast 2k subscribers, 20 ev/s" --url "$ws_url" "${publish[@]}" \
    --connections 2000 --channels 1 --events 100 --rate 20 --drain-secs 20 \
    --server-pid "$server_pid"
  bench "$s: 5k subscribers on 1k channels, 1k ev/s" --url "$ws_url" "${publish[@]}" \
    --connections 5000 --channels 1000 --events 10 --rate 1000 --drain-secs 20 \
    --server-pid "$server_pid"
  bench "$s: broadcast 1k subscribers, 40 ev/s" --url "$ws_url" "${publish[@]}" \
    --connections 1000 --channels 1 --events 200 --rate 40 --drain-secs 20 \
    --server-pid "$server_pid"
  bench "$s: broadcast 1k subscribers, max rate" --url "$ws_url" "${publish[@]}" \
    --connections 1000 --channels 1 --events 500 --rate 0 --drain-secs 20 \
    --server-pid "$server_pid"
  stop_server
}

case "${1:-}" in -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(fanout async-graphql graphql-ws strawberry)
build_fanout
tune_loopback
setup_peers
new_results compare
for s in "${servers[@]}"; do
  run_scenarios "$s"
done
python3 "$root/benches/table.py" --compare "$RESULTS"
log "reports: $RESULTS"
