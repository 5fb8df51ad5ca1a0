package install

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

func TestParseRangeArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // iprange.Join of the result
		err  string
	}{
		{"colon form", []string{"192.0.2.10-192.0.2.20"}, "192.0.2.10-192.0.2.20", ""},
		{"words", []string{"192.0.2.10-192.0.2.20", "192.0.2.30/31"}, "192.0.2.10-192.0.2.20,192.0.2.30/31", ""},
		{"comma list", []string{"192.0.2.10-192.0.2.20,192.0.2.30"}, "192.0.2.10-192.0.2.20,192.0.2.30", ""},
		{"IPv6 range split on colons", []string{"2001", "db8", "", "1-2001", "db8", "", "9"}, "2001:db8::1-2001:db8::9", ""},
		{"IPv6 CIDR split on colons", []string{"2001", "db8", "", "/120"}, "2001:db8::/120", ""},
		{"IPv4 and IPv6 split", []string{"192.0.2.10-192.0.2.20,2001", "db8", "", "100-2001", "db8", "", "1ff"}, "192.0.2.10-192.0.2.20,2001:db8::100/120", ""},
		{"no range", nil, "", "invalid address range: no address range given"},
		{"not an address", []string{"192.0.2.300"}, "", "invalid address range: 192.0.2.300: not an IP address"},
		{"open range", []string{"192.0.2.10-"}, "", "invalid address range: 192.0.2.10-: a range needs a start and an end, like 192.0.2.10-192.0.2.20"},
		{"backwards", []string{"192.0.2.20-192.0.2.10"}, "", "invalid address range: 192.0.2.20-192.0.2.10: start is after end"},
		{"mixed families", []string{"192.0.2.1-2001:db8::1"}, "", "invalid address range: 192.0.2.1-2001:db8::1: mixes IPv4 and IPv6"},
		{"host bits", []string{"192.0.2.10/24"}, "", "invalid address range: 192.0.2.10/24 has host bits set: did you mean 192.0.2.10/31 or 192.0.2.0/24?"},
		{"bad prefix", []string{"192.0.2.0/33"}, "", "invalid address range: 192.0.2.0/33: prefix length must be 0-32"},
		{"CIDR bounds", []string{"192.0.2.0/28-192.0.2.32/28"}, "", "invalid address range: 192.0.2.0/28-192.0.2.32/28: a range's bounds are addresses, not CIDRs"},
		{"zone", []string{"fe80::1%eth0"}, "", "invalid address range: fe80::1%eth0: zones (%eth0) are not allowed in pool addresses"},
		{"split garbage", []string{"2001", "zz", "1"}, "", "invalid address range: 2001:zz:1: not an IP address"},
		{"hostname", []string{"router.lan"}, "", "invalid address range: router.lan: not an IP address"},
		{"two dashes", []string{"192.0.2.1-192.0.2.5-192.0.2.9"}, "", "invalid address range: 192.0.2.1-192.0.2.5-192.0.2.9: more than one '-'"},
		{"empty list", []string{","}, "", "invalid address range: empty address range"},
		{"bad element in a list", []string{"192.0.2.1,,192.0.2.300"}, "", "invalid address range: 192.0.2.300: not an IP address"},
		{"split IPv6 with a bad piece", []string{"2001", "db8", "", "1-2001", "db8", "", "zzzz"}, "", "invalid address range: 2001:db8::zzzz: not an IP address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRangeArgs(tc.args)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, iprange.Join(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadPipedNeverHangs(t *testing.T) {
	if s, err := readPiped(strings.NewReader(" 192.0.2.10-192.0.2.20\n"), time.Second, "lab/metallb"); err != nil || s != "192.0.2.10-192.0.2.20" {
		t.Errorf("piped range: %q, %v", s, err)
	}
	if _, err := readPiped(strings.NewReader(""), time.Second, "lab/metallb"); err == nil {
		t.Error("empty stdin accepted")
	}
	r, w := io.Pipe() // an idle pipe that never closes
	defer w.Close()
	start := time.Now()
	if _, err := readPiped(r, 200*time.Millisecond, "lab/metallb"); err == nil {
		t.Error("idle stdin accepted")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("gave up after %v", d)
	}
}
