package announce

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/election"
)

func TestDesired(t *testing.T) {
	cfg, err := config.Parse([]byte(`address-pools:
- {name: l2, protocol: layer2, addresses: [198.51.100.200-198.51.100.210]}
- {name: edge, protocol: layer2, addresses: [203.0.113.0/28], node-selectors: [{match-labels: {edge: "true"}}], interfaces: [eth1]}
- {name: routed, protocol: bgp, addresses: [192.0.2.0/28]}
`))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []Node{
		{Name: "node-a", Eligible: true},
		{Name: "node-b", Eligible: true, Labels: map[string]string{"edge": "true"}},
		{Name: "node-c", Eligible: true},
		{Name: "node-d", Eligible: false},
	}
	vip := netip.MustParseAddr("198.51.100.200")
	owner := election.Owner(vip, []string{"node-a", "node-b", "node-c"})
	svcs := []Svc{
		{Key: "ns/web", IPs: []netip.Addr{vip}, ReadyNodes: []string{"node-c"}},
		{Key: "ns/dns", IPs: []netip.Addr{vip}, ReadyNodes: []string{"node-a"}}, // shares the IP
		{Key: "ns/local", IPs: []netip.Addr{netip.MustParseAddr("198.51.100.201")}, Local: true, ReadyNodes: []string{"node-c"}},
		{Key: "ns/edge", IPs: []netip.Addr{netip.MustParseAddr("203.0.113.1")}, ReadyNodes: []string{"node-a"}},
		{Key: "ns/noendpoints", IPs: []netip.Addr{netip.MustParseAddr("198.51.100.202")}},
		{Key: "ns/bgp", IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, ReadyNodes: []string{"node-a"}},
		{Key: "ns/stray", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, ReadyNodes: []string{"node-a"}},
	}
	got := map[string][]string{}
	for _, n := range []string{"node-a", "node-b", "node-c", "node-d"} {
		for _, a := range Desired(cfg, n, nodes, svcs) {
			got[n] = append(got[n], a.Service+" "+a.IP.String())
		}
	}
	want := map[string][]string{
		"node-b": {"ns/edge 203.0.113.1"},
		"node-c": {"ns/local 198.51.100.201"},
	}
	want[owner] = append([]string{"ns/dns 198.51.100.200", "ns/web 198.51.100.200"}, want[owner]...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if Desired(nil, "node-a", nodes, svcs) != nil {
		t.Error("announcements without a config")
	}
}
