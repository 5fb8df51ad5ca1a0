package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/install"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// monitoringCRD is a minimal stand-in for the Prometheus Operator's CRD of
// kind (the real ones carry full schemas; the API behaves the same).
func monitoringCRD(kind, plural string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + ".monitoring.coreos.com"},
		"spec": map[string]any{
			"group": "monitoring.coreos.com", "scope": "Namespaced",
			"names": map[string]any{"kind": kind, "plural": plural, "singular": plural[:len(plural)-1], "listKind": kind + "List"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
}

// TestMonitoringObjectsOnlyWithTheOperator: without the Prometheus
// Operator's CRDs nothing about monitoring is applied and the installer's
// inventory still works; with them, PodMonitors, the PrometheusRule and the
// dashboard ConfigMap are applied and listed.
func TestMonitoringObjectsOnlyWithTheOperator(t *testing.T) {
	env := cluster.Require(t)
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, env.Client)
	if install.HasMonitoringCRDs(env.Client.Discovery()) {
		t.Fatal("monitoring CRDs found before the test made them")
	}
	if _, err := install.Installed(ctx, dyn, ns); err != nil {
		t.Fatalf("inventory without the CRDs: %v", err)
	}
	for _, c := range [][2]string{{"PodMonitor", "podmonitors"}, {"PrometheusRule", "prometheusrules"}} {
		name := c[1] + ".monitoring.coreos.com"
		if _, err := dyn.Resource(crdGVR).Create(ctx, monitoringCRD(c[0], c[1]), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = dyn.Resource(crdGVR).Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	eventually(t, 20*time.Second, "the CRDs served", func() bool { return install.HasMonitoringCRDs(env.Client.Discovery()) })

	var mon []*unstructured.Unstructured
	for _, o := range renderedWithMonitoring(t, ns) {
		switch o.GetKind() {
		case "PodMonitor", "PrometheusRule":
			mon = append(mon, o)
		case "ConfigMap":
			if o.GetName() == "metallb-dashboard" {
				mon = append(mon, o)
			}
		}
	}
	var changes []install.Change
	eventually(t, 20*time.Second, "the monitoring objects applied", func() bool {
		changes, err = install.Apply(ctx, dyn, mon)
		return err == nil || !apierrors.IsNotFound(err)
	})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if len(changes) != 4 {
		t.Errorf("changes: %v", changes)
	}
	got, err := install.Installed(ctx, dyn, ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"PodMonitor/controller", "PodMonitor/speaker", "PrometheusRule/metallb", "ConfigMap/metallb-dashboard"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s not listed: %v", k, fmt.Sprint(got))
		}
	}
}

// renderedWithMonitoring renders every manifest, the monitoring objects
// too, for namespace ns.
func renderedWithMonitoring(t *testing.T, ns string) []*unstructured.Unstructured {
	t.Helper()
	b, err := manifests.Render(manifests.Values{Namespace: ns, Image: "x", Config: "address-pools: []\n", WithMonitoring: true})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
