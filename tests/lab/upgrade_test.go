package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// TestUpgradeKeepsAddresses runs the enable hook again with a newer binary
// (its image tag changes): the workloads roll (the stand-in kubelet restarts
// the controller and every speaker on the new generation), enable's wait
// completes, and no Service's address changes, watched throughout.
func TestUpgradeKeepsAddresses(t *testing.T) {
	sc := startSnapCluster(t)
	ctx := context.Background()
	defer sc.kubelet(t, true)()

	if r := sc.run(t, nil, "enable", "198.51.100.200-198.51.100.210"); r.code != 0 {
		t.Fatalf("enable: exit %d", r.code)
	}
	if _, err := sc.c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("svc%d", i)
		before[name] = lbAddress(t, sc, name)
	}
	t.Logf("addresses before the upgrade: %v", before)
	checkSecureMetrics(t, sc)

	// Watch every change of their status through the upgrade.
	w, err := sc.c.CoreV1().Services("demo").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var changes []string
	go func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type != watch.Modified {
				continue
			}
			if want, old := before[s.Name]; old && ingress(s) != want {
				mu.Lock()
				changes = append(changes, fmt.Sprintf("%s: %s → %q", s.Name, want, ingress(s)))
				mu.Unlock()
			}
		}
	}()
	defer w.Stop()

	d, err := sc.c.AppsV1().Deployments("metallb-system").Get(ctx, "metallb-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldImage := d.Spec.Template.Spec.Containers[0].Image
	// An earlier version ran its workloads under upstream's names: the
	// upgrade deletes them (foreground, through the real garbage
	// collector) before it applies their successors.
	retired := earlierWorkloads(t, sc)
	newer := newerBinary(t, sc.bin)
	cmd := sc.snap.Hook(ctx, sc.Root, "enable", []string{"METALLB_BIN=" + newer}, "198.51.100.200-198.51.100.210")
	out, err := cmd.CombinedOutput()
	t.Logf("$ microk8s enable metallb (newer binary)\n%s", out)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	for _, want := range append(retired, "Deployment metallb-system/metallb-controller configured", "DaemonSet metallb-system/metallb-speaker configured", "controller Available, speaker rolled out") {
		if !strings.Contains(string(out), want) {
			t.Errorf("the upgrade did not say %q", want)
		}
	}
	if _, err := sc.c.AppsV1().Deployments("metallb-system").Get(ctx, "controller", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the earlier Deployment controller is still there: %v", err)
	}
	if _, err := sc.c.AppsV1().DaemonSets("metallb-system").Get(ctx, "speaker", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the earlier DaemonSet speaker is still there: %v", err)
	}
	d, err = sc.c.AppsV1().Deployments("metallb-system").Get(ctx, "metallb-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img == oldImage {
		t.Errorf("the Deployment still runs %s", img)
	}
	// Barrier: a Service created after the roll gets the next address from
	// the restarted controller.
	if got := lbAddress(t, sc, "after"); got != "198.51.100.203" {
		t.Errorf("after the upgrade a new Service got %q, want 198.51.100.203", got)
	}
	for name, want := range before {
		s, err := sc.c.CoreV1().Services("demo").Get(ctx, name, metav1.GetOptions{})
		if err != nil || ingress(s) != want {
			t.Errorf("%s has %q after the upgrade, want %s (%v)", name, ingress(s), want, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) > 0 {
		t.Errorf("address changes during the upgrade: %v", changes)
	}
	t.Logf("address changes during the upgrade: %d", len(changes))
}

// earlierWorkloads creates a Deployment controller and a DaemonSet speaker
// labelled as ours, as an earlier version named them (their own selector,
// so that they do not adopt the current pods), and returns the lines the
// upgrade must print about them.
func earlierWorkloads(t *testing.T, sc *snapCluster) []string {
	t.Helper()
	ctx := context.Background()
	apps := sc.c.AppsV1().Deployments("metallb-system")
	d, err := apps.Get(ctx, "metallb-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{"app.kubernetes.io/name": "metallb", "earlier": "controller"}
	old := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "controller", Labels: d.Labels},
		Spec: *d.Spec.DeepCopy()}
	old.Spec.Selector = &metav1.LabelSelector{MatchLabels: sel}
	old.Spec.Template.Labels = sel
	if _, err := apps.Create(ctx, old, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ds, err := sc.c.AppsV1().DaemonSets("metallb-system").Get(ctx, "metallb-speaker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sel = map[string]string{"app.kubernetes.io/name": "metallb", "earlier": "speaker"}
	oldDS := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "speaker", Labels: ds.Labels}, Spec: *ds.Spec.DeepCopy()}
	oldDS.Spec.Selector = &metav1.LabelSelector{MatchLabels: sel}
	oldDS.Spec.Template.Labels = sel
	if _, err := sc.c.AppsV1().DaemonSets("metallb-system").Create(ctx, oldDS, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return []string{"Deployment metallb-system/controller is an earlier version's: deleting it for its successor",
		"DaemonSet metallb-system/speaker is an earlier version's: deleting it for its successor"}
}

// lbAddress creates a LoadBalancer Service in demo and waits for its address.
func lbAddress(t *testing.T, sc *snapCluster, name string) string {
	t.Helper()
	ctx := context.Background()
	_, err := sc.c.CoreV1().Services("demo").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s, err := sc.c.CoreV1().Services("demo").Get(ctx, name, metav1.GetOptions{})
		if err == nil && ingress(s) != "" {
			return ingress(s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s got no address", name)
	return ""
}

func ingress(s *corev1.Service) string {
	var ips []string
	for _, i := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, i.IP)
	}
	return strings.Join(ips, ",")
}

// newerBinary is a copy of bin with bytes appended: it runs the same, but
// its image tag (from its digest) differs, as a newer release's would.
func newerBinary(t *testing.T, bin string) string {
	t.Helper()
	src, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := bin + ".newer"
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\nnewer build %d\n", time.Now().UnixNano())
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dst) })
	return dst
}

// checkSecureMetrics: the speakers run with the shipped flags, so from the
// LAN (the client) /metrics answers only over HTTPS and only to a token
// allowed to get it, and the probes' port tells only ok.
func checkSecureMetrics(t *testing.T, sc *snapCluster) {
	t.Helper()
	addr := NodeAddr("node-a") + ":7473" // node-a's speaker
	got := map[string]string{}
	for name, token := range map[string]string{"no token": "", "bad token": "nope", "admin token": sc.env.Config.BearerToken} {
		body, err := HTTPSGet("client", addr, "/metrics", token)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		status, _, _ := strings.Cut(body, "\r\n")
		if strings.Contains(body, "metallb_speaker_members") {
			status += " with metrics"
		}
		got[name] = status
	}
	plain, _ := HTTPGet("client", addr, "/metrics")
	got["plain HTTP"], _, _ = strings.Cut(plain, "\r\n")
	ready, _ := HTTPGet("client", NodeAddr("node-a")+":7474", "/readyz")
	got["readyz"], _, _ = strings.Cut(ready, "\r\n")
	want := map[string]string{
		"no token": "HTTP/1.0 401 Unauthorized", "bad token": "HTTP/1.0 401 Unauthorized",
		"admin token": "HTTP/1.0 200 OK with metrics", "plain HTTP": "HTTP/1.0 400 Bad Request", "readyz": "HTTP/1.0 200 OK",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics and health from the LAN (-want +got):\n%s", diff)
	}
}
