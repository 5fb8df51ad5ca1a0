#!/usr/bin/env bash
# Controller benchmark against the real API server: time for the controller
# to assign N new Services vs. a floor where the benchmark writes each status
# itself, duplicates, and the controller's peak RSS.
#   scripts/bench-controller.sh                 # N = 1000,5000; IPv4 and IPv6
#   scripts/bench-controller.sh -n 500 -families ipv4
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export METALLB_CP_BIN="$(scripts/build-controlplane.sh --print-bin-dir)"
scripts/build.sh >/dev/null
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)"
exec go run ./tests/bench/controller -bin bin/metallb "$@"
