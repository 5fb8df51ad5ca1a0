package install

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/image"
)

// fakeCluster is a typed and a dynamic fake client standing in for one
// API server: what the installer applies through the dynamic client
// (server-side apply, which the fake tracker only does for existing
// objects) is created when missing, and each workload also appears on the
// typed side, rolled out, as the kubelet and controllers would report it.
type fakeCluster struct {
	typed   *fake.Clientset
	dyn     *dynamicfake.FakeDynamicClient
	applied []string // Kind/name, in order
}

func newFakeCluster(t *testing.T, objs ...runtime.Object) *fakeCluster {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}}}}
	fc := &fakeCluster{typed: fake.NewClientset(append([]runtime.Object{node}, objs...)...), dyn: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{resources["CustomResourceDefinition"].gvr: "CustomResourceDefinitionList"})}
	fc.dyn.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(p.GetPatch(), &u.Object); err != nil {
			return true, nil, err
		}
		fc.applied = append(fc.applied, u.GetKind()+"/"+u.GetName())
		fc.mirror(t, u)
		tr := fc.dyn.Tracker()
		if _, err := tr.Get(p.GetResource(), p.GetNamespace(), p.GetName()); apierrors.IsNotFound(err) {
			u.SetResourceVersion("1")
			return true, u, tr.Create(p.GetResource(), u, p.GetNamespace())
		}
		if p.GetPatchType() == types.ApplyPatchType {
			// An apply over an object made elsewhere: the applied fields
			// replace it (the tracker applies only to what it applied).
			u.SetResourceVersion("2")
			return true, u, tr.Update(p.GetResource(), u, p.GetNamespace())
		}
		return false, nil, nil // the tracker's own patch
	})
	return fc
}

// mirror puts an applied workload on the typed side, rolled out.
func (fc *fakeCluster) mirror(t *testing.T, u *unstructured.Unstructured) {
	ctx := context.Background()
	switch u.GetKind() {
	case "Deployment":
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			t.Fatal(err)
		}
		d.Status = appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}}
		if _, err := fc.typed.AppsV1().Deployments(d.Namespace).Create(ctx, &d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	case "DaemonSet":
		var ds appsv1.DaemonSet
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ds); err != nil {
			t.Fatal(err)
		}
		ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberAvailable: 1}
		if _, err := fc.typed.AppsV1().DaemonSets(ds.Namespace).Create(ctx, &ds, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func (fc *fakeCluster) enable(out, errb *bytes.Buffer, img Imager) *Enable {
	return &Enable{Args: []string{"192.0.2.200-192.0.2.210"}, DHCPRange: "192.0.2.100-192.0.2.150", NoProbe: true,
		Out: out, Err: errb, Host: fakeHost{}, Client: fc.typed, Dyn: fc.dyn, Image: img, Timeout: 10 * time.Second}
}

// Enable.Run applies the manifests, then creates the memberlist Secret and
// the accepted copy, waits for the workloads, and hands the image delivery
// the nodes with the images their kubelets report; progress on Out,
// findings on Err.
func TestRunInstalls(t *testing.T) {
	fc := newFakeCluster(t)
	var out, errb bytes.Buffer
	var delivered []image.Node
	img := ImageFunc(func(_ context.Context, nodes []image.Node, dryRun bool) (string, error) {
		delivered = nodes
		return "localhost/microk8s-metallb:test", nil
	})
	if err := fc.enable(&out, &errb, img).Run(context.Background()); err != nil {
		t.Fatalf("%v\nout:\n%s\nerr:\n%s", err, out.String(), errb.String())
	}
	if len(delivered) != 1 || delivered[0].Name != "node-a" || delivered[0].Addr.String() != "192.0.2.10" {
		t.Errorf("image delivered to %v", delivered)
	}
	objs, err := Decode(mustRender(t))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, o := range objs {
		want = append(want, o.GetKind()+"/"+o.GetName())
	}
	if diff := cmp.Diff(want, fc.applied); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	ctx := context.Background()
	if _, err := fc.typed.CoreV1().Secrets("metallb-system").Get(ctx, MemberlistSecret, metav1.GetOptions{}); err != nil {
		t.Errorf("memberlist Secret: %v", err)
	}
	acc, err := fc.typed.CoreV1().ConfigMaps("metallb-system").Get(ctx, "config-accepted", metav1.GetOptions{})
	if err != nil || !strings.Contains(acc.Data["config"], "192.0.2.200-192.0.2.210") {
		t.Errorf("accepted copy: %v %v", acc, err)
	}
	for _, line := range []string{"DaemonSet metallb-system/metallb-speaker created", "controller Available, speaker rolled out",
		"metallb is enabled: LoadBalancer Services get addresses from 192.0.2.200-192.0.2.210."} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("stdout lacks %q:\n%s", line, out.String())
		}
	}
	if !strings.Contains(errb.String(), "note: addresses in use were not probed (--no-probe)") || strings.Contains(out.String(), "note:") {
		t.Errorf("notes belong on stderr:\nout:\n%s\nerr:\n%s", out.String(), errb.String())
	}
}

func mustRender(t *testing.T) []byte {
	t.Helper()
	b, err := manifests.Render(manifests.Values{Namespace: "metallb-system", Image: "x", Config: "address-pools: []\n"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func labelled(partOf string) map[string]string {
	if partOf == "" {
		return map[string]string{"app": "metallb"}
	}
	return map[string]string{"app.kubernetes.io/part-of": partOf}
}

// An earlier version's workloads, under upstream's names, are deleted
// before their successors are applied.
func TestRunRetiresRenamedWorkloads(t *testing.T) {
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "metallb-system", Name: name, Labels: labelled(manifests.PartOf)}
	}
	fc := newFakeCluster(t, &appsv1.Deployment{ObjectMeta: meta("controller")}, &appsv1.DaemonSet{ObjectMeta: meta("speaker")})
	var out, errb bytes.Buffer
	if err := fc.enable(&out, &errb, fixedImage("x")).Run(context.Background()); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	ctx := context.Background()
	if _, err := fc.typed.AppsV1().DaemonSets("metallb-system").Get(ctx, "speaker", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the old DaemonSet speaker is still there: %v", err)
	}
	if _, err := fc.typed.AppsV1().Deployments("metallb-system").Get(ctx, "controller", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the old Deployment controller is still there: %v", err)
	}
	if !strings.Contains(out.String(), "DaemonSet metallb-system/speaker is an earlier version's: deleting it for its successor") {
		t.Errorf("stdout:\n%s", out.String())
	}
}

// Beside another MetalLB (MicroK8s's core addon: upstream's workloads
// without our label, its webhook, its CRDs with a conversion webhook),
// enable says so, then removes them before applying ours.
func TestRunTakesOverAnotherMetalLB(t *testing.T) {
	fc := newFakeCluster(t)
	tr := fc.dyn.Tracker()
	obj := func(apiVersion, kind, ns, name string, spec map[string]any) {
		t.Helper()
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "spec": spec}}
		u.SetName(name)
		u.SetNamespace(ns)
		u.SetLabels(map[string]string{"app": "metallb"})
		gvr := resources[kind].gvr
		if err := tr.Create(gvr, u, ns); err != nil {
			t.Fatal(err)
		}
	}
	obj("apps/v1", "DaemonSet", "metallb-system", "speaker", nil)
	obj("apps/v1", "Deployment", "metallb-system", "controller", nil)
	obj("v1", "Service", "metallb-system", "metallb-webhook-service", nil)
	obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", UpstreamWebhook, nil)
	obj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "metallb-system:speaker", nil)
	obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "bgppeers.metallb.io", map[string]any{
		"group": "metallb.io", "conversion": map[string]any{"strategy": "Webhook", "webhook": map[string]any{"conversionReviewVersions": []any{"v1beta1"}}}})
	var out, errb bytes.Buffer
	if err := fc.enable(&out, &errb, fixedImage("x")).Run(context.Background()); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	for _, want := range []string{
		"another MetalLB is installed (ValidatingWebhookConfiguration metallb-webhook-configuration, Deployment metallb-system/controller, DaemonSet metallb-system/speaker), such as MicroK8s's core metallb addon: enable takes it over.",
		"DaemonSet metallb-system/speaker deleted (another MetalLB's)",
		"ClusterRole metallb-system:speaker deleted (another MetalLB's)",
		"CustomResourceDefinition bgppeers.metallb.io: its conversion webhook (the other MetalLB's) is no longer called",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	for _, gone := range []struct{ kind, ns, name string }{
		{"DaemonSet", "metallb-system", "speaker"}, {"Deployment", "metallb-system", "controller"},
		{"ValidatingWebhookConfiguration", "", UpstreamWebhook},
	} {
		if _, err := tr.Get(resources[gone.kind].gvr, gone.ns, gone.name); !apierrors.IsNotFound(err) {
			t.Errorf("%s %s is still there: %v", gone.kind, gone.name, err)
		}
	}
	crd, err := tr.Get(resources["CustomResourceDefinition"].gvr, "", "bgppeers.metallb.io")
	if err != nil {
		t.Fatal(err)
	}
	// Ours applied over it (no conversion: None, the API server's default).
	if conv, ok, _ := unstructured.NestedMap(crd.(*unstructured.Unstructured).Object, "spec", "conversion"); ok && conv["strategy"] != "None" {
		t.Errorf("conversion %v, want none", conv)
	}
}
