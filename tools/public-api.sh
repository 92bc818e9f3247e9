#!/usr/bin/env bash
# The public API of dapr-eventbus, as `cargo public-api` lists it (rustdoc
# JSON from the nightly toolchain), kept in api/dapr-eventbus.txt.
#
#   bash tools/public-api.sh          # write api/dapr-eventbus.txt
#   bash tools/public-api.sh --check  # CI: fail when the API changed but the file did not
#
# dapr-eventbus-macros is not listed: its API is the two attributes, which
# dapr-eventbus re-exports (and cargo public-api reads no proc-macro crate).
# The tool is installed once into target/tools (cached with cargo's target).
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.52.0
tool=target/tools/bin/cargo-public-api
if ! "$tool" --version 2>/dev/null | grep -q "$version"; then
  cargo install --quiet --locked --root target/tools cargo-public-api --version "$version"
fi

listed=api/dapr-eventbus.txt
listing=$(mktemp)
trap 'rm -f "$listing"' EXIT
# --simplified: without blanket and auto-trait impls, which follow from the rest.
"$tool" public-api --manifest-path eventbus/Cargo.toml --all-features --simplified >"$listing"

status=0
if [ "${1:-}" = "--check" ]; then
  if ! diff -u "$listed" "$listing"; then
    echo "the public API changed: run 'bash tools/public-api.sh' and commit $listed" >&2
    status=1
  fi
else
  mkdir -p api
  cp "$listing" "$listed"
  echo "wrote $listed ($(wc -l <"$listed") items)"
fi

# Other crates' types belong only in the interop modules (eventbus::grpc,
# eventbus::http); this counts the items elsewhere that still carry one.
foreign=$(grep -v 'eventbus::grpc\|eventbus::http' "$listing" | grep -cE '(tonic|axum|prost|prost_types|chrono|base64|anyhow|dapr)::|tower::util::' || true)
echo "public items outside the interop modules that name another crate's type: $foreign"
exit "$status"
