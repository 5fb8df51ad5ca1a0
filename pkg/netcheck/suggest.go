package netcheck

import (
	"net/netip"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// SuggestSize is how many addresses Suggest offers when the subnet has room.
const SuggestSize = 11

// Suggest proposes a default range on the host's subnet s: the highest block
// of up to SuggestSize addresses below the broadcast address that holds no
// address Facts knows to be taken (hosts, gateways, nodes, leases, live
// hosts, DHCP scopes, cluster CIDRs). It works for IPv4 subnets of /29 or
// larger and returns false when nothing fits.
func Suggest(s Subnet, f Facts) (iprange.Range, bool) {
	p := s.Prefix.Masked()
	if !p.Addr().Is4() || p.Bits() > 29 {
		return iprange.Range{}, false
	}
	sub := iprange.FromPrefix(p)
	usable := uint64(1)<<(32-p.Bits()) - 2
	size := uint64(SuggestSize)
	if usable/4 < size {
		size = usable / 4
	}
	taken := func(a netip.Addr) bool {
		for _, r := range takenRanges(f) {
			if r.Contains(a) {
				return true
			}
		}
		return false
	}
	// Walk down from the last usable address, looking for size free in a row.
	run := uint64(0)
	var last netip.Addr
	for a := sub.Last().Prev(); a != sub.First(); a = a.Prev() {
		if taken(a) {
			run = 0
			continue
		}
		if run == 0 {
			last = a
		}
		run++
		if run == size {
			r, _ := iprange.New(a, last)
			return r, true
		}
	}
	return iprange.Range{}, false
}

func takenRanges(f Facts) []iprange.Range {
	var out []iprange.Range
	one := func(a netip.Addr) {
		if a.IsValid() {
			out = append(out, iprange.FromPrefix(netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())))
		}
	}
	for _, s := range f.Subnets {
		one(s.Prefix.Addr())
	}
	for _, g := range f.Gateways {
		one(g)
	}
	for _, n := range f.Nodes {
		one(n.IP)
	}
	for _, l := range f.Leases {
		one(l.Addr)
	}
	for _, h := range f.InUse {
		one(h.Addr)
	}
	for _, group := range [][]Sourced{f.DHCPScopes, f.ServiceCIDRs, f.PodCIDRs} {
		for _, s := range group {
			out = append(out, s.Range)
		}
	}
	return out
}
