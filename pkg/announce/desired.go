package announce

import (
	"maps"
	"net/netip"
	"slices"
	"sort"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/pkg/routes"
)

// Node is what the election needs to know of a node.
type Node struct {
	Name     string
	Labels   map[string]string
	Eligible bool // Ready, live speaker, not excluded (may win a layer2 election)
	Live     bool // its speaker is alive (it may be answering for addresses)
	Ready    bool // Ready and not excluded (may advertise by BGP)
	Addrs    []netip.Addr
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
	Protocol   config.Protocol
	IP         netip.Addr
	Service    string
	Pool       string
	Interfaces []string
}

// Ranked is one layer2 address with its candidates in election order (the
// owner first) and the Services that use it.
type Ranked struct {
	IP         netip.Addr
	Order      []string
	Services   []string
	Pool       string
	Interfaces []string
}

// Owner is the node that announces the address ("" for none).
func (r *Ranked) Owner() string {
	if len(r.Order) == 0 {
		return ""
	}
	return r.Order[0]
}

// After is the first candidate other than node: the owner when node is
// not a candidate or is left out (the runner-up when node owns it).
func (r *Ranked) After(node string) string {
	for _, n := range r.Order {
		if n != node {
			return n
		}
	}
	return ""
}

// Layer2 ranks the candidates of every address that a layer2 advertisement
// announces and that has something behind it (see rank). It is pure: the
// same inputs give the same answer on every speaker.
func Layer2(cfg *config.Config, nodes []Node, svcs []Svc) map[netip.Addr]*Ranked {
	out := map[netip.Addr]*Ranked{}
	if cfg == nil {
		return out
	}
	for ip, at := range byAddr(svcs) {
		if r := rank(cfg, nodes, ip, at); r != nil {
			out[ip] = r
		}
	}
	return out
}

// byAddr groups Services by the addresses they use.
func byAddr(svcs []Svc) map[netip.Addr][]Svc {
	out := map[netip.Addr][]Svc{}
	for _, s := range svcs {
		for _, ip := range s.IPs {
			out[ip] = append(out[ip], s)
		}
	}
	return out
}

// rank ranks the candidates of one address, from the Services that use it
// (nil: not announced by layer2, or nothing behind it). A node is a
// candidate when it is eligible, one of the advertisements of the address's
// pool selects it and, for a Service with externalTrafficPolicy Local, it
// runs one of its ready endpoints. Services sharing an address share its
// candidates (the union), so an address has one owner. The owner answers on
// the interfaces of the advertisements that select it.
func rank(cfg *config.Config, nodes []Node, ip netip.Addr, svcs []Svc) *Ranked {
	pool := cfg.PoolFor(ip)
	if pool == nil {
		return nil
	}
	advs := cfg.L2For(pool.Name)
	if len(advs) == 0 {
		return nil // not announced by layer2
	}
	var r *Ranked
	cands := map[string]bool{}
	for _, s := range svcs {
		if len(s.ReadyNodes) == 0 {
			continue // nothing would answer behind the address
		}
		if r == nil {
			r = &Ranked{IP: ip, Pool: pool.Name}
		}
		r.Services = append(r.Services, s.Key)
		for _, n := range nodes {
			if !n.Eligible || selecting(advs, n.Labels) == nil {
				continue
			}
			if s.Local && !slices.Contains(s.ReadyNodes, n.Name) {
				continue
			}
			cands[n.Name] = true
		}
	}
	if r == nil {
		return nil
	}
	names := make([]string, 0, len(cands))
	for n := range cands {
		names = append(names, n)
	}
	r.Order = election.Order(ip, names)
	slices.Sort(r.Services)
	if owner := r.Owner(); owner != "" {
		for _, n := range nodes {
			if n.Name == owner {
				r.Interfaces = interfaces(selecting(advs, n.Labels))
			}
		}
	}
	return r
}

// selecting returns the advertisements whose node selectors match labels.
func selecting(advs []*config.L2Advertisement, labels map[string]string) []*config.L2Advertisement {
	var out []*config.L2Advertisement
	for _, a := range advs {
		if config.MatchesAny(a.NodeSelectors, labels) {
			out = append(out, a)
		}
	}
	return out
}

// interfaces is where a node answers for the advertisements that select
// it: the union of their interfaces, or every interface (nil) when one of
// them names none.
func interfaces(advs []*config.L2Advertisement) []string {
	var out []string
	for _, a := range advs {
		if len(a.Interfaces) == 0 {
			return nil
		}
		for _, i := range a.Interfaces {
			if !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
	}
	return out
}

// Desired computes what node must announce in layer2 mode: the addresses
// it owns, once per Service.
func Desired(cfg *config.Config, node string, nodes []Node, svcs []Svc) []Announcement {
	if cfg == nil {
		return nil
	}
	var out []Announcement
	for _, r := range Layer2(cfg, nodes, svcs) {
		if r.Owner() != node {
			continue
		}
		for _, key := range r.Services {
			out = append(out, Announcement{Protocol: config.Layer2, IP: r.IP, Service: key, Pool: r.Pool, Interfaces: r.Interfaces})
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

// DesiredBGP computes what self advertises by BGP: every address of a pool
// that BGP advertisements announce (see bgpFor), when self may advertise
// (Ready, not excluded). Every node that qualifies advertises, so routers
// spread traffic over them (ECMP). Routes are aggregated and merged per
// prefix.
func DesiredBGP(cfg *config.Config, self Node, svcs []Svc) ([]routes.Route, []Announcement) {
	if cfg == nil || !self.Ready {
		return nil, nil
	}
	peers, _ := PeersFor(cfg, self)
	at := byAddr(svcs)
	var rs []routes.Route
	var anns []Announcement
	for _, ip := range slices.SortedFunc(maps.Keys(at), netip.Addr.Compare) {
		r, a := bgpFor(cfg, self, peers, ip, at[ip])
		rs, anns = append(rs, r...), append(anns, a...)
	}
	return routes.Merge(rs), anns
}

// bgpFor computes the routes self advertises for one address, and its
// announcements: one route per BGP advertisement of its pool that selects
// self (and names one of self's peers, when it names peers), when
// something answers behind it (with externalTrafficPolicy Local, a ready
// endpoint on self; otherwise one anywhere). self must be Ready.
func bgpFor(cfg *config.Config, self Node, peers []routes.Peer, ip netip.Addr, svcs []Svc) ([]routes.Route, []Announcement) {
	pool := cfg.PoolFor(ip)
	if pool == nil {
		return nil, nil
	}
	var keys []string
	for _, s := range svcs {
		if len(s.ReadyNodes) > 0 && (!s.Local || slices.Contains(s.ReadyNodes, self.Name)) {
			keys = append(keys, s.Key)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	reaches := func(adv *config.BGPAdvertisement) bool {
		return len(adv.Peers) == 0 || slices.ContainsFunc(peers, func(p routes.Peer) bool { return slices.Contains(adv.Peers, p.Name) })
	}
	var rs []routes.Route
	for _, adv := range cfg.BGPFor(pool.Name) {
		if !config.MatchesAny(adv.NodeSelectors, self.Labels) || !reaches(adv) {
			continue
		}
		rs = append(rs, routes.Route{Prefix: routes.Aggregate(ip, adv.Advertisement), Communities: adv.Communities,
			LocalPref: adv.LocalPref, HasLocalPref: adv.HasLocalPref, Peers: adv.Peers})
	}
	if len(rs) == 0 {
		return nil, nil
	}
	slices.Sort(keys)
	anns := make([]Announcement, 0, len(keys))
	for _, k := range keys {
		anns = append(anns, Announcement{Protocol: config.BGP, IP: ip, Service: k, Pool: pool.Name})
	}
	return rs, anns
}

// PeersFor returns the sessions a node with these labels runs, and the
// router ID to use: the lowest router-id its peers set, else the node's
// first IPv4 address. It does not depend on the peers' order, so reordering
// them in the ConfigMap resets no session.
func PeersFor(cfg *config.Config, self Node) ([]routes.Peer, netip.Addr) {
	if cfg == nil {
		return nil, netip.Addr{}
	}
	var out []routes.Peer
	var rid netip.Addr
	for _, p := range cfg.Peers {
		if !config.MatchesAny(p.NodeSelectors, self.Labels) {
			continue
		}
		out = append(out, routes.PeerFrom(p, cfg.BFDProfiles))
		if p.RouterID.IsValid() && (!rid.IsValid() || p.RouterID.Less(rid)) {
			rid = p.RouterID
		}
	}
	for _, a := range self.Addrs {
		if !rid.IsValid() && a.Is4() {
			rid = a
		}
	}
	return out, rid
}
