package integration

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/microk8s-metallb/metallb/pkg/controller"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/pkg/webhook"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// warnings collects the warnings the API server sends back.
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.got
	w.got = nil
	return out
}

// TestWebhookRefusesAtApply: the API server calls the controller's
// webhook over TLS, with the caBundle the controller wrote into the shipped
// ValidatingWebhookConfiguration itself, and an edit the controller would
// refuse is refused before it is stored, naming what is wrong (an overlap
// across the sources, a shrink or a ConfigMap edit taking a held address);
// a pool nothing announces is stored with a warning. With the controller
// stopped, the same edit goes through (failurePolicy Ignore). Against the
// real API server.
func TestWebhookRefusesAtApply(t *testing.T) {
	env := cluster.Require(t)
	admin := env.Client
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, dyn)
	ns := newNamespace(t, admin)

	// The shipped configuration, rendered for ns, calling the in-process
	// controller on loopback instead of through its Service.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vwcName := ns + "-validation"
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	for _, o := range renderedWithMonitoring(t, ns) {
		if o.GetKind() == "ValidatingWebhookConfiguration" {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &vwc); err != nil {
				t.Fatal(err)
			}
		}
	}
	if vwc.Name != vwcName || len(vwc.Webhooks) != 2 {
		t.Fatalf("the shipped webhook configuration: %q with %d webhooks", vwc.Name, len(vwc.Webhooks))
	}
	url := "https://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:") + webhook.Path
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
	}
	vwcs := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := vwcs.Create(ctx, &vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vwcs.Delete(context.Background(), vwcName, metav1.DeleteOptions{}) })

	const web = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: web}\nspec: {addresses: [%s]}"
	applyObject(t, dyn, ns, strings.Replace(web, "%s", "198.51.100.24/30", 1))
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: web}\nspec: {ipAddressPools: [web]}")
	setConfig(t, admin, ns, "address-pools:\n- {name: old, protocol: layer2, auto-assign: false, addresses: [192.0.2.20-192.0.2.21]}\n")

	cctx, stop := context.WithCancel(ctx)
	ctl := controller.New(cctx, controller.Options{Client: admin, Dynamic: dyn, Log: testLogger(t), Metrics: metrics.New(), Namespace: ns})
	done := make(chan struct{}, 2)
	go func() { _ = ctl.Run(cctx); done <- struct{}{} }()
	go func() {
		err := webhook.Run(cctx, webhook.Options{Listener: ln, Service: "metallb-webhook", Namespace: ns, Configuration: vwcName,
			Client: admin, Reviewer: ctl, Log: testLogger(t)})
		if err != nil {
			t.Errorf("webhook: %v", err)
		}
		done <- struct{}{}
	}()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			stop()
			<-done
			<-done
		}
	}
	t.Cleanup(halt)

	// Clients that show what the API server says.
	warn := &warnings{}
	wcfg := rest.CopyConfig(env.Config)
	wcfg.WarningHandler = warn
	wdyn, err := dynamic.NewForConfig(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	pools := wdyn.Resource(k8s.ResourceGVRs["IPAddressPool"]).Namespace(ns)
	create := func(text string, dryRun bool) error {
		o := metav1.CreateOptions{}
		if dryRun {
			o.DryRun = []string{metav1.DryRunAll}
		}
		_, err := pools.Create(ctx, object(t, text), o)
		return err
	}
	overlap := "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: clash}\nspec: {addresses: [192.0.2.21/32]}"
	testenv.Eventually(t, 30*time.Second, "the webhook called over TLS, with the caBundle the controller wrote", func() bool {
		err := create(overlap, true)
		return err != nil && strings.Contains(err.Error(), `admission webhook "resources.metallb.io" denied the request`)
	})
	err = create(overlap, false)
	for _, want := range []string{"the configuration would be invalid", "IPAddressPool/clash", "old"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("an overlap with the ConfigMap's pool: %v, want it to say %q", err, want)
		}
	}
	if cur, err := vwcs.Get(ctx, vwcName, metav1.GetOptions{}); err != nil || len(cur.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Errorf("no caBundle written: %v", err)
	}

	// A pool nothing announces: stored, with a warning kubectl prints.
	warn.take()
	if err := create("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lonely}\nspec: {autoAssign: false, addresses: [203.0.113.30/32]}", false); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(warn.take(), "\n"); !strings.Contains(got, "IPAddressPool/lonely is not announced") {
		t.Errorf("warnings %q, want one about the pool nothing announces", got)
	}

	// Held addresses: a shrink of the pool and an edit of the ConfigMap
	// that would take them are refused, naming the Service.
	createSvc(t, admin, ns, lbService("a"))
	createSvc(t, admin, ns, lbService("b", annotate("metallb.io/address-pool", "old")))
	waitIngress(t, admin, ns, "a", "198.51.100.24")
	waitIngress(t, admin, ns, "b", "192.0.2.20")
	shrink := []byte(`{"spec":{"addresses":["198.51.100.26/31"]}}`)
	_, err = pools.Patch(ctx, "web", types.MergePatchType, shrink, metav1.PatchOptions{})
	for _, want := range []string{ns + "/a", "annotate ipaddresspool web metallb.io/allow-address-changes=true"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a shrink under a Service: %v, want it to say %q", err, want)
		}
	}
	cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["config"] = "address-pools: []\n"
	_, err = admin.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	if err == nil || !strings.Contains(err.Error(), `admission webhook "config.metallb.io" denied the request`) || !strings.Contains(err.Error(), ns+"/b") {
		t.Errorf("a ConfigMap edit taking a held address: %v, want it refused naming %s/b", err, ns)
	}
	// Allowed on purpose: goes through.
	cm.Annotations = map[string]string{k8s.AllowChangesAnnotation: "true"}
	cm.Data["config"] = "address-pools:\n- {name: old, protocol: layer2, auto-assign: false, addresses: [192.0.2.21/32]}\n"
	if _, err := admin.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Errorf("an edit the ConfigMap allows: %v", err)
	}
	waitIngress(t, admin, ns, "b", "192.0.2.21")

	// The controller stopped: nothing is blocked (the controller judges the
	// stored edit once it runs again).
	halt()
	if _, err := pools.Patch(ctx, "web", types.MergePatchType, shrink, metav1.PatchOptions{}); err != nil {
		t.Errorf("with the controller stopped the edit is blocked: %v", err)
	}
}
