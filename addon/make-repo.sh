#!/usr/bin/env bash
# Turns this project into a MicroK8s addons repository:
#
#   addon/make-repo.sh OUT
#   microk8s addons repo add lab OUT
#   microk8s enable lab/metallb:192.168.1.240-192.168.1.250
#
# OUT gets addons.yaml at its root and addons/metallb/{enable,disable} with
# the static metallb binary beside them (the hooks run it from there), and is
# made a git repository, so it can also be pushed and added by URL.
# GOARCH=arm64 addon/make-repo.sh OUT builds it for a Raspberry Pi.
set -euo pipefail
out=${1:?usage: addon/make-repo.sh OUT}
root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
"$root/scripts/build.sh" >/dev/null
mkdir -p "$out/addons/metallb"
cp "$root/addon/addons.yaml" "$out/addons.yaml"
install -m 0755 "$root/enable" "$root/disable" "$root/bin/metallb" "$out/addons/metallb/"
cd "$out"
if [ ! -d .git ]; then
  git init -q
fi
git add -A
# The version from git, not from the binary: a cross-built one (GOARCH=arm64) does not run here.
ver=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)
git -c user.name=metallb -c user.email=metallb@localhost commit -q -m "metallb addon $ver" || true
echo "$out"
