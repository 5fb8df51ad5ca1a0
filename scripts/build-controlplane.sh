#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kube-scheduler for the test control
# plane, kubelet and kube-proxy for the lab's real nodes, and kine (SQLite, for the
# MicroK8s-HA-like datastore: two API servers over one database), and caches them outside the
# clone, so that a fresh clone (CI) reuses them. Prints the bin directory.
#
#   scripts/build-controlplane.sh                  # build what is missing, print the bin directory
#   scripts/build-controlplane.sh --print-bin-dir  # only print where the binaries are (or will be)
#   METALLB_CP_CACHE=/some/dir scripts/...  # choose the cache location
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.34.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
cache=${METALLB_CP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/metallb-addon/controlplane}
bin="$cache/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION/bin"
if [ "${1:-}" = "--print-bin-dir" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

log() { printf 'build-controlplane: %s\n' "$*" >&2; }

build_etcd() {
  [ -x "$bin/etcd" ] && return
  local mod="$cache/etcd-tools"
  mkdir -p "$mod"
  log "building etcd v$ETCD_VERSION (about 30 s)"
  (
    cd "$mod"
    [ -f go.mod ] || go mod init metallb-addon/etcd-tools >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1
    go build -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "$bin/etcd.tmp" "$bin/etcd"
}

build_k8s() {
  local need=()
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    [ -x "$bin/$c" ] || need+=("$c")
  done
  [ ${#need[@]} -eq 0 ] && return
  local mod="$cache/k8s-tools"
  mkdir -p "$mod"
  (
    cd "$mod"
    if [ ! -f go.mod ] || ! grep -q "k8s.io/kubernetes v$K8S_VERSION" go.mod || ! grep -q cmd/kube-proxy tools.go; then
      log "preparing a tools module for k8s.io/kubernetes v$K8S_VERSION"
      rm -f go.mod go.sum
      go mod init metallb-addon/k8s-tools >/dev/null 2>&1
      cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
      local gomod
      gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
      # The kubernetes go.mod points its staging modules at ./staging, which the module zip
      # lacks: point each at its published v0.x.y release instead.
      local staging_ver="v0.${K8S_VERSION#1.}"
      go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
      local m
      for m in $(grep -E '=> \./staging/' "$gomod" | awk '{print $1}'); do
        go mod edit -replace="$m=$m@$staging_ver"
      done
      go mod tidy >&2
      grep -q "k8s.io/kubernetes v$K8S_VERSION" go.mod || { log "tools module did not keep k8s.io/kubernetes v$K8S_VERSION"; exit 1; }
    fi
    for c in "${need[@]}"; do
      log "building $c v$K8S_VERSION (several minutes on 2 cores)"
      # The version a release build stamps (kubelet reports it on its Node).
      local minor="${K8S_VERSION#1.}"
      minor="${minor%%.*}"
      go build -ldflags "-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" \
        -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c"
      mv "$bin/$c.tmp" "$bin/$c"
    done
  )
}

KINE_VERSION=${KINE_VERSION:-0.17.5}

build_kine() {
  [ -x "$bin/kine" ] && return
  local mod="$cache/kine-tools"
  mkdir -p "$mod"
  log "building kine v$KINE_VERSION with SQLite (about a minute)"
  (
    cd "$mod"
    [ -f go.mod ] || go mod init metallb-addon/kine-tools >/dev/null 2>&1
    go get "github.com/k3s-io/kine@v$KINE_VERSION" >/dev/null 2>&1
    CGO_ENABLED=1 go build -o "$bin/kine.tmp" github.com/k3s-io/kine
  )
  mv "$bin/kine.tmp" "$bin/kine"
}

build_etcd
build_k8s
build_kine
echo "$bin"
