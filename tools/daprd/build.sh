#!/usr/bin/env bash
# Builds daprd (github.com/dapr/dapr, the version in go.mod) with only the components
# registered in main.go, into $CARGO_TARGET_DIR/daprd/daprd (default target/daprd/daprd).
# Go's build cache ($GOCACHE) and module cache make a second build take seconds.
#
# Why a workspace: daprd's cmd/daprd/components package registers all 140 components
# (build tags allcomponents/stablecomponents) or panics at start-up without a tag, and
# cmd/daprd/app imports it. We copy the module from Go's module cache (checked against
# go.sum), empty that one package, and point a go.work at the copy; nothing else of
# daprd changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${CARGO_TARGET_DIR:-$root/target}/daprd"
mkdir -p "$out"

cd "$here"
version=$(go list -m -f '{{.Version}}' github.com/dapr/dapr)
src="$out/dapr-$version"
if [ ! -f "$src/.ready" ]; then
  go mod download github.com/dapr/dapr
  dir=$(go list -m -f '{{.Dir}}' github.com/dapr/dapr)
  rm -rf "$src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  rm "$src"/cmd/daprd/components/*.go
  printf '// Emptied by tools/daprd/build.sh: main.go registers the components.\npackage components\n' \
    >"$src/cmd/daprd/components/components.go"
  touch "$src/.ready"
fi
cat >"$out/go.work" <<WORK
go $(awk '$1 == "go" { print $2 }' go.mod)

use $here

replace github.com/dapr/dapr $version => $src
WORK
GOWORK="$out/go.work" go build -trimpath \
  -ldflags "-X github.com/dapr/dapr/pkg/buildinfo.version=${version#v}" -o "$out/daprd" .
echo "$out/daprd"
