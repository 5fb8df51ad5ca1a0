package controller

import (
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
			if got := owned(&tc.svc, tc.class); got != tc.want {
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
	got := toRequest(svc, allocator.Request{Pool: "p", SharingKey: "k", Requested: []netip.Addr{netip.MustParseAddr("2001:db8::1")}})
	want := allocator.Service{
		Key: "ns/web", Namespace: "ns", Labels: map[string]string{"tier": "front"}, Pool: "p", SharingKey: "k",
		Requested: []netip.Addr{netip.MustParseAddr("2001:db8::1")},
		Ports:     []allocator.Port{{Protocol: "TCP", Port: 80}, {Protocol: "UDP", Port: 53}},
		Local:     true, Selector: "app=web,b=2",
		Families: []allocator.Family{allocator.IPv6, allocator.IPv4}, Policy: allocator.PreferDualStack,
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
