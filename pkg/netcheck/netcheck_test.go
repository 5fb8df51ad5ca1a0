package netcheck

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

func mustRange(t testing.TB, s string) iprange.Range {
	t.Helper()
	r, err := iprange.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// labFacts is a host at 198.51.100.11/24 on eth0 (gateway .254) in a
// three-node cluster, with MicroK8s's default CIDRs, a DHCP scope of
// .100-.199, one lease and one host found by the probe.
func labFacts(t *testing.T) Facts {
	return Facts{
		Subnets: []Subnet{
			{Interface: "eth0", Prefix: netip.MustParsePrefix("198.51.100.11/24")},
			{Interface: "eth0", Prefix: netip.MustParsePrefix("2001:db8::11/64")},
		},
		Gateways: []netip.Addr{netip.MustParseAddr("198.51.100.254")},
		Nodes: []Node{
			{"node-a", netip.MustParseAddr("198.51.100.11")},
			{"node-b", netip.MustParseAddr("198.51.100.12")},
			{"node-c", netip.MustParseAddr("198.51.100.13")},
		},
		ServiceCIDRs: []Sourced{{mustRange(t, "10.152.183.0/24"), "MicroK8s default"}},
		PodCIDRs:     []Sourced{{mustRange(t, "10.1.0.0/16"), "MicroK8s default"}},
		DHCPScopes:   []Sourced{{mustRange(t, "198.51.100.100-198.51.100.199"), "--dhcp-range"}},
		Leases:       []Lease{{netip.MustParseAddr("198.51.100.50"), "/var/lib/dhcp/dhclient.eth0.leases"}},
		InUse:        []Host{{netip.MustParseAddr("198.51.100.77"), "02:00:00:00:00:77"}},
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"198.51.100.200-198.51.100.210", nil},
		{"198.51.100.240/29", nil},
		{"2001:db8::1000-2001:db8::10ff", nil},
		{"198.51.100.5-198.51.100.11", []string{
			"error: 198.51.100.11 in 198.51.100.5-198.51.100.11 is this host's address (eth0); leave it out",
			"error: 198.51.100.11 in 198.51.100.5-198.51.100.11 is the InternalIP of node node-a; leave it out",
		}},
		{"198.51.100.12", []string{
			"error: 198.51.100.12 in 198.51.100.12 is the InternalIP of node node-b; choose another address",
		}},
		{"198.51.100.250-198.51.100.254", []string{
			"error: 198.51.100.254 in 198.51.100.250-198.51.100.254 is the default gateway; leave it out",
		}},
		{"198.51.100.250-198.51.100.255", []string{
			"error: 198.51.100.250-198.51.100.255 includes 198.51.100.255, the broadcast address of 198.51.100.0/24 (eth0), which hosts cannot use; leave it out",
			"error: 198.51.100.254 in 198.51.100.250-198.51.100.255 is the default gateway; leave it out",
		}},
		{"198.51.100.0-198.51.100.3", []string{
			"error: 198.51.100.0/30 includes 198.51.100.0, the network address of 198.51.100.0/24 (eth0), which hosts cannot use; leave it out",
		}},
		{"198.51.100.0/24", []string{
			"error: 198.51.100.0/24 includes 198.51.100.0, the network address of 198.51.100.0/24 (eth0), which hosts cannot use; leave it out",
			"error: 198.51.100.0/24 includes 198.51.100.255, the broadcast address of 198.51.100.0/24 (eth0), which hosts cannot use; leave it out",
			"error: 198.51.100.11 in 198.51.100.0/24 is this host's address (eth0); leave it out",
			"error: 198.51.100.254 in 198.51.100.0/24 is the default gateway; leave it out",
			"error: 198.51.100.11 in 198.51.100.0/24 is the InternalIP of node node-a; leave it out",
			"error: 198.51.100.12 in 198.51.100.0/24 is the InternalIP of node node-b; leave it out",
			"error: 198.51.100.13 in 198.51.100.0/24 is the InternalIP of node node-c; leave it out",
			"error: 198.51.100.0/24 overlaps the DHCP scope 198.51.100.100-198.51.100.199 (--dhcp-range) on 198.51.100.100-198.51.100.199: the DHCP server may lease these addresses to other hosts; choose addresses outside the scope, or shrink the scope on the DHCP server",
			"error: 198.51.100.50 in 198.51.100.0/24 is leased by DHCP (/var/lib/dhcp/dhclient.eth0.leases); leave it out",
			"error: 198.51.100.77 in 198.51.100.0/24 is in use: it answered an ARP probe from 02:00:00:00:00:77; leave it out",
		}},
		{"198.51.100.190-198.51.100.205", []string{
			"error: 198.51.100.190-198.51.100.205 overlaps the DHCP scope 198.51.100.100-198.51.100.199 (--dhcp-range) on 198.51.100.190-198.51.100.199: the DHCP server may lease these addresses to other hosts; choose addresses outside the scope, or shrink the scope on the DHCP server",
		}},
		{"198.51.100.50", []string{
			"error: 198.51.100.50 in 198.51.100.50 is leased by DHCP (/var/lib/dhcp/dhclient.eth0.leases); choose another address",
		}},
		{"198.51.100.70-198.51.100.80", []string{
			"error: 198.51.100.77 in 198.51.100.70-198.51.100.80 is in use: it answered an ARP probe from 02:00:00:00:00:77; leave it out",
		}},
		{"10.152.183.100-10.152.183.110", []string{
			"error: 10.152.183.100-10.152.183.110 overlaps the Kubernetes service CIDR 10.152.183.0/24 (MicroK8s default) on 10.152.183.100-10.152.183.110: ClusterIPs come from there; choose addresses outside it",
			"warning: 10.152.183.100-10.152.183.110 is not inside any subnet of this node (this host's subnets are eth0 198.51.100.0/24): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
		{"10.1.2.0/28", []string{
			"error: 10.1.2.0/28 overlaps the pod CIDR 10.1.0.0/16 (MicroK8s default) on 10.1.2.0/28: pod addresses come from there; choose addresses outside it",
			"warning: 10.1.2.0/28 is not inside any subnet of this node (this host's subnets are eth0 198.51.100.0/24): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
		{"203.0.113.10-203.0.113.20", []string{
			"warning: 203.0.113.10-203.0.113.20 is not inside any subnet of this node (this host's subnets are eth0 198.51.100.0/24): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
		{"198.51.100.250-203.0.113.5", []string{
			"error: 198.51.100.250-203.0.113.5 includes 198.51.100.255, the broadcast address of 198.51.100.0/24 (eth0), which hosts cannot use; leave it out",
			"error: 198.51.100.254 in 198.51.100.250-203.0.113.5 is the default gateway; leave it out",
			"warning: 198.51.100.250-203.0.113.5 is not inside any subnet of this node (this host's subnets are eth0 198.51.100.0/24): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
		{"2001:db9::/120", []string{
			"warning: 2001:db9::/120 is not inside any subnet of this node (this host's subnets are eth0 2001:db8::/64): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
		{"2001:db8::11", []string{
			"error: 2001:db8::11 in 2001:db8::11 is this host's address (eth0); choose another address",
		}},
		{"198.51.100.200-198.51.100.210,198.51.100.205-198.51.100.215", []string{
			"error: 198.51.100.200-198.51.100.210 and 198.51.100.205-198.51.100.215 overlap on 198.51.100.205-198.51.100.210: list each address once (merge them into one range, or remove the shared part)",
		}},
		{"127.0.0.1", []string{
			"error: 127.0.0.1 includes 127.0.0.1, which is loopback (127.0.0.0/8) and cannot be a service address; use addresses from your LAN's subnet",
			"warning: 127.0.0.1 is not inside any subnet of this node (this host's subnets are eth0 198.51.100.0/24): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
		{"169.254.1.0/30", []string{
			"error: 169.254.1.0/30 includes 169.254.1.0/30, which is link-local (169.254.0.0/16) and cannot be a service address; use addresses from your LAN's subnet",
			"warning: 169.254.1.0/30 is not inside any subnet of this node (this host's subnets are eth0 198.51.100.0/24): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
		{"224.0.0.5-224.0.0.6", []string{
			"error: 224.0.0.5-224.0.0.6 includes 224.0.0.5-224.0.0.6, which is multicast (224.0.0.0/4) and cannot be a service address; use addresses from your LAN's subnet",
			"warning: 224.0.0.5-224.0.0.6 is not inside any subnet of this node (this host's subnets are eth0 198.51.100.0/24): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
		{"fe80::1-fe80::5", []string{
			"error: fe80::1-fe80::5 includes fe80::1-fe80::5, which is link-local (fe80::/10) and cannot be a service address; use addresses from your LAN's subnet",
			"warning: fe80::1-fe80::5 is not inside any subnet of this node (this host's subnets are eth0 2001:db8::/64): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
		{"255.255.255.255", []string{
			"error: 255.255.255.255 includes 255.255.255.255, which is reserved (class E and broadcast) (240.0.0.0/4) and cannot be a service address; use addresses from your LAN's subnet",
			"warning: 255.255.255.255 is not inside any subnet of this node (this host's subnets are eth0 198.51.100.0/24): layer2 (ARP/NDP) announcements only reach clients on the node's own subnet, so use a range inside it, or announce this range with BGP",
		}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			rs, err := iprange.ParseList(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range Check(rs, labFacts(t)) {
				got = append(got, f.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Check(%s) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestCheckManyLiveHosts(t *testing.T) {
	f := labFacts(t)
	f.InUse = nil
	for i := 20; i < 30; i++ {
		f.InUse = append(f.InUse, Host{netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), "02:00:00:00:00:01"})
	}
	got := Check([]iprange.Range{mustRange(t, "198.51.100.20-198.51.100.40")}, f)
	if len(got) != perKind+1 {
		t.Fatalf("got %d findings, want %d: %v", len(got), perKind+1, got)
	}
	if want := "error: 198.51.100.20-198.51.100.40: 5 more addresses like the above"; got[perKind].String() != want {
		t.Errorf("last finding %q, want %q", got[perKind], want)
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		subnet string
		facts  func(*Facts)
		want   string
	}{
		{"lab /24 avoids the gateway", "198.51.100.11/24", nil, "198.51.100.243-198.51.100.253"},
		{"no gateway at the top", "198.51.100.11/24", func(f *Facts) { f.Gateways = []netip.Addr{netip.MustParseAddr("198.51.100.1")} }, "198.51.100.244-198.51.100.254"},
		{"live host splits the top", "198.51.100.11/24", func(f *Facts) {
			f.InUse = append(f.InUse, Host{netip.MustParseAddr("198.51.100.248"), "02:00:00:00:00:02"})
		}, "198.51.100.237-198.51.100.247"},
		{"small /28", "192.0.2.1/28", func(f *Facts) { f.Gateways = []netip.Addr{netip.MustParseAddr("192.0.2.1")} }, "192.0.2.12-192.0.2.14"},
		{"/30 is too small", "192.0.2.1/30", nil, ""},
		{"IPv6 is not suggested", "2001:db8::11/64", nil, ""},
		{"a /8 whose DHCP scope covers nearly all of it", "10.1.2.3/8", func(f *Facts) {
			f.DHCPScopes = []Sourced{{Range: mustRange(t, "10.0.1.0-10.255.255.250"), Source: "dnsmasq"}}
		}, "10.0.0.245-10.0.0.255"},
		{"a /8 with no room at all", "10.1.2.3/8", func(f *Facts) {
			f.DHCPScopes = []Sourced{{Range: mustRange(t, "10.0.0.1-10.255.255.254"), Source: "dnsmasq"}}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := labFacts(t)
			if tc.facts != nil {
				tc.facts(&f)
			}
			got, ok := Suggest(Subnet{Interface: "eth0", Prefix: netip.MustParsePrefix(tc.subnet)}, f)
			s := ""
			if ok {
				s = got.String()
			}
			if s != tc.want {
				t.Errorf("Suggest(%s) = %q, want %q", tc.subnet, s, tc.want)
			}
		})
	}
}

func TestFindingsNameAFix(t *testing.T) {
	// Every error says what to do, not only what is wrong.
	rs, _ := iprange.ParseList("198.51.100.0/24,10.1.0.0/30,127.0.0.1")
	for _, f := range Check(rs, labFacts(t)) {
		if !strings.ContainsAny(f.Message, ";:") {
			t.Errorf("finding without a fix: %s", f)
		}
	}
}

// BenchmarkSuggestSlash8 is the prompt's suggestion on a /8 whose DHCP
// scope and 10,000 leases leave room only at the bottom.
func BenchmarkSuggestSlash8(b *testing.B) {
	f := Facts{DHCPScopes: []Sourced{{Range: mustRange(b, "10.0.1.0-10.255.255.250"), Source: "dnsmasq"}}}
	for i := range 10000 {
		f.Leases = append(f.Leases, Lease{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i / 256 % 256), byte(i % 256)})})
	}
	s := Subnet{Interface: "eth0", Prefix: netip.MustParsePrefix("10.1.2.3/8")}
	for b.Loop() {
		if _, ok := Suggest(s, f); ok {
			b.Fatal("room found where there is none")
		}
	}
}
