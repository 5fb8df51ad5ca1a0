package k8s

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ListPageSize is the most objects one list request of metallb's informers
// asks for. An informer's first list holds every object it returns until
// the last page has come, and the transform (Trim) runs only after that:
// a thousand Services of 256 KiB would be held whole (250 MiB, and as much
// again while decoding) at every start, past the pods' memory limit. So
// the list comes in pages, and each page is trimmed as it arrives: at most
// one page is held whole (12.5 MiB of such Services, about three times as
// much while it is read and decoded).
const ListPageSize = 50

// NewInformerFactory returns an informer factory for the kinds of objs
// only (Services, EndpointSlices, Nodes; a kind registered is listed and
// watched once the factory starts, so each component names what it reads):
// trimmed (Trim) on every event, and listed in trimmed pages of
// ListPageSize.
func NewInformerFactory(c kubernetes.Interface, objs ...runtime.Object) informers.SharedInformerFactory {
	f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithTransform(Trim))
	for _, obj := range objs {
		switch obj.(type) {
		case *corev1.Service:
			f.InformerFor(obj, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
				return pagedInformer(&corev1.Service{}, resync,
					func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
						return c.CoreV1().Services("").List(ctx, o)
					},
					func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
						return c.CoreV1().Services("").Watch(ctx, o)
					})
			})
		case *discoveryv1.EndpointSlice:
			f.InformerFor(obj, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
				return pagedInformer(&discoveryv1.EndpointSlice{}, resync,
					func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
						return c.DiscoveryV1().EndpointSlices("").List(ctx, o)
					},
					func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
						return c.DiscoveryV1().EndpointSlices("").Watch(ctx, o)
					})
			})
		case *corev1.Node:
			f.InformerFor(obj, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
				return pagedInformer(&corev1.Node{}, resync,
					func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
						return c.CoreV1().Nodes().List(ctx, o)
					},
					func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
						return c.CoreV1().Nodes().Watch(ctx, o)
					})
			})
		default:
			panic(fmt.Sprintf("NewInformerFactory: no paged informer for %T", obj))
		}
	}
	return f
}

// pagedInformer is the factory's informer for obj (namespace index
// included, as the generated listers need), listing in pages, each page's
// items trimmed (Trim) as it arrives.
func pagedInformer(obj runtime.Object, resync time.Duration, list cache.ListWithContextFunc, w cache.WatchFuncWithContext) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			l, err := list(ctx, pageOptions(o))
			if err != nil {
				return l, err
			}
			return l, trimItems(l)
		},
		WatchFuncWithContext: w,
	}
	return cache.NewSharedIndexInformer(lw, obj, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// trimItems replaces each item of a list by its trimmed form.
func trimItems(l runtime.Object) error {
	items, err := meta.ExtractList(l)
	if err != nil {
		return fmt.Errorf("trim a list: %w", err)
	}
	for i, it := range items {
		t, _ := Trim(it)
		items[i] = t.(runtime.Object)
	}
	return meta.SetList(l, items)
}

// pageOptions makes a list request ask for at most ListPageSize objects.
// The reflector's first list asks for "any version" (resourceVersion 0),
// which API servers whose watch cache cannot page serve whole, limit
// ignored: ask for the most recent instead, which every server pages.
func pageOptions(o metav1.ListOptions) metav1.ListOptions {
	if o.Limit == 0 || o.Limit > ListPageSize {
		o.Limit = ListPageSize
	}
	if o.ResourceVersion == "0" && o.Continue == "" {
		o.ResourceVersion, o.ResourceVersionMatch = "", ""
	}
	return o
}

// ListServices lists every Service of the cluster in pages of
// ListPageSize, each trimmed (TrimService) as it arrives: what the
// installer and metallb status read, without holding every Service whole.
func ListServices(ctx context.Context, c kubernetes.Interface) ([]*corev1.Service, error) {
	var out []*corev1.Service
	o := metav1.ListOptions{Limit: ListPageSize}
	for {
		l, err := c.CoreV1().Services("").List(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("list Services: %w", err)
		}
		for i := range l.Items {
			out = append(out, TrimService(&l.Items[i]))
		}
		if o.Continue = l.Continue; o.Continue == "" {
			return out, nil
		}
	}
}
