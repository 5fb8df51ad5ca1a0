package status

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

func TestParseSessions(t *testing.T) {
	text := "198.51.100.254 up 3 bfd:up\n2001:db8::254 down 0\ngarbage\n"
	want := []SessionStatus{
		{Node: "node-a", Peer: "198.51.100.254", Up: true, Prefixes: 3, BFD: "up", Stale: true},
		{Node: "node-a", Peer: "2001:db8::254", Up: false, Prefixes: 0, Stale: true},
	}
	if diff := cmp.Diff(want, ParseSessions("node-a", text, true)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func lb(ns, name string, ips ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func ev(svc, reason, msg string, at time.Time) corev1.Event {
	ns, name, _ := strings.Cut(svc, "/")
	return corev1.Event{InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: ns, Name: name}, Reason: reason, Message: msg, LastTimestamp: metav1.NewTime(at)}
}

// The pure parts of Gather: Services with their pool and announcers,
// pending ones with a reason, pool counts (a /64 too), speakers by Lease.
func TestReportParts(t *testing.T) {
	cfg, err := config.Parse([]byte(`address-pools:
- {name: lan, protocol: layer2, addresses: [192.0.2.200-192.0.2.209]}
- {name: routed, protocol: bgp, addresses: ["2001:db8:1::/64"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	svcs := []*corev1.Service{
		lb("demo", "web", "192.0.2.200"), lb("demo", "dns", "192.0.2.200"), lb("demo", "six", "2001:db8:1::"),
		lb("demo", "waiting"), {ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "plain"}},
	}
	evs := []corev1.Event{
		ev("demo/web", "nodeAssigned", `announcing from node "node-a" with protocol "layer2"`, t0),
		ev("demo/web", "nodeAssigned", `announcing from node "node-b" with protocol "layer2"`, t0.Add(time.Minute)),
		ev("demo/six", "nodeAssigned", `announcing from node "node-b" with protocol "bgp"`, t0),
		ev("demo/six", "nodeAssigned", `announcing from node "node-a" with protocol "bgp"`, t0),
		ev("demo/waiting", "AllocationFailed", `Failed to allocate IP: pool exhausted: no free IPv4 address in pool "lan"`, t0),
	}
	got := services(svcs, evs, cfg)
	want := []ServiceStatus{
		{Service: "demo/dns", Addresses: []string{"192.0.2.200"}, Pool: "lan", Protocol: "layer2"},
		{Service: "demo/six", Addresses: []string{"2001:db8:1::"}, Pool: "routed", Protocol: "bgp", AnnouncedBy: []string{"node-a", "node-b"}},
		{Service: "demo/waiting", Pending: `Failed to allocate IP: pool exhausted: no free IPv4 address in pool "lan"`},
		{Service: "demo/web", Addresses: []string{"192.0.2.200"}, Pool: "lan", Protocol: "layer2", AnnouncedBy: []string{"node-b"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	wantPools := []PoolStatus{
		{Name: "lan", Protocol: "layer2", Size: "10", Used: 1, Free: "9"},
		{Name: "routed", Protocol: "bgp", Size: "18446744073709551616", Used: 1, Free: "18446744073709551615"},
	}
	if diff := cmp.Diff(wantPools, pools(cfg, got)); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
	holder := func(n string) *string { return &n }
	renewed := func(d time.Duration) *metav1.MicroTime { m := metav1.NewMicroTime(t0.Add(-d)); return &m }
	leases := []coordinationv1.Lease{
		{Spec: coordinationv1.LeaseSpec{HolderIdentity: holder("node-a"), RenewTime: renewed(200 * time.Millisecond)}},
		{Spec: coordinationv1.LeaseSpec{HolderIdentity: holder("node-b"), RenewTime: renewed(time.Minute)}},
	}
	wantSpk := []SpeakerStatus{{Node: "node-a", Alive: true, Renewed: "200ms ago"}, {Node: "node-b", Alive: false, Renewed: "1m0s ago"}}
	if diff := cmp.Diff(wantSpk, speakers(leases, nil, t0, 5*time.Second)); diff != "" {
		t.Errorf("speakers (-want +got):\n%s", diff)
	}
	// The gossip's view, on a live Lease, decides: node-c renewed long ago
	// (its renewals are seldom) lives, node-a, just renewed, does not.
	gossip := []coordinationv1.Lease{
		{Spec: coordinationv1.LeaseSpec{HolderIdentity: holder("node-a"), RenewTime: renewed(200 * time.Millisecond)}},
		{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{membersAnnotation: "node-b,node-c"}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: holder("node-b"), RenewTime: renewed(time.Second)}},
		{Spec: coordinationv1.LeaseSpec{HolderIdentity: holder("node-c"), RenewTime: renewed(50 * time.Second), LeaseDurationSeconds: ptr.To(int32(600))}},
		{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{membersAnnotation: "node-a,node-b,node-c"}}, // stale: the former publisher's
			Spec: coordinationv1.LeaseSpec{HolderIdentity: holder("node-d"), RenewTime: renewed(time.Minute)}},
	}
	wantGossip := []SpeakerStatus{{Node: "node-a", Renewed: "200ms ago"}, {Node: "node-b", Alive: true, Renewed: "1s ago"},
		{Node: "node-c", Alive: true, Renewed: "50s ago"}, {Node: "node-d", Renewed: "1m0s ago"}}
	if diff := cmp.Diff(wantGossip, speakers(gossip, nil, t0, 5*time.Second)); diff != "" {
		t.Errorf("speakers by the gossip (-want +got):\n%s", diff)
	}
	var b bytes.Buffer
	if err := Table(&b, &Report{Config: ConfigStatus{State: "accepted", Warnings: []string{"IPAddressPool/x is not announced"}}, Pools: wantPools, Services: got, Speakers: wantSpk}); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"CONFIG: accepted\n  warning: IPAddressPool/x is not announced\n",
		"routed  bgp       18446744073709551616  1     18446744073709551615",
		"demo/waiting  Failed to allocate IP: pool exhausted",
		"node-b  dead     1m0s ago",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, b.String())
		}
	}
}

func TestAttention(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Report
		want []string
	}{
		{"all well", Report{Config: ConfigStatus{State: "accepted"},
			Services: []ServiceStatus{{Service: "demo/web", Addresses: []string{"192.0.2.1"}}},
			Speakers: []SpeakerStatus{{Node: "a", Alive: true, Ready: "true"}},
			Sessions: []SessionStatus{{Node: "a", Peer: "192.0.2.254", Up: true}, {Node: "b", Peer: "192.0.2.254", Stale: true}}}, nil},
		{"everything wrong", Report{Config: ConfigStatus{State: "stale", Reason: "it would move 3 addresses"},
			Services: []ServiceStatus{{Service: "demo/db", Pending: "pool exhausted"}},
			Speakers: []SpeakerStatus{{Node: "a", Renewed: "2m"}, {Node: "b", Alive: true, Ready: "false"}},
			Sessions: []SessionStatus{{Node: "b", Peer: "192.0.2.254"}}},
			[]string{"the configuration is stale: it would move 3 addresses", "Service demo/db has no address: pool exhausted",
				"the speaker of node a is not alive (the other speakers see it dead, or its Lease, renewed 2m ago, ran out)", "the speaker of node b is not ready",
				"the BGP session of node b with 192.0.2.254 is down"}},
		{"a node without the image", Report{Config: ConfigStatus{State: "accepted"},
			Speakers: []SpeakerStatus{{Node: "d", Ready: "false", Waiting: "ErrImageNeverPull", Image: "localhost/microk8s-metallb:v1-abc"}}},
			[]string{"the speaker of node d cannot start: the node lacks its image localhost/microk8s-metallb:v1-abc (ErrImageNeverPull); run the enable hook again, which imports it on the nodes that lack it: sudo /var/snap/microk8s/common/addons/lab/addons/metallb/enable RANGE (or enable --image with a registry every node can pull)"}},
		{"a pool nothing announces", Report{Config: ConfigStatus{State: "accepted", Warnings: []string{"IPAddressPool/extra is not announced: ..."}}},
			[]string{"IPAddressPool/extra is not announced: ..."}},
		{"a speaker without its peer's Secret", Report{Config: ConfigStatus{State: "accepted"},
			Speakers: []SpeakerStatus{{Node: "a", Alive: true, Ready: "true", Configuration: "Invalid", Problem: "no BGP session with peer 192.0.2.254: ..."},
				{Node: "b", Alive: true, Ready: "true", Configuration: "Valid"}}},
			[]string{"the speaker of node a runs without part of the configuration: no BGP session with peer 192.0.2.254: ..."}},
		{"no configuration", Report{Config: ConfigStatus{State: "none", Reason: "no accepted configuration: is the controller running?"}},
			[]string{"no accepted configuration: is the controller running?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.r.Attention()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A speaker pod that waits for its image says why, with what it should run.
func TestSpeakerWaitingForItsImage(t *testing.T) {
	pod := corev1.Pod{Spec: corev1.PodSpec{NodeName: "node-d", Containers: []corev1.Container{{Image: "localhost/microk8s-metallb:v1-abc"}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull"}}}}}}
	got := speakers(nil, []corev1.Pod{pod}, time.Now(), time.Second)
	want := []SpeakerStatus{{Node: "node-d", Ready: "false", Version: "v1-abc", Image: "localhost/microk8s-metallb:v1-abc", Waiting: "ErrImageNeverPull"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Each speaker gets its own node's ConfigurationState; the controller's and
// one of a node without a speaker are left out.
func TestSpeakerStates(t *testing.T) {
	state := func(name, result, summary string) unstructured.Unstructured {
		return unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{"name": name},
			"status":   map[string]any{"result": result, "errorSummary": summary},
		}}
	}
	sps := []SpeakerStatus{{Node: "a"}, {Node: "b"}}
	speakerStates(sps, []unstructured.Unstructured{
		state("controller", "Invalid", "not a speaker's"), state("speaker-a", "Invalid", "no Secret"),
		state("speaker-b", "Valid", ""), state("speaker-gone", "Invalid", "no speaker there"),
	})
	want := []SpeakerStatus{{Node: "a", Configuration: "Invalid", Problem: "no Secret"}, {Node: "b", Configuration: "Valid"}}
	if diff := cmp.Diff(want, sps); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// The traffic the live speakers publish on their Leases, by Service: a
// shared address under each of its Services, a dead speaker's left out,
// an annotation that does not parse shows nothing.
func TestTrafficOf(t *testing.T) {
	lease := func(node, text string) coordinationv1.Lease {
		return coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"metallb.io/traffic": text}},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node)},
		}
	}
	leases := []coordinationv1.Lease{
		lease("node-a", "192.0.2.200 100 15000 2.0 300.0 60\n2001:db8:1:: 5 700 0.0 0.0 0\n"),
		lease("node-b", "192.0.2.201 1 60 0.1 6.0 10\n"),
		lease("node-c", "192.0.2.200 9 900 1.0 90.0 60\n"),
		lease("node-d", "garbage\n"),
	}
	svcs := []ServiceStatus{
		{Service: "demo/dns", Addresses: []string{"192.0.2.200"}},
		{Service: "demo/six", Addresses: []string{"2001:db8:1::"}},
		{Service: "demo/web", Addresses: []string{"192.0.2.200"}},
	}
	alive := map[string]bool{"node-a": true, "node-b": true, "node-d": true}
	got := trafficOf(leases, alive, svcs)
	want := []TrafficStatus{
		{Service: "demo/dns", Address: "192.0.2.200", Node: "node-a", Packets: 100, Bytes: 15000, PacketsPerSecond: 2, BytesPerSecond: 300, Window: "1m0s"},
		{Service: "demo/six", Address: "2001:db8:1::", Node: "node-a", Packets: 5, Bytes: 700},
		{Service: "demo/web", Address: "192.0.2.200", Node: "node-a", Packets: 100, Bytes: 15000, PacketsPerSecond: 2, BytesPerSecond: 300, Window: "1m0s"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	var b bytes.Buffer
	if err := Table(&b, &Report{Traffic: got}); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"SERVICE   ADDRESS       NODE    PACKETS  BYTES    RATE (LAST MINUTE)",
		"demo/dns  192.0.2.200   node-a  100      15.0 kB  300 B/s, 2 pkt/s",
		"demo/six  2001:db8:1::  node-a  5        700 B    -",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("the table lacks %q:\n%s", line, b.String())
		}
	}
}
