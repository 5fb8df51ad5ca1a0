package bgp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// Routes with equal attributes share UPDATEs, each within BGP's 4,096
// bytes; every prefix is announced once, with its own attributes.
func TestUpdatesCarrySeveralPrefixes(t *testing.T) {
	peer := Peer{Address: netip.MustParseAddr("198.51.100.254"), ASN: 64500, MyASN: 64501}
	caps := peerCaps{as4: true}
	gold := []config.Community{{Parts: [3]uint32{64500, 1}}}
	for _, tc := range []struct {
		name    string
		base    string
		n, msgs int
		v6      bool
	}{
		{"1,000 IPv4 /32s", "198.51.0.0", 1000, 2, false},
		{"1,000 IPv6 /128s", "2001:db8::", 1000, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rs []Route
			a := netip.MustParseAddr(tc.base)
			for i := range tc.n {
				a = a.Next()
				r := Route{Prefix: netip.PrefixFrom(a, a.BitLen())}
				if i%2 == 1 {
					r.Communities = gold
				}
				rs = append(rs, r)
			}
			slices.SortStableFunc(rs, compareAttrs) // as sync orders them
			next := netip.MustParseAddr("198.51.100.11")
			if tc.v6 {
				next = netip.MustParseAddr("2001:db8::11")
			}
			msgs, err := updateMsgs(peer, caps, rs, next)
			if err != nil {
				t.Fatal(err)
			}
			byPrefix := map[netip.Prefix]Route{}
			for _, r := range rs {
				byPrefix[r.Prefix] = r
			}
			seen := map[netip.Prefix]int{}
			for _, m := range msgs {
				b, err := m.Serialize()
				if err != nil {
					t.Fatal(err)
				}
				if len(b) > maxMsg {
					t.Errorf("a message of %d bytes", len(b))
				}
				var in []Route
				if _, err := scanUpdate(b[19:], func(p netip.Prefix, withdrawn bool) {
					if !withdrawn {
						seen[p]++
						in = append(in, byPrefix[p])
					}
				}); err != nil {
					t.Fatal(err)
				}
				// One set of attributes per message.
				if slices.ContainsFunc(in, func(r Route) bool { return !sameAttrs(r, in[0]) }) {
					t.Errorf("a message mixes routes of different attributes")
				}
			}
			if len(seen) != tc.n || slices.ContainsFunc(rs, func(r Route) bool { return seen[r.Prefix] != 1 }) {
				t.Errorf("%d distinct prefixes announced, want each of %d once", len(seen), tc.n)
			}
			// Two attribute sets of 500 each: at most this many messages.
			if len(msgs) > tc.msgs*2 {
				t.Errorf("%d messages for %d routes in two attribute sets", len(msgs), tc.n)
			}
			t.Logf("%d routes in %d UPDATEs (one per route before)", tc.n, len(msgs))
		})
	}
	// Different attributes never share a message.
	one := []Route{{Prefix: netip.MustParsePrefix("192.0.2.1/32")}, {Prefix: netip.MustParsePrefix("192.0.2.2/32"), Communities: gold}}
	msgs, err := updateMsgs(peer, caps, one, netip.MustParseAddr("198.51.100.11"))
	if err != nil || len(msgs) != 2 {
		t.Errorf("%d messages (%v) for two routes of different attributes", len(msgs), err)
	}
}
