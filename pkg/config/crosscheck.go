package config

import (
	"fmt"
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
	cfg.Warnings = append(cfg.Warnings, warnings(cfg)...)
}

func (d *decoder) checkPoolNames(pools []*rawPool) {
	first := map[string]*rawPool{}
	for _, p := range pools {
		if p.Name == "" {
			continue
		}
		if f, dup := first[p.Name]; dup {
			d.errs = append(d.errs, Error{Line: p.Line, Msg: fmt.Sprintf("address-pools: name %q is used twice (first on line %d)", p.Name, f.Line)})
			continue
		}
		first[p.Name] = p
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
		for _, r := range p.Ranges {
			agg := adv.AggregationLength
			key := "aggregation-length"
			if r.Is6() {
				agg, key = adv.AggregationLengthV6, "aggregation-length-v6"
			}
			for _, pfx := range r.Prefixes() {
				if agg < pfx.Bits() {
					d.errorf(p.advNodes[i], "%s.bgp-advertisements[%d].%s: /%d is shorter than /%d of %s in this pool: the router would get a route to addresses outside the pool",
						p.path, i, key, agg, pfx.Bits(), pfx)
					return
				}
			}
		}
	}
}

func (d *decoder) checkPeers(cfg *Config) {
	type key struct {
		addr, src string
		port      uint16
		myASN     uint32
		sel       string
	}
	seen := map[key]int{}
	for i, p := range cfg.Peers {
		if p.BFDProfile != "" {
			if _, ok := cfg.BFDProfiles[p.BFDProfile]; !ok {
				d.errs = append(d.errs, Error{Line: p.Line, Msg: fmt.Sprintf("peers[%d].bfd-profile: no bfd-profiles entry is named %q", i, p.BFDProfile)})
			} else {
				d.errs = append(d.errs, Error{Line: p.Line, Msg: fmt.Sprintf("peers[%d].bfd-profile %q: %v; remove bfd-profile to peer without BFD", i, p.BFDProfile, ErrBFDUnsupported)})
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
		k := key{p.Address.String(), p.SourceAddress.String(), p.Port, p.MyASN, fmt.Sprint(sels)}
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
		if p.Protocol != BGP {
			continue
		}
		if len(cfg.Peers) == 0 {
			out = append(out, fmt.Sprintf("line %d: pool %q uses bgp but there are no peers: its addresses will be assigned but not announced", p.Line, p.Name))
		}
		for i, a := range p.Advertisements {
			if a.HasLocalPref && !anyIBGP && len(cfg.Peers) > 0 {
				out = append(out, fmt.Sprintf("line %d: pool %q bgp-advertisements[%d]: localpref is sent on iBGP sessions only (my-asn = peer-asn), and every peer is eBGP", p.Line, p.Name, i))
			}
		}
	}
	return out
}
