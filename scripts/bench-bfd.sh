#!/usr/bin/env bash
# BFD benchmark in the network lab (root), against BIRD 2 with BFD at
# 100 ms x 3: how long the router keeps a cut node's next hop (10 cuts)
# next to the same cut without BFD (the hold time), TCP through the
# remaining nodes, then a soak with both cores saturated (METALLB_BFD_SOAK,
# default 10m here) counting false Downs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export METALLB_CP_BIN="$(scripts/build-controlplane.sh --print-bin-dir)"
export METALLB_BFD_SOAK="${METALLB_BFD_SOAK:-10m}"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)"
exec go test -run '^$' -bench '^BenchmarkBFD$' -benchtime 1x -timeout 30m -v ./tests/lab
