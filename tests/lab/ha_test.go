package lab

import (
	"context"
	"net/netip"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/election"
)

// TestLayer2OverKine runs the lab on a MicroK8s-HA-like datastore: two API
// servers, each on its own kine over one SQLite file, so that a write
// through one reaches the other's watchers only at kine's next poll (up to
// 1 s). The controller and node-a's speaker use the first, node-b's and
// node-c's the second. Over a quiet window (20 s, METALLB_HA_SECONDS to
// change) nothing moves: 0 owner changes, 0 probes unanswered or answered
// by two MACs. Then the owner is killed (the next one answers, alone) and
// restarted (it takes the address back with no second MAC).
func TestLayer2OverKine(t *testing.T) {
	window := time.Duration(envInt("METALLB_HA_SECONDS", 20)) * time.Second
	cl := startCluster(t, withHA(true))
	cl.addBackend(t, "web-0", "web", "node-a")
	// Created through the second API server; the controller, on the first,
	// sees it at kine's next poll.
	ctx := context.Background()
	if _, err := cl.env.Client2.CoreV1().Services("demo").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 8080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ipStr := waitServiceIP(t, cl.c, "demo", "web", 20*time.Second)
	ip := netip.MustParseAddr(ipStr)
	owner := election.Owner(ip, Nodes)
	waitOneMAC(t, ipStr, cl.MACs[owner], 20*time.Second)

	pctx, stop := context.WithTimeout(ctx, window)
	defer stop()
	rs := <-probeARP(pctx, t, ip, 100*time.Millisecond)
	total, lost, dual := countProbes(rs, time.Time{}, time.Now())
	changes := 0
	for _, r := range rs {
		if len(r.macs) == 1 && !r.macs[cl.MACs[owner]] {
			changes++
		}
	}
	t.Logf("%v quiet on two API servers over kine: %d probes, %d unanswered, %d answered by two MACs, %d answered by another node",
		window, total, lost, dual, changes)
	if lost+dual+changes > 0 {
		t.Fatalf("the address moved or flickered while nothing happened")
	}

	next := nextOwner(ip)
	killed := time.Now()
	_ = syscall.Kill(-cl.speakers[owner].Process.Pid, syscall.SIGKILL)
	_ = cl.speakers[owner].Wait()
	waitOneMAC(t, ipStr, cl.MACs[next], 10*time.Second)
	t.Logf("%s killed: %s answers alone (seen by a 2-request arping %v after the kill)", owner, next, time.Since(killed).Round(100*time.Millisecond))

	pctx, stop = context.WithCancel(ctx)
	results := probeARP(pctx, t, ip, 100*time.Millisecond)
	restart := time.Now()
	cl.startSpeaker(t, owner)
	waitOneMAC(t, ipStr, cl.MACs[owner], 20*time.Second)
	time.Sleep(time.Second)
	stop()
	rs = <-results
	total, lost, dual = countProbes(rs, restart, time.Now())
	t.Logf("failback to %s: %d probes, %d unanswered, %d answered by two MACs", owner, total, lost, dual)
	if dual > 0 || lost > 1 {
		t.Fatalf("failback: %d dual-MAC probes, %d unanswered; want none and at most one", dual, lost)
	}
}
