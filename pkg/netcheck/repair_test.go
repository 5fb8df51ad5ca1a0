package netcheck

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// A range that breaks several rules gets one suggestion that breaks none:
// the largest free block of its own addresses, else a free block of the
// subnet.
func TestRepairOffersOneRangeThatPassesEverything(t *testing.T) {
	f := labFacts(t)
	for _, tc := range []struct {
		in, want string
	}{
		// The host, the nodes and the lease inside: the largest block between them.
		{"198.51.100.5-198.51.100.60", "198.51.100.14-198.51.100.49"},
		// Gateway and broadcast at the top.
		{"198.51.100.240-198.51.100.255", "198.51.100.240-198.51.100.253"},
		// Wholly inside the DHCP scope: nothing of its own is free, so a
		// block of the subnet.
		{"198.51.100.150-198.51.100.160", "198.51.100.243-198.51.100.253"},
		// The whole subnet.
		{"198.51.100.0/24", "198.51.100.200-198.51.100.253"},
	} {
		rs, err := iprange.ParseList(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if len(errorsIn(Check(rs, f))) == 0 {
			t.Fatalf("%s passes: not a repair case", tc.in)
		}
		got, ok := Repair(rs, f)
		if !ok || got.String() != tc.want {
			t.Errorf("Repair(%s) = %s, %v; want %s", tc.in, got, ok, tc.want)
			continue
		}
		if errs := errorsIn(Check([]iprange.Range{got}, f)); len(errs) > 0 {
			t.Errorf("the repair %s fails: %v", got, errs)
		}
	}
	// Off every subnet, in a reserved block: nothing to offer.
	if got, ok := Repair([]iprange.Range{mustRange(t, "127.0.0.1-127.0.0.9")}, f); ok {
		t.Errorf("Repair(loopback) = %s", got)
	}
}

func errorsIn(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Severity == Error {
			out = append(out, f.Message)
		}
	}
	return out
}

// On a DHCP-configured subnet with no known scope, a warning says how to
// pass it; a known scope, a static address, or another subnet, none.
func TestDHCPScopeUnknownWarns(t *testing.T) {
	dyn := Facts{Subnets: []Subnet{{Interface: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/24"), Dynamic: true}}}
	leased := Facts{Subnets: []Subnet{{Interface: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/24")}},
		Leases: []Lease{{netip.MustParseAddr("192.0.2.10"), "dhclient"}}}
	static := Facts{Subnets: []Subnet{{Interface: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/24")}}}
	known := dyn
	known.DHCPScopes = []Sourced{{mustRange(t, "192.0.2.100-192.0.2.199"), "--dhcp-range"}}
	r := []iprange.Range{mustRange(t, "192.0.2.240-192.0.2.250")}
	warns := func(f Facts) []string {
		var out []string
		for _, x := range Check(r, f) {
			if x.Severity == Warning && strings.Contains(x.Message, "--dhcp-range") {
				out = append(out, x.String())
			}
		}
		return out
	}
	want := []string{"warning: 192.0.2.240-192.0.2.250: this host's address on eth0 (192.0.2.0/24) came from DHCP, and the DHCP server's scope (its dynamic range) is unknown, so it may lease these addresses too: make sure the range is outside the scope (your router's \"DHCP range\"), or pass the scope with --dhcp-range FIRST-LAST to have it checked"}
	for name, tc := range map[string]struct {
		f    Facts
		want []string
	}{"dynamic": {dyn, want}, "leased": {leased, want}, "static": {static, nil}, "scope known": {known, nil}} {
		if diff := cmp.Diff(tc.want, warns(tc.f)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}
