package iprange

import (
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"192.168.1.220-192.168.1.200", "192.168.1.220-192.168.1.200: start is after end"},
		{"192.168.1.240/24", "192.168.1.240/24 has host bits set: did you mean 192.168.1.240/28 or 192.168.1.0/24?"},
		{"192.168.1.241/24", "192.168.1.241/24 has host bits set: did you mean 192.168.1.241/32 or 192.168.1.0/24?"},
		{"2001:db8::8/64", "2001:db8::8/64 has host bits set: did you mean 2001:db8::8/125 or 2001:db8::/64?"},
		{"10.0.0.1-fd00::1", "10.0.0.1-fd00::1: mixes IPv4 and IPv6"},
		{"999.1.1.1", "999.1.1.1: not an IP address"},
		{"", "empty address range"},
		{"  ", "empty address range"},
		{"192.0.2.1-", "192.0.2.1-: a range needs a start and an end, like 192.0.2.10-192.0.2.20"},
		{"-192.0.2.1", "-192.0.2.1: a range needs a start and an end, like 192.0.2.10-192.0.2.20"},
		{"192.0.2.1-192.0.2.5-192.0.2.9", "192.0.2.1-192.0.2.5-192.0.2.9: more than one '-'"},
		{"192.0.2.0/24-192.0.3.0/24", "192.0.2.0/24-192.0.3.0/24: a range's bounds are addresses, not CIDRs"},
		{"192.0.2.0/33", "192.0.2.0/33: prefix length must be 0-32"},
		{"2001:db8::/129", "2001:db8::/129: prefix length must be 0-128"},
		{"192.0.2.0/x", "192.0.2.0/x: prefix length must be 0-32"},
		{"192.0.2/24", "192.0.2: not an IP address"},
		{"fe80::1%eth0", "fe80::1%eth0: zones (%eth0) are not allowed in pool addresses"},
		{"host.example", "host.example: not an IP address"},
		{"192.0.2.1-banana", "banana: not an IP address"},
		{"01.2.3.4", "01.2.3.4: not an IP address"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want error %q", tc.in, tc.want)
			}
			got := strings.TrimPrefix(err.Error(), ErrSyntax.Error()+": ")
			if got != tc.want {
				t.Errorf("Parse(%q) error:\n got  %q\n want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in          string
		first, last string
		size        string
		str         string
	}{
		{"192.0.2.10", "192.0.2.10", "192.0.2.10", "1", "192.0.2.10"},
		{"192.0.2.10-192.0.2.20", "192.0.2.10", "192.0.2.20", "11", "192.0.2.10-192.0.2.20"},
		{" 192.0.2.10 - 192.0.2.20 ", "192.0.2.10", "192.0.2.20", "11", "192.0.2.10-192.0.2.20"},
		{"192.0.2.0-192.0.2.255", "192.0.2.0", "192.0.2.255", "256", "192.0.2.0/24"},
		{"192.0.2.0/28", "192.0.2.0", "192.0.2.15", "16", "192.0.2.0/28"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255", "4294967296", "0.0.0.0/0"},
		{"2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", "18446744073709551616", "2001:db8::/64"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "340282366920938463463374607431768211456", "::/0"},
		{"2001:db8::1-2001:db8::5", "2001:db8::1", "2001:db8::5", "5", "2001:db8::1-2001:db8::5"},
		{"::ffff:192.0.2.1", "192.0.2.1", "192.0.2.1", "1", "192.0.2.1"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{r.First().String(), r.Last().String(), r.Size().String(), r.String()}
			want := []string{tc.first, tc.last, tc.size, tc.str}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	rs, err := ParseList("192.0.2.10-192.0.2.20, 198.51.100.0/30 2001:db8::/126,203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("192.0.2.10-192.0.2.20,198.51.100.0/30,2001:db8::/126,203.0.113.7", Join(rs)); diff != "" {
		t.Error(diff)
	}
	_, err = ParseList("192.0.2.1-192.0.2.0, 999.0.0.1")
	want := "invalid address range: 192.0.2.1-192.0.2.0: start is after end\ninvalid address range: 999.0.0.1: not an IP address"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	if _, err := ParseList(" , "); err == nil {
		t.Error("empty list accepted")
	}
}

func mustParse(t testing.TB, s string) Range {
	t.Helper()
	r, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestContainsAndNth(t *testing.T) {
	r := mustParse(t, "2001:db8::/64")
	tests := []struct {
		name string
		n    *big.Int
		want string
		ok   bool
	}{
		{"first", big.NewInt(0), "2001:db8::", true},
		{"second", big.NewInt(1), "2001:db8::1", true},
		{"past 2^32", new(big.Int).Lsh(big.NewInt(1), 40), "2001:db8::100:0:0", true},
		{"last", new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(1)), "2001:db8::ffff:ffff:ffff:ffff", true},
		{"one past", new(big.Int).Lsh(big.NewInt(1), 64), "", false},
		{"negative", big.NewInt(-1), "", false},
		{"huge", new(big.Int).Lsh(big.NewInt(1), 200), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := r.Nth(tc.n)
			got := ""
			if ok {
				got = a.String()
				off, ok2 := r.Offset(a)
				if !ok2 || off.Cmp(tc.n) != 0 {
					t.Errorf("Offset(%s) = %v, want %v", a, off, tc.n)
				}
			}
			if ok != tc.ok || got != tc.want {
				t.Errorf("Nth(%v) = %q,%v want %q,%v", tc.n, got, ok, tc.want, tc.ok)
			}
		})
	}
	v4 := mustParse(t, "192.0.2.250-192.0.3.5")
	if a, ok := v4.NthUint64(6); !ok || a.String() != "192.0.3.0" {
		t.Errorf("NthUint64(6) = %v %v", a, ok)
	}
	if _, ok := v4.NthUint64(12); ok {
		t.Error("NthUint64 past the end succeeded")
	}
	for _, c := range []struct {
		a    string
		want bool
	}{{"192.0.2.250", true}, {"192.0.3.5", true}, {"192.0.3.6", false}, {"192.0.2.249", false}, {"::ffff:192.0.3.0", true}, {"2001:db8::1", false}} {
		if got := v4.Contains(netip.MustParseAddr(c.a)); got != c.want {
			t.Errorf("Contains(%s) = %v", c.a, got)
		}
	}
}

func TestPrefixes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"192.0.2.0/24", []string{"192.0.2.0/24"}},
		{"192.0.2.1-192.0.2.6", []string{"192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6/32"}},
		{"192.0.2.200-192.0.2.220", []string{"192.0.2.200/29", "192.0.2.208/29", "192.0.2.216/30", "192.0.2.220/32"}},
		{"0.0.0.0-255.255.255.255", []string{"0.0.0.0/0"}},
		{"::/0", []string{"::/0"}},
		{"2001:db8::-2001:db8::1:0", []string{"2001:db8::/112", "2001:db8::1:0/128"}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var got []string
			for _, p := range mustParse(t, tc.in).Prefixes() {
				got = append(got, p.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAllIsLazy(t *testing.T) {
	var got []string
	for a := range mustParse(t, "2001:db8::/64").All() {
		got = append(got, a.String())
		if len(got) == 3 {
			break
		}
	}
	if diff := cmp.Diff([]string{"2001:db8::", "2001:db8::1", "2001:db8::2"}, got); diff != "" {
		t.Error(diff)
	}
	all := slices.Collect(mustParse(t, "255.255.255.254/31").All())
	if len(all) != 2 {
		t.Errorf("All on the last /31 yielded %v", all)
	}
}

func TestOverlaps(t *testing.T) {
	var rs []Range
	for _, s := range []string{"192.0.2.0/24", "198.51.100.0/24", "192.0.2.200-192.0.3.10", "2001:db8::/64", "2001:db8::ff", "192.0.2.5"} {
		rs = append(rs, mustParse(t, s))
	}
	var got []string
	overlaps, _ := Overlaps(rs, -1)
	for _, o := range overlaps {
		got = append(got, o.String())
	}
	want := []string{
		"192.0.2.0/24 and 192.0.2.5 overlap on 192.0.2.5",
		"192.0.2.0/24 and 192.0.2.200-192.0.3.10 overlap on 192.0.2.200-192.0.2.255",
		"2001:db8::/64 and 2001:db8::ff overlap on 2001:db8::ff",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Error("New accepted start after end")
	}
	if _, err := New(netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("2001:db8::")); err == nil {
		t.Error("New accepted mixed families")
	}
	r, err := New(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.9"))
	if err != nil || r.SizeFloat() != 9 {
		t.Errorf("New = %v, %v", r, err)
	}
}

func TestBuggy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"192.0.2.0/24", 2},
		{"192.0.2.128/25", 1},
		{"192.0.2.0/25", 1},
		{"192.0.2.1-192.0.2.254", 0},
		{"192.0.2.255-192.0.3.0", 2},
		{"192.0.2.10", 0},
		{"192.0.2.0", 1},
		{"198.51.0.0/16", 512},
		{"0.0.0.0/0", 1 << 25},
		{"2001:db8::/120", 0},
	} {
		r, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Buggy(); got != tc.want {
			t.Errorf("Buggy(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
