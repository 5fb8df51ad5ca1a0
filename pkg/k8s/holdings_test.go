package k8s

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/allocator"
)

func TestOwned(t *testing.T) {
	class := func(s string) *string { return &s }
	now := metav1.Now()
	tests := []struct {
		name  string
		svc   corev1.Service
		class string
		want  bool
	}{
		{"plain LB", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}, "", true},
		{"ClusterIP", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}, "", false},
		{"other class", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: class("x")}}, "", false},
		{"our class", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: class("x")}}, "x", true},
		{"class-less when we serve a class", corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}, "x", false},
		{"being deleted", corev1.Service{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Owned(&tc.svc, tc.class); got != tc.want {
				t.Errorf("owned = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestToRequest(t *testing.T) {
	prefer := corev1.IPFamilyPolicyPreferDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			Selector:              map[string]string{"app": "web", "b": "2"},
			Ports:                 []corev1.ServicePort{{Port: 80}, {Port: 53, Protocol: corev1.ProtocolUDP}},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			IPFamilies:            []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
			IPFamilyPolicy:        &prefer,
		},
	}
	got := AllocatorService(svc, allocator.Request{Pool: "p", SharingKey: "k", Requested: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
		func(ns string) map[string]string { return map[string]string{"team": ns + "-team"} })
	want := allocator.Service{
		Key: "ns/web", Namespace: "ns", Labels: map[string]string{"tier": "front"}, Pool: "p", SharingKey: "k",
		NamespaceLabels: map[string]string{"team": "ns-team"},
		Requested:       []netip.Addr{netip.MustParseAddr("2001:db8::1")},
		Ports:           []allocator.Port{{Protocol: "TCP", Port: 80}, {Protocol: "UDP", Port: 53}},
		Local:           true, Selector: "app=web,b=2",
		Families: []allocator.Family{allocator.IPv6, allocator.IPv4}, Policy: allocator.PreferDualStack,
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestAddressChangeErrorNamesAFewAndCountsTheRest(t *testing.T) {
	var affected []allocator.Affected
	for i := range 12 {
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})
		affected = append(affected, allocator.Affected{Service: fmt.Sprintf("demo/s%d", i), IPs: []netip.Addr{ip}, Reason: ip.String() + " is in no pool of the new config"})
	}
	for _, tc := range []struct {
		name string
		err  *AddressChangeError
		want string
	}{
		{"the controller", &AddressChangeError{Affected: affected[:1], Namespace: "metallb-system", Name: "config"},
			"the new config would take or change the addresses of 1 Service(s); keep their addresses in a pool of the same protocol, or, to renumber them on purpose, annotate the ConfigMap (kubectl -n metallb-system annotate configmap config metallb.io/allow-address-changes=true): demo/s0 [192.0.2.10]: 192.0.2.10 is in no pool of the new config"},
		{"the installer, 12 Services", &AddressChangeError{Affected: affected, Fix: "choose a range that keeps them, or pass --allow-address-changes to renumber them"},
			"the new config would take or change the addresses of 12 Service(s); choose a range that keeps them, or pass --allow-address-changes to renumber them: " +
				"demo/s0 [192.0.2.10]: 192.0.2.10 is in no pool of the new config; demo/s1 [192.0.2.11]: 192.0.2.11 is in no pool of the new config; " +
				"demo/s2 [192.0.2.12]: 192.0.2.12 is in no pool of the new config; demo/s3 [192.0.2.13]: 192.0.2.13 is in no pool of the new config; " +
				"demo/s4 [192.0.2.14]: 192.0.2.14 is in no pool of the new config; demo/s5 [192.0.2.15]: 192.0.2.15 is in no pool of the new config; " +
				"demo/s6 [192.0.2.16]: 192.0.2.16 is in no pool of the new config; demo/s7 [192.0.2.17]: 192.0.2.17 is in no pool of the new config; " +
				"demo/s8 [192.0.2.18]: 192.0.2.18 is in no pool of the new config; demo/s9 [192.0.2.19]: 192.0.2.19 is in no pool of the new config; and 2 more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.err.Error()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
