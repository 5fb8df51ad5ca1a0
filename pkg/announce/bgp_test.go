package announce

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

func TestDesiredBGP(t *testing.T) {
	cfg, err := config.Parse([]byte(`peers:
- {peer-address: 198.51.100.254, peer-asn: 64500, my-asn: 64501}
- {peer-address: "2001:db8::fe", peer-asn: 64500, my-asn: 64501, router-id: 192.0.2.99, node-selectors: [{match-labels: {v6: "yes"}}]}
bgp-communities:
  no-export: 65535:65281
address-pools:
- name: routed
  protocol: bgp
  addresses: [203.0.113.0/28, "2001:db8:1::/120"]
  bgp-advertisements:
  - communities: [no-export, "large:64500:1:2"]
    localpref: 150
  - aggregation-length: 28
    aggregation-length-v6: 120
- {name: edge, protocol: bgp, addresses: [203.0.113.32/28], node-selectors: [{match-labels: {edge: "true"}}]}
- {name: l2, protocol: layer2, addresses: [198.51.100.200/30]}
`))
	if err != nil {
		t.Fatal(err)
	}
	svcs := []Svc{
		{Key: "ns/a", IPs: []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8:1::1")}, ReadyNodes: []string{"node-b"}},
		{Key: "ns/b", IPs: []netip.Addr{netip.MustParseAddr("203.0.113.2")}, ReadyNodes: []string{"node-b"}, Local: true},
		{Key: "ns/edge", IPs: []netip.Addr{netip.MustParseAddr("203.0.113.33")}, ReadyNodes: []string{"node-b"}},
		{Key: "ns/none", IPs: []netip.Addr{netip.MustParseAddr("203.0.113.3")}},
		{Key: "ns/l2", IPs: []netip.Addr{netip.MustParseAddr("198.51.100.200")}, ReadyNodes: []string{"node-a"}},
	}
	routes := func(self Node) []string {
		rs, anns := DesiredBGP(cfg, self, svcs)
		var out []string
		for _, r := range rs {
			s := r.Prefix.String()
			for _, c := range r.Communities {
				s += " " + c.String()
			}
			if r.HasLocalPref {
				s += " localpref"
			}
			out = append(out, s)
		}
		var as []string
		for _, a := range anns {
			as = append(as, "ann "+a.Service+" "+a.IP.String())
		}
		slices.Sort(as)
		return append(out, as...)
	}
	// Cluster policy: every ready node advertises; the aggregate carries no
	// community, the /32 both; Local follows the endpoint.
	if diff := cmp.Diff([]string{
		"2001:db8:1::/120",
		"2001:db8:1::1/128 65535:65281 large:64500:1:2 localpref",
		"203.0.113.0/28",
		"203.0.113.1/32 65535:65281 large:64500:1:2 localpref",
		"ann ns/a 2001:db8:1::1", "ann ns/a 203.0.113.1",
	}, routes(Node{Name: "node-a", Ready: true})); diff != "" {
		t.Errorf("node-a (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{
		"2001:db8:1::/120",
		"2001:db8:1::1/128 65535:65281 large:64500:1:2 localpref",
		"203.0.113.0/28",
		"203.0.113.1/32 65535:65281 large:64500:1:2 localpref",
		"203.0.113.2/32 65535:65281 large:64500:1:2 localpref",
		"203.0.113.33/32",
		"ann ns/a 2001:db8:1::1", "ann ns/a 203.0.113.1", "ann ns/b 203.0.113.2", "ann ns/edge 203.0.113.33",
	}, routes(Node{Name: "node-b", Ready: true, Labels: map[string]string{"edge": "true"}})); diff != "" {
		t.Errorf("node-b (-want +got):\n%s", diff)
	}
	if got := routes(Node{Name: "node-c", Ready: false}); len(got) != 0 {
		t.Errorf("a node that is not ready advertises %v", got)
	}

	peers, rid := PeersFor(cfg, Node{Name: "node-a", Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::11"), netip.MustParseAddr("198.51.100.11")}})
	if len(peers) != 1 || peers[0].Address.String() != "198.51.100.254" || rid.String() != "198.51.100.11" {
		t.Errorf("node-a peers %v, router-id %v", peers, rid)
	}
	peers, rid = PeersFor(cfg, Node{Name: "node-b", Labels: map[string]string{"v6": "yes"}, Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.12")}})
	if len(peers) != 2 || rid.String() != "192.0.2.99" || peers[0].HoldTime != config.DefaultHoldTime || peers[0].KeepaliveTime != config.DefaultHoldTime/3 {
		t.Errorf("node-b peers %+v, router-id %v", peers, rid)
	}
}
