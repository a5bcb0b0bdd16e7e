# Shared by benches/scenarios.sh and benches/compare.sh: building, starting and stopping
# the servers under test, and running fanout-bench with its JSON report appended to
# $RESULTS. Source it; it expects $root (the checkout) to be set.

bin="${FANOUT_BIN_DIR:-$root/target/release}"
out_dir="${FANOUT_BENCH_OUT:-$root/target/bench-results}"
# Ports of the servers under test, away from the defaults other tools use.
sa_ws=28080 sa_grpc=28051 sa_admin=28090
cluster_base=28180
cluster_state="${TMPDIR:-/tmp}/fanout-bench-cluster"
# Peers (benches/peers) are built into target/peers and listen here.
peers="$root/benches/peers"
peer_out="$root/target/peers"
peer_port=28300
server_pid=""

log() { echo "== $*" >&2; }

# Loopback packets wait in a per-CPU backlog of net.core.netdev_max_backlog packets
# (1,000 by default). A broadcast to thousands of sockets on a busy 2-core machine
# overflows it, and every dropped packet comes back after a 200 ms retransmission
# timeout: latency tails of the benchmark, not of the server. Raise it for the run when
# allowed (FANOUT_BENCH_TUNE=0 leaves it alone) and put it back at the end;
# fanout-bench reports the drops of each run either way.
backlog_file=/proc/sys/net/core/netdev_max_backlog
backlog_was=""
tune_loopback() {
  local want=16384 have
  [ "${FANOUT_BENCH_TUNE:-1}" = 0 ] && return 0
  have="$(cat "$backlog_file" 2>/dev/null || echo 0)"
  [ "$have" -ge "$want" ] && return 0
  if (echo "$want" >"$backlog_file") 2>/dev/null; then
    backlog_was="$have"
    log "net.core.netdev_max_backlog raised from $have to $want for this run"
  else
    log "warning: net.core.netdev_max_backlog is $have and cannot be raised here;" \
      "loopback drops will show as 200 ms latency tails"
  fi
}

restore_loopback() {
  [ -n "$backlog_was" ] || return 0
  (echo "$backlog_was" >"$backlog_file") 2>/dev/null &&
    log "net.core.netdev_max_backlog put back to $backlog_was"
  backlog_was=""
}

build_fanout() {
  if [ -n "${FANOUT_BIN_DIR:-}" ]; then
    log "using binaries in $FANOUT_BIN_DIR"
    return
  fi
  log "building release binaries"
  (cd "$root" && cargo build --release -p fanout-cli -p fanout-resolver-worker -p fanout-bench >&2)
}

# The floor (benches/peers/floor): its own cargo project, outside the workspace.
build_floor() {
  log "building the floor"
  CARGO_TARGET_DIR="$peer_out/floor" \
    cargo build --release --locked --manifest-path "$peers/floor/Cargo.toml" >&2
}

# Starts the floor on $peer_port in the background; sets $server_pid.
start_floor() {
  "$peer_out/floor/release/peer-floor" "127.0.0.1:$peer_port" >"$out_dir/floor.log" 2>&1 &
  server_pid=$!
  wait_port "$peer_port" 30
}

wait_http() { # url seconds
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; do
    if [ $SECONDS -ge "$deadline" ]; then
      echo "not ready after $2 s: $1" >&2
      return 1
    fi
    sleep 0.2
  done
}

wait_port() { # port seconds
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    if [ $SECONDS -ge "$deadline" ]; then
      echo "nothing listens on port $1 after $2 s" >&2
      return 1
    fi
    sleep 0.2
  done
}

stop_pid() { # pid
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

start_standalone() {
  "$bin/fanout" standalone --listen "127.0.0.1:$sa_ws" --grpc-listen "127.0.0.1:$sa_grpc" \
    --admin-listen "127.0.0.1:$sa_admin" --drain-window-ms 0 "$@" \
    >"$out_dir/standalone.log" 2>&1 &
  server_pid=$!
  wait_http "http://127.0.0.1:$sa_admin/readyz" 30
}

stop_server() {
  stop_pid "$server_pid"
  server_pid=""
}

cluster_up() {
  FANOUT_BIN_DIR="$bin" FANOUT_CLUSTER_DIR="$cluster_state" \
    "$root/deploy/local-cluster.sh" up --base-port "$cluster_base" >/dev/null
}

cluster_down() {
  FANOUT_CLUSTER_DIR="$cluster_state" "$root/deploy/local-cluster.sh" down >/dev/null
}

# Pids of the cluster's processes whose names match (edge, router, worker, nats).
cluster_pids() {
  local args=() f
  for f in "$cluster_state"/$1*.pid; do
    [ -e "$f" ] && args+=(--server-pid "$(cat "$f")")
  done
  echo "${args[@]}"
}

# bench LABEL ARGS...: one fanout-bench run, JSON appended to $RESULTS.
bench() {
  local label="$1"
  shift
  log "$label: fanout-bench $*"
  local json
  if json=$("$bin/fanout-bench" --label "$label" --json "$@"); then
    echo "$json" >>"$RESULTS"
  else
    echo "{\"label\": \"$label\", \"mode\": \"failed\"}" >>"$RESULTS"
  fi
}

new_results() { # name
  mkdir -p "$out_dir"
  RESULTS="$out_dir/$1-$(date +%Y%m%d-%H%M%S).jsonl"
  : >"$RESULTS"
}
