package iprange

import (
	"math/big"
	"net/netip"
	"testing"
)

func BenchmarkParseCIDR64(b *testing.B) {
	for b.Loop() {
		if _, err := Parse("2001:db8:1:2::/64"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNth64(b *testing.B) {
	r, _ := Parse("2001:db8::/64")
	n := new(big.Int).Lsh(big.NewInt(1), 63)
	for b.Loop() {
		if _, ok := r.Nth(n); !ok {
			b.Fatal("out of range")
		}
	}
}

func BenchmarkNthUint64(b *testing.B) {
	r, _ := Parse("2001:db8::/64")
	for i := 0; b.Loop(); i++ {
		if _, ok := r.NthUint64(uint64(i) << 20); !ok {
			b.Fatal("out of range")
		}
	}
}

func BenchmarkContains64(b *testing.B) {
	r, _ := Parse("2001:db8::/64")
	a := netip.MustParseAddr("2001:db8::dead:beef")
	for b.Loop() {
		if !r.Contains(a) {
			b.Fatal("not contained")
		}
	}
}

func BenchmarkSize64(b *testing.B) {
	r, _ := Parse("2001:db8::/64")
	for b.Loop() {
		_ = r.Size()
	}
}

func BenchmarkPrefixesOddRange(b *testing.B) {
	r, _ := Parse("2001:db8::3-2001:db8::ffff:ffff:ffff:fffd")
	for b.Loop() {
		_ = r.Prefixes()
	}
}
