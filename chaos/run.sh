#!/usr/bin/env bash
# The chaos and fuzz suite against the release customer worker
# (chaos/src/main.rs): kill -9 under load (SQLite and PostgreSQL), database
# outages (PostgreSQL), two replicas on one PostgreSQL, and the gRPC fuzzer
# (SQLite and PostgreSQL). PostgreSQL runs need TEST_DATABASE_URL (a server
# whose user may create databases); without it they are skipped, unless
# EVENTBUS_REQUIRE_POSTGRES=1. Each run prints one line of figures; any
# disagreement with the model fails the script.
#
#   bash chaos/run.sh           # the sizes in RELIABILITY.md
#   bash chaos/run.sh --smoke   # small sizes (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

orders=20000; breaks=5; requests=3000
if [ "${1:-}" = "--smoke" ]; then orders=3000; breaks=3; requests=400; fi

cargo build --release --quiet -p customer-worker -p eventbus-chaos
out=target/chaos
mkdir -p "$out"
: > "$out/results.txt"
admin_url="${TEST_DATABASE_URL:-}"
if [ -z "$admin_url" ] && [ "${EVENTBUS_REQUIRE_POSTGRES:-}" = 1 ]; then
  echo "EVENTBUS_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set" >&2
  exit 1
fi

database() { # backend name: a fresh database URL
  if [ "$1" = postgres ]; then
    local name="chaos_$2_$$"
    PGOPTIONS=--client-min-messages=warning psql -q "$admin_url" \
      -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
    echo "${admin_url%/*}/$name"
  else
    rm -f "$out/$2.db"*
    echo "sqlite://$out/$2.db?mode=rwc"
  fi
}

run() { # backend scenario
  local url extra=()
  url=$(database "$1" "$2")
  [ "$1" = postgres ] && extra=(--admin-url "$admin_url")
  echo "== $2 on $1"
  target/release/eventbus-chaos --worker target/release/customer-worker --database-url "$url" \
    "${extra[@]}" --scenario "$2" --orders "$orders" --breaks "$breaks" --requests "$requests" \
    | tee -a "$out/results.txt"
}

run sqlite kill
run sqlite fuzz
if [ -n "$admin_url" ]; then
  run postgres kill
  run postgres outage
  run postgres replicas
  run postgres fuzz
else
  echo "note: TEST_DATABASE_URL not set; the PostgreSQL runs are skipped"
fi
