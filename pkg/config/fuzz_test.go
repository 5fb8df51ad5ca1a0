package config

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, always returns either a config or
// an Errors list, and that every error has a message.
func FuzzParse(f *testing.F) {
	f.Add([]byte(everyKey))
	f.Add([]byte("address-pools:\n- name: default\n  protocol: layer2\n  addresses: [192.168.1.200-192.168.1.220]\n"))
	f.Add([]byte("peers: [{peer-address: 198.51.100.1, peer-asn: 1, my-asn: 2, hold-time: 3s}]\n"))
	f.Add([]byte("address-pools: [\n"))
	f.Add([]byte("bgp-communities: {a: 'large:1:2:3'}\n"))
	f.Add([]byte(layer2Example))
	f.Add([]byte("apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: {communities: [x], aggregationLength: 24}\n---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config and nil error")
			}
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error %T %v is not a non-empty Errors", err, err)
		}
		for _, e := range es {
			if e.Msg == "" {
				t.Fatal("empty error message")
			}
		}
	})
}
