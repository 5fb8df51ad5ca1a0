package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/microk8s-metallb/metallb/pkg/config/configtest"
)

// bigConfig has 1,000 pools (alternating IPv4 /28 layer2 and IPv6 /64 bgp) and
// 100 peers.
func bigConfig() []byte {
	var b strings.Builder
	b.WriteString("bgp-communities:\n  gold: 64500:1\npeers:\n")
	for i := range 100 {
		fmt.Fprintf(&b, "- peer-address: 198.51.100.%d\n  peer-asn: %d\n  my-asn: 64500\n  hold-time: 9s\n", i+1, 64501+i)
	}
	b.WriteString("address-pools:\n")
	for i := range 1000 {
		if i%2 == 0 {
			fmt.Fprintf(&b, "- name: p%d\n  protocol: layer2\n  addresses: [10.%d.%d.0/28]\n", i, i/256, i%256)
		} else {
			fmt.Fprintf(&b, "- name: p%d\n  protocol: bgp\n  addresses: [\"2001:db8:%x::/64\"]\n  bgp-advertisements: [{communities: [gold]}]\n", i, i)
		}
	}
	return []byte(b.String())
}

func BenchmarkParse1000Pools100Peers(b *testing.B) {
	data := bigConfig()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		cfg, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if len(cfg.Pools) != 1000 || len(cfg.Peers) != 100 {
			b.Fatalf("got %d pools, %d peers", len(cfg.Pools), len(cfg.Peers))
		}
	}
}

func BenchmarkParseHostile(b *testing.B) {
	for _, in := range configtest.Hostile() {
		b.Run(in.Short, func(b *testing.B) {
			data := []byte(in.Text)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Parse(data)
			}
		})
	}
}
