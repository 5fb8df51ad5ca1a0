package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/election"
)

const labConfig = `address-pools:
- name: lab
  protocol: layer2
  addresses: [198.51.100.200-198.51.100.210, "2001:db8::200-2001:db8::210"]
`

func TestLayer2ARPAndTCP(t *testing.T) {
	cl := startCluster(t)
	cl.addBackend(t, "web-0", "web", "node-b")
	ip := cl.createService(t, "web", "web", false)
	DeliverVIP(t, ip)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	t.Logf("service web got %s; elected owner %s (MAC %s)", ip, owner, cl.MACs[owner])
	waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)

	// Ten more rounds: never a second MAC.
	macs, out := Arping(t, context.Background(), ip, 10)
	if len(macs) != 1 || macs[cl.MACs[owner]] == 0 {
		t.Fatalf("arping: %v, want only %s\n%s", macs, cl.MACs[owner], out)
	}
	reply, err := Dial("client", ip+":8080", 3*time.Second)
	if err != nil || reply != owner {
		t.Fatalf("TCP to %s:8080 answered %q (%v), want the announcing node %s", ip, reply, err, owner)
	}

	// The owner says so: an Event and its metrics.
	wantEvent := fmt.Sprintf("announcing from node %q with protocol %q", owner, "layer2")
	evs, _ := cl.c.CoreV1().Events("demo").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=web,reason=nodeAssigned"})
	if len(evs.Items) != 1 || evs.Items[0].Message != wantEvent {
		t.Errorf("nodeAssigned events: %+v, want one %q", evs.Items, wantEvent)
	}
	ownerAddr := NodeAddr(owner)
	body, err := HTTPGet("client", ownerAddr+":7473", "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{
		fmt.Sprintf(`metallb_speaker_announced{ip=%q,node=%q,protocol="layer2",service="demo/web"} 1`, ip, owner),
		fmt.Sprintf(`metallb_layer2_requests_received{ip=%q}`, ip), fmt.Sprintf(`metallb_layer2_responses_sent{ip=%q}`, ip),
		fmt.Sprintf(`metallb_layer2_gratuitous_sent{ip=%q}`, ip),
		"metallb_k8s_client_config_loaded_bool 1",
	} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics of %s lack %q", owner, m)
		}
	}
	if ready, _ := HTTPGet("client", ownerAddr+":7473", "/readyz"); !strings.Contains(ready, "200 OK") {
		t.Errorf("/readyz: %q", ready)
	}

	// Service deleted: no reply within a second.
	if err := cl.c.CoreV1().Services("demo").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if macs, out := Arping(t, context.Background(), ip, 2); len(macs) != 0 {
		t.Fatalf("still answered 1 s after the Service was deleted: %v\n%s", macs, out)
	}
}

func TestLayer2LocalFollowsEndpoint(t *testing.T) {
	cl := startCluster(t)
	cl.addBackend(t, "db-0", "db", "node-c")
	ip := cl.createService(t, "db", "db", true)
	waitOneMAC(t, ip, cl.MACs["node-c"], 20*time.Second)
	// The endpoint moves: so does the announcement.
	if err := cl.c.CoreV1().Pods("demo").Delete(context.Background(), "db-0", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	cl.addBackend(t, "db-1", "db", "node-a")
	waitOneMAC(t, ip, cl.MACs["node-a"], 20*time.Second)
}

func TestLayer2SharedIPSameNode(t *testing.T) {
	cl := startCluster(t)
	cl.addBackend(t, "web-0", "web", "node-a")
	ctx := context.Background()
	var ips []string
	for i, name := range []string{"http", "https"} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"metallb.universe.tf/allow-shared-ip": "web"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Port: int32(80 + i)}}},
		}
		if _, err := cl.c.CoreV1().Services("demo").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(ips) < 2 && time.Now().Before(deadline) {
		ips = ips[:0]
		for _, name := range []string{"http", "https"} {
			if s, err := cl.c.CoreV1().Services("demo").Get(ctx, name, metav1.GetOptions{}); err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
				ips = append(ips, s.Status.LoadBalancer.Ingress[0].IP)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(ips) != 2 || ips[0] != ips[1] {
		t.Fatalf("shared services got %v, want one shared IP", ips)
	}
	owner := election.Owner(netip.MustParseAddr(ips[0]), Nodes)
	waitOneMAC(t, ips[0], cl.MACs[owner], 20*time.Second)
}

func TestLayer2ConflictEvent(t *testing.T) {
	cl := startCluster(t)
	cl.addBackend(t, "web-0", "web", "node-a")
	ip := cl.createService(t, "web", "web", false)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)
	w := newARPProbe(t, netip.MustParseAddr(ip))
	w.reset()
	// A misconfigured host on the LAN takes the same address and announces it.
	if out, err := Exec(context.Background(), "client", "ip", "addr", "add", ip+"/24", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := Exec(context.Background(), "client", "arping", "-U", "-c", "3", "-I", "eth0", ip).CombinedOutput(); err != nil {
		t.Fatalf("arping -U: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		evs, _ := cl.c.CoreV1().Events("demo").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=web,reason=IPConflict"})
		for _, e := range evs.Items {
			if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, cl.MACs["client"]) {
				t.Logf("event: %s", e.Message)
				// The rightful owner said it again, for the clients that
				// believed the other host.
				if _, ok := w.seen(cl.MACs[owner]); !ok {
					t.Errorf("the owner %s did not re-assert %s after the conflict", owner, ip)
				}
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no IPConflict Warning naming the client's MAC %s", cl.MACs["client"])
}

// TestLayer2NDP uses the client's own kernel as the NDP client: a TCP
// connection to [VIP]:port makes it solicit the address, and its neighbour
// table must then hold the elected node's MAC.
func TestLayer2NDP(t *testing.T) {
	cl := startCluster(t)
	cl.addBackend(t, "web-0", "web", "node-a")
	ip := cl.createService(t, "web6", "web", false, corev1.IPv6Protocol)
	DeliverVIP(t, ip)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	t.Logf("service web6 got %s; elected owner %s (MAC %s)", ip, owner, cl.MACs[owner])
	waitNDP(t, cl, ip, owner, 20*time.Second)
}

// TestLayer2PartitionedSpeakerStops cuts the announcing node off from the
// other speakers and from the API server (it stays on the LAN, where the
// client still reaches it): another node takes over, and the partitioned
// one withdraws, so after the detection time exactly one MAC answers. Cut
// off from the API server only, it keeps its addresses (the speakers still
// see each other: nothing moves).
func TestLayer2PartitionedSpeakerStops(t *testing.T) {
	cl := startCluster(t)
	cl.addBackend(t, "web-0", "web", "node-a")
	ip := cl.createService(t, "web", "web", false)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)
	next := nextOwner(netip.MustParseAddr(ip))
	// A blackhole route to the control plane's address: the node still
	// talks to the client and the other speakers, but not to the API
	// server. Nothing moves.
	blackhole := func(addr string) {
		t.Helper()
		if out, err := Exec(context.Background(), owner, "ip", "route", "add", "blackhole", addr+"/32").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	blackhole("198.51.100.1")
	// Ten times the detection time of a dead speaker, and then some.
	holdsOneMAC(t, ip, cl.MACs[owner], 3*time.Second, "cut off from the API server only")
	// And from the other speakers.
	for _, n := range Nodes {
		if n != owner {
			blackhole(NodeAddr(n))
		}
	}
	cut := time.Now()
	waitOneMAC(t, ip, cl.MACs[next], 10*time.Second)
	t.Logf("%s partitioned; only %s answers after %v", owner, next, time.Since(cut).Round(100*time.Millisecond))
	// And it stays that way.
	if macs, out := Arping(t, context.Background(), ip, 5); len(macs) != 1 || macs[cl.MACs[next]] == 0 {
		t.Fatalf("after the partition: %v, want only %s\n%s", macs, cl.MACs[next], out)
	}
}

// TestLayer2APIServerOutageKeepsTraffic cuts every node off from the API
// server at once (as when the control plane restarts): nobody can take
// over, so the announcing node keeps answering, alone.
func TestLayer2APIServerOutageKeepsTraffic(t *testing.T) {
	cl := startCluster(t)
	cl.addBackend(t, "web-0", "web", "node-a")
	ip := cl.createService(t, "web", "web", false)
	DeliverVIP(t, ip)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)
	for _, n := range Nodes {
		if out, err := Exec(context.Background(), n, "ip", "route", "add", "blackhole", "198.51.100.1/32").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	holdsOneMAC(t, ip, cl.MACs[owner], 4*time.Second, "during the API outage") // past three liveness timeouts
	if reply, err := Dial("client", ip+":8080", 2*time.Second); err != nil || reply != owner {
		t.Fatalf("TCP during the API outage: %q, %v", reply, err)
	}
	// The API server comes back: still exactly the same owner.
	for _, n := range Nodes {
		_ = Exec(context.Background(), n, "ip", "route", "del", "blackhole", "198.51.100.1/32").Run()
	}
	holdsOneMAC(t, ip, cl.MACs[owner], 3*time.Second, "after the outage")
}
