package traffic

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func TestParseAddresses(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []netip.Addr
		err      string
	}{
		{name: "empty", in: "", want: nil},
		{name: "comment only", in: "# nothing\n", want: nil},
		{name: "sorted and deduplicated", in: "2001:db8::1\n192.0.2.2\n192.0.2.1\n192.0.2.2\n", want: addrs("192.0.2.1", "192.0.2.2", "2001:db8::1")},
		{name: "spaces and blank lines", in: "  192.0.2.1 \n\n", want: addrs("192.0.2.1")},
		{name: "not an address", in: "192.0.2.1\nweb\n", err: "line 2"},
		{name: "zone", in: "fe80::1%eth0\n", err: "not a plain"},
		{name: "mapped", in: "::ffff:192.0.2.1\n", err: "not a plain"},
		{name: "a range is not an address", in: "192.0.2.0/24\n", err: "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddresses([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Error(d)
			}
		})
	}
	if _, err := ParseAddresses(make([]byte, MaxAddressesFile+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a file over the bound: %v", err)
	}
}

func FuzzParseAddresses(f *testing.F) {
	f.Add([]byte("192.0.2.1\n2001:db8::1\n"))
	f.Add([]byte("# x\n\n fe80::1%eth0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ips, err := ParseAddresses(b)
		if err != nil {
			return
		}
		again, err := ParseAddresses(FormatAddresses(ips))
		if err != nil || !slices.Equal(ips, again) {
			t.Fatalf("round trip: %v -> %v, %v", ips, again, err)
		}
	})
}

func FuzzParseLease(f *testing.F) {
	f.Add("192.0.2.1 10 1500 0.5 75.0 60\n")
	f.Add("2001:db8::1 1 2 NaN 4 5\n")
	f.Fuzz(func(t *testing.T, s string) {
		rates, err := ParseLease(s)
		if err != nil {
			return
		}
		for _, r := range rates {
			if r.PacketsPerSecond < 0 || r.BytesPerSecond < 0 || r.PacketsPerSecond != r.PacketsPerSecond {
				t.Fatalf("accepted a rate out of range: %+v", r)
			}
		}
		if _, err := ParseLease(FormatLease(rates)); err != nil {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}

func TestSampler(t *testing.T) {
	ip1, ip2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	t0 := time.Unix(1000, 0)
	var s Sampler
	type step struct {
		at     time.Duration
		counts map[netip.Addr]Count
		want   []Rate
	}
	for i, st := range []step{
		{at: 0, counts: map[netip.Addr]Count{ip1: {10, 1000}, ip2: {}},
			want: []Rate{{IP: ip1, Count: Count{10, 1000}}}}, // no rate yet; ip2 silent
		{at: 10 * time.Second, counts: map[netip.Addr]Count{ip1: {20, 2000}, ip2: {5, 5000}},
			want: []Rate{
				{IP: ip2, Count: Count{5, 5000}, PacketsPerSecond: 0.5, BytesPerSecond: 500, Window: 10 * time.Second},
				{IP: ip1, Count: Count{20, 2000}, PacketsPerSecond: 1, BytesPerSecond: 100, Window: 10 * time.Second},
			}},
		{at: 70 * time.Second, counts: map[netip.Addr]Count{ip1: {80, 8000}, ip2: {5, 5000}},
			// the base is now the sample of 10 s: the newest at least a minute old
			want: []Rate{
				{IP: ip1, Count: Count{80, 8000}, PacketsPerSecond: 1, BytesPerSecond: 100, Window: time.Minute},
				{IP: ip2, Count: Count{5, 5000}, Window: time.Minute},
			}},
		{at: 80 * time.Second, counts: map[netip.Addr]Count{ip1: {6, 600}},
			// counted from 0 again: the rate is from 0; the base is still
			// the sample of 10 s (the newest at least a minute old)
			want: []Rate{{IP: ip1, Count: Count{6, 600}, PacketsPerSecond: 6 / 70.0, BytesPerSecond: 600 / 70.0, Window: 70 * time.Second}}},
	} {
		got := s.Add(t0.Add(st.at), st.counts)
		if d := cmp.Diff(st.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("step %d (-want +got):\n%s", i, d)
		}
		back, err := ParseLease(FormatLease(got))
		if err != nil || len(back) != len(got) {
			t.Errorf("step %d: the annotation does not read back: %v %v", i, back, err)
		}
	}
}

func TestAnnouncedWriteLoop(t *testing.T) {
	dir := t.TempDir()
	a := NewAnnounced()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.WriteLoop(ctx, dir, 5*time.Millisecond, slog.New(slog.DiscardHandler))
	read := func() string {
		b, err := os.ReadFile(filepath.Join(dir, AddressesFile))
		if err != nil {
			return "none"
		}
		ips, _ := ParseAddresses(b)
		return strings.TrimSpace(strings.ReplaceAll(string(FormatAddresses(ips)), "# addresses this node announces (written by the speaker)\n", ""))
	}
	ip := netip.MustParseAddr("192.0.2.1")
	a.Add("demo/web", "layer2", ip)
	a.Add("demo/web", "bgp", ip)
	a.Add("demo/web2", "layer2", ip) // shared
	time.Sleep(30 * time.Millisecond)
	if got := read(); got != "none" {
		t.Fatalf("written before the first plan: %q", got)
	}
	a.Planned()
	eventually(t, "written after the plan", func() bool { return read() == "192.0.2.1" })
	a.Remove("demo/web", "layer2", ip)
	if d := cmp.Diff(map[netip.Addr][]string{ip: {"demo/web", "demo/web2"}}, a.Services(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Error(d) // still by BGP
	}
	a.Remove("demo/web", "bgp", ip)
	if d := cmp.Diff(map[netip.Addr][]string{ip: {"demo/web2"}}, a.Services(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Error(d)
	}
	a.Remove("demo/web2", "layer2", ip)
	eventually(t, "emptied", func() bool { return read() == "" })
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
