#!/usr/bin/env bash
# Installs what building and testing this project needs on a Debian machine
# that has only Go: Debian packages, Go tools, and the cached test control
# plane. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages the tests use: git for version stamps, iproute2 and arping
# for the network lab, containerd (with ctr and runc) for the image import test,
# bird2 and frr as the lab's BGP routers, prometheus for promtool (the alert rules' tests),
# for the lab's real nodes (kubelet, kube-proxy): the CNI plugins, iptables and conntrack, and
# docker-registry (the distribution registry) for the image push to a registry, nftables (nft)
# to read and flush the traffic table in a lab namespace.
pkgs=(git iproute2 iputils-arping containerd bird2 frr prometheus containernetworking-plugins iptables conntrack docker-registry nftables)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The packages' services (bird, frr, prometheus, containerd, docker-registry) must not start
  # on this host: the tests run their own, in namespaces.
  added_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  [ -z "$added_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

# Go tools.
gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/staticcheck" ]; then
  log "installing staticcheck"
  GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.7.0 >&2
fi

# The control plane for integration tests (cached outside the clone).
scripts/build-controlplane.sh >/dev/null
log "ready"
