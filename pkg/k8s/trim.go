package k8s

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/allocator"
)

// The informers' caches keep only what the code reads. Anyone with the
// edit role in one namespace can make objects of any size (256 KiB of
// annotations per Service, a thousand Services): kept whole, they would
// be held in every speaker and in the controller, and a cache that does
// not fit the memory limit kills them at every restart. Trimmed, what one
// namespace costs is bounded by what metallb reads of it.

// MaxAnnotationLen is the longest value of a metallb annotation kept as it
// is; a longer one is replaced by a placeholder naming its length and
// digest, which no parser accepts (and which is equal for equal values, so
// two Services asking to share with the same long key still match).
const MaxAnnotationLen = 1024

// serviceAnnotations are the annotations of a Service metallb reads.
var serviceAnnotations = []string{
	allocator.AnnotationPool, allocator.AnnotationPoolNew,
	allocator.AnnotationIPs, allocator.AnnotationIPsNew,
	allocator.AnnotationSharing, allocator.AnnotationSharingNew,
	allocator.AnnotationAllocatedFrom,
}

// Trim is the informers' transform (informers.WithTransform): Services,
// EndpointSlices and Nodes reduced to what metallb reads; other objects
// (tombstones included) pass unchanged. It is idempotent: a re-list
// trims objects that are trimmed already.
func Trim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		return TrimService(o), nil
	case *discoveryv1.EndpointSlice:
		return TrimEndpointSlice(o), nil
	case *corev1.Node:
		return TrimNode(o), nil
	case metav1.Object:
		o.SetManagedFields(nil)
	}
	return obj, nil
}

// TrimService keeps a LoadBalancer Service's spec, status and labels with
// only metallb's annotations; any other Service becomes a stub (its type,
// class and status: enough to notice that it became, or stopped being, a
// LoadBalancer).
func TrimService(s *corev1.Service) *corev1.Service {
	meta := trimMeta(s.ObjectMeta)
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return &corev1.Service{ObjectMeta: meta,
			Spec:   corev1.ServiceSpec{Type: s.Spec.Type, LoadBalancerClass: s.Spec.LoadBalancerClass},
			Status: corev1.ServiceStatus{LoadBalancer: s.Status.LoadBalancer}}
	}
	meta.Labels = s.Labels
	for _, k := range serviceAnnotations {
		v, ok := s.Annotations[k]
		if !ok {
			continue
		}
		if meta.Annotations == nil {
			meta.Annotations = map[string]string{}
		}
		meta.Annotations[k] = capValue(v)
	}
	return &corev1.Service{ObjectMeta: meta, Spec: s.Spec, Status: corev1.ServiceStatus{LoadBalancer: s.Status.LoadBalancer}}
}

// capValue replaces a value longer than MaxAnnotationLen by a placeholder
// (itself shorter, so trimming twice changes nothing).
func capValue(v string) string {
	if len(v) <= MaxAnnotationLen {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return fmt.Sprintf("<%d bytes, sha256 %s: longer than %d, ignored>", len(v), hex.EncodeToString(sum[:8]), MaxAnnotationLen)
}

// TrimEndpointSlice keeps the Service it belongs to and, per node, whether
// an endpoint there is ready: the speakers read nothing else.
func TrimEndpointSlice(es *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	meta := trimMeta(es.ObjectMeta)
	if name, ok := es.Labels[discoveryv1.LabelServiceName]; ok {
		meta.Labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	out := &discoveryv1.EndpointSlice{ObjectMeta: meta, AddressType: es.AddressType}
	seen := map[string]bool{}
	for _, ep := range es.Endpoints {
		if ep.NodeName == nil {
			continue
		}
		ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
		key := fmt.Sprint(*ep.NodeName, ready)
		if seen[key] {
			continue
		}
		seen[key] = true
		node, r := *ep.NodeName, ready
		out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: &r}})
	}
	return out
}

// TrimNode keeps a Node's labels, its InternalIP and ExternalIP addresses
// and its Ready condition (without heartbeat times, so a heartbeat is not
// a change): no images, no capacity, no annotations.
func TrimNode(n *corev1.Node) *corev1.Node {
	meta := trimMeta(n.ObjectMeta)
	meta.Labels = n.Labels
	out := &corev1.Node{ObjectMeta: meta}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
			out.Status.Addresses = append(out.Status.Addresses, a)
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Status.Conditions = append(out.Status.Conditions, corev1.NodeCondition{Type: c.Type, Status: c.Status})
		}
	}
	return out
}

// trimMeta keeps what identifies an object and orders Services (the
// oldest keeps a disputed address); labels and annotations are the
// caller's to add back.
func trimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp}
}

// Changed says whether two trimmed objects of an update differ in
// anything metallb reads: an update that changed only what Trim dropped
// (a non-LoadBalancer Service, an endpoint's address, a Node's heartbeat)
// comes with a new resourceVersion and nothing else.
func Changed(old, cur any) bool {
	switch o := old.(type) {
	case *corev1.Service:
		return differ(o, cur)
	case *discoveryv1.EndpointSlice:
		return differ(o, cur)
	case *corev1.Node:
		return differ(o, cur)
	}
	return true
}

// differ compares shallow copies with their resourceVersions cleared.
func differ[T any, P interface {
	*T
	metav1.Object
}](old P, cur any) bool {
	c, ok := cur.(P)
	if !ok {
		return true
	}
	a, b := *old, *c
	P(&a).SetResourceVersion("")
	P(&b).SetResourceVersion("")
	return !equality.Semantic.DeepEqual(&a, &b)
}
