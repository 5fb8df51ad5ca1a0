package controller

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/microk8s-metallb/metallb/pkg/allocator"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// owned reports whether the Service is ours: type LoadBalancer, and a
// loadBalancerClass equal to class (none when class is empty).
func owned(svc *corev1.Service, class string) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.DeletionTimestamp == nil && k8s.ServesClass(svc, class)
}

// toRequest turns a Service into the allocator's view of it.
func toRequest(svc *corev1.Service, req allocator.Request) allocator.Service {
	s := allocator.Service{
		Key:        svc.Namespace + "/" + svc.Name,
		Namespace:  svc.Namespace,
		Labels:     svc.Labels,
		Pool:       req.Pool,
		Requested:  req.Requested,
		SharingKey: req.SharingKey,
		Local:      svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		Selector:   labels.SelectorFromSet(svc.Spec.Selector).String(),
	}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		s.Ports = append(s.Ports, allocator.Port{Protocol: proto, Port: p.Port})
	}
	for _, f := range svc.Spec.IPFamilies {
		if f == corev1.IPv6Protocol {
			s.Families = append(s.Families, allocator.IPv6)
		} else {
			s.Families = append(s.Families, allocator.IPv4)
		}
	}
	if svc.Spec.IPFamilyPolicy != nil {
		s.Policy = allocator.FamilyPolicy(*svc.Spec.IPFamilyPolicy)
	}
	return s
}

func ingressFor(ips []netip.Addr) []corev1.LoadBalancerIngress {
	vip := corev1.LoadBalancerIPModeVIP
	out := make([]corev1.LoadBalancerIngress, len(ips)) // empty, not nil: the patch must clear the list
	for i, ip := range ips {
		out[i] = corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip}
	}
	return out
}

func ipList(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

func sameIPs(a, b []netip.Addr) bool { return slices.Equal(a, b) }

// trimService drops what the controller never reads from cached Services
// (managed fields, the last-applied annotation), which is most of their size.
func trimService(obj any) (any, error) {
	if s, ok := obj.(*corev1.Service); ok {
		s.ManagedFields = nil
		delete(s.Annotations, corev1.LastAppliedConfigAnnotation)
	}
	return obj, nil
}
