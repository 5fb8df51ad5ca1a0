package k8s

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// NodeAddrs returns a Node's addresses of the given types, in that order of
// types, skipping those that do not parse.
func NodeAddrs(n *corev1.Node, types ...corev1.NodeAddressType) []netip.Addr {
	var out []netip.Addr
	for _, t := range types {
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == t {
				out = append(out, ip)
			}
		}
	}
	return out
}
