package announce

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// Advertisements, not pools, decide what is announced: a pool several
// layer2 advertisements select is announced from the union of their nodes,
// on the interfaces of those that select the owner; a pool none selects
// gets nothing announced; a pool both layer2 and BGP advertisements select
// is announced both ways; each BGP advertisement that selects the node is
// one route.
func TestAdvertisementsDecide(t *testing.T) {
	cfg, err := config.Parse([]byte(`address-pools:
- {name: shared, protocol: layer2, addresses: [198.51.100.200-198.51.100.210]}
- {name: quiet, protocol: layer2, addresses: [198.51.100.220-198.51.100.229]}
`))
	if err != nil {
		t.Fatal(err)
	}
	rack := func(r string) []config.Selector {
		return []config.Selector{{MatchLabels: map[string]string{"rack": r}}}
	}
	cfg.L2Advertisements = []*config.L2Advertisement{
		{Name: "rack1", Pools: []string{"shared"}, NodeSelectors: rack("1"), Interfaces: []string{"eth1"}},
		{Name: "rack2", Pools: []string{"shared"}, NodeSelectors: rack("2"), Interfaces: []string{"eth2", "eth1"}},
	}
	cfg.BGPAdvertisements = []*config.BGPAdvertisement{
		{Name: "all", Pools: []string{"shared"}},
		{Name: "rack2-agg", Pools: []string{"shared"}, NodeSelectors: rack("2"), Advertisement: config.Advertisement{AggregationLength: 24}},
	}
	nodes := []Node{
		{Name: "node-a", Eligible: true, Ready: true, Labels: map[string]string{"rack": "1"}},
		{Name: "node-b", Eligible: true, Ready: true, Labels: map[string]string{"rack": "2"}},
		{Name: "node-c", Eligible: true, Ready: true, Labels: map[string]string{"rack": "3"}},
	}
	shared, quiet := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.100.220")
	svcs := []Svc{
		{Key: "ns/web", IPs: []netip.Addr{shared}, ReadyNodes: []string{"node-c"}},
		{Key: "ns/quiet", IPs: []netip.Addr{quiet}, ReadyNodes: []string{"node-c"}},
	}
	ranked := Layer2(cfg, nodes, svcs)
	if _, ok := ranked[quiet]; ok {
		t.Errorf("%s has no advertisement and is ranked", quiet)
	}
	r := ranked[shared]
	if r == nil {
		t.Fatalf("%s is not ranked", shared)
	}
	order := slices.Clone(r.Order)
	slices.Sort(order)
	if diff := cmp.Diff([]string{"node-a", "node-b"}, order); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
	wantIf := map[string][]string{"node-a": {"eth1"}, "node-b": {"eth2", "eth1"}}[r.Owner()]
	if diff := cmp.Diff(wantIf, r.Interfaces); diff != "" {
		t.Errorf("interfaces of owner %s (-want +got):\n%s", r.Owner(), diff)
	}
	// One advertisement without interfaces among those selecting the owner: every interface.
	cfg.L2Advertisements = append(cfg.L2Advertisements, &config.L2Advertisement{Name: "any", Pools: []string{"shared"}})
	if r := Layer2(cfg, nodes, svcs)[shared]; r.Interfaces != nil || len(r.Order) != 3 {
		t.Errorf("with an advertisement of every node and interface: order %v, interfaces %v", r.Order, r.Interfaces)
	}

	prefixes := func(node Node) []string {
		rs, anns := DesiredBGP(cfg, node, svcs)
		var out []string
		for _, r := range rs {
			out = append(out, r.Prefix.String())
		}
		for _, a := range anns {
			if a.IP == quiet {
				t.Errorf("%s announced by BGP without an advertisement", quiet)
			}
		}
		return out
	}
	if diff := cmp.Diff([]string{"198.51.100.200/32"}, prefixes(nodes[0])); diff != "" {
		t.Errorf("node-a routes (-want +got):\n%s", diff)
	}
	got := prefixes(nodes[1])
	slices.Sort(got)
	if diff := cmp.Diff([]string{"198.51.100.0/24", "198.51.100.200/32"}, got); diff != "" {
		t.Errorf("node-b routes (-want +got):\n%s", diff)
	}
	// An advertisement naming peers: its routes carry the names, and a
	// node with none of those peers neither routes nor announces it.
	cfg.Peers = []*config.Peer{{Name: "tor1", Address: netip.MustParseAddr("198.51.100.1"), ASN: 64501, MyASN: 64500,
		NodeSelectors: rack("1")}}
	cfg.BGPAdvertisements = []*config.BGPAdvertisement{{Name: "tor1-only", Pools: []string{"shared"}, Peers: []string{"tor1"}}}
	rs, anns := DesiredBGP(cfg, nodes[0], svcs)
	if len(rs) != 1 || len(anns) != 1 || !slices.Equal(rs[0].Peers, []string{"tor1"}) {
		t.Errorf("node-a with peer tor1: routes %v, announcements %v", rs, anns)
	}
	if rs, anns := DesiredBGP(cfg, nodes[1], svcs); len(rs)+len(anns) > 0 {
		t.Errorf("node-b has no peer tor1, yet %v %v", rs, anns)
	}
	cfg.BGPAdvertisements = nil
	if rs, anns := DesiredBGP(cfg, nodes[0], svcs); len(rs)+len(anns) > 0 {
		t.Errorf("no BGP advertisement, yet %v %v", rs, anns)
	}
}
