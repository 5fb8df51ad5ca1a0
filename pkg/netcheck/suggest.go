package netcheck

import (
	"net/netip"
	"slices"

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
	n := uint64(1)<<(32-p.Bits()) - 2
	size := uint64(SuggestSize)
	if n/4 < size {
		size = n / 4
	}
	usable, _ := iprange.New(sub.First().Next(), sub.Last().Prev())
	taken := mergedWithin(usable, takenRanges(f))
	// The gaps between taken ranges, from the top: the first that holds
	// size addresses gives the block at its top. A step per taken range,
	// whatever the subnet's size (a /8 is 16M addresses).
	hi := usable.Last()
	for i := len(taken); i >= 0; i-- {
		lo := usable.First()
		if i > 0 {
			lo = taken[i-1].Last().Next()
		}
		if gap, err := iprange.New(lo, hi); err == nil && gap.SizeFloat() >= float64(size) {
			from, _ := gap.NthUint64(uint64(gap.SizeFloat()) - size)
			r, _ := iprange.New(from, hi)
			return r, true
		}
		if i > 0 {
			if hi = taken[i-1].First().Prev(); !usable.Contains(hi) {
				break
			}
		}
	}
	return iprange.Range{}, false
}

// mergedWithin clips rs to within, sorts them and merges those that overlap
// or touch.
func mergedWithin(within iprange.Range, rs []iprange.Range) []iprange.Range {
	var clipped []iprange.Range
	for _, r := range rs {
		if c, ok := within.Intersect(r); ok {
			clipped = append(clipped, c)
		}
	}
	slices.SortFunc(clipped, func(a, b iprange.Range) int { return a.First().Compare(b.First()) })
	var out []iprange.Range
	for _, r := range clipped {
		if n := len(out); n > 0 && !out[n-1].Last().Next().Less(r.First()) {
			if out[n-1].Last().Less(r.Last()) {
				out[n-1], _ = iprange.New(out[n-1].First(), r.Last())
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func takenRanges(f Facts) []iprange.Range {
	var out []iprange.Range
	one := func(a netip.Addr) {
		if a.IsValid() {
			out = append(out, single(a.Unmap()))
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

// Repair proposes the one range to use instead of rs when rs fails some
// checks: the largest block of rs's own addresses that holds nothing taken
// (hosts, gateways, nodes, leases, live hosts, DHCP scopes, cluster CIDRs,
// network and broadcast addresses, reserved blocks), checked to pass every
// check; failing that, Suggest on the host's subnet that holds rs. It
// returns false when nothing fits.
func Repair(rs []iprange.Range, f Facts) (iprange.Range, bool) {
	taken := takenRanges(f)
	for _, s := range f.Subnets {
		if p := s.Prefix.Masked(); p.Addr().Is4() && p.Bits() <= 30 {
			sub := iprange.FromPrefix(p)
			taken = append(taken, single(sub.First()), single(sub.Last()))
		}
	}
	for _, res := range reserved {
		taken = append(taken, iprange.FromPrefix(res.p))
	}
	var best iprange.Range
	for _, r := range rs {
		for _, gap := range gaps(r, mergedWithin(r, taken)) {
			if !best.IsValid() || gap.SizeFloat() > best.SizeFloat() {
				best = gap
			}
		}
	}
	if best.IsValid() && passes(best, f) {
		return best, true
	}
	for _, r := range rs {
		for _, s := range f.Subnets {
			if s.Prefix.Masked().Contains(r.First()) {
				if sug, ok := Suggest(s, f); ok && passes(sug, f) {
					return sug, true
				}
			}
		}
	}
	return iprange.Range{}, false
}

// passes reports whether r has no error finding.
func passes(r iprange.Range, f Facts) bool {
	for _, x := range Check([]iprange.Range{r}, f) {
		if x.Severity == Error {
			return false
		}
	}
	return true
}

func single(a netip.Addr) iprange.Range { return iprange.FromPrefix(netip.PrefixFrom(a, a.BitLen())) }

// gaps returns the parts of r that none of taken (sorted, merged, within r)
// covers, in order.
func gaps(r iprange.Range, taken []iprange.Range) []iprange.Range {
	var out []iprange.Range
	lo := r.First()
	for _, t := range taken {
		if lo.Less(t.First()) {
			g, _ := iprange.New(lo, t.First().Prev())
			out = append(out, g)
		}
		if t.Last() == r.Last() {
			return out
		}
		lo = t.Last().Next()
	}
	if g, err := iprange.New(lo, r.Last()); err == nil {
		out = append(out, g)
	}
	return out
}
