#!/usr/bin/env bash
# Speaker cost and robustness benchmarks in the network lab (root):
#   BenchmarkSpeakerCost     kube-apiserver+etcd CPU over 60 s windows alternating without
#                            speakers and with three (shipped defaults), 3 rounds, then for the
#                            same Lease writes alone; speaker CPU, RSS and API writes
#                            (METALLB_COST_SECONDS, METALLB_COST_ROUNDS to change)
#   BenchmarkLayer2Bulk      3,000 layer2 Services at once: status to the owner's first
#                            announcement (p50, p99), the last against the last status write,
#                            CPU of each speaker and of the controller (METALLB_BULK_SERVICES)
#   BenchmarkLayer2UnderLoad both cores busy for 10 minutes while a client probes the address
#                            every 100 ms: false failovers, owner changes, unanswered and
#                            dual-MAC probes (METALLB_LOAD_SECONDS to change)
# The 10-minute quiet run on the MicroK8s-HA-like datastore is
#   METALLB_HA_SECONDS=600 go test -run TestLayer2OverKine -v ./tests/lab
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export METALLB_CP_BIN="$(scripts/build-controlplane.sh --print-bin-dir)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)"
exec go test -run '^$' -bench '^(BenchmarkSpeakerCost|BenchmarkLayer2Bulk|BenchmarkLayer2UnderLoad)$' -benchtime 1x -timeout 40m ./tests/lab
