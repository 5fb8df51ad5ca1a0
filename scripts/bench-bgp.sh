#!/usr/bin/env bash
# BGP benchmark in the network lab (root), against BIRD 2: time from Service
# creation to its route at the router with every node as ECMP next hop, for
# one Service (10 trials) and for 500 Services created at once, next to the
# floor (the controller's status write seen by a watch).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export METALLB_CP_BIN="$(scripts/build-controlplane.sh --print-bin-dir)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)"
exec go test -run '^$' -bench '^BenchmarkBGP$' -benchtime 1x -timeout 20m -v ./tests/lab
