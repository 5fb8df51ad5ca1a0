#!/usr/bin/env bash
# Runs the metallb binary of this checkout with the given arguments: bin/metallb
# if built, else builds it when Go is available, else says what to do.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
bin="${METALLB_BIN:-$root/bin/metallb}"   # METALLB_BIN: a binary built elsewhere (tests)
if [ ! -x "$bin" ]; then
  if command -v go >/dev/null 2>&1; then
    "$root/scripts/build.sh" >/dev/null
  else
    echo "metallb: $bin is not built and Go is not installed." >&2
    echo "Install Go (https://go.dev/dl) and run $root/scripts/build.sh, or put a release binary at $bin." >&2
    exit 1
  fi
fi
exec "$bin" "$@"
