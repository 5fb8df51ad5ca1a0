package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

func TestSetPool(t *testing.T) {
	for _, tc := range []struct {
		name, in, addrs, want, err string
	}{
		{name: "new config", addrs: "192.0.2.10-192.0.2.20", want: `address-pools:
  - name: default
    protocol: layer2
    addresses:
      - 192.0.2.10-192.0.2.20
`},
		{name: "replaces the default pool's addresses, keeps the rest", in: `# ours
peers:
- peer-address: 192.0.2.1
  peer-asn: 64501
  my-asn: 64500
address-pools:
- name: default
  protocol: layer2
  auto-assign: false
  addresses:
  - 192.0.2.10-192.0.2.20 # old
- name: bgp
  protocol: bgp
  addresses: [203.0.113.0/28]
`, addrs: "192.0.2.30-192.0.2.40,2001:db8::/120", want: `# ours
peers:
  - peer-address: 192.0.2.1
    peer-asn: 64501
    my-asn: 64500
address-pools:
  - name: default
    protocol: layer2
    auto-assign: false
    addresses:
      - 192.0.2.30-192.0.2.40
      - 2001:db8::/120
  - name: bgp
    protocol: bgp
    addresses: [203.0.113.0/28]
`},
		{name: "adds a default pool next to others", in: "address-pools:\n- name: other\n  protocol: layer2\n  addresses: [192.0.2.0/28]\n",
			addrs: "192.0.2.100/30", want: `address-pools:
  - name: other
    protocol: layer2
    addresses: [192.0.2.0/28]
  - name: default
    protocol: layer2
    addresses:
      - 192.0.2.100/30
`},
		{name: "overlap with another pool", in: "address-pools:\n- name: other\n  protocol: layer2\n  addresses: [192.0.2.0/28]\n",
			addrs: "192.0.2.8-192.0.2.20", err: `with pool "default" set to 192.0.2.8-192.0.2.20 the config is invalid`},
		{name: "broken current config", in: "address-pools: [", addrs: "192.0.2.1", err: "the current config is not YAML (fix or delete the ConfigMap first)"},
		{name: "address-pools not a list", in: "address-pools: 3\n", addrs: "192.0.2.1", err: "address-pools in the current config is not a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := iprange.ParseList(tc.addrs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := SetPool([]byte(tc.in), "default", rs)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetBGPPool(t *testing.T) {
	rs, err := iprange.ParseList("203.0.113.0/28")
	if err != nil {
		t.Fatal(err)
	}
	peer := QuickPeer{Address: netip.MustParseAddr("192.0.2.1"), PeerASN: 64501, MyASN: 64500}
	for _, tc := range []struct {
		name, in, want string
	}{
		{name: "new config", want: `address-pools:
  - name: default
    protocol: bgp
    addresses:
      - 203.0.113.0/28
peers:
  - peer-address: 192.0.2.1
    peer-asn: 64501
    my-asn: 64500
`},
		{name: "a layer2 default pool becomes BGP; the peer at that address gets the ASNs, its password stays", in: `address-pools:
- name: default
  protocol: layer2
  addresses: [192.0.2.10-192.0.2.20]
peers:
- peer-address: 192.0.2.1 # the router
  peer-asn: 65000
  my-asn: 65001
  password: secret
- {peer-address: 192.0.2.2, peer-asn: 64502, my-asn: 64500}
`, want: `address-pools:
  - name: default
    protocol: bgp
    addresses:
      - 203.0.113.0/28
peers:
  - peer-address: 192.0.2.1 # the router
    peer-asn: 64501
    my-asn: 64500
    password: secret
  - {peer-address: 192.0.2.2, peer-asn: 64502, my-asn: 64500}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SetBGPPool([]byte(tc.in), "default", rs, peer)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := SetBGPPool([]byte("peers: {a: b}\n"), "default", rs, peer); err == nil {
		t.Error("peers that is not a list: no error")
	}
}

func TestSetResourcePool(t *testing.T) {
	r, err := iprange.Parse("192.0.2.10-192.0.2.20")
	if err != nil {
		t.Fatal(err)
	}
	rs := []iprange.Range{r}
	doc := func(s string) []byte { return []byte(s) }
	corePool := doc("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: default-addresspool\nspec:\n  addresses: [192.0.2.100-192.0.2.110]\n  autoAssign: false\n")
	coreL2 := doc("apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: default-advertise-all-pools\n")
	other := doc("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: other\nspec:\n  addresses: [203.0.113.0/28]\n")
	tests := []struct {
		name string
		docs [][]byte
		// want: each pool's addresses and the advertisements, after.
		want    []string
		changed int
	}{
		{name: "none: the pool and the advertisement of every pool are added", want: []string{
			"pool default-addresspool: 192.0.2.10-192.0.2.20", "layer2 default-advertise-all-pools: [default-addresspool]"}, changed: 2},
		{name: "the core addon's: only its addresses change", docs: [][]byte{corePool, coreL2, other}, want: []string{
			"pool default-addresspool: 192.0.2.10-192.0.2.20", "pool other: 203.0.113.0/28",
			"layer2 default-advertise-all-pools: [default-addresspool other]"}, changed: 1},
		{name: "a pool of another name: the advertisement is added with the pool", docs: [][]byte{other}, want: []string{
			"pool other: 203.0.113.0/28", "pool default-addresspool: 192.0.2.10-192.0.2.20",
			"layer2 default-advertise-all-pools: [other default-addresspool]"}, changed: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			all, changed, err := SetResourcePool(tc.docs, DefaultResourcePool, rs)
			if err != nil {
				t.Fatal(err)
			}
			text, err := Combine("", all)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse([]byte(text))
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			var got []string
			for _, p := range cfg.Pools {
				got = append(got, "pool "+p.Name+": "+iprange.Join(p.Ranges))
			}
			for _, a := range cfg.L2Advertisements {
				got = append(got, fmt.Sprintf("layer2 %s: %v", a.Name, a.Pools))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if len(changed) != tc.changed {
				t.Errorf("%d changed, want %d", len(changed), tc.changed)
			}
			if p := cfg.Pool("default-addresspool"); len(tc.docs) > 0 && bytes.Equal(tc.docs[0], corePool) && p.AutoAssign {
				t.Errorf("autoAssign: false is lost")
			}
		})
	}
}
