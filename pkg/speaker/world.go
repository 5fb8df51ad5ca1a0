package speaker

// What the speaker knows of the cluster, from its caches: the input of
// announce.Core.

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// input gathers what the core plans from.
func (s *Speaker) input() announce.Input {
	nodes := s.nodeList()
	in := announce.Input{Config: s.watcher.Current(), Self: s.o.NodeName, Nodes: nodes, Svcs: s.svcList(), Now: time.Now()}
	if ml := s.ml; ml != nil {
		in.Known = ml.Known()
		in.Isolated = len(in.Known) > 0 && ml.Peers() == 0
	}
	return in
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

// svcList returns our LoadBalancer Services that have addresses, with the
// nodes of their ready endpoints.
func (s *Speaker) svcList() []announce.Svc {
	ready := map[string]map[string]bool{}
	for _, obj := range s.slices.List() {
		es := obj.(*discoveryv1.EndpointSlice)
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := es.Namespace + "/" + name
		for _, ep := range es.Endpoints {
			if (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && ep.NodeName != nil {
				if ready[key] == nil {
					ready[key] = map[string]bool{}
				}
				ready[key][*ep.NodeName] = true
			}
		}
	}
	var out []announce.Svc
	for _, obj := range s.svcs.List() {
		svc := obj.(*corev1.Service)
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !k8s.ServesClass(svc, s.o.LBClass) {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		v := announce.Svc{Key: key, Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal}
		v.IPs = k8s.IngressIPs(svc)
		for n := range ready[key] {
			v.ReadyNodes = append(v.ReadyNodes, n)
		}
		if len(v.IPs) > 0 {
			out = append(out, v)
		}
	}
	return out
}

func (s *Speaker) service(key string) *corev1.Service {
	obj, ok, _ := s.svcs.GetByKey(key)
	if !ok {
		return nil
	}
	return obj.(*corev1.Service)
}
