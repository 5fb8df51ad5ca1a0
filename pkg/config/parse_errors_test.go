package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// pool wraps pool lines into a minimal document.
func pool(lines ...string) string {
	return "address-pools:\n- " + strings.Join(lines, "\n  ") + "\n"
}

func TestParseErrors(t *testing.T) {
	peer := func(lines ...string) string { return "peers:\n- " + strings.Join(lines, "\n  ") + "\n" }
	okPeer := []string{"peer-address: 198.51.100.1", "peer-asn: 64501", "my-asn: 64500"}
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"yaml syntax", "address-pools: [\n", []string{"line 1: not valid YAML: did not find expected node content"}},
		{"top-level typo", "adress-pools: []\n", []string{`line 1: config: unknown key "adress-pools" (did you mean "address-pools"?)`}},
		{"top-level unknown", "colour: blue\n", []string{`line 1: config: unknown key "colour"; known keys: address-pools, bfd-profiles, bgp-communities, peers`}},
		{"top-level not a map", "- a\n", []string{`line 1: config: want a mapping of keys to values, got a list`}},
		{"pools not a list", "address-pools: {}\n", []string{`line 1: address-pools: want a list, got a mapping`}},
		{"pool key typo", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", "auto-asign: false"),
			[]string{`line 5: address-pools[0] (a): unknown key "auto-asign" (did you mean "auto-assign"?)`}},
		{"pool repeated key", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", "name: b"),
			[]string{`line 5: address-pools[0] (a): key "name" appears twice`}},
		{"pool without name", pool("protocol: layer2", "addresses: [192.0.2.1]"),
			[]string{`line 2: address-pools[0]: name is required`}},
		{"pool without protocol", pool("name: a", "addresses: [192.0.2.1]"),
			[]string{`line 2: address-pools[0] (a): protocol is required: layer2 or bgp`}},
		{"pool bad protocol", pool("name: a", "protocol: arp", "addresses: [192.0.2.1]"),
			[]string{`line 3: address-pools[0] (a).protocol: "arp": want layer2 or bgp`}},
		{"pool without addresses", pool("name: a", "protocol: layer2"),
			[]string{`line 2: address-pools[0] (a): addresses is required (e.g. addresses: [192.168.1.200-192.168.1.220])`}},
		{"pool empty addresses", pool("name: a", "protocol: layer2", "addresses: []"),
			[]string{`line 4: address-pools[0] (a): addresses is empty`}},
		{"pool null addresses", pool("name: a", "protocol: layer2", "addresses:"),
			[]string{`line 4: address-pools[0] (a): addresses is empty`}},
		{"pool empty address", pool("name: a", "protocol: layer2", `addresses: [""]`),
			[]string{`line 4: address-pools[0] (a).addresses[0] is empty: write a range, a CIDR or an address (e.g. 192.168.1.240-192.168.1.250)`}},
		{"addresses not a list", pool("name: a", "protocol: layer2", "addresses: 192.0.2.1"),
			[]string{`line 4: address-pools[0] (a).addresses: want a list, got "192.0.2.1"`}},
		{"range backwards", pool("name: a", "protocol: layer2", "addresses: [192.168.1.220-192.168.1.200]"),
			[]string{`line 4: address-pools[0] (a).addresses[0]: 192.168.1.220-192.168.1.200: start is after end`}},
		{"cidr host bits", pool("name: a", "protocol: layer2", "addresses: [192.168.1.240/24]"),
			[]string{`line 4: address-pools[0] (a).addresses[0]: 192.168.1.240/24 has host bits set: did you mean 192.168.1.240/28 or 192.168.1.0/24?`}},
		{"mixed families", pool("name: a", "protocol: layer2", "addresses: [10.0.0.1-fd00::1]"),
			[]string{`line 4: address-pools[0] (a).addresses[0]: 10.0.0.1-fd00::1: mixes IPv4 and IPv6`}},
		{"not an ip", pool("name: a", "protocol: layer2", "addresses: [999.1.1.1]"),
			[]string{`line 4: address-pools[0] (a).addresses[0]: 999.1.1.1: not an IP address`}},
		{"auto-assign not bool", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", "auto-assign: yes please"),
			[]string{`line 5: address-pools[0] (a).auto-assign: want true or false, got "yes please"`}},
		{"auto-assign quoted", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", `auto-assign: "false"`),
			[]string{`line 5: address-pools[0] (a).auto-assign: want true or false, got "false"`}},
		{"duplicate pool names", "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [192.0.2.1]\n- name: a\n  protocol: layer2\n  addresses: [192.0.2.2]\n",
			[]string{`line 5: address-pools: name "a" is used twice (first on line 2)`}},
		{"pools overlap", "address-pools:\n- name: dev\n  protocol: layer2\n  addresses: [192.0.2.0/28]\n- name: db\n  protocol: layer2\n  addresses: [192.0.2.10-192.0.2.20]\n",
			[]string{`line 4: address-pools: pools "dev" (192.0.2.0/28, line 4) and "db" (192.0.2.10-192.0.2.20, line 7) overlap on 192.0.2.10-192.0.2.15: an address may belong to one pool only`}},
		{"overlap inside a pool", pool("name: a", "protocol: layer2", "addresses: [192.0.2.0/30, 192.0.2.3]"),
			[]string{`line 4: address-pools[0] (a).addresses: 192.0.2.0/30 and 192.0.2.3 overlap on 192.0.2.3: list each address once`}},
		{"bgp-advertisements on layer2", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", "bgp-advertisements: [{}]"),
			[]string{`line 5: address-pools[0] (a): bgp-advertisements apply only to protocol: bgp pools`}},
		{"interfaces on bgp", pool("name: a", "protocol: bgp", "addresses: [192.0.2.1]", "interfaces: [eth0]"),
			[]string{`line 5: address-pools[0] (a): interfaces apply only to protocol: layer2 pools`}},
		{"aggregation too short", pool("name: a", "protocol: bgp", "addresses: [192.0.2.0/26]", "bgp-advertisements:", "- aggregation-length: 24"),
			[]string{`line 6: address-pools[0] (a).bgp-advertisements[0].aggregation-length: /24 is shorter than /26 of 192.0.2.0/26 in this pool: the router would get a route to addresses outside the pool`}},
		{"aggregation v6 too short", pool("name: a", "protocol: bgp", "addresses: [2001:db8::/64]", "bgp-advertisements:", "- aggregation-length-v6: 48"),
			[]string{`line 6: address-pools[0] (a).bgp-advertisements[0].aggregation-length-v6: /48 is shorter than /64 of 2001:db8::/64 in this pool: the router would get a route to addresses outside the pool`}},
		{"aggregation out of range", pool("name: a", "protocol: bgp", "addresses: [192.0.2.1]", "bgp-advertisements:", "- aggregation-length: 33"),
			[]string{`line 6: address-pools[0] (a).bgp-advertisements[0].aggregation-length: 33 is out of range 0-32`}},
		{"bad community", pool("name: a", "protocol: bgp", "addresses: [192.0.2.1]", "bgp-advertisements:", "- communities: [65536:1]"),
			[]string{`line 6: address-pools[0] (a).bgp-advertisements[0].communities: "65536:1": "65536" is not a number in 0-65535 (use large:... for 32-bit parts)`}},
		{"unknown community alias", pool("name: a", "protocol: bgp", "addresses: [192.0.2.1]", "bgp-advertisements:", "- communities: [gold]"),
			[]string{`line 6: address-pools[0] (a).bgp-advertisements[0].communities: "gold": want ASN:VALUE (e.g. 64512:100), large:GLOBAL:LOCAL1:LOCAL2, or a bgp-communities alias`}},
		{"bad large community", "bgp-communities:\n  big: large:1:2\n",
			[]string{`line 2: bgp-communities.big: "large:1:2": large community "large:1:2": want large:GLOBAL:LOCAL1:LOCAL2`}},
		{"localpref negative", pool("name: a", "protocol: bgp", "addresses: [192.0.2.1]", "bgp-advertisements:", "- localpref: -1"),
			[]string{`line 6: address-pools[0] (a).bgp-advertisements[0].localpref: -1 is out of range 0-4294967295`}},
		{"priority zero", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", "priority: 0"),
			[]string{`line 5: address-pools[0] (a).priority: 0 is out of range 1-2147483647`}},
		{"bad namespace", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", "namespaces: [Prod_1]"),
			[]string{`line 2: address-pools[0] (a).namespaces: "Prod_1" is not a valid namespace name`}},
		{"selector bad operator", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", "service-selectors:", "- match-expressions:", "  - {key: tier, operator: Equals, values: [db]}"),
			[]string{`line 7: address-pools[0] (a).service-selectors[0].match-expressions[0]: operator "Equals": want In, NotIn, Exists or DoesNotExist`}},
		{"selector In without values", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", "node-selectors:", "- match-expressions:", "  - {key: zone, operator: In}"),
			[]string{`line 7: address-pools[0] (a).node-selectors[0].match-expressions[0]: operator In needs at least one value`}},
		{"selector bad label", pool("name: a", "protocol: layer2", "addresses: [192.0.2.1]", "node-selectors:", "- match-labels: {\"bad key!\": x}"),
			[]string{`line 6: address-pools[0] (a).node-selectors[0].match-labels: "bad key!" is not a valid label key`}},
		{"peer missing fields", peer("peer-address: 198.51.100.1"),
			[]string{`line 2: peers[0]: peer-asn is required`, `line 2: peers[0]: my-asn is required`}},
		{"peer bad address", peer("peer-address: router.lan", "peer-asn: 64501", "my-asn: 64500"),
			[]string{`line 2: peers[0].peer-address: "router.lan" is not an IP address`}},
		{"peer asn zero", peer("peer-address: 198.51.100.1", "peer-asn: 0", "my-asn: 64500"),
			[]string{`line 3: peers[0].peer-asn: 0 is out of range 1-4294967295`}},
		{"peer asn too big", peer("peer-address: 198.51.100.1", "peer-asn: 4294967296", "my-asn: 64500"),
			[]string{`line 3: peers[0].peer-asn: 4294967296 is out of range 1-4294967295`}},
		{"peer port", peer(append(okPeer, "peer-port: 70000")...),
			[]string{`line 5: peers[0].peer-port: 70000 is out of range 1-65535`}},
		{"hold time too short", peer(append(okPeer, "hold-time: 2s")...),
			[]string{`line 5: peers[0].hold-time: 2s: want 0 (no keepalives) or from 3s to 18h12m15s (RFC 4271)`}},
		{"hold time too long", peer(append(okPeer, "hold-time: 24h")...),
			[]string{`line 5: peers[0].hold-time: 24h0m0s: want 0 (no keepalives) or from 3s to 18h12m15s (RFC 4271)`}},
		{"keepalive with hold time zero", peer(append(okPeer, "hold-time: 0s", "keepalive-time: 10s")...),
			[]string{`line 6: peers[0].keepalive-time: 10s: with hold-time 0 no keepalives are sent; remove keepalive-time or set a hold-time`}},
		{"max-prefix zero", peer(append(okPeer, "max-prefix: 0")...),
			[]string{`line 5: peers[0].max-prefix: 0 is out of range 1-2147483647`}},
		{"hold time unitless", peer(append(okPeer, "hold-time: 90")...),
			[]string{`line 5: peers[0].hold-time: "90": want a duration such as 90s or 1m30s`}},
		{"keepalive longer than hold", peer(append(okPeer, "hold-time: 9s", "keepalive-time: 10s")...),
			[]string{`line 6: peers[0].keepalive-time: 10s is longer than hold-time 9s`}},
		{"router id v6", peer(append(okPeer, "router-id: 2001:db8::1")...),
			[]string{`line 5: peers[0].router-id: 2001:db8::1: a BGP router ID is an IPv4 address`}},
		{"source family", peer(append(okPeer, "source-address: 2001:db8::1")...),
			[]string{`line 5: peers[0].source-address: 2001:db8::1 and peer-address 198.51.100.1 are of different IP families`}},
		{"password too long", peer(append(okPeer, "password: "+strings.Repeat("x", 81))...),
			[]string{`line 5: peers[0].password: 81 bytes: TCP MD5 keys are at most 80 bytes`}},
		{"multihop not bool", peer(append(okPeer, "ebgp-multihop: 2")...),
			[]string{`line 5: peers[0].ebgp-multihop: want true or false, got "2"`}},
		{"duplicate peers", "peers:\n- {peer-address: 198.51.100.1, peer-asn: 64501, my-asn: 64500}\n- {peer-address: 198.51.100.1, peer-asn: 64502, my-asn: 64500}\n",
			[]string{`line 3: peers[1]: same peer as peers[0] (line 2): 198.51.100.1 port 179`}},
		{"missing bfd profile", peer(append(okPeer, "bfd-profile: fast")...),
			[]string{`line 2: peers[0].bfd-profile: no bfd-profiles entry is named "fast"`}},
		{"bfd multihop", "bfd-profiles:\n- name: fast\npeers:\n- {peer-address: 198.51.100.1, peer-asn: 64501, my-asn: 64500, bfd-profile: fast, ebgp-multihop: true}\n",
			[]string{`line 4: peers[0].bfd-profile "fast" with ebgp-multihop: multihop BFD (RFC 5883) is not built: BFD runs single-hop, to a router on the node's link; remove bfd-profile, or ebgp-multihop if the router is on the node's link`}},
		{"bfd echo", "bfd-profiles:\n- name: fast\n  echo-mode: true\n",
			[]string{`line 3: bfd-profiles[0] (fast).echo-mode: the BFD echo function is not built: asynchronous mode detects a lost link within receive-interval x detect-multiplier; remove echo-mode (and set the intervals instead)`}},
		{"bfd out of range", "bfd-profiles:\n- name: fast\n  detect-multiplier: 1\n",
			[]string{`line 3: bfd-profiles[0] (fast).detect-multiplier: 1 is out of range 2-255`}},
		{"bfd without name", "bfd-profiles:\n- receive-interval: 100\n",
			[]string{`line 2: bfd-profiles[0]: name is required`}},
		{"several errors at once", pool("name: a", "protocol: bgpp", "addresses: [192.0.2.9-192.0.2.1, 1.2.3]"),
			[]string{`line 3: address-pools[0] (a).protocol: "bgpp": want layer2 or bgp`,
				`line 4: address-pools[0] (a).addresses[0]: 192.0.2.9-192.0.2.1: start is after end`,
				`line 4: address-pools[0] (a).addresses[1]: 1.2.3: not an IP address`}},
		// Hostile sizes: a few lines say what is wrong, however long the list.
		{"one range listed 25 times", pool("name: a", "protocol: layer2", "addresses:"+strings.Repeat("\n  - 192.0.2.0/24", 25)),
			append(copyOverlaps(20, 6, "192.0.2.0/24"), "line 25: address-pools: 4 more overlapping ranges: an address may be listed once, in one pool only")},
		{"30 pools on one range", manyPools(30, "198.51.100.0/24"),
			append(poolOverlaps(20, "198.51.100.0/24"), "line 22: address-pools: 9 more overlapping ranges: an address may be listed once, in one pool only")},
		{"nested ranges", pool("name: a", "protocol: layer2", "addresses: [10.0.0.0/8, 10.1.0.0/16, 10.1.2.0/24, 10.1.2.3]"), []string{
			"line 4: address-pools[0] (a).addresses: 10.0.0.0/8 and 10.1.0.0/16 overlap on 10.1.0.0/16: list each address once",
			"line 4: address-pools[0] (a).addresses: 10.0.0.0/8 and 10.1.2.0/24 overlap on 10.1.2.0/24: list each address once",
			"line 4: address-pools[0] (a).addresses: 10.0.0.0/8 and 10.1.2.3 overlap on 10.1.2.3: list each address once"}},
		{"IPv6 /64 listed twice beside IPv4", pool("name: a", "protocol: layer2", `addresses: [192.0.2.0/24, "2001:db8::/64", "2001:db8::/64"]`), []string{
			"line 4: address-pools[0] (a).addresses: 2001:db8::/64 and 2001:db8::/64 overlap on 2001:db8::/64: list each address once"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse succeeded or returned %T (%v), want Errors:\n%s", err, err, tc.in)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s\ninput:\n%s", diff, tc.in)
			}
		})
	}
}

// copyOverlaps are the errors for n copies of r in one pool's list, the
// first of them on line first: each reported on the line of the copy.
func copyOverlaps(n, first int, r string) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("line %d: address-pools[0] (a).addresses: %s and %s overlap on %s: list each address once", first+i, r, r, r))
	}
	return out
}

// manyPools is n layer2 pools named p0... all holding r, one per line.
func manyPools(n int, r string) string {
	var b strings.Builder
	b.WriteString("address-pools:\n")
	for i := range n {
		fmt.Fprintf(&b, "- {name: p%d, protocol: layer2, addresses: [%s]}\n", i, r)
	}
	return b.String()
}

// poolOverlaps are the errors for the first n of manyPools' overlaps: each
// pool against p0.
func poolOverlaps(n int, r string) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("line 2: address-pools: pools \"p0\" (%s, line 2) and \"p%d\" (%s, line %d) overlap on %s: an address may belong to one pool only", r, i, r, i+2, r))
	}
	return out
}
