package speaker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"

	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

func TestWantedL2Status(t *testing.T) {
	ip := netip.MustParseAddr
	got := wantedL2Status([]announce.Announcement{
		{Protocol: config.Layer2, IP: ip("192.0.2.1"), Service: "demo/web", Interfaces: []string{"eth1"}},
		{Protocol: config.Layer2, IP: ip("2001:db8::1"), Service: "demo/web", Interfaces: []string{"eth0", "eth1"}},
		{Protocol: config.BGP, IP: ip("198.51.100.1"), Service: "demo/routed"},
		{Protocol: config.Layer2, IP: ip("192.0.2.2"), Service: "other/db"},
	})
	want := map[string]l2Status{
		"demo/web": {Namespace: "demo", Name: "web", Interfaces: []string{"eth0", "eth1"}},
		"other/db": {Namespace: "other", Name: "db"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// The writer adopts what an earlier run of its node left, deletes what is
// no longer announced, and leaves other nodes' objects alone.
func TestL2StatusWriterSync(t *testing.T) {
	obj := func(name, node, svc string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
			"metadata": map[string]any{"name": name, "namespace": "metallb-system", "labels": map[string]any{l2StatusNodeLabel: node}},
			"status":   map[string]any{"node": node, "serviceName": svc, "serviceNamespace": "demo"},
		}}
	}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{k8s.ServiceL2StatusGVR: "ServiceL2StatusList"},
		obj("l2-old", "node-a", "gone"), obj("l2-kept", "node-a", "kept"), obj("l2-other", "node-b", "web"))
	w := newL2StatusWriter(dyn, "metallb-system", "node-a", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	have, status, err := w.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]l2Status{"demo/kept": {Namespace: "demo", Name: "kept"}, "demo/web": {Namespace: "demo", Name: "web", Interfaces: []string{"eth0"}}}
	keys := slices.Sorted(maps.Keys(have))
	for k := range want {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if _, err := w.sync(ctx, keys, want, have, status); err != nil {
		t.Fatal(err)
	}
	list, err := dyn.Resource(k8s.ServiceL2StatusGVR).Namespace("metallb-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range list.Items {
		s := readL2Status(&o)
		node, _, _ := unstructured.NestedString(o.Object, "status", "node")
		got = append(got, fmt.Sprintf("%s %s %s/%s %v", o.GetName(), node, s.Namespace, s.Name, s.Interfaces))
	}
	slices.Sort(got)
	wantObjs := []string{"l2-kept node-a demo/kept []", w.objectName("demo/web") + " node-a demo/web [eth0]", "l2-other node-b demo/web []"}
	slices.Sort(wantObjs)
	if diff := cmp.Diff(wantObjs, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
}
