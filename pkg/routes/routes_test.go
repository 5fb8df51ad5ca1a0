package routes

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

func TestAggregateAndMerge(t *testing.T) {
	adv := config.Advertisement{AggregationLength: 24, AggregationLengthV6: 64}
	if got := Aggregate(netip.MustParseAddr("203.0.113.77"), adv).String(); got != "203.0.113.0/24" {
		t.Errorf("v4 aggregate %s", got)
	}
	if got := Aggregate(netip.MustParseAddr("2001:db8::77"), adv).String(); got != "2001:db8::/64" {
		t.Errorf("v6 aggregate %s", got)
	}
	if got := Aggregate(netip.MustParseAddr("203.0.113.77"), config.Advertisement{}).String(); got != "203.0.113.77/32" {
		t.Errorf("default %s", got)
	}
	c1 := config.Community{Parts: [3]uint32{64500, 1}}
	c2 := config.Community{Large: true, Parts: [3]uint32{64500, 1, 2}}
	p := netip.MustParsePrefix("203.0.113.0/24")
	got := Merge([]Route{
		{Prefix: p, Communities: []config.Community{c2}},
		{Prefix: p, Communities: []config.Community{c1, c2}, LocalPref: 50, HasLocalPref: true},
		{Prefix: p, LocalPref: 200, HasLocalPref: true},
	})
	want := []Route{{Prefix: p, Communities: []config.Community{c1, c2}, LocalPref: 200, HasLocalPref: true}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("merge (-want +got):\n%s", diff)
	}

	// Peers: the union of the lists; one route for every peer makes the
	// merged route go to every peer.
	peers := []struct {
		name string
		in   [][]string
		want []string
	}{
		{"one list", [][]string{{"b", "c"}}, []string{"b", "c"}},
		{"lists united", [][]string{{"b", "c"}, {"a", "c"}}, []string{"a", "b", "c"}},
		{"every peer wins, first", [][]string{nil, {"a"}}, nil},
		{"every peer wins, last", [][]string{{"a"}, nil}, nil},
	}
	for _, tc := range peers {
		var in []Route
		for _, ps := range tc.in {
			in = append(in, Route{Prefix: p, Peers: ps})
		}
		got := Merge(in)
		if diff := cmp.Diff(tc.want, got[0].Peers); diff != "" {
			t.Errorf("%s: peers (-want +got):\n%s", tc.name, diff)
		}
		for _, name := range []string{"a", "b", "z"} {
			if want := tc.want == nil || slices.Contains(tc.want, name); got[0].For(Peer{Name: name}) != want {
				t.Errorf("%s: For(%s) = %v, want %v", tc.name, name, !want, want)
			}
		}
	}
}
