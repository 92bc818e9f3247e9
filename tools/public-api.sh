#!/usr/bin/env bash
# The public API of the published crates, as `cargo public-api` lists it
# (rustdoc JSON from the nightly toolchain), kept in api/*.txt.
#
#   bash tools/public-api.sh          # write api/*.txt
#   bash tools/public-api.sh --check  # CI: fail when the API changed but api/*.txt did not
#
# The tool is installed once into target/tools (cached with cargo's target).
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.52.0
tool=target/tools/bin/cargo-public-api
if ! "$tool" --version 2>/dev/null | grep -q "$version"; then
  cargo install --quiet --locked --root target/tools cargo-public-api --version "$version"
fi

mkdir -p api
status=0
for crate in dapr-eventbus dapr-eventbus-macros; do
  listing=$(mktemp)
  # --simplified: without blanket and auto-trait impls, which follow from the rest.
  "$tool" public-api --manifest-path "$(cargo metadata --format-version 1 --no-deps \
    | python3 -c "import json,sys; print(next(p['manifest_path'] for p in json.load(sys.stdin)['packages'] if p['name'] == '$crate'))")" \
    --all-features --simplified >"$listing"
  if [ "${1:-}" = "--check" ]; then
    if ! diff -u "api/$crate.txt" "$listing"; then
      echo "the public API of $crate changed: run 'bash tools/public-api.sh' and commit api/$crate.txt" >&2
      status=1
    fi
    rm -f "$listing"
  else
    mv "$listing" "api/$crate.txt"
    echo "wrote api/$crate.txt ($(wc -l <"api/$crate.txt") items)"
  fi
done
exit "$status"
