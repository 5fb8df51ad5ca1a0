package k8s

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrimService(t *testing.T) {
	big := strings.Repeat("x", 256<<10)
	class := "metallb"
	meta := func(ann map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: "web", Namespace: "demo", UID: "u1", ResourceVersion: "7", Labels: map[string]string{"app": "web"},
			Annotations: ann, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
	}
	status := corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}}
	lbSpec := corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"},
		Ports: []corev1.ServicePort{{Port: 80}}, LoadBalancerClass: &class}
	tests := []struct {
		name string
		in   *corev1.Service
		want *corev1.Service
	}{
		{
			name: "a LoadBalancer keeps its spec, labels and metallb's annotations only",
			in: &corev1.Service{ObjectMeta: meta(map[string]string{"metallb.io/address-pool": "lan", "metallb.universe.tf/allow-shared-ip": "k",
				corev1.LastAppliedConfigAnnotation: big, "example.com/junk": big, "metallb.io/unknown": big}), Spec: lbSpec, Status: status},
			want: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", UID: "u1", ResourceVersion: "7", Labels: map[string]string{"app": "web"},
				Annotations: map[string]string{"metallb.io/address-pool": "lan", "metallb.universe.tf/allow-shared-ip": "k"}}, Spec: lbSpec, Status: status},
		},
		{
			name: "a long metallb annotation becomes a placeholder",
			in:   &corev1.Service{ObjectMeta: meta(map[string]string{"metallb.io/allow-shared-ip": big}), Spec: lbSpec},
			want: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", UID: "u1", ResourceVersion: "7", Labels: map[string]string{"app": "web"},
				Annotations: map[string]string{"metallb.io/allow-shared-ip": "<262144 bytes, sha256 d509bff642a353f8: longer than 1024, ignored>"}}, Spec: lbSpec},
		},
		{
			name: "any other Service is a stub",
			in: &corev1.Service{ObjectMeta: meta(map[string]string{"example.com/junk": big}),
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}, Status: status},
			want: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", UID: "u1", ResourceVersion: "7"},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}, Status: status},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := TrimService(tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(got, TrimService(got)); diff != "" {
				t.Errorf("trimming twice changes it (-once +twice):\n%s", diff)
			}
		})
	}
}

func TestTrimEndpointSliceAndNode(t *testing.T) {
	yes, no := true, false
	node := func(n string) *string { return &n }
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: "demo", Labels: map[string]string{discoveryv1.LabelServiceName: "web", "other": "x"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.1"}, NodeName: node("a"), Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"10.1.0.2"}, NodeName: node("a"), Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"10.1.0.3"}, NodeName: node("b"), Conditions: discoveryv1.EndpointConditions{Ready: &no}},
			{Addresses: []string{"10.1.0.4"}, NodeName: node("c")}, // no condition: ready
			{Addresses: []string{"10.1.0.5"}}, // no node: not read
		},
		Ports: []discoveryv1.EndpointPort{{}},
	}
	want := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: "demo", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{NodeName: node("a"), Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{NodeName: node("b"), Conditions: discoveryv1.EndpointConditions{Ready: &no}},
			{NodeName: node("c"), Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
		},
	}
	if diff := cmp.Diff(want, TrimEndpointSlice(es)); diff != "" {
		t.Errorf("EndpointSlice (-want +got):\n%s", diff)
	}

	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"zone": "z1"}, Annotations: map[string]string{"flannel": strings.Repeat("x", 4096)}},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "a"}, {Type: corev1.NodeInternalIP, Address: "192.0.2.11"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: "False"}, {Type: corev1.NodeReady, Status: "True", LastHeartbeatTime: metav1.Now(), Message: "kubelet is posting ready status"}},
			Images:     []corev1.ContainerImage{{Names: []string{"big"}, SizeBytes: 1 << 30}},
			NodeInfo:   corev1.NodeSystemInfo{KernelVersion: "6"},
		},
	}
	wantNode := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"zone": "z1"}},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.11"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: "True"}},
		},
	}
	if diff := cmp.Diff(wantNode, TrimNode(n)); diff != "" {
		t.Errorf("Node (-want +got):\n%s", diff)
	}
}

func TestChanged(t *testing.T) {
	svc := func(rv, junk, pool string, typ corev1.ServiceType) any {
		s, _ := Trim(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", ResourceVersion: rv,
			Annotations: map[string]string{"example.com/junk": junk, "metallb.io/address-pool": pool}}, Spec: corev1.ServiceSpec{Type: typ}})
		return s
	}
	heartbeat := func(rv string, ready corev1.ConditionStatus) any {
		n, _ := Trim(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: rv},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, LastHeartbeatTime: metav1.Now()}}}})
		return n
	}
	lb, cip := corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeClusterIP
	tests := []struct {
		name     string
		old, cur any
		want     bool
	}{
		{"another annotation of a LoadBalancer", svc("1", "a", "lan", lb), svc("2", "b", "lan", lb), false},
		{"its pool", svc("1", "a", "lan", lb), svc("2", "a", "wan", lb), true},
		{"anything of a ClusterIP Service", svc("1", "a", "lan", cip), svc("2", "b", "wan", cip), false},
		{"ClusterIP to LoadBalancer", svc("1", "a", "lan", cip), svc("2", "a", "lan", lb), true},
		{"a Node's heartbeat", heartbeat("1", "True"), heartbeat("2", "True"), false},
		{"a Node no longer ready", heartbeat("1", "True"), heartbeat("2", "False"), true},
		{"an object of another kind", &corev1.Pod{}, &corev1.Pod{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Changed(tc.old, tc.cur); got != tc.want {
				t.Errorf("Changed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPageOptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in, want metav1.ListOptions
	}{
		{"first list: any version becomes the most recent, in pages",
			metav1.ListOptions{ResourceVersion: "0", Limit: 500},
			metav1.ListOptions{Limit: ListPageSize}},
		{"a re-list from a known version keeps it",
			metav1.ListOptions{ResourceVersion: "42"},
			metav1.ListOptions{ResourceVersion: "42", Limit: ListPageSize}},
		{"a smaller page stays",
			metav1.ListOptions{Limit: 10, Continue: "abc"},
			metav1.ListOptions{Limit: 10, Continue: "abc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, pageOptions(tc.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
