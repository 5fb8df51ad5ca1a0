#!/usr/bin/env bash
# Builds the static metallb binary into bin/metallb, its version stamped from git.
set -euo pipefail
cd "$(dirname "$0")/.."
ver=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -buildvcs=auto \
  -ldflags "-s -w -X github.com/microk8s-metallb/metallb/pkg/version.Version=$ver" \
  -o bin/metallb ./cmd/metallb
echo bin/metallb
