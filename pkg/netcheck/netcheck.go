// Package netcheck decides whether an address range is safe to hand to the
// load balancer on a given network, and suggests one when the user has none.
//
// It is pure: the caller gathers the facts (the host's interfaces and routes,
// node addresses, the cluster's CIDRs, DHCP scopes and leases, hosts that
// answered an ARP probe) and Check turns them into findings, each saying what
// is wrong and how to fix it. Errors must stop an install; warnings need the
// user's consent.
package netcheck

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// Severity says whether a finding stops the install.
type Severity int

const (
	Warning Severity = iota
	Error
)

func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// Finding is one problem with the proposed ranges.
type Finding struct {
	Severity Severity
	Message  string
}

func (f Finding) String() string { return f.Severity.String() + ": " + f.Message }

// Subnet is one address of the host with its prefix, on an interface.
type Subnet struct {
	Interface string
	Prefix    netip.Prefix // the host's address and the subnet's length, e.g. 192.0.2.10/24
	Dynamic   bool         // configured by DHCP/SLAAC (not permanent)
}

// Node is a Kubernetes node's InternalIP.
type Node struct {
	Name string
	IP   netip.Addr
}

// Sourced is a range or prefix with where it was learned from, for messages.
type Sourced struct {
	Range  iprange.Range
	Source string
}

// Lease is an address a DHCP client on this host holds or held.
type Lease struct {
	Addr   netip.Addr
	Source string
}

// Host is an address that answered a probe.
type Host struct {
	Addr netip.Addr
	MAC  string
}

// Facts is everything Check knows about the network.
type Facts struct {
	Subnets      []Subnet
	Gateways     []netip.Addr
	Nodes        []Node
	ServiceCIDRs []Sourced
	PodCIDRs     []Sourced
	DHCPScopes   []Sourced
	Leases       []Lease
	InUse        []Host
	// Routed: the range is announced by BGP, so it need not lie on a
	// subnet of the host (routers deliver it).
	Routed bool
}

// perKind caps how many findings of one kind are listed for one range.
const perKind = 5

var reserved = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "the \"this network\" block"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (class E and broadcast)"},
	{netip.MustParsePrefix("::/127"), "the unspecified or loopback address"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Check returns the findings for ranges on the network facts describe, errors
// first, each group in range order.
func Check(ranges []iprange.Range, f Facts) []Finding {
	var out []Finding
	add := func(s Severity, format string, a ...any) {
		out = append(out, Finding{s, fmt.Sprintf(format, a...)})
	}
	overlaps, total := iprange.Overlaps(ranges, 20)
	for _, o := range overlaps {
		add(Error, "%s: list each address once (merge them into one range, or remove the shared part)", o)
	}
	if more := total - len(overlaps); more > 0 {
		add(Error, "%d more overlapping ranges: list each address once", more)
	}
	for _, r := range ranges {
		for _, res := range reserved {
			if shared, ok := r.Intersect(iprange.FromPrefix(res.p)); ok {
				add(Error, "%s includes %s, which is %s (%s) and cannot be a service address; use addresses from your LAN's subnet", r, shared, res.what, res.p)
			}
		}
		out = append(out, subnetFindings(r, f.Subnets, f.Routed)...)

		var hostAddrs []pointHit
		for _, s := range f.Subnets {
			hostAddrs = append(hostAddrs, pointHit{s.Prefix.Addr(), fmt.Sprintf("this host's address (%s)", s.Interface)})
		}
		out = append(out, points(r, hostAddrs)...)
		var gws []pointHit
		for _, g := range f.Gateways {
			gws = append(gws, pointHit{g, "the default gateway"})
		}
		out = append(out, points(r, gws)...)
		var nodes []pointHit
		for _, n := range f.Nodes {
			nodes = append(nodes, pointHit{n.IP, fmt.Sprintf("the InternalIP of node %s", n.Name)})
		}
		out = append(out, points(r, nodes)...)

		for _, c := range f.ServiceCIDRs {
			if shared, ok := r.Intersect(c.Range); ok {
				add(Error, "%s overlaps the Kubernetes service CIDR %s (%s) on %s: ClusterIPs come from there; choose addresses outside it", r, c.Range, c.Source, shared)
			}
		}
		for _, c := range f.PodCIDRs {
			if shared, ok := r.Intersect(c.Range); ok {
				add(Error, "%s overlaps the pod CIDR %s (%s) on %s: pod addresses come from there; choose addresses outside it", r, c.Range, c.Source, shared)
			}
		}
		for _, c := range f.DHCPScopes {
			if shared, ok := r.Intersect(c.Range); ok {
				add(Error, "%s overlaps the DHCP scope %s (%s) on %s: the DHCP server may lease these addresses to other hosts; choose addresses outside the scope, or shrink the scope on the DHCP server", r, c.Range, c.Source, shared)
			}
		}
		out = append(out, dhcpUnknown(r, f)...)
		var leases []pointHit
		for _, l := range f.Leases {
			leases = append(leases, pointHit{l.Addr, fmt.Sprintf("leased by DHCP (%s)", l.Source)})
		}
		out = append(out, points(r, leases)...)
		var inUse []pointHit
		for _, h := range f.InUse {
			probe := "an ARP probe"
			if h.Addr.Is6() {
				probe = "an NDP probe (neighbor solicitation)"
			}
			inUse = append(inUse, pointHit{h.Addr, fmt.Sprintf("in use: it answered %s from %s", probe, h.MAC)})
		}
		out = append(out, points(r, inUse)...)
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return cmp.Compare(b.Severity, a.Severity) })
	return out
}

type pointHit struct {
	addr netip.Addr
	what string
}

// points reports every hit inside r (at most perKind of them), suggesting
// how to leave the address out.
func points(r iprange.Range, hits []pointHit) []Finding {
	var in []pointHit
	seen := map[netip.Addr]bool{}
	for _, h := range hits {
		if h.addr.IsValid() && r.Contains(h.addr.Unmap()) && !seen[h.addr] {
			seen[h.addr] = true
			in = append(in, h)
		}
	}
	slices.SortFunc(in, func(a, b pointHit) int { return a.addr.Compare(b.addr) })
	var out []Finding
	for i, h := range in {
		if i == perKind {
			out = append(out, Finding{Error, fmt.Sprintf("%s: %d more addresses like the above", r, len(in)-perKind)})
			break
		}
		out = append(out, Finding{Error, fmt.Sprintf("%s in %s is %s; %s", h.addr, r, h.what, without(r, h.addr))})
	}
	return out
}

// without tells how to fix a hit on a in r; the one range that passes
// every check is Repair's, said once.
func without(r iprange.Range, a netip.Addr) string {
	if r.First() == a && r.Last() == a {
		return "choose another address"
	}
	return "leave it out"
}

// dhcpUnknown warns when r lies on an IPv4 subnet where this host got its
// address by DHCP and no DHCP scope of that subnet is known: the DHCP server
// may lease r's addresses, and only its scope tells.
func dhcpUnknown(r iprange.Range, f Facts) []Finding {
	if !r.Is4() {
		return nil
	}
	for _, s := range f.Subnets {
		p := s.Prefix.Masked()
		if !p.Addr().Is4() || !p.Contains(r.First()) {
			continue
		}
		leased := slices.ContainsFunc(f.Leases, func(l Lease) bool { return l.Addr == s.Prefix.Addr() })
		if !s.Dynamic && !leased {
			continue
		}
		sub := iprange.FromPrefix(p)
		if slices.ContainsFunc(f.DHCPScopes, func(c Sourced) bool { return c.Range.Overlaps(sub) }) {
			continue
		}
		return []Finding{{Warning, fmt.Sprintf("%s: this host's address on %s (%s) came from DHCP, and the DHCP server's scope (its dynamic range) is unknown, so it may lease these addresses too: make sure the range is outside the scope (your router's \"DHCP range\"), or pass the scope with --dhcp-range FIRST-LAST to have it checked", r, s.Interface, p)}}
	}
	return nil
}

// subnetFindings checks r against the host's subnets: it must not include a
// subnet's network or broadcast address, and should lie inside one of them
// for layer2 announcements to reach clients.
func subnetFindings(r iprange.Range, subnets []Subnet, routed bool) []Finding {
	var out []Finding
	inside := false
	var same []string
	for _, s := range subnets {
		p := s.Prefix.Masked()
		if p.Addr().Is4() != r.Is4() {
			continue
		}
		same = append(same, fmt.Sprintf("%s %s", s.Interface, p))
		sub := iprange.FromPrefix(p)
		if sub.Contains(r.First()) && sub.Contains(r.Last()) {
			inside = true
		}
		if !r.Is4() || p.Bits() > 30 {
			continue
		}
		if r.Contains(sub.First()) {
			out = append(out, Finding{Error, fmt.Sprintf("%s includes %s, the network address of %s (%s), which hosts cannot use; %s", r, sub.First(), p, s.Interface, without(r, sub.First()))})
		}
		if r.Contains(sub.Last()) {
			out = append(out, Finding{Error, fmt.Sprintf("%s includes %s, the broadcast address of %s (%s), which hosts cannot use; %s", r, sub.Last(), p, s.Interface, without(r, sub.Last()))})
		}
	}
	if !inside && !routed {
		where := "this host has no " + map[bool]string{true: "IPv4", false: "IPv6"}[r.Is4()] + " subnet"
		if len(same) > 0 {
			where = "this host's subnets are " + strings.Join(slices.Compact(same), ", ")
		}
		out = append(out, Finding{Warning, fmt.Sprintf("%s is not inside any subnet of this node (%s): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP", r, where)})
	}
	return out
}
