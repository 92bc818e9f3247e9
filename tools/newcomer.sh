#!/usr/bin/env bash
# Builds and tests tools/newcomer, a crate written from the README only,
# against dapr-eventbus and dapr-eventbus-macros as `cargo publish` would
# upload them (packaged, then unpacked), not against the workspace sources.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

version=$(cargo pkgid -p dapr-eventbus | sed 's/.*[@#]//')
cargo package --quiet --no-verify -p dapr-eventbus-macros -p dapr-eventbus

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for crate in dapr-eventbus dapr-eventbus-macros; do
  tar -xzf "target/package/$crate-$version.crate" -C "$work"
done
cp -r tools/newcomer "$work/newcomer"
cat >>"$work/newcomer/Cargo.toml" <<TOML

[patch.crates-io]
dapr-eventbus = { path = "$work/dapr-eventbus-$version" }
dapr-eventbus-macros = { path = "$work/dapr-eventbus-macros-$version" }
TOML
# The workspace's versions of everything else, so the build cache is shared.
cp Cargo.lock "$work/newcomer/"
CARGO_TARGET_DIR="$root/target/newcomer" cargo test --manifest-path "$work/newcomer/Cargo.toml"
