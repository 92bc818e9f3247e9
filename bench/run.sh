#!/usr/bin/env bash
# Side-by-side benchmarks in one run: the floor (bare tonic), the dapr crate's
# AppCallbackService, eventbus with its default middleware, and the customer
# worker on SQLite (and PostgreSQL when BENCH_DATABASE_URL or
# TEST_DATABASE_URL names a server), at 1, 16 and 64 events in flight, single
# events and bulk batches of 100. Server and driver are pinned to different
# cores when there are two.
#
#   bash bench/run.sh           # full run, writes BENCHMARKS.md
#   bash bench/run.sh --smoke   # a few hundred events each, writes target/bench/smoke.md
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
[ "${1:-}" = "--smoke" ] && mode=smoke
if [ "$mode" = smoke ]; then
  single=300; worker_single=300; bulk_events=1000; warmup=50; repeats=1
else
  # Baselines run three times; the report keeps the median by server CPU.
  single=30000; worker_single=6000; bulk_events=50000; warmup=1000; repeats=3
fi

out=target/bench
mkdir -p "$out"
results="$out/results-$mode.jsonl"
: > "$results"
git rev-parse --short HEAD > "$out/commit-$mode" 2>/dev/null || echo unknown > "$out/commit-$mode"

cargo build --release --quiet -p eventbus-bench -p customer-worker
bin=target/release

server_cpu=(); driver_cpu=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
  server_cpu=(taskset -c 0); driver_cpu=(taskset -c 1)
fi

port=5105
server_pid=

wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2
  return 1
}

start_server() {
  "${server_cpu[@]}" "$@" &
  server_pid=$!
  wait_for_port "$port"
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

drive() { # label concurrency bulk events [driver options]
  "${driver_cpu[@]}" "$bin/eventbus-load" --addr "127.0.0.1:$port" --label "$1" --concurrency "$2" \
    --bulk "$3" --events "$4" --warmup "$warmup" --connections 2 --server-pid "$server_pid" "${@:5}" >> "$results"
}

for _ in $(seq 1 "$repeats"); do
  for kind in floor dapr-sdk eventbus; do
    start_server "$bin/baseline-server" "$kind" --addr "127.0.0.1:$port"
    for c in 1 16 64; do drive "$kind" "$c" 0 "$single"; done
    # The dapr crate's AppCallbackService panics on bulk (todo!()), so no bulk row for it.
    if [ "$kind" != dapr-sdk ]; then drive "$kind" 16 100 "$bulk_events"; fi
    stop_server
  done
done

# The same eventbus server and handler on the two other transports: the HTTP
# app channel, and streaming subscriptions (the driver serves the Dapr API on
# $dapr_port; the server dials it, reconnecting between runs).
dapr_port=5106
for _ in $(seq 1 "$repeats"); do
  start_server "$bin/baseline-server" eventbus --transport http --addr "127.0.0.1:$port"
  for c in 1 16 64; do drive eventbus-http "$c" 0 "$single" --transport http; done
  stop_server
  "${server_cpu[@]}" "$bin/baseline-server" eventbus --transport streaming --dapr "http://127.0.0.1:$dapr_port" &
  server_pid=$!
  for c in 1 16 64; do
    "${driver_cpu[@]}" "$bin/eventbus-load" --transport streaming --addr "127.0.0.1:$dapr_port" --label eventbus-streaming \
      --concurrency "$c" --events "$single" --warmup "$warmup" --server-pid "$server_pid" >> "$results"
  done
  stop_server
done

worker() { # label database-url
  export CUSTOMER_WORKER__DATA__DATABASE__URL="$2"
  export CUSTOMER_WORKER__SERVER__APP_ADDR="127.0.0.1:$port"
  export CUSTOMER_WORKER__SERVER__ADMIN_ADDR="127.0.0.1:0"
  export CUSTOMER_WORKER__LOG__LEVEL=warn
  start_server "$bin/customer-worker" --mode events
  for c in 1 16 64; do drive "$1" "$c" 0 "$worker_single"; done
  for c in 1 4 16; do drive "$1-bulk" "$c" 100 "$bulk_events"; done
  stop_server
}

sqlite_dir=$(mktemp -d)
worker worker-sqlite "sqlite://$sqlite_dir/bench.db?mode=rwc"
rm -rf "$sqlite_dir"

pg_url=${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-}}
if [ -n "$pg_url" ] && command -v psql >/dev/null 2>&1; then
  db="bench_$(date +%s)"
  psql -q "$pg_url" -c "CREATE DATABASE $db"
  worker worker-postgres "${pg_url%/*}/$db"
  psql -q "$pg_url" -c "DROP DATABASE $db WITH (FORCE)"
fi

if [ "$mode" = full ]; then
  python3 bench/report.py "$results" "$mode" "$out/commit-$mode" > BENCHMARKS.md
  echo "wrote BENCHMARKS.md"
else
  python3 bench/report.py "$results" "$mode" "$out/commit-$mode" > "$out/smoke.md"
  cat "$out/smoke.md"
fi
