#!/usr/bin/env bash
# Placeholder until the load driver lands.
set -euo pipefail
echo "bench: not yet"
