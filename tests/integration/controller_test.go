package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/allocator"
	"github.com/microk8s-metallb/metallb/pkg/controller"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// startController runs an in-process controller whose ConfigMap lives in ns.
func startController(t *testing.T, c kubernetes.Interface, ns, cfg string) {
	t.Helper()
	setConfig(t, c, ns, cfg)
	runInProcess(t, controller.Options{Client: c, Log: testLogger(t), Metrics: metrics.New(), Namespace: ns})
}

// runInProcess runs an in-process controller until the test ends.
func runInProcess(t *testing.T, o controller.Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ctl := controller.New(ctx, o)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ctl.Run(ctx); err != nil {
			t.Errorf("controller: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func setConfig(t *testing.T, c kubernetes.Interface, ns, cfg string) {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "config", Namespace: ns}, Data: map[string]string{"config": cfg}}
	_, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		_, err = c.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("set config: %v", err)
	}
}

type svcOpt func(*corev1.Service)

func lbService(name string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func annotate(k, v string) svcOpt { return func(s *corev1.Service) { s.Annotations[k] = v } }
func port(p int32) svcOpt {
	return func(s *corev1.Service) { s.Spec.Ports[0].Port = p }
}

func createSvc(t *testing.T, c kubernetes.Interface, ns string, s *corev1.Service) {
	t.Helper()
	if _, err := c.CoreV1().Services(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service %s: %v", s.Name, err)
	}
}

func ingressOf(t *testing.T, c kubernetes.Interface, ns, name string) string {
	t.Helper()
	s, err := c.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return "<error: " + err.Error() + ">"
	}
	var ips []string
	for _, i := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, i.IP)
	}
	return strings.Join(ips, ",")
}

func waitIngress(t *testing.T, c kubernetes.Interface, ns, name, want string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if got = ingressOf(t, c, ns, name); got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("service %s/%s ingress = %q, want %q", ns, name, got, want)
}

// waitEvent waits for an Event with the reason whose message contains text.
func waitEvent(t *testing.T, c kubernetes.Interface, ns, name, reason, text string) {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		seen = seen[:0]
		for _, e := range warningEvents(t, c, ns, name, reason) {
			if strings.Contains(e.Message, text) {
				return
			}
			seen = append(seen, e.Message)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s event on %s/%s containing %q; saw %q", reason, ns, name, text, seen)
}

const smallPools = `address-pools:
- {name: dev, protocol: layer2, addresses: [192.0.2.10-192.0.2.12]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/30], auto-assign: false}
- {name: v6, protocol: layer2, addresses: ["2001:db8::/64"], auto-assign: false}
- {name: dual, protocol: layer2, addresses: [203.0.113.8/31, "2001:db8:1::/64"], auto-assign: false}
`

func TestControllerAssignReleaseAndEvents(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	startController(t, c, ns, smallPools)
	ctx := context.Background()

	createSvc(t, c, ns, lbService("a"))
	waitIngress(t, c, ns, "a", "192.0.2.10")
	waitEvent(t, c, ns, "a", controller.ReasonAllocated, `Assigned IP [192.0.2.10] from pool "dev"`)
	createSvc(t, c, ns, lbService("b"))
	waitIngress(t, c, ns, "b", "192.0.2.11")

	// Release on delete: the next Service gets a's address.
	if err := c.CoreV1().Services(ns).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	createSvc(t, c, ns, lbService("c"))
	waitIngress(t, c, ns, "c", "192.0.2.10")

	// Release on type change.
	b, _ := c.CoreV1().Services(ns).Get(ctx, "b", metav1.GetOptions{})
	b.Spec.Type = corev1.ServiceTypeClusterIP
	if _, err := c.CoreV1().Services(ns).Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitIngress(t, c, ns, "b", "")
	createSvc(t, c, ns, lbService("d"))
	waitIngress(t, c, ns, "d", "192.0.2.11")

	// Fill the pool: 90% and 100% warnings, then exhaustion.
	createSvc(t, c, ns, lbService("e"))
	waitIngress(t, c, ns, "e", "192.0.2.12")
	waitEvent(t, c, ns, "e", controller.ReasonPoolFull, `pool "dev" is full: 3 of 3 addresses in use`)
	createSvc(t, c, ns, lbService("f"))
	waitEvent(t, c, ns, "f", controller.ReasonAllocFailed, `pool exhausted: no free IPv4 address in pool "dev"`)
	// Freeing an address lets the waiting Service through.
	if err := c.CoreV1().Services(ns).Delete(ctx, "e", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitIngress(t, c, ns, "f", "192.0.2.12")
}

// TestControllerShowsThePool: the pool a Service's address comes from is
// in its metallb.io/ip-allocated-from-pool annotation, written in the same
// request as the status (one resourceVersion step), and put back when
// removed by hand.
func TestControllerShowsThePool(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	ctx := context.Background()
	createSvc(t, c, ns, lbService("a", annotate(allocator.AnnotationPoolNew, "db")))
	created, err := c.CoreV1().Services(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	startController(t, c, ns, smallPools)
	waitIngress(t, c, ns, "a", "198.51.100.0")
	got, err := c.CoreV1().Services(ns).Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Annotations[allocator.AnnotationAllocatedFrom]; p != "db" {
		t.Errorf("annotation %s = %q with the address in status, want \"db\"", allocator.AnnotationAllocatedFrom, p)
	}
	if got.Generation != created.Generation {
		t.Errorf("generation %d -> %d: the spec was written", created.Generation, got.Generation)
	}
	// One write: the watch saw no version between the creation and this one.
	w, err := c.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=a", ResourceVersion: created.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	ev := <-w.ResultChan()
	w.Stop()
	if s, ok := ev.Object.(*corev1.Service); !ok || s.ResourceVersion != got.ResourceVersion {
		t.Errorf("first change after the creation: %v, want the one that holds both status and annotation (%s)", ev.Object, got.ResourceVersion)
	}

	// Removed by hand: put back.
	patch := []byte(`{"metadata":{"annotations":{"` + allocator.AnnotationAllocatedFrom + `":null}}}`)
	if _, err := c.CoreV1().Services(ns).Patch(ctx, "a", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "annotation back", func() bool {
		s, err := c.CoreV1().Services(ns).Get(ctx, "a", metav1.GetOptions{})
		return err == nil && s.Annotations[allocator.AnnotationAllocatedFrom] == "db"
	})

}

func TestControllerAnnotationsAndClasses(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	startController(t, c, ns, smallPools)
	ctx := context.Background()

	createSvc(t, c, ns, lbService("pooled", annotate("metallb.universe.tf/address-pool", "db")))
	waitIngress(t, c, ns, "pooled", "198.51.100.0")
	createSvc(t, c, ns, lbService("newpool", annotate("metallb.io/address-pool", "db")))
	waitIngress(t, c, ns, "newpool", "198.51.100.1")
	createSvc(t, c, ns, lbService("wanted", annotate("metallb.universe.tf/loadBalancerIPs", "198.51.100.3")))
	waitIngress(t, c, ns, "wanted", "198.51.100.3")

	// Sharing: same key, different ports → same IP; same port → refused.
	createSvc(t, c, ns, lbService("web", annotate("metallb.universe.tf/allow-shared-ip", "k"), annotate("metallb.universe.tf/loadBalancerIPs", "192.0.2.12")))
	waitIngress(t, c, ns, "web", "192.0.2.12")
	createSvc(t, c, ns, lbService("dns", annotate("metallb.io/allow-shared-ip", "k"), annotate("metallb.io/loadBalancerIPs", "192.0.2.12"), port(53)))
	waitIngress(t, c, ns, "dns", "192.0.2.12")
	createSvc(t, c, ns, lbService("clash", annotate("metallb.io/allow-shared-ip", "k"), annotate("metallb.io/loadBalancerIPs", "192.0.2.12")))
	waitEvent(t, c, ns, "clash", controller.ReasonAllocFailed, "requested IP taken: 192.0.2.12: held by")
	waitEvent(t, c, ns, "clash", controller.ReasonAllocFailed, "which also uses TCP/80")

	// Requested address outside every pool.
	createSvc(t, c, ns, lbService("outside", annotate("metallb.io/loadBalancerIPs", "203.0.113.200")))
	waitEvent(t, c, ns, "outside", controller.ReasonAllocFailed, "requested IP outside every pool: 203.0.113.200 is in no configured pool")

	// A bad annotation on a Service that has an IP: an Event, and it keeps the IP.
	p, _ := c.CoreV1().Services(ns).Get(ctx, "pooled", metav1.GetOptions{})
	p.Annotations["metallb.universe.tf/loadBalancerIPs"] = "not-an-ip"
	if _, err := c.CoreV1().Services(ns).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, ns, "pooled", controller.ReasonAllocFailed, `bad annotation: metallb.universe.tf/loadBalancerIPs: "not-an-ip" is not an IP address`)
	if got := ingressOf(t, c, ns, "pooled"); got != "198.51.100.0" {
		t.Errorf("after a bad annotation the Service has %q, want it to keep 198.51.100.0", got)
	}

	// Another loadBalancerClass is not ours.
	other := "example.com/other"
	createSvc(t, c, ns, lbService("classy", func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other }))
	time.Sleep(time.Second)
	if got := ingressOf(t, c, ns, "classy"); got != "" {
		t.Errorf("Service of another class got %q", got)
	}

	// Dual-stack and IPv6.
	require := corev1.IPFamilyPolicyRequireDualStack
	createSvc(t, c, ns, lbService("dual", annotate("metallb.io/address-pool", "dual"), func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &require
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	}))
	waitIngress(t, c, ns, "dual", "203.0.113.8,2001:db8:1::")
	createSvc(t, c, ns, lbService("six", annotate("metallb.io/address-pool", "v6"), func(s *corev1.Service) {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	}))
	waitIngress(t, c, ns, "six", "2001:db8::")
}

func TestControllerNoConfigYet(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl := controller.New(ctx, controller.Options{Client: c, Log: testLogger(t), Namespace: ns})
	done := make(chan struct{})
	go func() { defer close(done); _ = ctl.Run(ctx) }()
	defer func() { cancel(); <-done }()
	createSvc(t, c, ns, lbService("early"))
	time.Sleep(500 * time.Millisecond)
	if got := ingressOf(t, c, ns, "early"); got != "" {
		t.Fatalf("assigned %q without a config", got)
	}
	setConfig(t, c, ns, "address-pools:\n- {name: p, protocol: layer2, addresses: [192.0.2.70]}\n")
	waitIngress(t, c, ns, "early", "192.0.2.70")
}
