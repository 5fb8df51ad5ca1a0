package speaker

import (
	"net/netip"
	"slices"
	"sort"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/election"
)

// Node is what the election needs to know of a node.
type Node struct {
	Name     string
	Labels   map[string]string
	Eligible bool // Ready, live speaker, not excluded
}

// Svc is what the election needs to know of a Service.
type Svc struct {
	Key   string
	IPs   []netip.Addr
	Local bool
	// ReadyNodes are the nodes with a ready endpoint of the Service.
	ReadyNodes []string
}

// Announcement is one address this node announces, and why.
type Announcement struct {
	IP         netip.Addr
	Service    string
	Pool       string
	Interfaces []string
}

// Desired computes what node must announce in layer2 mode. It is pure: the
// same inputs give the same answer on every speaker.
func Desired(cfg *config.Config, node string, nodes []Node, svcs []Svc) []Announcement {
	if cfg == nil {
		return nil
	}
	var out []Announcement
	for _, s := range svcs {
		if len(s.ReadyNodes) == 0 {
			continue // nothing would answer behind the address
		}
		for _, ip := range s.IPs {
			pool := cfg.PoolFor(ip)
			if pool == nil || pool.Protocol != config.Layer2 {
				continue
			}
			var candidates []string
			for _, n := range nodes {
				if !n.Eligible || !config.MatchesAny(pool.NodeSelectors, n.Labels) {
					continue
				}
				if s.Local && !slices.Contains(s.ReadyNodes, n.Name) {
					continue
				}
				candidates = append(candidates, n.Name)
			}
			if election.Owner(ip, candidates) == node {
				out = append(out, Announcement{IP: ip, Service: s.Key, Pool: pool.Name, Interfaces: pool.Interfaces})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].IP != out[j].IP {
			return out[i].IP.Less(out[j].IP)
		}
		return out[i].Service < out[j].Service
	})
	return out
}
