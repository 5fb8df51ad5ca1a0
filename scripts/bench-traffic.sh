#!/usr/bin/env bash
# Traffic-counting benchmark (root), in a network namespace of its own
# against the kernel's nf_tables: 1,000 addresses added and removed in one
# batch, a read of their counts (netlink, and through the counter's
# socket), a whole /metrics scrape with them, and the per-packet cost
# (UDP over lo with the table next to without it, the floor).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(go version | cut -d' ' -f3)"
exec go test -run '^$' -bench '^BenchmarkTrafficCost$' -benchtime 1x -timeout 10m -v ./tests/lab
