package speaker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
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
	want := map[string]svcStatus{
		"demo/web": {Namespace: "demo", Name: "web", Items: []string{"eth0", "eth1"}},
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
			"metadata": map[string]any{"name": name, "namespace": "metallb-system", "labels": map[string]any{statusNodeLabel: node}},
			"status":   map[string]any{"node": node, "serviceName": svc, "serviceNamespace": "demo"},
		}}
	}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{k8s.ServiceL2StatusGVR: "ServiceL2StatusList"},
		obj("l2-old", "node-a", "gone"), obj("l2-kept", "node-a", "kept"), obj("l2-other", "node-b", "web"))
	w := newStatusWriter(l2Kind, dyn, "metallb-system", "node-a", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	have, status, err := w.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]svcStatus{"demo/kept": {Namespace: "demo", Name: "kept"}, "demo/web": {Namespace: "demo", Name: "web", Items: []string{"eth0"}}}
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
		s := l2Kind.read(&o)
		node, _, _ := unstructured.NestedString(o.Object, "status", "node")
		got = append(got, fmt.Sprintf("%s %s %s/%s %v", o.GetName(), node, s.Namespace, s.Name, s.Items))
	}
	slices.Sort(got)
	wantObjs := []string{"l2-kept node-a demo/kept []", w.objectName("demo/web") + " node-a demo/web [eth0]", "l2-other node-b demo/web []"}
	slices.Sort(wantObjs)
	if diff := cmp.Diff(wantObjs, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
}

// A ServiceBGPStatus lists its peers as strings, a ServiceL2Status its
// interfaces as {name: ...}, as MetalLB's schemas define them; each reads
// back what it wrote.
func TestStatusKindsShape(t *testing.T) {
	for _, tc := range []struct {
		kind statusKind
		list string
		want []any
	}{
		{l2Kind, "ServiceL2StatusList", []any{map[string]any{"name": "eth0"}, map[string]any{"name": "eth1"}}},
		{bgpKind, "ServiceBGPStatusList", []any{"bird4", "bird6"}},
	} {
		t.Run(tc.kind.kind, func(t *testing.T) {
			dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{tc.kind.gvr: tc.list})
			w := newStatusWriter(tc.kind, dyn, "metallb-system", "node-a", slog.New(slog.NewTextHandler(io.Discard, nil)))
			ctx := context.Background()
			st := svcStatus{Namespace: "demo", Name: "web", Items: []string{"bird4", "bird6"}}
			if tc.kind.named {
				st.Items = []string{"eth0", "eth1"}
			}
			have, status := map[string]string{}, map[string]svcStatus{}
			if _, err := w.sync(ctx, []string{"demo/web"}, map[string]svcStatus{"demo/web": st}, have, status); err != nil {
				t.Fatal(err)
			}
			o, err := dyn.Resource(tc.kind.gvr).Namespace("metallb-system").Get(ctx, w.objectName("demo/web"), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			items, _, _ := unstructured.NestedSlice(o.Object, "status", tc.kind.field)
			if diff := cmp.Diff(tc.want, items); diff != "" {
				t.Errorf("status.%s (-want +got):\n%s", tc.kind.field, diff)
			}
			if diff := cmp.Diff(st, tc.kind.read(o)); diff != "" {
				t.Errorf("read back (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(o.GetName(), tc.kind.prefix) || o.GetLabels()[statusNodeLabel] != "node-a" {
				t.Errorf("object %s labels %v", o.GetName(), o.GetLabels())
			}
		})
	}
}
