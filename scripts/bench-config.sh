#!/usr/bin/env bash
# Hostile configurations: time and peak RSS to parse and validate 1 MiB of
# overlapping ranges, 10,000 pools and 1,000 peers in `metallb config
# validate` (the real binary), and in the controller's and the speaker's
# handling of a new config; then the prompt's suggestion on a /8.
#   scripts/bench-config.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3)"
go run ./tests/bench/config -bin bin/metallb
go test -run '^$' -bench 'SuggestSlash8|Parse' -benchtime 20x ./pkg/netcheck ./pkg/config | grep -E '^Benchmark'
