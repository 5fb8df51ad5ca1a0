package config

import (
	"fmt"
	"slices"
)

// L2Advertisement announces pools by layer2 (ARP/NDP), from the nodes it
// selects and on the interfaces it names. A pool may have several (upstream
// MetalLB ORs them): a node may announce one of its addresses when any of
// them selects the node. In the v0.12 format each layer2 pool has one,
// named after the pool, carrying its node-selectors and interfaces.
type L2Advertisement struct {
	Name          string
	Pools         []string   // the pools it announces, by name
	NodeSelectors []Selector // none: every node
	Interfaces    []string   // none: the interfaces whose subnet holds the address
}

// BGPAdvertisement announces pools by BGP from the nodes it selects, with
// its prefix lengths, local preference and communities. A pool may have
// several: each is one route. In the v0.12 format each entry of a bgp
// pool's bgp-advertisements is one (a bgp pool with none gets a default
// one), carrying the pool's node-selectors.
type BGPAdvertisement struct {
	Name  string
	Pools []string
	Advertisement
	NodeSelectors []Selector
	// Peers are the BGPPeers (by name, sorted) its routes go to; none:
	// every peer of the node.
	Peers []string
}

// L2For returns the layer2 advertisements that announce pool.
func (c *Config) L2For(pool string) []*L2Advertisement {
	var out []*L2Advertisement
	for _, a := range c.L2Advertisements {
		if slices.Contains(a.Pools, pool) {
			out = append(out, a)
		}
	}
	return out
}

// BGPFor returns the BGP advertisements that announce pool.
func (c *Config) BGPFor(pool string) []*BGPAdvertisement {
	var out []*BGPAdvertisement
	for _, a := range c.BGPAdvertisements {
		if slices.Contains(a.Pools, pool) {
			out = append(out, a)
		}
	}
	return out
}

// advertiseV012 gives each pool of the v0.12 format the advertisements its
// protocol implies.
func (c *Config) advertiseV012() {
	for _, p := range c.Pools {
		switch p.Protocol {
		case Layer2:
			c.L2Advertisements = append(c.L2Advertisements, &L2Advertisement{Name: p.Name, Pools: []string{p.Name},
				NodeSelectors: p.NodeSelectors, Interfaces: p.Interfaces})
		case BGP: // one without bgp-advertisements has its default one (pool)
			for i, a := range p.Advertisements {
				c.BGPAdvertisements = append(c.BGPAdvertisements, &BGPAdvertisement{Name: fmt.Sprintf("%s-%d", p.Name, i),
					Pools: []string{p.Name}, Advertisement: a, NodeSelectors: p.NodeSelectors})
			}
		}
	}
}
