package config

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

func ranges(t *testing.T, s string) []iprange.Range {
	t.Helper()
	rs, err := iprange.ParseList(s)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// everyKey uses every key the format defines, MetalLB v0.12 ones and the
// extensions.
const everyKey = `
peers:
- peer-address: 198.51.100.1
  peer-asn: 64500
  my-asn: 64500
  peer-port: 1179
  source-address: 198.51.100.10
  hold-time: 3s
  keepalive-time: 1s
  router-id: 198.51.100.10
  password: "s3cret"
  ebgp-multihop: false
  graceful-restart: false
  max-prefix: 100
  node-selectors:
  - match-labels:
      rack: r1
    match-expressions:
    - key: kubernetes.io/hostname
      operator: In
      values: [node-a, node-b]
- peer-address: 2001:db8::1
  peer-asn: 4200000000
  my-asn: 64500
  ebgp-multihop: true
bgp-communities:
  no-export: 65535:65281
  big: large:4200000000:1:2
bfd-profiles:
- name: fast
  receive-interval: 100
  transmit-interval: 100
  detect-multiplier: 5
  echo-interval: 50
  echo-mode: false
  passive-mode: true
  minimum-ttl: 10
address-pools:
- name: dev
  protocol: layer2
  addresses:
  - 192.168.1.200-192.168.1.209
  - 2001:db8:1::/64
  priority: 2
  namespaces: [dev, staging]
  service-selectors:
  - match-expressions:
    - {key: tier, operator: NotIn, values: [db]}
  interfaces: [eth0]
  node-selectors:
  - match-labels: {role: edge}
- name: databases
  protocol: layer2
  addresses: ["192.168.1.210/31"]
  auto-assign: false
  avoid-buggy-ips: true
- name: public
  protocol: bgp
  addresses: [203.0.113.0/28, "2001:db8:2::/120"]
  bgp-advertisements:
  - aggregation-length: 32
    aggregation-length-v6: 128
    localpref: 100
    communities: [no-export, "64500:7", big]
  - aggregation-length: 28
    aggregation-length-v6: 120
`

func TestParseEveryKey(t *testing.T) {
	cfg, err := Parse([]byte(everyKey))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Communities: map[string]Community{
			"no-export": {Parts: [3]uint32{65535, 65281}},
			"big":       {Large: true, Parts: [3]uint32{4200000000, 1, 2}},
		},
		BFDProfiles: map[string]*BFDProfile{"fast": {
			Name: "fast", ReceiveInterval: 100, TransmitInterval: 100, DetectMultiplier: 5,
			EchoInterval: 50, PassiveMode: true, MinimumTTL: 10,
		}},
		Peers: []*Peer{{
			Address: netip.MustParseAddr("198.51.100.1"), Port: 1179, ASN: 64500, MyASN: 64500,
			SourceAddress: netip.MustParseAddr("198.51.100.10"), HoldTime: 3 * time.Second, KeepaliveTime: time.Second,
			RouterID: netip.MustParseAddr("198.51.100.10"), Password: "s3cret", MaxPrefix: 100,
			NodeSelectors: []Selector{{
				MatchLabels:      map[string]string{"rack": "r1"},
				MatchExpressions: []Requirement{{Key: "kubernetes.io/hostname", Operator: "In", Values: []string{"node-a", "node-b"}}},
			}},
		}, {
			Address: netip.MustParseAddr("2001:db8::1"), Port: 179, ASN: 4200000000, MyASN: 64500,
			HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second, EBGPMultiHop: true, GracefulRestart: true,
		}},
		Pools: []*Pool{{
			Name: "dev", Protocol: Layer2, Ranges: ranges(t, "192.168.1.200-192.168.1.209,2001:db8:1::/64"),
			AutoAssign: true, Priority: 2, Namespaces: []string{"dev", "staging"},
			ServiceSelectors: []Selector{{MatchExpressions: []Requirement{{Key: "tier", Operator: "NotIn", Values: []string{"db"}}}}},
			Interfaces:       []string{"eth0"},
			NodeSelectors:    []Selector{{MatchLabels: map[string]string{"role": "edge"}}},
		}, {
			Name: "databases", Protocol: Layer2, Ranges: ranges(t, "192.168.1.210/31"), AvoidBuggyIPs: true,
		}, {
			Name: "public", Protocol: BGP, Ranges: ranges(t, "203.0.113.0/28,2001:db8:2::/120"), AutoAssign: true,
			Advertisements: []Advertisement{{
				AggregationLength: 32, AggregationLengthV6: 128, LocalPref: 100, HasLocalPref: true,
				Communities: []Community{{Parts: [3]uint32{65535, 65281}}, {Parts: [3]uint32{64500, 7}}, {Large: true, Parts: [3]uint32{4200000000, 1, 2}}},
			}, {AggregationLength: 28, AggregationLengthV6: 120}},
		}},
	}
	// The advertisements each pool's protocol implies.
	want.L2Advertisements = []*L2Advertisement{
		{Name: "dev", Pools: []string{"dev"}, Interfaces: want.Pools[0].Interfaces, NodeSelectors: want.Pools[0].NodeSelectors},
		{Name: "databases", Pools: []string{"databases"}},
	}
	want.BGPAdvertisements = []*BGPAdvertisement{
		{Name: "public-0", Pools: []string{"public"}, Advertisement: want.Pools[2].Advertisements[0]},
		{Name: "public-1", Pools: []string{"public"}, Advertisement: want.Pools[2].Advertisements[1]},
	}
	opts := []cmp.Option{
		cmp.Comparer(func(a, b iprange.Range) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmpopts.IgnoreFields(Pool{}, "Line"), cmpopts.IgnoreFields(Peer{}, "Line"), cmpopts.IgnoreFields(BFDProfile{}, "Line"),
		cmpopts.EquateEmpty(),
	}
	if diff := cmp.Diff(want, cfg, opts...); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		pools    []string // name protocol ranges auto-assign
		warnings []string
	}{
		{name: "empty", in: ""},
		{name: "only a comment", in: "# nothing yet\n"},
		{name: "microk8s default", in: "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 192.168.1.200-192.168.1.220\n",
			pools: []string{"default layer2 192.168.1.200-192.168.1.220 true"}},
		{name: "pools per environment",
			in: `address-pools:
- {name: dev, protocol: layer2, addresses: [192.0.2.0/27]}
- {name: databases, protocol: layer2, addresses: [192.0.2.32/28], auto-assign: false}
- {name: public, protocol: layer2, addresses: [192.0.2.48/28, 2001:db8::/64]}
`,
			pools: []string{"dev layer2 192.0.2.0/27 true", "databases layer2 192.0.2.32/28 false", "public layer2 192.0.2.48/28,2001:db8::/64 true"}},
		{name: "bgp pool gets a default advertisement", in: "address-pools:\n- {name: p, protocol: bgp, addresses: [198.51.100.0/24]}\n",
			pools:    []string{"p bgp 198.51.100.0/24 true"},
			warnings: []string{`line 2: pool "p" uses bgp but there are no peers: its addresses will be assigned but not announced by BGP`}},
		{name: "localpref with only eBGP peers warns",
			in: `peers: [{peer-address: 198.51.100.1, peer-asn: 64501, my-asn: 64500}]
address-pools:
- name: p
  protocol: bgp
  addresses: [203.0.113.0/24]
  bgp-advertisements: [{localpref: 50}]
`,
			pools:    []string{"p bgp 203.0.113.0/24 true"},
			warnings: []string{`line 3: pool "p" bgp-advertisements[0]: localpref is sent on iBGP sessions only (my-asn = peer-asn), and every peer is eBGP`}},
		{name: "ranges with spaces and lists in one element",
			in:    "address-pools:\n- name: p\n  protocol: layer2\n  addresses: ['192.0.2.1 - 192.0.2.5, 192.0.2.9']\n",
			pools: []string{"p layer2 192.0.2.1-192.0.2.5,192.0.2.9 true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var pools []string
			for _, p := range cfg.Pools {
				pools = append(pools, p.Name+" "+string(p.Protocol)+" "+iprange.Join(p.Ranges)+" "+map[bool]string{true: "true", false: "false"}[p.AutoAssign])
				if p.Protocol == BGP && len(p.Advertisements) == 0 {
					t.Errorf("bgp pool %s has no advertisement", p.Name)
				}
			}
			if diff := cmp.Diff(tc.pools, pools); diff != "" {
				t.Errorf("pools (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, cfg.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHoldTimeZero: hold-time 0 is RFC 4271's "no keepalives, no hold
// timer", kept as such (not a default).
func TestHoldTimeZero(t *testing.T) {
	cfg, err := Parse([]byte("peers: [{peer-address: 198.51.100.1, peer-asn: 64500, my-asn: 64500, hold-time: 0s}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Peers[0]; p.HoldTime != 0 || p.KeepaliveTime != 0 {
		t.Errorf("hold %v keepalive %v, want 0 and 0", p.HoldTime, p.KeepaliveTime)
	}
}

func TestSelectorMatches(t *testing.T) {
	sel := Selector{
		MatchLabels: map[string]string{"app": "web"},
		MatchExpressions: []Requirement{
			{Key: "tier", Operator: "In", Values: []string{"front", "edge"}},
			{Key: "canary", Operator: "DoesNotExist"},
			{Key: "zone", Operator: "NotIn", Values: []string{"z9"}},
			{Key: "team", Operator: "Exists"},
		},
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"all satisfied", map[string]string{"app": "web", "tier": "edge", "team": "a"}, true},
		{"wrong label", map[string]string{"app": "db", "tier": "edge", "team": "a"}, false},
		{"not in set", map[string]string{"app": "web", "tier": "back", "team": "a"}, false},
		{"forbidden key", map[string]string{"app": "web", "tier": "edge", "team": "a", "canary": ""}, false},
		{"excluded zone", map[string]string{"app": "web", "tier": "edge", "team": "a", "zone": "z9"}, false},
		{"missing team", map[string]string{"app": "web", "tier": "edge"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sel.Matches(tc.labels); got != tc.want {
				t.Errorf("Matches(%v) = %v, want %v", tc.labels, got, tc.want)
			}
		})
	}
	if !MatchesAny(nil, nil) {
		t.Error("an empty selector list must match everything")
	}
}

// TestPoolSize: a pool that avoids .0 and .255 counts only what it hands
// out (MetalLB's allocator counts 381 for the two IPv4 ranges; IPv6 has no such addresses).
func TestPoolSize(t *testing.T) {
	for _, tc := range []struct {
		avoid bool
		want  string
	}{{false, "388"}, {true, "385"}} {
		cfg, err := Parse([]byte(fmt.Sprintf("address-pools:\n- {name: p, protocol: layer2, avoid-buggy-ips: %v, addresses: [1.2.3.0/24, 2.3.4.128/25, 2001:db8::/126]}\n", tc.avoid)))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Pools[0].Size().String(); got != tc.want {
			t.Errorf("avoid-buggy-ips %v: size %s, want %s", tc.avoid, got, tc.want)
		}
	}
}
