#!/usr/bin/env bash
# Runs every check and test: formatting, go vet, staticcheck, unit tests with
# the race detector, short fuzz runs, and the integration tests against a real
# kube-apiserver, etcd and kube-controller-manager. Sets up what is missing
# first (scripts/setup.sh). Needs root for the network-namespace labs.
#
#   scripts/test.sh            # everything
#   FUZZTIME=200000x scripts/test.sh   # executions per fuzz target (or a duration)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

scripts/setup.sh
export PATH="$(go env GOPATH)/bin:$PATH"
export METALLB_CP_BIN="$(scripts/build-controlplane.sh --print-bin-dir)"

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
staticcheck ./...

step "build"
scripts/build.sh
bin/metallb version

step "unit tests (race detector)"
go test -race -count=1 $(go list ./... | grep -v /tests/)

step "fuzz (short)"
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" at the deadline under load, with no
# failing input (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME=${FUZZTIME:-20000x}
for pkg in $(go list ./pkg/...); do
  for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "$pkg $f"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg"
  done
done

step "integration tests (real control plane)"
go test -count=1 -timeout 30m ./tests/...

step "all tests passed"
