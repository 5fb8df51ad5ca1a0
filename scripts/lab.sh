#!/usr/bin/env bash
# A network-namespace lab: a bridge with three node namespaces (a fourth,
# node-d, on demand: "add"), a client namespace and a router namespace
# (.254, the nodes' default gateway, where BGP tests run BIRD; it forwards
# nothing), all on documentation addresses (198.51.100.0/24, 2001:db8::/64).
# The host side of the bridge holds 198.51.100.1 so that a control plane
# bound to it is reachable from the nodes; nothing is routed anywhere else.
#
#   scripts/lab.sh up     # create (idempotent: removes a stale lab first)
#   scripts/lab.sh down   # delete everything the lab created
#   scripts/lab.sh macs   # print "name mac" for each namespace's eth0
#   scripts/lab.sh add node-d  # a node that joins later (.14), same wiring
#   scripts/lab.sh segment     # a second segment: bridge ${P}br2, eth1 on each
#                              # node (203.0.113.NUMBER/24), client2 (.100)
#
# LAB_PREFIX (default mlb) prefixes every name, so labs can coexist.
set -euo pipefail
P=${LAB_PREFIX:-mlb}
BR=${P}br
declare -A HOSTS=([node-a]=11 [node-b]=12 [node-c]=13 [client]=100 [router]=254)
# Hosts made only on demand ("add"), by tests of a node joining a cluster.
declare -A LATER=([node-d]=14)

down() {
  for n in "${!HOSTS[@]}" "${!LATER[@]}"; do
    ip netns del "$P-$n" 2>/dev/null || true
    ip link del "$P-$n-h" 2>/dev/null || true
  done
  ip link del "$BR" 2>/dev/null || true
  ip netns del "$P-client2" 2>/dev/null || true
  for n in "${!HOSTS[@]}" "${!LATER[@]}"; do
    ip link del "$P-$n-h2" 2>/dev/null || true
  done
  ip link del "$P-client2-h" 2>/dev/null || true
  ip link del "${BR}2" 2>/dev/null || true
}

up() {
  down
  ip link add "$BR" type bridge
  ip addr add 198.51.100.1/24 dev "$BR"
  ip link set "$BR" up
  for n in "${!HOSTS[@]}"; do
    host "$n" "${HOSTS[$n]}"
  done
}

# host NAME NUMBER: a namespace on the bridge at .NUMBER and ::NUMBER.
host() {
  local n=$1 i=$2 ns="$P-$1"
  ip netns add "$ns"
  # A fixed MAC: udev may replace a random one after creation, after the
  # tests have read it.
  ip link add "$P-$n-h" type veth peer name eth0 address "$(printf '02:00:00:00:00:%02x' "$i")" netns "$ns"
  ip link set "$P-$n-h" master "$BR" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" addr add "198.51.100.$i/24" dev eth0
  ip -n "$ns" -6 addr add "2001:db8::$i/64" dev eth0 nodad
  # The router as default gateway: the installer's checks see one, and
  # traffic to any other address dies there (it does not forward).
  if [ "$n" != router ]; then
    ip -n "$ns" route add default via 198.51.100.254 dev eth0
  fi
  # The speaker, not the kernel, answers ARP for service addresses.
  ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore; echo 2 > /proc/sys/net/ipv4/conf/all/arp_announce'
}

add() {
  local n=${1:-}
  [ -n "$n" ] && [ -n "${LATER[$n]:-}" ] || { echo "usage: $0 add ${!LATER[*]}" >&2; exit 2; }
  ip netns del "$P-$n" 2>/dev/null || true
  ip link del "$P-$n-h" 2>/dev/null || true
  host "$n" "${LATER[$n]}"
}

# segment: a second LAN, for tests of L2Advertisement interfaces. The host
# side of its bridge has no address: nothing but the lab's namespaces is on it.
segment() {
  local br="${BR}2" n i
  ip link add "$br" type bridge
  ip link set "$br" up
  for n in node-a node-b node-c; do
    i=${HOSTS[$n]}
    ip link add "$P-$n-h2" type veth peer name eth1 address "$(printf '02:00:00:00:01:%02x' "$i")" netns "$P-$n"
    ip link set "$P-$n-h2" master "$br" up
    ip -n "$P-$n" link set eth1 up
    ip -n "$P-$n" addr add "203.0.113.$i/24" dev eth1
  done
  ip netns add "$P-client2"
  ip link add "$P-client2-h" type veth peer name eth0 address 02:00:00:00:01:64 netns "$P-client2"
  ip link set "$P-client2-h" master "$br" up
  ip -n "$P-client2" link set lo up
  ip -n "$P-client2" link set eth0 up
  ip -n "$P-client2" addr add 203.0.113.100/24 dev eth0
}

macs() {
  for n in "${!HOSTS[@]}" "${!LATER[@]}"; do
    [ -e "/var/run/netns/$P-$n" ] || continue
    echo "$n $(ip -n "$P-$n" -o link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  macs) macs ;;
  add) add "${2:-}" ;;
  segment) segment ;;
  *) echo "usage: $0 up|down|macs|add NAME|segment" >&2; exit 2 ;;
esac
