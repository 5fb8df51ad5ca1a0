package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// sameMeaning compares what two configs do, not where they were written.
var sameMeaning = cmp.Options{
	cmpopts.IgnoreFields(Config{}, "Warnings"),
	// A v0.12 pool carries its advertisements' parts too; the
	// advertisements compared are the truth.
	cmpopts.IgnoreFields(Pool{}, "Resource", "Labels", "Line", "Interfaces", "NodeSelectors", "Advertisements"),
	cmpopts.IgnoreFields(Peer{}, "Name", "Line", "MaxPrefix"),
	cmpopts.IgnoreFields(BFDProfile{}, "Line"),
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b interface{ String() string }) bool { return a.String() == b.String() }),
}

// reparse reads converted resources as the controller would.
func reparse(t testing.TB, c *Converted) (*Config, error) {
	t.Helper()
	return Parse(bytes.Join(c.Objects, []byte("---\n")))
}

func TestConvertKeepsTheMeaning(t *testing.T) {
	for _, tc := range []struct {
		name, in    string
		wantDropped []string
	}{
		{"every key", everyKey, []string{"BGPPeer peer-198-51-100-1: max-prefix 100 has no field in BGPPeer and is dropped (the session accepts any number of prefixes)"}},
		{"the enable default", "address-pools:\n- {name: default, protocol: layer2, addresses: [192.0.2.200-192.0.2.210]}\n", nil},
		{"a bgp pool with no advertisements, two peers at one address", "address-pools:\n- {name: routed, protocol: bgp, addresses: [203.0.113.0/28], auto-assign: false}\n" +
			"peers:\n- {peer-address: 198.51.100.254, peer-asn: 64501, my-asn: 64500, node-selectors: [{match-labels: {rack: a}}]}\n" +
			"- {peer-address: 198.51.100.254, peer-asn: 64501, my-asn: 64500, node-selectors: [{match-labels: {rack: b}}], graceful-restart: false}\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Convert(cfg, "metallb-system")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantDropped, c.Dropped, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("dropped (-want +got):\n%s", diff)
			}
			got, err := reparse(t, c)
			if err != nil {
				t.Fatalf("the converted resources do not parse: %v\n%s", err, bytes.Join(c.Objects, []byte("---\n")))
			}
			if diff := cmp.Diff(cfg, got, sameMeaning); diff != "" {
				t.Errorf("converted config means something else (-ConfigMap +resources):\n%s", diff)
			}
			for _, o := range c.Objects {
				if !strings.Contains(string(o), "namespace: metallb-system") {
					t.Errorf("object without its namespace:\n%s", o)
				}
			}
		})
	}
}

func TestConvertNames(t *testing.T) {
	cfg, err := Parse([]byte("address-pools:\n- {name: web, protocol: layer2, addresses: [192.0.2.1/32]}\n" +
		"- {name: routed, protocol: bgp, addresses: [198.51.100.0/24], bgp-advertisements: [{aggregation-length: 32}, {aggregation-length: 24, localpref: 50}]}\n" +
		"peers:\n- {peer-address: '2001:db8::1', peer-asn: 64501, my-asn: 64500}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Convert(cfg, "metallb-system")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range c.Objects {
		docs, err := SplitDocuments(o)
		if err != nil || len(docs) != 1 {
			t.Fatalf("%v: %s", err, o)
		}
		got = append(got, docs[0].What())
	}
	want := []string{"IPAddressPool/web", "IPAddressPool/routed", "L2Advertisement/web", "BGPAdvertisement/routed-0", "BGPAdvertisement/routed-1", "BGPPeer/peer-2001-db8--1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}

	bad, err := Parse([]byte("address-pools:\n- {name: My_Pool, protocol: layer2, addresses: [192.0.2.1/32]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(bad, "metallb-system"); err == nil || !strings.Contains(err.Error(), `IPAddressPool "My_Pool": not a valid object name`) {
		t.Errorf("Convert(My_Pool) = %v", err)
	}
}

// FuzzConvert: whatever v0.12 config parses converts to resources that
// parse to the same meaning (or to a clear refusal of a name).
func FuzzConvert(f *testing.F) {
	f.Add([]byte(everyKey))
	f.Add([]byte("address-pools:\n- {name: a, protocol: bgp, addresses: [192.0.2.0/24], avoid-buggy-ips: true}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil || bytes.Contains(data, []byte("apiVersion")) {
			return
		}
		c, err := Convert(cfg, "metallb-system")
		if err != nil {
			return
		}
		got, err := reparse(t, c)
		if err != nil {
			t.Fatalf("the converted resources do not parse: %v", err)
		}
		if diff := cmp.Diff(cfg, got, sameMeaning); diff != "" {
			t.Fatalf("(-ConfigMap +resources):\n%s", diff)
		}
	})
}
