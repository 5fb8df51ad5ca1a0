package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// layer2Example is MetalLB's own layer2 example: a pool and an empty
// L2Advertisement.
const layer2Example = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: first-pool
  namespace: metallb-system
spec:
  addresses:
  - 192.168.1.240-192.168.1.250
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: example
  namespace: metallb-system
`

// announced summarises what a config announces: per pool, its protocol
// and the advertisements naming it.
func announced(cfg *Config) []string {
	var out []string
	for _, p := range cfg.Pools {
		s := fmt.Sprintf("%s %s %s", p.Name, p.Protocol, iprange.Join(p.Ranges))
		for _, a := range cfg.L2For(p.Name) {
			s += " l2:" + a.Name
			if len(a.Interfaces) > 0 {
				s += "[" + strings.Join(a.Interfaces, ",") + "]"
			}
		}
		for _, a := range cfg.BGPFor(p.Name) {
			s += fmt.Sprintf(" bgp:%s/%d/%d", a.Name, a.AggregationLength, a.AggregationLengthV6)
			for _, c := range a.Communities {
				s += " " + c.String()
			}
			if len(a.Peers) > 0 {
				s += " to:" + strings.Join(a.Peers, ",")
			}
		}
		out = append(out, s)
	}
	return out
}

func TestParseResources(t *testing.T) {
	const peer = `
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.1}
`
	tests := []struct {
		name     string
		in       string
		want     []string
		warnings []string
	}{
		{"MetalLB's layer2 example", layer2Example, []string{"first-pool layer2 192.168.1.240-192.168.1.250 l2:example"}, nil},
		{"a pool no advertisement selects", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lonely}
spec: {addresses: [198.51.100.0/28]}
`, []string{"lonely none 198.51.100.0/28"}, []string{"IPAddressPool/lonely is not announced: no L2Advertisement or BGPAdvertisement selects it, so its addresses are assigned but nothing answers for them (add one, e.g. an L2Advertisement with ipAddressPools: [lonely])"}},
		{"layer2 and BGP at once, selectors and names", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: web, labels: {tier: front}}
spec: {addresses: [198.51.100.0/28, "2001:db8::/124"]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: db}
spec: {addresses: [198.51.100.16/28], autoAssign: false}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
spec:
  ipAddressPoolSelectors:
  - matchLabels: {tier: front}
  interfaces: [eth1]
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: communities}
spec:
  communities:
  - {name: no-advertise, value: "65535:65282"}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routers}
spec:
  ipAddressPools: [web, db]
  aggregationLength: 28
  communities: [no-advertise, "64500:1"]
` + peer, []string{
			"web layer2+bgp 198.51.100.0/28,2001:db8::/124 l2:lan[eth1] bgp:routers/28/128 65535:65282 64500:1",
			"db bgp 198.51.100.16/28 bgp:routers/28/128 65535:65282 64500:1"}, nil},
		{"the ConfigMap's pools and the resources side by side", `
address-pools:
- name: old
  protocol: layer2
  addresses: [203.0.113.0/28]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: new}
spec: {addresses: [203.0.113.16/28]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: both}
spec: {ipAddressPools: [old, new]}
` + peer, []string{"old layer2 203.0.113.0/28 l2:old bgp:both/32/128", "new bgp 203.0.113.16/28 bgp:both/32/128"}, nil},
		{"an advertisement naming a pool that does not exist", layer2Example + `
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: typo}
spec: {ipAddressPools: [frist-pool]}
`, []string{"first-pool layer2 192.168.1.240-192.168.1.250 l2:example"},
			[]string{`L2Advertisement/typo: spec.ipAddressPools: no pool is named "frist-pool": nothing is announced for it`}},
		{"an advertisement to some peers only", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: web}
spec: {addresses: [198.51.100.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: upstream}
spec: {peers: [router, router, ruoter]}
` + peer, []string{"web bgp 198.51.100.0/28 bgp:upstream/32/128 to:router,ruoter"},
			[]string{`BGPAdvertisement/upstream: spec.peers: no BGPPeer is named "ruoter": nothing is advertised to it`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, announced(cfg)); diff != "" {
				t.Errorf("announced (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, cfg.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseResourcePeerAndProfile(t *testing.T) {
	cfg, err := Parse([]byte(`
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: old-style}
spec:
  myASN: 64500
  peerASN: 64500
  peerAddress: 2001:db8::1
  holdTime: 9s
  connectTime: 10s
  bfdProfile: fast
  enableGracefulRestart: true
  nodeSelectors:
  - matchExpressions: [{key: rack, operator: In, values: [r1]}]
  passwordSecret: {name: router-key, namespace: metallb-system}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Peers[0]
	got := fmt.Sprintf("%s %s asn %d/%d hold %s keepalive %s connect %s bfd %s gr %v sel %s key %s/%s", p.Name, p.Address, p.MyASN, p.ASN, p.HoldTime, p.KeepaliveTime, p.ConnectTime, p.BFDProfile, p.GracefulRestart, p.NodeSelectors[0], p.PasswordSecretNamespace, p.PasswordSecret)
	if want := "old-style 2001:db8::1 asn 64500/64500 hold 9s keepalive 3s connect 10s bfd fast gr true sel rack in (r1) key metallb-system/router-key"; got != want {
		t.Errorf("peer: got %q, want %q", got, want)
	}
	if b := cfg.BFDProfiles["fast"]; b == nil || b.ReceiveInterval != 100 || b.EchoInterval != 50 {
		t.Errorf("BFD profile: got %+v", b)
	}
}

func TestParseResourceDynamicASN(t *testing.T) {
	for kind, want := range map[string]uint32{"internal": 64500, "external": 0} {
		cfg, err := Parse([]byte("apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 64500, dynamicASN: " + kind + ", peerAddress: 198.51.100.1}\n"))
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if p := cfg.Peers[0]; p.ASN != want || p.DynamicASN != kind {
			t.Errorf("dynamicASN %s: ASN %d (%q), want %d", kind, p.ASN, p.DynamicASN, want)
		}
	}
}

// vrf: the same router address in two VRFs is two peers.
func TestParseResourceVRF(t *testing.T) {
	peer := func(name, vrf string) string {
		return "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: " + name + "}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.1" + vrf + "}\n"
	}
	cfg, err := Parse([]byte(peer("red", ", vrf: red") + "---\n" + peer("plain", "")))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"red", ""}, []string{cfg.Peers[0].VRF, cfg.Peers[1].VRF}); diff != "" {
		t.Errorf("VRFs (-want +got):\n%s", diff)
	}
	if _, err := Parse([]byte(peer("a", ", vrf: red") + "---\n" + peer("b", ", vrf: red"))); err == nil || !strings.Contains(err.Error(), "same peer as") {
		t.Errorf("the same peer twice in one VRF: %v", err)
	}
}

func TestParseResourceErrors(t *testing.T) {
	pool := func(spec string) string {
		return "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: " + spec + "\n"
	}
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"a typo in a field", pool("{adresses: [198.51.100.0/28]}"), []string{
			`line 4: IPAddressPool/p: spec: unknown key "adresses" (did you mean "addresses"?)`,
			`line 4: IPAddressPool/p: spec.addresses is required (e.g. addresses: [192.168.1.200-192.168.1.220])`}},
		{"a bad range", pool("{addresses: [198.51.100.9-198.51.100.1]}"), []string{
			`line 4: IPAddressPool/p: spec.addresses[0]: 198.51.100.9-198.51.100.1: start is after end`}},
		{"the same name in both sources", "address-pools:\n- {name: p, protocol: layer2, addresses: [203.0.113.0/28]}\n---\n" + pool("{addresses: [198.51.100.0/28]}"), []string{
			`line 4: IPAddressPool/p: the ConfigMap's address-pools has a pool of this name too (line 2): rename one, a name may belong to one pool only`}},
		{"ranges overlapping across the sources", "address-pools:\n- {name: a, protocol: layer2, addresses: [198.51.100.0/24]}\n---\n" + pool("{addresses: [198.51.100.10/32]}"), []string{
			`line 7: IPAddressPool/p: spec.addresses: 198.51.100.10 overlaps 198.51.100.0/24 of address-pools[0] (a) on 198.51.100.10: an address may belong to one pool only`}},
		{"a field not carried out yet", `apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: a}
spec: {serviceSelectors: [{matchLabels: {a: b}}]}
`, []string{
			`line 4: BGPAdvertisement/a: spec.serviceSelectors: not supported by this version yet: give those Services a pool of their own and an advertisement for it`}},
		{"an aggregation shorter than the pool", pool("{addresses: [198.51.100.0/28]}") + `---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: a}
spec: {aggregationLength: 24}
`, []string{
			`line 6: BGPAdvertisement/a: spec.aggregationLength: /24 is shorter than /28 of 198.51.100.0/28 in pool "p": the router would get a route to addresses outside the pool`}},
		{"a version that is not served", "apiVersion: metallb.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: p}\n", []string{
			`line 1: metallb.io/v1alpha1 IPAddressPool: version v1alpha1 is not served; use apiVersion: metallb.io/v1beta1`}},
		{"peerASN and dynamicASN", "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 64500, peerASN: 64501, dynamicASN: external, peerAddress: 198.51.100.1}\n", []string{
			`line 4: BGPPeer/r: spec: peerASN and dynamicASN exclude each other: keep one`}},
		{"a bad dynamicASN", "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 64500, dynamicASN: outside, peerAddress: 198.51.100.1}\n", []string{
			`line 4: BGPPeer/r: spec.dynamicASN: "outside": want internal (the router is in myASN) or external (any other AS, taken from its OPEN)`}},
		{"a VRF name Linux refuses", "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.1, vrf: a-name-that-is-too-long}\n", []string{
			`line 4: BGPPeer/r: spec.vrf: "a-name-that-is-too-long": a Linux device name has at most 15 bytes`}},
		{"BFD in a VRF", "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: f}\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.1, vrf: red, bfdProfile: f}\n", []string{
			`line 5: BGPPeer/r: spec.bfdProfile "f" with vrf "red": BFD in a VRF is not built yet: the BGP session runs in the VRF, its BFD session cannot; remove bfdProfile, or peer from the default VRF`}},
		{"BFD echo mode", "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: e}\nspec: {echoMode: true}\n", []string{
			`line 4: BFDProfile/e: spec.echoMode: the BFD echo function is not built: asynchronous mode detects a lost link within receive-interval x detect-multiplier; remove echoMode (and set the intervals instead)`}},
		{"a peer without its ASNs", "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {peerAddress: 198.51.100.1, holdTime: 1s}\n", []string{
			`line 4: BGPPeer/r: spec.peerASN is required`, `line 4: BGPPeer/r: spec.myASN is required`,
			`line 4: BGPPeer/r: spec.holdTime: 1s: want 0 (no keepalives) or from 3s to 18h12m15s (RFC 4271)`}},
		{"a password and a passwordSecret", "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.1, password: k, passwordSecret: {name: key}}\n", []string{
			`line 4: BGPPeer/r: spec: password and passwordSecret exclude each other: keep one`}},
		{"a passwordSecret without its name", "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.1, passwordSecret: {namespace: metallb-system}}\n", []string{
			`line 4: BGPPeer/r: spec.passwordSecret.name is required: the Secret (of type kubernetes.io/basic-auth) whose key password holds the TCP MD5 key`}},
		{"an unknown community alias", "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: {communities: [no-such]}\n", []string{
			`line 4: BGPAdvertisement/a: spec.communities[0]: "no-such": want ASN:VALUE (e.g. 64512:100), large:GLOBAL:LOCAL1:LOCAL2, or a bgp-communities alias`}},
		{"another kind of object", "apiVersion: v1\nkind: Namespace\nmetadata: {name: metallb-system}\n", []string{
			`line 1: Namespace/metallb-system is not part of a MetalLB configuration: give the v0.12 config or metallb.io resources`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("got %v, want Errors", err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitCombinedUndoesCombine(t *testing.T) {
	const v012 = "address-pools:\n- {name: old, protocol: layer2, addresses: [203.0.113.0/28]}\n"
	pool, err := ResourceDocument("metallb.io/v1beta1", KindIPAddressPool, "web", map[string]string{"tier": "front"}, map[string]any{"addresses": []any{"198.51.100.0/28"}})
	if err != nil {
		t.Fatal(err)
	}
	adv, err := ResourceDocument("metallb.io/v1beta1", KindL2Advertisement, "all", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	text, err := Combine(v012, [][]byte{pool, adv})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse([]byte(text)); err != nil {
		t.Fatalf("the combined text does not parse: %v\n%s", err, text)
	}
	gotV012, gotRes, err := SplitCombined(text)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v012, gotV012); diff != "" {
		t.Errorf("v0.12 part (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{string(pool), string(adv)}, gotRes); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if _, err := Combine("a: 1\n---\nb: 2\n", nil); err == nil {
		t.Error("a ConfigMap config of two documents was combined")
	}
}
