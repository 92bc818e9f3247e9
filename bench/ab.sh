#!/usr/bin/env bash
# Before/after: the eventbus server of two builds under the same load driver,
# alternating builds, single events on the gRPC app channel at 1, 16 and 64
# in flight, server on core 0 and driver on core 1. Prints a Markdown table of
# the server's CPU per event, events/s and p99 of every run.
#
#   bash bench/ab.sh BEFORE_RELEASE_DIR AFTER_RELEASE_DIR [RUNS] [EVENTS]
#
# e.g. a worktree of the older commit built with its own target dir:
#   git worktree add /tmp/before <commit>
#   (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target cargo build --release -p eventbus-bench)
#   cargo build --release -p eventbus-bench
#   bash bench/ab.sh /tmp/before-target/release target/release
set -euo pipefail
cd "$(dirname "$0")/.."

before=$1 after=$2 runs=${3:-3} events=${4:-30000}
driver=$after/eventbus-load # one driver for both builds
port=5107

wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server on port $port did not start" >&2
  return 1
}

results=$(mktemp)
for concurrency in 1 16 64; do
  for run in $(seq 1 "$runs"); do
    for build in before after; do
      dir=$before
      [ "$build" = after ] && dir=$after
      taskset -c 0 "$dir/baseline-server" eventbus --addr "127.0.0.1:$port" &
      server=$!
      wait_for_port
      taskset -c 1 "$driver" --addr "127.0.0.1:$port" --label "$build" --concurrency "$concurrency" \
        --events "$events" --warmup 2000 --connections 2 --server-pid "$server" 2>/dev/null \
        | head -c 100000 | sed 's/}.*/}/' >>"$results"
      echo >>"$results"
      kill -TERM "$server"
      wait "$server" 2>/dev/null || true
      echo "run $run, $concurrency in flight, $build done; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    done
  done
done

python3 - "$results" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    rows.setdefault((r["concurrency"], r["label"]), []).append(r)
print("| in flight | build | server CPU µs/event (each run) | events/s (each run) | p99 ms (each run) |")
print("|---:|---|---|---|---|")
for (concurrency, label), runs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "before")):
    cpu = ", ".join(f"{r['server_cpu_us_per_event']:.1f}" for r in runs)
    eps = ", ".join(f"{r['events_per_sec']:,.0f}" for r in runs)
    p99 = ", ".join(f"{r['p99_ms']:.3f}" for r in runs)
    print(f"| {concurrency} | {label} | {cpu} | {eps} | {p99} |")
PY
rm -f "$results"
