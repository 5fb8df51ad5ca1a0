package k8s

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// ResourceGVRs are the metallb.io configuration kinds as the controller
// reads them (BGPPeer in its stored version).
var ResourceGVRs = map[string]schema.GroupVersionResource{
	config.KindIPAddressPool:    {Group: config.Group, Version: "v1beta1", Resource: "ipaddresspools"},
	config.KindL2Advertisement:  {Group: config.Group, Version: "v1beta1", Resource: "l2advertisements"},
	config.KindBGPAdvertisement: {Group: config.Group, Version: "v1beta1", Resource: "bgpadvertisements"},
	config.KindBGPPeer:          {Group: config.Group, Version: "v1beta2", Resource: "bgppeers"},
	config.KindCommunity:        {Group: config.Group, Version: "v1beta1", Resource: "communities"},
	config.KindBFDProfile:       {Group: config.Group, Version: "v1beta1", Resource: "bfdprofiles"},
}

// resourceWatch keeps the metallb.io configuration objects of one
// namespace in informers' stores, and calls changed on every change.
type resourceWatch struct {
	namespace string
	factory   dynamicinformer.DynamicSharedInformerFactory
	stores    map[string]cache.Store
	synced    []cache.InformerSynced
}

// ServesResources reports whether the API server serves the metallb.io
// configuration kinds (their CRDs are installed).
func ServesResources(ctx context.Context, dyn dynamic.Interface, namespace string) bool {
	for _, kind := range config.ConfigKinds() {
		if _, err := dyn.Resource(ResourceGVRs[kind]).Namespace(namespace).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			return false
		}
	}
	return true
}

func newResourceWatch(dyn dynamic.Interface, namespace string, changed func()) (*resourceWatch, error) {
	w := &resourceWatch{
		namespace: namespace,
		factory:   dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, namespace, nil),
		stores:    map[string]cache.Store{},
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { changed() },
		UpdateFunc: func(old, obj any) {
			if configChanged(old, obj) {
				changed()
			}
		},
		DeleteFunc: func(any) { changed() },
	}
	for _, kind := range config.ConfigKinds() {
		inf := w.factory.ForResource(ResourceGVRs[kind]).Informer()
		reg, err := inf.AddEventHandler(h)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", kind, err)
		}
		w.stores[kind] = inf.GetStore()
		w.synced = append(w.synced, reg.HasSynced)
	}
	return w, nil
}

// configChanged reports whether an update changes what the configuration
// reads of an object (its spec, labels, deletion), not only its status (the
// controller's own writes).
func configChanged(old, obj any) bool {
	a, ok1 := old.(*unstructured.Unstructured)
	b, ok2 := obj.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return true
	}
	return a.GetGeneration() != b.GetGeneration() || !maps.Equal(a.GetLabels(), b.GetLabels()) ||
		a.GetAnnotations()[AllowChangesAnnotation] != b.GetAnnotations()[AllowChangesAnnotation] ||
		!a.GetDeletionTimestamp().Equal(b.GetDeletionTimestamp()) || !slices.Equal(a.GetFinalizers(), b.GetFinalizers()) ||
		a.GetGeneration() == 0 // no generation kept: judge every update
}

func (w *resourceWatch) start(stop <-chan struct{}) { w.factory.Start(stop) }
func (w *resourceWatch) shutdown()                  { w.factory.Shutdown() }

func (w *resourceWatch) hasSynced() bool {
	for _, s := range w.synced {
		if !s() {
			return false
		}
	}
	return true
}

// object returns the kind object called name, nil when there is none.
func (w *resourceWatch) object(kind, name string) *unstructured.Unstructured {
	st := w.stores[kind]
	if st == nil {
		return nil
	}
	it, ok, err := st.GetByKey(w.namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	u, _ := it.(*unstructured.Unstructured)
	return u
}

// snapshot returns the objects as documents for config.Combine (see
// documents), and a version naming every object's resourceVersion (it
// changes when any object does).
func (w *resourceWatch) snapshot() (docs [][]byte, version string, err error) {
	return w.snapshotWith("", nil)
}

// snapshotWith is snapshot with obj (of kind) in place of the stored
// object of its name, or added.
func (w *resourceWatch) snapshotWith(kind string, obj *unstructured.Unstructured) (docs [][]byte, version string, err error) {
	var vs []string
	for _, k := range config.ConfigKinds() {
		items := w.stores[k].List()
		objs := make([]*unstructured.Unstructured, 0, len(items)+1)
		for _, it := range items {
			if u, ok := it.(*unstructured.Unstructured); ok {
				if k == kind && obj != nil && u.GetName() == obj.GetName() {
					continue
				}
				objs = append(objs, u)
				vs = append(vs, k+"/"+u.GetName()+"@"+u.GetResourceVersion())
			}
		}
		if k == kind && obj != nil {
			objs = append(objs, obj)
		}
		kd, err := documents(k, objs)
		if err != nil {
			return nil, "", err
		}
		docs = append(docs, kd...)
	}
	slices.Sort(vs)
	return docs, strings.Join(vs, ","), nil
}

// documents renders objects of kind as config.Combine takes them, in a
// stable order (by name). An object being deleted is left out: that is
// what its deletion asks for (a pool whose addresses are held stays, by
// its finalizer, until the configuration without it is accepted).
func documents(kind string, objs []*unstructured.Unstructured) ([][]byte, error) {
	slices.SortFunc(objs, func(a, b *unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	docs := make([][]byte, 0, len(objs))
	for _, u := range objs {
		if u.GetDeletionTimestamp() != nil {
			continue
		}
		spec, _, _ := unstructured.NestedMap(u.Object, "spec")
		doc, err := config.ResourceDocument(u.GetAPIVersion(), kind, u.GetName(), u.GetLabels(), spec)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", kind, u.GetName(), err)
		}
		docs = append(docs, doc)
	}
	return docs, nil
}

// ResourceDocuments lists the metallb.io configuration objects of
// namespace as config.Combine takes them; none when their CRDs are not
// installed.
func ResourceDocuments(ctx context.Context, disc discovery.DiscoveryInterface, dyn dynamic.Interface, namespace string) ([][]byte, error) {
	if dyn == nil || disc == nil {
		return nil, nil
	}
	if _, err := disc.ServerResourcesForGroupVersion(config.Group + "/v1beta1"); err != nil {
		return nil, nil // not served: no CRDs
	}
	var docs [][]byte
	for _, kind := range config.ConfigKinds() {
		list, err := dyn.Resource(ResourceGVRs[kind]).Namespace(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list %s in %s: %w", kind, namespace, err)
		}
		objs := make([]*unstructured.Unstructured, len(list.Items))
		for i := range list.Items {
			objs[i] = &list.Items[i]
		}
		kd, err := documents(kind, objs)
		if err != nil {
			return nil, err
		}
		docs = append(docs, kd...)
	}
	return docs, nil
}
