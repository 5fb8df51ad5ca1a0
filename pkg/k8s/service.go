package k8s

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// ServesClass reports whether a Service's loadBalancerClass is the one we
// serve: equal to class, or absent when class is empty.
func ServesClass(svc *corev1.Service, class string) bool {
	if svc.Spec.LoadBalancerClass == nil {
		return class == ""
	}
	return *svc.Spec.LoadBalancerClass == class
}

// IngressIPs returns the addresses in status.loadBalancer.ingress.
func IngressIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}
