#!/usr/bin/env bash
# README's first command: sets everything up (scripts/setup.sh), builds the
# metallb binary, and runs the end-to-end demo on its embedded defaults.
#   scripts/demo.sh          # run the demo and clean up
#   scripts/demo.sh --keep   # keep the control plane up until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export METALLB_CP_BIN="$(scripts/build-controlplane.sh --print-bin-dir)"
scripts/build.sh >/dev/null
echo "==> $(bin/metallb version)"
exec go run ./tests/demo -bin bin/metallb "$@"
