package config

import (
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
