package netcheck

import (
	"fmt"
	"net/netip"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// ProbeTargets is what to ask on one interface before a range is used.
type ProbeTargets struct {
	Interface string
	Addrs     []netip.Addr
}

// Probes chooses the addresses of rs to probe for hosts already using them,
// grouped by the interface whose subnet holds them, in the order of rs:
// every address of rs on a subnet of this host, except those known
// (skip: the cluster's own Services' addresses, which its speakers
// answer) and those another check refuses anyway (nodes, gateways, subnet
// addresses), at most max in all. A range cut short by max gets a warning
// saying how far it was probed.
func Probes(rs []iprange.Range, f Facts, skip map[netip.Addr]bool, max int) ([]ProbeTargets, []string) {
	// Addresses another check refuses anyway need no probe either.
	known := map[netip.Addr]bool{}
	for a := range skip {
		known[a] = true
	}
	for _, n := range f.Nodes {
		known[n.IP] = true
	}
	for _, g := range f.Gateways {
		known[g] = true
	}
	for _, s := range f.Subnets {
		known[s.Prefix.Addr()] = true
	}
	var out []ProbeTargets
	at := map[string]int{} // interface → its index in out
	var warnings []string
	budget := max
	for _, r := range rs {
		for _, s := range f.Subnets {
			sub, ok := r.Intersect(iprange.FromPrefix(s.Prefix.Masked()))
			if !ok {
				continue
			}
			for a := range sub.All() {
				if budget == 0 {
					warnings = append(warnings, fmt.Sprintf("only %d addresses are probed: %s was probed from %s up to the address before %s", max, r, sub.First(), a))
					break
				}
				if known[a] {
					continue
				}
				i, ok := at[s.Interface]
				if !ok {
					i = len(out)
					at[s.Interface] = i
					out = append(out, ProbeTargets{Interface: s.Interface})
				}
				out[i].Addrs = append(out[i].Addrs, a)
				budget--
			}
		}
	}
	return out, warnings
}
