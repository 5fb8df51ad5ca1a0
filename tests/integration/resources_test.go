package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/controller"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// startResourceController runs an in-process controller that reads the
// metallb.io resources of ns beside its ConfigMap (cfg; "" for none).
func startResourceController(t *testing.T, c kubernetes.Interface, dyn dynamic.Interface, ns, cfg string) {
	t.Helper()
	if cfg != "" {
		setConfig(t, c, ns, cfg)
	}
	runInProcess(t, controller.Options{Client: c, Dynamic: dyn, Log: testLogger(t), Metrics: metrics.New(), Namespace: ns})
}

// webPool is IPAddressPool web, not auto-assigned, with addresses %s.
const webPool = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: web}\nspec: {autoAssign: false, addresses: [%s]}\n"

// startTwoSources runs the real controller on both sources in a new
// namespace: the ConfigMap's pool old (192.0.2.10-11) and IPAddressPool
// web (198.51.100.10-11) with an L2Advertisement of every pool; Service a
// holds 198.51.100.10 from web, b 192.0.2.10 from old.
func startTwoSources(t *testing.T) (dynamic.Interface, string) {
	t.Helper()
	env := cluster.Require(t)
	c := env.Client
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, dyn)
	ns := newNamespace(t, c)
	applyObject(t, dyn, ns, strings.Replace(webPool, "%s", "198.51.100.10-198.51.100.11", 1))
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}")
	startResourceController(t, c, dyn, ns, "address-pools:\n- {name: old, protocol: layer2, addresses: [192.0.2.10-192.0.2.11]}\n")
	createSvc(t, c, ns, lbService("a", annotate("metallb.io/address-pool", "web")))
	createSvc(t, c, ns, lbService("b"))
	waitIngress(t, c, ns, "a", "198.51.100.10")
	waitIngress(t, c, ns, "b", "192.0.2.10")
	return dyn, ns
}

// applyObject creates or replaces one metallb.io object in ns.
func applyObject(t *testing.T, dyn dynamic.Interface, ns, text string) {
	t.Helper()
	u := object(t, text)
	gvr := k8s.ResourceGVRs[u.GetKind()]
	gvr.Version = strings.TrimPrefix(u.GetAPIVersion(), "metallb.io/")
	r := dyn.Resource(gvr).Namespace(ns)
	ctx := context.Background()
	if old, err := r.Get(ctx, u.GetName(), metav1.GetOptions{}); err == nil {
		u.SetResourceVersion(old.GetResourceVersion())
		if _, err := r.Update(ctx, u, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("update %s: %v", u.GetName(), err)
		}
		return
	}
	if _, err := r.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatalf("create %s: %v", u.GetName(), err)
	}
}

func acceptedText(t *testing.T, c kubernetes.Interface, ns string) string {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), k8s.AcceptedName("config"), metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return cm.Data["config"]
}

// TestControllerReadsResources: the controller assigns from IPAddressPools
// beside the ConfigMap's pools, keeps both in its accepted copy, and
// refuses what would take an address a Service holds (a pool shrunk or
// deleted) or break a rule across the sources (a name in both), keeping
// the last accepted configuration; once the Service is gone, the deletion
// goes through. Against the real API server.
func TestControllerReadsResources(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ctx := context.Background()
	dyn, ns := startTwoSources(t)
	if got := acceptedText(t, c, ns); !strings.Contains(got, "kind: IPAddressPool") || !strings.Contains(got, "name: old") {
		t.Errorf("the accepted copy lacks a source:\n%s", got)
	}

	// Shrunk under a Service: refused, the address stays.
	applyObject(t, dyn, ns, strings.Replace(webPool, "%s", "198.51.100.20/32", 1))
	waitEvent(t, c, ns, "config", k8s.ReasonInvalid, ns+"/a")
	// Deleted under a Service: refused too.
	if err := dyn.Resource(k8s.ResourceGVRs["IPAddressPool"]).Namespace(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// A name in both sources: refused, naming the object.
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: old}\nspec: {addresses: [203.0.113.0/30]}")
	waitEvent(t, c, ns, "config", k8s.ReasonInvalid, "IPAddressPool/old: the ConfigMap's address-pools has a pool of this name too")
	// ... and on the object itself, where kubectl describe shows it.
	waitEvent(t, c, ns, "old", k8s.ReasonInvalid, "this object makes the configuration invalid (")
	waitIngress(t, c, ns, "a", "198.51.100.10")
	if got := acceptedText(t, c, ns); !strings.Contains(got, "198.51.100.10-198.51.100.11") {
		t.Errorf("the accepted copy lost the pool in use:\n%s", got)
	}

	// Once the name clash is gone and the Service released, the deletion
	// of its pool is accepted.
	if err := dyn.Resource(k8s.ResourceGVRs["IPAddressPool"]).Namespace(ns).Delete(ctx, "old", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Services(ns).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "the pool's deletion accepted", func() bool {
		got := acceptedText(t, c, ns)
		return got != "" && !strings.Contains(got, "kind: IPAddressPool")
	})
	waitIngress(t, c, ns, "b", "192.0.2.10")
}

// TestControllerResourcesAlone: with no ConfigMap at all (how MetalLB
// v0.13+ and MicroK8s's core addon are configured), the resources are the
// configuration.
func TestControllerResourcesAlone(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, dyn)
	ns := newNamespace(t, c)
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: default-addresspool}\nspec: {addresses: [203.0.113.40-203.0.113.41]}")
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: default-advertise-all-pools}")
	startResourceController(t, c, dyn, ns, "")
	createSvc(t, c, ns, lbService("a"))
	waitIngress(t, c, ns, "a", "203.0.113.40")

	// A pool no advertisement selects: assigned from, announced by nobody,
	// and the pool says so.
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: default-advertise-all-pools}\nspec: {ipAddressPools: [default-addresspool]}")
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lonely}\nspec: {addresses: [203.0.113.50/32], autoAssign: false}")
	waitEvent(t, c, ns, "lonely", k8s.ReasonNotAnnounced, "no L2Advertisement or BGPAdvertisement selects this pool")
	createSvc(t, c, ns, lbService("b", annotate("metallb.io/address-pool", "lonely")))
	waitIngress(t, c, ns, "b", "203.0.113.50")
}

// TestResourceStatus: with only the shipped Role's rights, the controller
// shows each IPAddressPool's use per family in its status and its verdict
// in ConfigurationState "controller" (Invalid with the reason and the
// Services, Valid again after), and writes a pool's status only when it
// changes. Against the real API server.
func TestResourceStatus(t *testing.T) {
	env := cluster.Require(t)
	admin := env.Client
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, dyn)
	ns := newNamespace(t, admin)
	applyShippedRBAC(t, ns)
	// The installer creates the accepted copy; the controller may only update it.
	if _, err := k8s.EnsureAccepted(ctx, admin, ns, "config", ""); err != nil {
		t.Fatal(err)
	}
	const web = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: web}\nspec: {addresses: [%s]}"
	applyObject(t, dyn, ns, strings.Replace(web, "%s", "198.51.100.8/30, 2001:db8::10-2001:db8::13", 1))
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: other}\nspec: {autoAssign: false, addresses: [203.0.113.1/32]}")
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}")
	setConfig(t, admin, ns, "# the pools are resources\n")
	runInProcess(t, controller.Options{Client: as(t, ns, "controller", ""), Dynamic: asDynamic(t, ns, "controller"),
		Log: testLogger(t), Metrics: metrics.New(), Namespace: ns})

	pools := dyn.Resource(k8s.ResourceGVRs["IPAddressPool"]).Namespace(ns)
	poolStatus := func(name string) (map[string]any, string) {
		u, err := pools.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st, _, _ := unstructured.NestedMap(u.Object, "status")
		return st, u.GetResourceVersion()
	}
	waitPool := func(name string, want map[string]any) string {
		t.Helper()
		var got map[string]any
		var rv string
		testenv.Eventually(t, 15*time.Second, "IPAddressPool "+name+"'s status", func() bool {
			got, rv = poolStatus(name)
			return cmp.Diff(want, got) == ""
		})
		return rv
	}
	states := dyn.Resource(k8s.ConfigurationStateGVR).Namespace(ns)
	waitState := func(result, summary string) {
		t.Helper()
		testenv.Eventually(t, 15*time.Second, "ConfigurationState controller "+result, func() bool {
			u, err := states.Get(ctx, "controller", metav1.GetOptions{})
			if err != nil {
				return false
			}
			r, _, _ := unstructured.NestedString(u.Object, "status", "result")
			s, _, _ := unstructured.NestedString(u.Object, "status", "errorSummary")
			return r == result && strings.Contains(s, summary) && (summary != "" || s == "")
		})
	}
	st := func(a4, a6, v4, v6 int64) map[string]any {
		return map[string]any{"assignedIPv4": a4, "assignedIPv6": a6, "availableIPv4": v4, "availableIPv6": v6}
	}

	waitState(k8s.ResultValid, "")
	waitPool("web", st(0, 0, 4, 4))
	createSvc(t, admin, ns, lbService("a"))
	waitIngress(t, admin, ns, "a", "198.51.100.8")
	createSvc(t, admin, ns, lbService("b", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicyRequireDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	}))
	webRV := waitPool("web", st(2, 1, 2, 3))
	// The same round adds the in-use finalizer after the status: that
	// write is a change, so the version to compare with is the one after it.
	testenv.Eventually(t, 15*time.Second, "web carries the finalizer", func() bool {
		u, err := pools.Get(ctx, "web", metav1.GetOptions{})
		if err == nil && slices.Contains(u.GetFinalizers(), k8s.PoolFinalizer) {
			webRV = u.GetResourceVersion()
			return true
		}
		return false
	})

	// Another pool's changes, two rounds of them: web's status is not
	// written again (the second round begins after the first has ended).
	createSvc(t, admin, ns, lbService("c", annotate("metallb.io/address-pool", "other")))
	waitPool("other", st(1, 0, 0, 0))
	if err := admin.CoreV1().Services(ns).Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPool("other", st(0, 0, 1, 0))
	if _, rv := poolStatus("web"); rv != webRV {
		t.Errorf("web's status was written again although unchanged (resourceVersion %s, then %s)", webRV, rv)
	}

	// Shrunk under a Service: refused, and the ConfigurationState says
	// why, naming it; undone: Valid again, with no summary.
	applyObject(t, dyn, ns, strings.Replace(web, "%s", "198.51.100.9/32, 2001:db8::10-2001:db8::13", 1))
	waitState(k8s.ResultInvalid, ns+"/a")
	applyObject(t, dyn, ns, strings.Replace(web, "%s", "198.51.100.8/30, 2001:db8::10-2001:db8::13", 1))
	waitState(k8s.ResultValid, "")
}

// TestPoolDeletionWaits: with the shipped Role and policies, a pool whose
// addresses a Service holds carries the controller's finalizer, so its
// deletion waits (the object stays, Terminating, with a Warning Event and
// ConfigurationState naming the Service) until the Service is gone; a pool
// annotated metallb.io/allow-address-changes lets one change renumber its
// Services, and the annotation is used up; disable's release lets a held
// pool go. The controller may change nothing else of a pool. Against the
// real API server.
func TestPoolDeletionWaits(t *testing.T) {
	env := cluster.Require(t)
	admin := env.Client
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, dyn)
	ns := newNamespace(t, admin)
	applyShippedRBAC(t, ns)
	if _, err := k8s.EnsureAccepted(ctx, admin, ns, "config", ""); err != nil {
		t.Fatal(err)
	}
	const pool = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: %s}\nspec: {autoAssign: false, addresses: [%s]}"
	mk := func(name, addrs string) string { return fmt.Sprintf(pool, name, addrs) }
	applyObject(t, dyn, ns, mk("web", "198.51.100.16/30"))
	applyObject(t, dyn, ns, mk("p2", "203.0.113.8/30"))
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}")
	setConfig(t, admin, ns, "# the pools are resources\n")
	ctlDyn := asDynamic(t, ns, "controller")
	runInProcess(t, controller.Options{Client: as(t, ns, "controller", ""), Dynamic: ctlDyn,
		Log: testLogger(t), Metrics: metrics.New(), Namespace: ns})
	pools := dyn.Resource(k8s.ResourceGVRs["IPAddressPool"]).Namespace(ns)
	get := func(name string) *unstructured.Unstructured {
		u, err := pools.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return u
	}
	finalized := func(name string) bool {
		u := get(name)
		return u != nil && slices.Contains(u.GetFinalizers(), k8s.PoolFinalizer)
	}

	createSvc(t, admin, ns, lbService("a", annotate("metallb.io/address-pool", "web")))
	waitIngress(t, admin, ns, "a", "198.51.100.16")
	testenv.Eventually(t, 15*time.Second, "the finalizer on the pool in use", func() bool { return finalized("web") })
	if finalized("p2") {
		t.Error("a pool nobody uses carries the finalizer")
	}

	// The controller may touch nothing but its finalizer and the annotation.
	_, err = ctlDyn.Resource(k8s.ResourceGVRs["IPAddressPool"]).Namespace(ns).Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"spec":{"addresses":["192.0.2.0/24"]}}`), metav1.PatchOptions{})
	if err == nil || !strings.Contains(err.Error(), "may change only an IPAddressPool's finalizer") {
		t.Errorf("the controller's account rewrote a pool's spec: %v", err)
	}

	// Deleted under a Service: the object stays, and says why.
	if err := pools.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, admin, ns, "web", k8s.ReasonInvalid, "1 Service(s) hold addresses of this pool")
	waitEvent(t, admin, ns, "web", k8s.ReasonInvalid, ns+"/a")
	testenv.Eventually(t, 15*time.Second, "ConfigurationState Invalid, naming the Service", func() bool {
		u, err := dyn.Resource(k8s.ConfigurationStateGVR).Namespace(ns).Get(ctx, "controller", metav1.GetOptions{})
		if err != nil {
			return false
		}
		s, _, _ := unstructured.NestedString(u.Object, "status", "errorSummary")
		return strings.Contains(s, ns+"/a") && strings.Contains(s, "annotate ipaddresspool web")
	})
	if u := get("web"); u == nil || u.GetDeletionTimestamp() == nil {
		t.Fatalf("the pool in use is gone, or not being deleted: %v", u)
	}
	waitIngress(t, admin, ns, "a", "198.51.100.16")
	// Once the Service is gone, so is the pool.
	if err := admin.CoreV1().Services(ns).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "the released pool deleted", func() bool { return get("web") == nil })

	// Shrunk under a Service: refused; annotated: renumbered once, and the
	// annotation used up.
	createSvc(t, admin, ns, lbService("b", annotate("metallb.io/address-pool", "p2")))
	waitIngress(t, admin, ns, "b", "203.0.113.8")
	applyObject(t, dyn, ns, mk("p2", "203.0.113.10/31"))
	waitEvent(t, admin, ns, "p2", k8s.ReasonInvalid, ns+"/b")
	waitIngress(t, admin, ns, "b", "203.0.113.8")
	u := get("p2")
	u.SetAnnotations(map[string]string{k8s.AllowChangesAnnotation: "true"})
	if _, err := pools.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitIngress(t, admin, ns, "b", "203.0.113.10")
	testenv.Eventually(t, 15*time.Second, "the allow annotation used up", func() bool {
		u := get("p2")
		return u != nil && u.GetAnnotations()[k8s.AllowChangesAnnotation] == ""
	})

	// disable deletes the namespace, the controller with it: the pools'
	// finalizer must not hold it.
	testenv.Eventually(t, 15*time.Second, "the finalizer on p2", func() bool { return finalized("p2") })
	if err := pools.Delete(ctx, "p2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.ReleasePools(ctx, dyn, ns); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "the held pool released", func() bool { return get("p2") == nil })
}

// TestNamespaceSelectors: an IPAddressPool's serviceAllocation
// namespaceSelectors admit the Services of namespaces by their labels; an
// edit that would take a held address is refused naming the Service; a
// namespace relabelled re-judges its Services at once (the Service moves
// to a pool it may use). Against the real API server.
func TestNamespaceSelectors(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, dyn)
	ns, team := newNamespace(t, c), newNamespace(t, c)
	relabel := func(value string) {
		t.Helper()
		patch := []byte(`{"metadata":{"labels":{"team":"` + value + `"}}}`)
		if _, err := c.CoreV1().Namespaces().Patch(ctx, team, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	relabel("web")
	teams := "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: teams}\nspec:\n  addresses: [198.51.100.10-198.51.100.11]\n" +
		"  serviceAllocation: {priority: 1, namespaceSelectors: [{matchLabels: {team: %s}}]}\n"
	applyObject(t, dyn, ns, fmt.Sprintf(teams, "web"))
	applyObject(t, dyn, ns, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}")
	startResourceController(t, c, dyn, ns, "address-pools:\n- {name: general, protocol: layer2, addresses: [192.0.2.10-192.0.2.11]}\n")
	createSvc(t, c, team, lbService("a"))
	createSvc(t, c, ns, lbService("b"))
	waitIngress(t, c, team, "a", "198.51.100.10")
	waitIngress(t, c, ns, "b", "192.0.2.10")

	// Narrowed past a's address: refused, naming it; a keeps its address.
	applyObject(t, dyn, ns, fmt.Sprintf(teams, "db"))
	waitEvent(t, c, ns, "config", k8s.ReasonInvalid, team+"/a")
	if got := ingressOf(t, c, team, "a"); got != "198.51.100.10" {
		t.Errorf("after a refused edit a has %q", got)
	}
	applyObject(t, dyn, ns, fmt.Sprintf(teams, "web"))

	// The namespace relabelled: a is no longer admitted by teams, and moves.
	relabel("other")
	waitIngress(t, c, team, "a", "192.0.2.11")
	waitEvent(t, c, team, "a", controller.ReasonChanged, `pool "general"`)
}
