#!/usr/bin/env bash
# Publish -> committed latency of the customer worker behind the real daprd
# and Redis (bench/src/bin/daprd_latency.rs), on PostgreSQL when
# BENCH_DATABASE_URL or TEST_DATABASE_URL names a server (else SQLite), for
# the single path (auth.login) and the bulk subscription (order.completed),
# with the worker on the gRPC app channel and on streaming subscriptions.
#
#   bash bench/daprd.sh            # 100 to 4000 events/s, 10 s each; writes target/bench/daprd.md
#   bash bench/daprd.sh --smoke    # 100 events/s for 2 s (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

rates=100,500,1000,2000,3000,4000; seconds=10
if [ "${1:-}" = "--smoke" ]; then rates=100; seconds=2; fi

export DAPRD="${DAPRD:-$(bash tools/daprd/build.sh | tail -n 1)}"
cargo build --release --quiet -p eventbus-bench -p customer-worker
out=target/bench
mkdir -p "$out"

admin_url="${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-}}"
database() { # a fresh database for one run
  if [ -n "$admin_url" ]; then
    local name="bench_daprd_$1_$$"
    PGOPTIONS=--client-min-messages=warning psql -q "$admin_url" \
      -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
    echo "${admin_url%/*}/$name"
  else
    rm -f "$out/daprd-$1.db"*
    echo "sqlite://$out/daprd-$1.db?mode=rwc"
  fi
}

backend=SQLite
[ -n "$admin_url" ] && backend=PostgreSQL
{
  echo "Commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%d), database: $backend"
  echo
  for transport in grpc streaming; do
    for topic in auth.login order.completed; do
      target/release/daprd-latency --worker target/release/customer-worker --transport "$transport" \
        --database-url "$(database "${transport}_${topic//./_}")" --topic "$topic" --rates "$rates" --seconds "$seconds"
      echo
    done
  done
} | tee "$out/daprd.md"
