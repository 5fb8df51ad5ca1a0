package netcheck

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

func TestProbes(t *testing.T) {
	a := netip.MustParseAddr
	f := Facts{
		Subnets: []Subnet{
			{Interface: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/24")},
			{Interface: "eth1", Prefix: netip.MustParsePrefix("2001:db8::10/64")},
		},
		Gateways: []netip.Addr{a("192.0.2.1")},
		Nodes:    []Node{{Name: "n1", IP: a("192.0.2.12")}},
	}
	ranges := func(s string) []iprange.Range {
		rs, err := iprange.ParseList(s)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	cmpAddr := cmp.Comparer(func(x, y netip.Addr) bool { return x == y })
	for _, tc := range []struct {
		name     string
		ranges   string
		skip     []string
		max      int
		want     []ProbeTargets
		warnings []string
	}{
		{name: "nodes, gateways, the host and the cluster's own addresses are not probed",
			ranges: "192.0.2.9-192.0.2.14", skip: []string{"192.0.2.13"}, max: 100,
			want: []ProbeTargets{{Interface: "eth0", Addrs: []netip.Addr{a("192.0.2.9"), a("192.0.2.11"), a("192.0.2.14")}}}},
		{name: "per interface, in the order of the ranges",
			ranges: "2001:db8::20-2001:db8::21,192.0.2.200", max: 100,
			want: []ProbeTargets{
				{Interface: "eth1", Addrs: []netip.Addr{a("2001:db8::20"), a("2001:db8::21")}},
				{Interface: "eth0", Addrs: []netip.Addr{a("192.0.2.200")}},
			}},
		{name: "off every subnet: nothing to probe",
			ranges: "198.51.100.1-198.51.100.9", max: 100},
		{name: "cut short at max, saying how far",
			ranges: "192.0.2.100-192.0.2.109,2001:db8::1-2001:db8::2", max: 3,
			want:     []ProbeTargets{{Interface: "eth0", Addrs: []netip.Addr{a("192.0.2.100"), a("192.0.2.101"), a("192.0.2.102")}}},
			warnings: []string{"only 3 addresses are probed: 192.0.2.100-192.0.2.109 was probed from 192.0.2.100 up to the address before 192.0.2.103", "only 3 addresses are probed: 2001:db8::1-2001:db8::2 was probed from 2001:db8::1 up to the address before 2001:db8::1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skip := map[netip.Addr]bool{}
			for _, s := range tc.skip {
				skip[a(s)] = true
			}
			got, warnings := Probes(ranges(tc.ranges), f, skip, tc.max)
			if diff := cmp.Diff(tc.want, got, cmpAddr); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
