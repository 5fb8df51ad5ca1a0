package allocator

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const impactBase = `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29]}
`

// dbForTeam is impactBase with pool db as a resource that admits the
// namespaces labelled team.
func dbForTeam(team string) string {
	return fmt.Sprintf(`address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: db, namespace: metallb-system}
spec:
  addresses: [198.51.100.0/29]
  serviceAllocation: {namespaceSelectors: [{matchLabels: {team: %s}}]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: db, namespace: metallb-system}
spec: {ipAddressPools: [db]}
`, team)
}

func TestImpact(t *testing.T) {
	holdings := []Holding{
		{Service: svc("a/web1"), IPs: ips("192.0.2.10")},
		{Service: svc("a/web2"), IPs: ips("192.0.2.15")},
		{Service: svc("b/db1", nsLabels("team", "data")), IPs: ips("198.51.100.2")},
		{Service: svc("b/idle")},
	}
	for _, tc := range []struct {
		name string
		cfg  string
		want []string
	}{
		{name: "same config", cfg: impactBase},
		{name: "a pool grows", cfg: `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.0/24]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29]}
`},
		{name: "a pool is renamed", cfg: `address-pools:
- {name: www, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29]}
`},
		{name: "a pool shrinks", cfg: `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.12]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29]}
`, want: []string{"a/web2 [192.0.2.15]: 192.0.2.15 is in no pool of the new config"}},
		{name: "a pool is removed", cfg: `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}
`, want: []string{"b/db1 [198.51.100.2]: 198.51.100.2 is in no pool of the new config"}},
		{name: "empty config", cfg: "# nothing\n", want: []string{
			"a/web1 [192.0.2.10]: the new config has no address pools",
			"a/web2 [192.0.2.15]: the new config has no address pools",
			"b/db1 [198.51.100.2]: the new config has no address pools",
		}},
		{name: "a pool changes protocol", cfg: `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}
- {name: db, protocol: bgp, addresses: [198.51.100.0/29]}
peers: [{peer-address: 203.0.113.1, peer-asn: 64500, my-asn: 64501}]
`, want: []string{`b/db1 [198.51.100.2]: 198.51.100.2 would be announced by bgp (pool "db") instead of layer2 (pool "db")`}},
		{name: "a pool is restricted to other namespaces", cfg: `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29], namespaces: [prod]}
`, want: []string{`b/db1 [198.51.100.2]: pool "db" serves namespaces prod only, not "b"`}},
		{name: "a pool selects namespaces by labels that still match", cfg: dbForTeam("data")},
		{name: "a pool's namespaceSelectors narrowed past a held address", cfg: dbForTeam("web"), want: []string{`b/db1 [198.51.100.2]: the labels of namespace "b" match none of pool "db"'s namespaceSelectors`}},
		{name: "a pool gains service-selectors the Service does not match", cfg: `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20], service-selectors: [{match-labels: {tier: front}}]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29]}
`, want: []string{
			`a/web1 [192.0.2.10]: Service labels match none of pool "web"'s service-selectors`,
			`a/web2 [192.0.2.15]: Service labels match none of pool "web"'s service-selectors`,
		}},
		{name: "the range moves to another pool", cfg: `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.14]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29, 192.0.2.15-192.0.2.20]}
`},
		{name: "a .0 address under avoid-buggy-ips", cfg: `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29], avoid-buggy-ips: true}
`},
		{name: "both pools removed at once, with a new one elsewhere", cfg: `address-pools:
- {name: new, protocol: layer2, addresses: [203.0.113.0/24]}
`, want: []string{
			"a/web1 [192.0.2.10]: 192.0.2.10 is in no pool of the new config",
			"a/web2 [192.0.2.15]: 192.0.2.15 is in no pool of the new config",
			"b/db1 [198.51.100.2]: 198.51.100.2 is in no pool of the new config",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range Impact(mustConfig(t, impactBase), mustConfig(t, tc.cfg), holdings) {
				got = append(got, a.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// An allocator's holdings pass its own config: Impact agrees with SetConfig.
func TestImpactAgreesWithSetConfig(t *testing.T) {
	a := New()
	a.SetConfig(mustConfig(t, impactBase))
	for _, k := range []string{"a/1", "a/2", "b/3"} {
		if _, err := a.Assign(svc(k), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := Impact(nil, mustConfig(t, impactBase), a.Holdings()); len(got) != 0 {
		t.Fatalf("own config: %v", got)
	}
	shrunk := mustConfig(t, `address-pools: [{name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.11]}]`)
	var affected []string
	for _, x := range Impact(nil, shrunk, a.Holdings()) {
		affected = append(affected, x.Service)
	}
	if diff := cmp.Diff(affected, a.SetConfig(shrunk)); diff != "" {
		t.Fatalf("Impact and SetConfig disagree (-impact +dropped):\n%s", diff)
	}
}

// A PreferDualStack Service that got one family keeps it, whatever happens
// to the pool's other family, and gains the second when there is room.
func TestPreferDualStackKeepsItsAddress(t *testing.T) {
	a := New()
	a.SetConfig(mustConfig(t, `address-pools:
- {name: both, protocol: layer2, addresses: [192.0.2.10-192.0.2.12, "2001:db8::1-2001:db8::1"]}
`))
	if _, err := a.Assign(svc("a/v6"), nil); err != nil { // IPv4 by default
		t.Fatal(err)
	}
	if _, err := a.Assign(svc("a/six", fams(SingleStack, IPv6)), nil); err != nil {
		t.Fatal(err)
	}
	p := svc("a/p", fams(PreferDualStack, IPv4, IPv6))
	as, err := a.Assign(p, nil)
	if err != nil || joinIPs(as.IPs) != "192.0.2.11" {
		t.Fatalf("first: %v %v", as, err)
	}
	// 192.0.2.10 frees: a lower address is free, the IPv6 side is still
	// full. The Service must not move on resync.
	a.Release("a/v6")
	for range 3 {
		as, err = a.Assign(p, as.IPs)
		if err != nil || joinIPs(as.IPs) != "192.0.2.11" {
			t.Fatalf("resync moved it: %v %v", as, err)
		}
	}
	// The IPv6 address frees: the Service gains it and keeps its IPv4.
	a.Release("a/six")
	as, err = a.Assign(p, as.IPs)
	if err != nil || joinIPs(as.IPs) != "192.0.2.11,2001:db8::1" {
		t.Fatalf("after IPv6 freed: %v %v", as, err)
	}
}

// Cases that need their own holdings: a pool asked for by name, a
// dual-stack Service losing a family's range, a shared address.
func TestImpactSpecialHoldings(t *testing.T) {
	old := mustConfig(t, `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20, "2001:db8::/64"]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29], avoid-buggy-ips: false}
`)
	for _, tc := range []struct {
		name string
		h    Holding
		cfg  string
		want []string
	}{
		{"the pool a Service asks for is renamed", Holding{svc("a/x", inPool("db")), ips("198.51.100.2")}, `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20, "2001:db8::/64"]}
- {name: database, protocol: layer2, addresses: [198.51.100.0/29]}
`, []string{`a/x [198.51.100.2]: 198.51.100.2 is in pool "database", not in the requested pool "db"`}},
		{"the IPv6 side of a dual-stack Service goes", Holding{svc("a/d", fams(RequireDualStack, IPv4, IPv6)), ips("192.0.2.10", "2001:db8::")}, `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29]}
`, []string{"a/d [192.0.2.10,2001:db8::]: 2001:db8:: is in no pool of the new config"}},
		{"avoid-buggy-ips turned on under a .0 holder", Holding{svc("a/zero"), ips("198.51.100.0")}, `address-pools:
- {name: web, protocol: layer2, addresses: [192.0.2.10-192.0.2.20, "2001:db8::/64"]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/29], avoid-buggy-ips: true}
`, []string{`a/zero [198.51.100.0]: 198.51.100.0 ends in .0 or .255 and pool "db" has avoid-buggy-ips`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range Impact(old, mustConfig(t, tc.cfg), []Holding{tc.h}) {
				got = append(got, a.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
