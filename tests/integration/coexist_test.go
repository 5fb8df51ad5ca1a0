package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/install"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// upstreamDaemonSet is a DaemonSet as upstream MetalLB's manifests (and so
// MicroK8s's core metallb addon) name and label it.
func upstreamDaemonSet(ns, name string) *appsv1.DaemonSet {
	l := map[string]string{"app": "metallb", "component": "speaker"}
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "speaker", Image: "quay.io/metallb/speaker:v0.15.2"}}}}}}
}

// kubectlApply does what `kubectl apply -f` does with a file's object: it
// records the file in the last-applied annotation, and creates the object
// or patches the live one (a strategic merge: labels it does not name stay).
func kubectlApply(ctx context.Context, c kubernetes.Interface, ds *appsv1.DaemonSet) error {
	ds = ds.DeepCopy()
	ds.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"}
	file, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	ds.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(file)}
	if _, err := c.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{}); err != nil {
		_, err = c.AppsV1().DaemonSets(ds.Namespace).Create(ctx, ds, metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"})
		return err
	}
	patch, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	_, err = c.AppsV1().DaemonSets(ds.Namespace).Patch(ctx, ds.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-client-side-apply"})
	return err
}

// TestGuardKeepsASecondMetalLBOff: while ours is installed, the objects
// another MetalLB would create first (its metallb.io CRDs, its workloads
// in our namespace, its webhook), or a kubectl apply of its files over
// ours, are refused with the command that fixes it; our own applies, a
// kubectl rollout restart and everything outside what the guard names
// still work. Against the real API server's admission.
func TestGuardKeepsASecondMetalLBOff(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ctx := context.Background()
	ns := newNamespace(t, c)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	b, err := manifests.Render(manifests.Values{Namespace: ns, Image: "x", Config: "address-pools: []\n", Addon: "lab/metallb"})
	if err != nil {
		t.Fatal(err)
	}
	all, err := install.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, o := range all {
		if strings.HasSuffix(o.GetName(), "-guard") || o.GetKind() == "DaemonSet" {
			objs = append(objs, o)
		}
	}
	if _, err := install.Apply(ctx, dyn, objs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, ns+"-guard", metav1.DeleteOptions{})
		_ = c.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, ns+"-guard", metav1.DeleteOptions{})
	})
	const fix = "Disable it first: microk8s disable lab/metallb"
	// Barrier: the policy is in force once it refuses the first object.
	testenv.Eventually(t, 30*time.Second, "the guard in force", func() bool {
		_, err := c.AppsV1().DaemonSets(ns).Create(ctx, upstreamDaemonSet(ns, "speaker"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), fix)
	})

	crd := func(group, plural string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("apiextensions.k8s.io/v1")
		u.SetKind("CustomResourceDefinition")
		u.SetName(plural + "." + group)
		_ = unstructured.SetNestedMap(u.Object, map[string]any{
			"group": group, "scope": "Namespaced",
			"names": map[string]any{"plural": plural, "kind": "IPAddressPool", "singular": "ipaddresspool", "listKind": "IPAddressPoolList"},
			"versions": []any{map[string]any{"name": "v1beta1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		}, "spec")
		return u
	}
	sideEffects := admissionv1.SideEffectClassNone
	webhook := &admissionv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: install.UpstreamWebhook},
		Webhooks: []admissionv1.ValidatingWebhook{{Name: "ipaddresspoolvalidationwebhook.metallb.io", SideEffects: &sideEffects,
			AdmissionReviewVersions: []string{"v1"},
			ClientConfig:            admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Namespace: ns, Name: "metallb-webhook-service"}}}}}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	ours, err := c.AppsV1().DaemonSets(ns).Get(ctx, install.SpeakerName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := newNamespace(t, c)
	for _, tc := range []struct {
		name    string
		refused bool
		do      func() error
	}{
		{"upstream's metallb.io CRD", true, func() error {
			_, err := dyn.Resource(crdGVR).Create(ctx, crd("metallb.io", "ipaddresspools"), dry)
			return err
		}},
		{"upstream's webhook configuration", true, func() error {
			_, err := c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, webhook, dry)
			return err
		}},
		{"upstream's DaemonSet speaker in our namespace", true, func() error {
			return kubectlApply(ctx, c, upstreamDaemonSet(ns, "speaker"))
		}},
		{"another file kubectl-applied over our DaemonSet", true, func() error {
			// Same name and selector (else the API server refuses the
			// patch before admission), another image, no part-of label.
			file := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ours.Name, Labels: map[string]string{"app": "metallb"}},
				Spec: *ours.Spec.DeepCopy()}
			file.Spec.Template.Spec.Containers[0].Image = "quay.io/metallb/speaker:v0.15.2"
			// (Left out: a strategic merge keys ports by number alone,
			// and ours has 7946 twice, TCP and UDP.)
			file.Spec.Template.Spec.Containers[0].Ports = nil
			return kubectlApply(ctx, c, file)
		}},
		{"our own apply again", false, func() error {
			_, err := install.Apply(ctx, dyn, objs)
			return err
		}},
		{"kubectl rollout restart of our DaemonSet", false, func() error {
			patch := `{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-12-03T00:00:00Z"}}}}}`
			_, err := c.AppsV1().DaemonSets(ns).Patch(ctx, ours.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
			return err
		}},
		{"a DaemonSet in another namespace", false, func() error {
			_, err := c.AppsV1().DaemonSets(other).Create(ctx, upstreamDaemonSet(other, "speaker"), dry)
			return err
		}},
		{"a CRD of another group", false, func() error {
			_, err := dyn.Resource(crdGVR).Create(ctx, crd("example.org", "ipaddresspools"), dry)
			return err
		}},
	} {
		err := tc.do()
		switch {
		case tc.refused && (err == nil || !strings.Contains(err.Error(), fix)):
			t.Errorf("%s: err = %v, want the guard's refusal", tc.name, err)
		case !tc.refused && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.refused:
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// microk8sStatusRows are the lines MicroK8s's status reads (kubectl get
// all --all-namespaces: NAMESPACE then kind[.group]/name) for the pods,
// DaemonSets and Deployments of the namespaces given.
func microk8sStatusRows(t *testing.T, c kubernetes.Interface, namespaces ...string) []string {
	t.Helper()
	ctx := context.Background()
	var rows []string
	for _, ns := range namespaces {
		pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			rows = append(rows, ns+"   pod/"+p.Name+"   0/1   Pending   0   1s")
		}
		dss, err := c.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dss.Items {
			rows = append(rows, ns+"   daemonset.apps/"+d.Name+"   1   1   0   1   0   <none>   1s")
		}
		ds, err := c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds.Items {
			rows = append(rows, ns+"   deployment.apps/"+d.Name+"   0/1   1   0   1s")
		}
	}
	return rows
}

// enabled is MicroK8s's rule (common/utils.py is_enabled): an addon is
// enabled when its check_status is a substring of one row.
func enabled(check string, rows []string) bool {
	for _, r := range rows {
		if strings.Contains(r, check) {
			return true
		}
	}
	return false
}

// TestMicroK8sStatusTellsTheTwoMetalLBsApart: with ours installed MicroK8s
// shows only ours enabled, so "microk8s disable core/metallb" answers
// "already disabled" instead of running core's disable on our namespace;
// with core's installed, only core's.
func TestMicroK8sStatusTellsTheTwoMetalLBsApart(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ctx := context.Background()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "addon", "addons.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var repo struct {
		Addons struct {
			Addons []struct {
				Name        string `json:"name"`
				CheckStatus string `json:"check_status"`
			} `json:"addons"`
		} `json:"microk8s-addons"`
	}
	if err := yaml.Unmarshal(raw, &repo); err != nil || len(repo.Addons.Addons) != 1 {
		t.Fatalf("addons.yaml: %v %+v", err, repo)
	}
	oursCheck := repo.Addons.Addons[0].CheckStatus
	const coreCheck = "pod/speaker" // core's addons.yaml

	pod := func(ns, name string) {
		t.Helper()
		_, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "speaker", Image: "example.invalid/none"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Ours: the shipped workloads, and pods named as their controllers name them.
	ns := newNamespace(t, c)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	var workloads []*unstructured.Unstructured
	for _, o := range renderedWithMonitoring(t, ns) {
		if o.GetKind() == "DaemonSet" || o.GetKind() == "Deployment" {
			workloads = append(workloads, o)
		}
	}
	if _, err := install.Apply(ctx, dyn, workloads); err != nil {
		t.Fatal(err)
	}
	pod(ns, install.SpeakerName+"-x7k2p")
	pod(ns, install.ControllerName+"-6d9f8b7c5d-q2w3e")
	rows := microk8sStatusRows(t, c, ns)
	if !enabled(oursCheck, rows) || enabled(coreCheck, rows) {
		t.Errorf("ours installed: ours enabled %v (want true), core enabled %v (want false)\n%s",
			enabled(oursCheck, rows), enabled(coreCheck, rows), strings.Join(rows, "\n"))
	}
	// Core's: upstream's names.
	core := newNamespace(t, c)
	if _, err := c.AppsV1().DaemonSets(core).Create(ctx, upstreamDaemonSet(core, "speaker"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod(core, "speaker-4hx9d")
	rows = microk8sStatusRows(t, c, core)
	if enabled(oursCheck, rows) || !enabled(coreCheck, rows) {
		t.Errorf("core's installed: ours enabled %v (want false), core enabled %v (want true)\n%s",
			enabled(oursCheck, rows), enabled(coreCheck, rows), strings.Join(rows, "\n"))
	}
}
