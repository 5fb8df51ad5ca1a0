package allocator

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkAssign100kFromV6Slash64 assigns 100,000 Services from one /64
// pool; ns/op is per assignment.
func BenchmarkAssign100kFromV6Slash64(b *testing.B) {
	cfg := mustConfig(b, "address-pools:\n- {name: v6, protocol: layer2, addresses: [\"2001:db8::/64\"]}\n")
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = "ns/svc-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		a := New()
		a.SetConfig(cfg)
		for _, k := range keys {
			if _, err := a.Assign(Service{Key: k, Namespace: "ns", Families: []Family{IPv6}}, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/assign")
}

// BenchmarkAssign100kFrom1000Pools spreads 100,000 Services over 1,000 small
// IPv4 pools (/25 each), each Service asking for its pool by name.
func BenchmarkAssign100kFrom1000Pools(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("address-pools:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "- {name: p%d, protocol: layer2, addresses: [10.%d.%d.0/25]}\n", i, i/256, i%256)
	}
	cfg := mustConfig(b, sb.String())
	type req struct{ key, pool string }
	reqs := make([]req, 100_000)
	for i := range reqs {
		reqs[i] = req{"ns/svc-" + strconv.Itoa(i), "p" + strconv.Itoa(i%1000)}
	}
	b.ReportAllocs()
	for b.Loop() {
		a := New()
		a.SetConfig(cfg)
		for _, r := range reqs {
			if _, err := a.Assign(Service{Key: r.key, Namespace: "ns", Pool: r.pool}, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(reqs)), "ns/assign")
}
