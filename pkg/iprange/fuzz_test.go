package iprange

import (
	"math/big"
	"testing"
)

// FuzzParse checks that Parse never panics and that every range it accepts
// is well-formed and survives a String/Parse round trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1", "192.0.2.1-192.0.2.9", "192.0.2.0/24", "2001:db8::/64", "::/0",
		"10.0.0.1-fd00::1", "192.168.1.240/24", "fe80::1%eth0", "::ffff:1.2.3.4", " 1.2.3.4 - 1.2.3.5 ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.First().Compare(r.Last()) > 0 || r.First().Is4() != r.Last().Is4() {
			t.Fatalf("Parse(%q) = bad range %v-%v", s, r.First(), r.Last())
		}
		again, err := Parse(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip of %q via %q: %v, %v", s, r.String(), again, err)
		}
		last, ok := r.Nth(new(big.Int).Sub(r.Size(), big.NewInt(1)))
		if !ok || last != r.Last() {
			t.Fatalf("Nth(size-1) of %v = %v, %v", r, last, ok)
		}
		var total big.Int
		for _, p := range r.Prefixes() {
			total.Add(&total, FromPrefix(p).Size())
		}
		if total.Cmp(r.Size()) != 0 {
			t.Fatalf("prefixes of %v cover %v addresses, want %v", r, &total, r.Size())
		}
	})
}

// FuzzParseList checks ParseList never panics.
func FuzzParseList(f *testing.F) {
	f.Add("192.0.2.1-192.0.2.9, 2001:db8::/120 198.51.100.7")
	f.Add(" , ,")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseList(s)
		if err == nil && len(rs) == 0 {
			t.Fatalf("ParseList(%q) returned no ranges and no error", s)
		}
		first, total := Overlaps(rs, 3)
		if len(first) > 3 || total < len(first) {
			t.Fatalf("Overlaps(%q, 3) = %d pairs of %d", s, len(first), total)
		}
	})
}
