package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// crossCheck runs the checks that need the whole document.
func (d *decoder) crossCheck(cfg *Config, pools []*rawPool) {
	d.checkPoolNames(pools)
	d.checkOverlaps(pools)
	for _, p := range pools {
		d.resolveCommunities(cfg, p)
		d.checkAggregation(p)
	}
	d.checkPeers(cfg)
}

// where names a pool in messages: `line 3: pool "web"` (ConfigMap) or
// `IPAddressPool/web`.
func (p *Pool) where() string {
	if p.Resource {
		return "IPAddressPool/" + p.Name
	}
	return fmt.Sprintf("line %d: pool %q", p.Line, p.Name)
}

func (d *decoder) checkPoolNames(pools []*rawPool) {
	first := map[string]*rawPool{}
	for _, p := range pools {
		if p.Name == "" {
			continue
		}
		f, dup := first[p.Name]
		switch {
		case !dup:
			first[p.Name] = p
		case p.Resource:
			d.errs = append(d.errs, Error{Line: p.Line, Object: "IPAddressPool/" + p.Name, Msg: fmt.Sprintf(
				"IPAddressPool/%s: the ConfigMap's address-pools has a pool of this name too (line %d): rename one, a name may belong to one pool only", p.Name, f.Line)})
		default:
			d.errs = append(d.errs, Error{Line: p.Line, Msg: fmt.Sprintf("address-pools: name %q is used twice (first on line %d)", p.Name, f.Line)})
		}
	}
}

// maxOverlapErrors caps the overlaps reported one by one: a list of
// thousands of copies of one range says what is wrong in a few lines.
const maxOverlapErrors = 20

func (d *decoder) checkOverlaps(pools []*rawPool) {
	type owner struct {
		pool *rawPool
		idx  int
	}
	n := 0
	for _, p := range pools {
		n += len(p.Ranges)
	}
	all := make([]iprange.Range, 0, n)
	owners := make([]owner, 0, n)
	for _, p := range pools {
		for i, r := range p.Ranges {
			all = append(all, r)
			owners = append(owners, owner{p, i})
		}
	}
	overlaps, total := iprange.Overlaps(all, maxOverlapErrors)
	for _, o := range overlaps {
		a, b := owners[o.IA], owners[o.IB]
		line := a.pool.addrNodes[a.idx].Line
		if a.pool == b.pool {
			// The later one is the one to remove or merge.
			line = b.pool.addrNodes[b.idx].Line
			d.errs = append(d.errs, Error{Line: line, Msg: fmt.Sprintf(
				"%s.addresses: %s and %s overlap on %s: list each address once",
				a.pool.path, o.A, o.B, o.Shared)})
			continue
		}
		if a.pool.Resource || b.pool.Resource {
			if a.pool.Resource {
				a, b = b, a // the resource is the one to blame: it came later
			}
			line = b.pool.addrNodes[b.idx].Line
			d.errs = append(d.errs, Error{Line: line, Object: "IPAddressPool/" + b.pool.Name, Msg: fmt.Sprintf(
				"%s: %s overlaps %s of %s on %s: an address may belong to one pool only",
				b.pool.path, o.B, o.A, a.pool.path, o.Shared)})
			continue
		}
		d.errs = append(d.errs, Error{Line: line, Msg: fmt.Sprintf(
			"address-pools: pools %q (%s, line %d) and %q (%s, line %d) overlap on %s: an address may belong to one pool only",
			a.pool.Name, o.A, line, b.pool.Name, o.B, b.pool.addrNodes[b.idx].Line, o.Shared)})
	}
	if more := total - len(overlaps); more > 0 {
		last := owners[overlaps[len(overlaps)-1].IB]
		d.errs = append(d.errs, Error{Line: last.pool.addrNodes[last.idx].Line, Msg: fmt.Sprintf(
			"address-pools: %d more overlapping ranges: an address may be listed once, in one pool only", more)})
	}
}

func (d *decoder) resolveCommunities(cfg *Config, p *rawPool) {
	for i := range p.commNodes {
		for _, rc := range p.commNodes[i] {
			if c, ok := cfg.Communities[rc.text]; ok {
				p.Advertisements[i].Communities = append(p.Advertisements[i].Communities, c)
				continue
			}
			c, err := parseCommunity(rc.text)
			if err != nil {
				d.errorf(rc.node, "%s.bgp-advertisements[%d].communities: %q: %v", p.path, i, rc.text, err)
				continue
			}
			p.Advertisements[i].Communities = append(p.Advertisements[i].Communities, c)
		}
	}
}

// checkAggregation refuses aggregation lengths shorter than a prefix of the
// pool: the router would then learn a route for addresses outside the pool.
func (d *decoder) checkAggregation(p *rawPool) {
	for i, adv := range p.Advertisements {
		if i >= len(p.advNodes) {
			break // the default advertisement
		}
		if key, agg, pfx, short := tooShort(adv, p.Ranges); short {
			key = map[string]string{"aggregationLength": "aggregation-length", "aggregationLengthV6": "aggregation-length-v6"}[key]
			d.errorf(p.advNodes[i], "%s.bgp-advertisements[%d].%s: /%d is shorter than /%d of %s in this pool: the router would get a route to addresses outside the pool",
				p.path, i, key, agg, pfx.Bits(), pfx)
			return
		}
	}
}

// checkResourceAggregation is checkAggregation for BGPAdvertisements: each
// against the pools it selects.
func (d *decoder) checkResourceAggregation(cfg *Config, pools []*rawPool, srcs []advertisementSource) {
	n := 0
	for _, a := range cfg.BGPAdvertisements {
		src := srcs[n]
		n++
		d.object = "BGPAdvertisement/" + a.Name
		for _, p := range pools {
			if !slices.Contains(a.Pools, p.Name) {
				continue
			}
			if key, agg, pfx, short := tooShort(a.Advertisement, p.Ranges); short {
				d.errorf(src.node, "%s.%s: /%d is shorter than /%d of %s in pool %q: the router would get a route to addresses outside the pool",
					src.path, key, agg, pfx.Bits(), pfx, p.Name)
			}
		}
	}
	d.object = ""
}

// tooShort finds a prefix of ranges longer than the advertisement's
// aggregation length for its family.
func tooShort(adv Advertisement, ranges []iprange.Range) (key string, agg int, pfx netip.Prefix, short bool) {
	for _, r := range ranges {
		agg, key = adv.AggregationLength, "aggregationLength"
		if r.Is6() {
			agg, key = adv.AggregationLengthV6, "aggregationLengthV6"
		}
		for _, pfx := range r.Prefixes() {
			if agg < pfx.Bits() {
				return key, agg, pfx, true
			}
		}
	}
	return "", 0, netip.Prefix{}, false
}

func (d *decoder) checkPeers(cfg *Config) {
	type key struct {
		addr, src string
		port      uint16
		myASN     uint32
		sel, vrf  string
	}
	seen := map[key]int{}
	for i, p := range cfg.Peers {
		if p.BFDProfile != "" {
			// The keys as the peer's source spells them.
			field, key, profiles, multihop := fmt.Sprintf("peers[%d].bfd-profile", i), "bfd-profile", "bfd-profiles entry", "ebgp-multihop"
			if p.Name != "" {
				field, key, profiles, multihop = "BGPPeer/"+p.Name+": spec.bfdProfile", "bfdProfile", "BFDProfile", "ebgpMultiHop"
			}
			if _, ok := cfg.BFDProfiles[p.BFDProfile]; !ok {
				d.errs = append(d.errs, Error{Line: p.Line, Msg: fmt.Sprintf("%s: no %s is named %q", field, profiles, p.BFDProfile)})
			} else if p.EBGPMultiHop {
				d.errs = append(d.errs, Error{Line: p.Line, Msg: fmt.Sprintf("%s %q with %s: %v; remove %s, or %s if the router is on the node's link", field, p.BFDProfile, multihop, ErrBFDMultihop, key, multihop)})
			} else if p.VRF != "" {
				d.errs = append(d.errs, Error{Line: p.Line, Msg: fmt.Sprintf("%s %q with vrf %q: %v; remove %s, or peer from the default VRF", field, p.BFDProfile, p.VRF, ErrBFDVRF, key)})
			}
		}
		if !p.Address.IsValid() {
			continue
		}
		var sels []string
		for _, s := range p.NodeSelectors {
			sels = append(sels, s.String())
		}
		slices.Sort(sels)
		k := key{p.Address.String(), p.SourceAddress.String(), p.Port, p.MyASN, fmt.Sprint(sels), p.VRF}
		if j, dup := seen[k]; dup {
			d.errs = append(d.errs, Error{Line: p.Line, Msg: fmt.Sprintf("peers[%d]: same peer as peers[%d] (line %d): %s port %d", i, j, cfg.Peers[j].Line, p.Address, p.Port)})
			continue
		}
		seen[k] = i
	}
}

func warnings(cfg *Config) []string {
	var out []string
	anyIBGP := slices.ContainsFunc(cfg.Peers, (*Peer).IBGP)
	for _, p := range cfg.Pools {
		if len(cfg.BGPFor(p.Name)) == 0 {
			continue
		}
		if len(cfg.Peers) == 0 {
			out = append(out, fmt.Sprintf("%s uses bgp but there are no peers: its addresses will be assigned but not announced by BGP", p.where()))
		}
		for i, a := range p.Advertisements {
			if a.HasLocalPref && !anyIBGP && len(cfg.Peers) > 0 {
				out = append(out, fmt.Sprintf("%s bgp-advertisements[%d]: localpref is sent on iBGP sessions only (my-asn = peer-asn), and every peer is eBGP", p.where(), i))
			}
		}
	}
	return out
}
