package speaker

// What the speaker knows of the cluster, from its caches: the input of
// announce.Core, handed over by difference (the Services the informers
// said changed), so that a change costs what it touches.

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// byService indexes EndpointSlices by the key of their Service.
const byService = "service"

func sliceService(obj any) []string {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil
	}
	name := es.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil
	}
	return []string{es.Namespace + "/" + name}
}

// serviceKeys returns the Service keys an informer event concerns.
func serviceKeys(obj any) []string {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		if _, isSlice := d.Obj.(*discoveryv1.EndpointSlice); !isSlice {
			return []string{d.Key}
		}
		obj = d.Obj
	}
	if _, isSlice := obj.(*discoveryv1.EndpointSlice); isSlice {
		return sliceService(obj)
	}
	key, err := cache.MetaNamespaceKeyFunc(obj)
	if err != nil {
		return nil
	}
	return []string{key}
}

// sync hands the core what changed since the last plan: the config, the
// nodes (a few, compared each time) and the Services named by events.
func (s *Speaker) sync() {
	s.core.SetConfig(s.watcher.Current())
	s.core.SetNodes(s.nodeList())
	for _, key := range s.inbox.takeServices() {
		if v, ok := s.svc(key); ok {
			s.core.SetService(v)
		} else {
			s.core.DeleteService(key)
		}
	}
}

// env is what the core plans in, besides the world.
func (s *Speaker) env() announce.Env {
	env := announce.Env{Self: s.o.NodeName, Now: time.Now()}
	if ml := s.ml; ml != nil {
		env.Isolated = len(ml.Known()) > 0 && ml.Peers() == 0
	}
	return env
}

// nodeList returns every node with whether its speaker is alive and
// whether it may announce.
func (s *Speaker) nodeList() []announce.Node {
	ml := s.ml
	var out []announce.Node
	for _, obj := range s.nodes.List() {
		n := obj.(*corev1.Node)
		_, excluded := n.Labels[ExcludeLabel]
		ready := nodeReady(n) && !excluded
		live := ml != nil && ml.Alive(n.Name)
		node := announce.Node{Name: n.Name, Labels: n.Labels, Eligible: live && ready, Live: live, Ready: ready}
		node.Addrs = k8s.NodeAddrs(n, corev1.NodeInternalIP, corev1.NodeExternalIP)
		out = append(out, node)
	}
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// svc returns one of our LoadBalancer Services that has addresses, with
// the nodes of its ready endpoints (false: none such under key).
func (s *Speaker) svc(key string) (announce.Svc, bool) {
	svc := s.service(key)
	if svc == nil || svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !k8s.ServesClass(svc, s.o.LBClass) {
		return announce.Svc{}, false
	}
	v := announce.Svc{Key: key, Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal}
	v.IPs = k8s.IngressIPs(svc)
	if len(v.IPs) == 0 {
		return announce.Svc{}, false
	}
	slices, _ := s.slices.ByIndex(byService, key)
	ready := map[string]bool{}
	for _, obj := range slices {
		for _, ep := range obj.(*discoveryv1.EndpointSlice).Endpoints {
			if (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && ep.NodeName != nil && !ready[*ep.NodeName] {
				ready[*ep.NodeName] = true
				v.ReadyNodes = append(v.ReadyNodes, *ep.NodeName)
			}
		}
	}
	return v, true
}

func (s *Speaker) service(key string) *corev1.Service {
	obj, ok, _ := s.svcs.GetByKey(key)
	if !ok {
		return nil
	}
	return obj.(*corev1.Service)
}
