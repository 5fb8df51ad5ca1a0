#!/usr/bin/env bash
# Layer2 failover benchmark in the network lab (root): 20 times, SIGKILL the
# speaker announcing a Service and take its node's link down; print the time
# until the new owner's first gratuitous ARP reaches the client and until a
# TCP connection to VIP:port succeeds again, and which MACs answer after.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export METALLB_CP_BIN="$(scripts/build-controlplane.sh --print-bin-dir)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)"
# METALLB_HA=1: on two API servers over kine (the MicroK8s-HA-like datastore).
# METALLB_FAILOVER_NODE_LIVES=1: kill the speaker process alone (its node lives
# and refuses connections to the speaker's port), instead of the node too.
exec go test -run '^$' -bench '^BenchmarkFailover$' -benchtime 1x -timeout 20m ./tests/lab
