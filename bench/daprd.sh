#!/usr/bin/env bash
# Publish -> visible latency of the customer worker behind the real daprd and
# Redis, with each process's CPU per event (bench/src/bin/daprd_latency.rs), on
# PostgreSQL when BENCH_DATABASE_URL or TEST_DATABASE_URL names a server (else
# SQLite), with the shipped deploy/dapr/local files.
#
#   bash bench/daprd.sh                 # every topic, gRPC / HTTP / streaming, 100 to 3000 events/s
#   bash bench/daprd.sh --replicas      # 1, 2 and 3 replicas, auth.login and order.completed
#   bash bench/daprd.sh --smoke         # 100 events/s for 2 s, two topics, gRPC (CI)
#
# WORKER=path/to/customer-worker compares another build (e.g. an older commit's).
# RATES, SECONDS_PER_RATE, TRANSPORTS and TOPICS override the defaults.
# Writes target/bench/daprd.md (or daprd-replicas.md).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-full}
rates=${RATES:-100,1000,2000,3000}
seconds=${SECONDS_PER_RATE:-10}
transports=${TRANSPORTS:-grpc http streaming}
topics=${TOPICS:-auth.login,auth.password_changed,order.completed,order.cancelled,order.returned}
replicas="1"
report=daprd
case "$mode" in
  --smoke) rates=100; seconds=2; transports=grpc; topics=auth.login,order.completed ;;
  --replicas) replicas="1 2 3"; transports=${TRANSPORTS:-grpc}; topics=${TOPICS:-auth.login,order.completed}
              rates=${RATES:-1000,2000}; report=daprd-replicas ;;
  full) ;;
  *) echo "usage: bash bench/daprd.sh [--smoke | --replicas]" >&2; exit 2 ;;
esac

export DAPRD="${DAPRD:-$(bash tools/daprd/build.sh | tail -n 1)}"
cargo build --release --quiet -p eventbus-bench -p customer-worker
worker=${WORKER:-target/release/customer-worker}
out=target/bench
mkdir -p "$out"

admin_url="${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-}}"
database() { # a fresh database for one run
  if [ -n "$admin_url" ]; then
    local name="bench_daprd_$1_$$"
    PGOPTIONS=--client-min-messages=warning psql -q "$admin_url" \
      -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >/dev/null
    echo "${admin_url%/*}/$name"
  else
    rm -f "$out/daprd-$1.db"*
    echo "sqlite://$out/daprd-$1.db?mode=rwc"
  fi
}

backend=SQLite
[ -n "$admin_url" ] && backend=PostgreSQL
{
  echo "Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%d), database: $backend,"
  echo "worker: $worker, $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  for n in $replicas; do
    for transport in $transports; do
      target/release/daprd-latency --worker "$worker" --transport "$transport" --replicas "$n" \
        --database-url "$(database "${transport}_$n")" --topics "$topics" --rates "$rates" --seconds "$seconds"
      echo
    done
  done
} | tee "$out/$report.md"
