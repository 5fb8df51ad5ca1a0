#!/usr/bin/env bash
# What one namespace with the edit role can make metallb hold, in the network lab (root):
#   BenchmarkHostileMemory   the controller and three speakers as processes with the shipped
#                            manifests' flags and environment (GOMEMLIMIT): RSS and peak at rest,
#                            after 1,000 Services with 256 KiB annotations each (half of them
#                            LoadBalancer, pending), after a speaker and then the controller
#                            restart among them (their first list), and after 10,000 ordinary
#                            Services (METALLB_FAT_SERVICES, METALLB_MANY_SERVICES to change)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export METALLB_CP_BIN="$(scripts/build-controlplane.sh --print-bin-dir)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)"
exec go test -run '^$' -bench '^BenchmarkHostileMemory$' -benchtime 1x -timeout 30m ./tests/lab
