package integration

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/status"
)

// TestStatusCommand runs `metallb status` against the real API server with
// a controller at work: the config state, a pool's counts, an assigned
// Service and its announcing node, a pending one with its reason, an alive
// and a dead speaker; then a refused edit shows as stale with its reason.
func TestStatusCommand(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ctx := context.Background()
	ns := newNamespace(t, c)
	setConfig(t, c, ns, "address-pools:\n- {name: st, protocol: layer2, addresses: [192.0.2.150-192.0.2.153]}\n")
	runController(t, c, ns)
	createSvc(t, c, ns, lbService("web"))
	waitIngress(t, c, ns, "web", "192.0.2.150")
	createSvc(t, c, ns, lbService("lost", annotate("metallb.io/address-pool", "nope")))
	waitEvent(t, c, ns, "lost", "AllocationFailed", `the requested pool "nope" does not exist`)
	if _, err := c.CoreV1().Events(ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web.assigned"},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: ns, Name: "web"},
		Reason:         "nodeAssigned", Message: `announcing from node "node-b" with protocol "layer2"`, Type: "Normal",
		LastTimestamp: metav1.Now(), Source: corev1.EventSource{Component: "metallb-speaker"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Forgeries: from another namespace about web, naming metallb's
	// speaker as their source; in web's namespace from another source;
	// and an escape sequence in a message that does count.
	// (events.k8s.io/v1 lets an Event name an object of another namespace;
	// core/v1 refuses it.)
	other := newNamespace(t, c)
	if _, err := c.EventsV1().Events(other).Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "forged.other-namespace"}, EventTime: metav1.NewMicroTime(time.Now().Add(time.Minute)),
		Regarding: corev1.ObjectReference{Kind: "Service", Namespace: ns, Name: "web"},
		Reason:    "nodeAssigned", Note: `announcing from node "evil" with protocol "layer2"`, Type: "Normal",
		Action: "announce", ReportingController: "metallb-speaker", ReportingInstance: "metallb-speaker-evil",
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		ns, name, reason, msg, source string
	}{
		{ns, "forged.other-source", "nodeAssigned", `announcing from node "evil" with protocol "layer2"`, "kubectl"},
		{ns, "lost.escaped", "AllocationFailed", "pool \x1b[2J\x1b[31mgone", "metallb-controller"},
	} {
		svc := "web"
		if e.reason == "AllocationFailed" {
			svc = "lost"
		}
		if _, err := c.CoreV1().Events(e.ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: e.name},
			InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: ns, Name: svc},
			Reason:         e.reason, Message: e.msg, Type: "Normal",
			LastTimestamp: metav1.NewTime(time.Now().Add(time.Minute)), Source: corev1.EventSource{Component: e.source},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for node, age := range map[string]time.Duration{"node-b": 0, "node-c": time.Hour} {
		renewed := metav1.NewMicroTime(time.Now().Add(-age))
		if _, err := c.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "metallb-speaker-" + node, Labels: map[string]string{"app.kubernetes.io/component": "speaker"}},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &node, RenewTime: &renewed},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// node-b's speaker renews its Lease as a speaker does; node-c's stopped
	// an hour ago.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for rctx.Err() == nil {
			if l, err := c.CoordinationV1().Leases(ns).Get(rctx, "metallb-speaker-node-b", metav1.GetOptions{}); err == nil {
				now := metav1.NewMicroTime(time.Now())
				l.Spec.RenewTime = &now
				_, _ = c.CoordinationV1().Leases(ns).Update(rctx, l, metav1.UpdateOptions{})
			}
			time.Sleep(250 * time.Millisecond)
		}
	}()
	report := func() status.Report {
		t.Helper()
		// Exit 1: "lost" has no address and node-c's speaker is dead,
		// both of which need the operator.
		out, err := exec.Command(metallbBinary(t), "status", "-o", "json", "--kubeconfig", env.Kubeconfig, "--namespace", ns).Output()
		if code := exitCode(err); code != 1 {
			t.Fatalf("metallb status: %v (exit %d, want 1)", err, code)
		}
		var r status.Report
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return r
	}
	eventually(t, 10*time.Second, "the accepted state", func() bool { return report().Config.State == "accepted" })
	r := report()
	if len(r.Pools) != 1 || r.Pools[0] != (status.PoolStatus{Name: "st", Protocol: "layer2", Size: "4", Used: 1, Free: "3"}) {
		t.Errorf("pools: %+v", r.Pools)
	}
	var web, lost *status.ServiceStatus
	for i, s := range r.Services {
		switch s.Service {
		case ns + "/web":
			web = &r.Services[i]
		case ns + "/lost":
			lost = &r.Services[i]
		}
	}
	if web == nil || strings.Join(web.Addresses, ",") != "192.0.2.150" || web.Pool != "st" || strings.Join(web.AnnouncedBy, ",") != "node-b" {
		t.Errorf("web: %+v", web)
	}
	if lost == nil || lost.Pending != "pool \x1b[2J\x1b[31mgone" {
		t.Errorf("lost: %+v", lost)
	}
	alive := map[string]bool{}
	for _, s := range r.Speakers {
		alive[s.Node] = s.Alive
	}
	if !alive["node-b"] || alive["node-c"] {
		t.Errorf("speakers: %+v", r.Speakers)
	}

	setConfig(t, c, ns, "# emptied by mistake\n")
	eventually(t, 10*time.Second, "the stale state", func() bool {
		r := report()
		return r.Config.State == "stale" && strings.Contains(r.Config.Reason, ns+"/web [192.0.2.150]: the new config has no address pools")
	})
	cmd := exec.Command(metallbBinary(t), "status", "-n", ns, "--kubeconfig", env.Kubeconfig)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if exitCode(err) != 1 || !strings.Contains(string(out), "CONFIG: stale since ") || !strings.Contains(string(out), `pool \x1b[2J\x1b[31mgone`) || strings.Contains(string(out), "\x1b") {
		t.Errorf("table: %v\n%s", err, out)
	}
	for _, want := range []string{"need attention", "the configuration is stale: ", "Service " + ns + "/lost has no address: pool \\x1b[2J", "the speaker of node node-c is not alive"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "\x1b") {
		t.Errorf("stderr carries an escape sequence:\n%q", stderr.String())
	}
	t.Logf("metallb status:\n%s", out)
}
