package k8s

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/allocator"
	"github.com/microk8s-metallb/metallb/pkg/config"
)

// Owned reports whether the Service is served: type LoadBalancer, not being
// deleted, and a loadBalancerClass equal to class (none when class is empty).
func Owned(svc *corev1.Service, class string) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.DeletionTimestamp == nil && ServesClass(svc, class)
}

// AllocatorService turns a Service into the allocator's view of it.
func AllocatorService(svc *corev1.Service, req allocator.Request, nsLabels NamespaceLabels) allocator.Service {
	s := allocator.Service{
		Key:             svc.Namespace + "/" + svc.Name,
		Namespace:       svc.Namespace,
		Labels:          svc.Labels,
		NamespaceLabels: nsLabels.of(svc.Namespace),
		Pool:            req.Pool,
		Requested:       req.Requested,
		SharingKey:      req.SharingKey,
		Local:           svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		Selector:        labels.SelectorFromSet(svc.Spec.Selector).String(),
	}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		s.Ports = append(s.Ports, allocator.Port{Protocol: proto, Port: p.Port})
	}
	for _, f := range svc.Spec.IPFamilies {
		if f == corev1.IPv6Protocol {
			s.Families = append(s.Families, allocator.IPv6)
		} else {
			s.Families = append(s.Families, allocator.IPv4)
		}
	}
	if svc.Spec.IPFamilyPolicy != nil {
		s.Policy = allocator.FamilyPolicy(*svc.Spec.IPFamilyPolicy)
	}
	return s
}

// NamespaceLabels returns the labels of a namespace (nil: none known), for
// the pools' namespaceSelectors.
type NamespaceLabels func(namespace string) map[string]string

func (f NamespaceLabels) of(ns string) map[string]string {
	if f == nil {
		return nil
	}
	return f(ns)
}

// Holdings returns the addresses the served Services hold in their status,
// oldest Service first (so that when two claim one address, the older
// keeps it). A Service whose annotations do not parse is taken as asking
// for nothing in particular.
func Holdings(svcs []*corev1.Service, class string, nsLabels NamespaceLabels) []allocator.Holding {
	svcs = slices.Clone(svcs)
	slices.SortFunc(svcs, func(a, b *corev1.Service) int {
		if d := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); d != 0 {
			return d
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	var out []allocator.Holding
	for _, s := range svcs {
		ips := IngressIPs(s)
		if len(ips) == 0 || !Owned(s, class) {
			continue
		}
		req, err := allocator.ParseRequest(s.Annotations, s.Spec.LoadBalancerIP)
		if err != nil {
			req = allocator.Request{}
		}
		out = append(out, allocator.Holding{Service: AllocatorService(s, req, nsLabels), IPs: ips})
	}
	return out
}

// maxListed caps the Services a refusal names; the rest are counted.
const maxListed = 10

// AddressChangeError refuses a config that would take addresses from
// Services (allocator.Impact), unless the operator opts in with
// AllowChangesAnnotation.
type AddressChangeError struct {
	Affected  []allocator.Affected
	Namespace string // of the ConfigMap, for the fix
	Name      string
	Fix       string // what to do instead (default: the annotation)
	// Pools maps each IPAddressPool (a resource) whose addresses the
	// Services hold to those Services' keys.
	Pools map[string][]string
}

// PoolNames lists Pools' names in order.
func (e *AddressChangeError) PoolNames() []string {
	return slices.Sorted(maps.Keys(e.Pools))
}

func (e *AddressChangeError) Error() string {
	fix := e.Fix
	if fix == "" {
		fix = fmt.Sprintf("keep their addresses in a pool of the same protocol, or, to renumber them on purpose, annotate the ConfigMap (kubectl -n %s annotate configmap %s %s=true)",
			e.Namespace, e.Name, AllowChangesAnnotation)
		if names := e.PoolNames(); len(names) > 0 {
			fix = fmt.Sprintf("keep their addresses in a pool of the same protocol, or, to renumber them on purpose, annotate the IPAddressPool (kubectl -n %s annotate ipaddresspool %s %s=true)",
				e.Namespace, names[0], AllowChangesAnnotation)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the new config would take or change the addresses of %d Service(s); %s: ", len(e.Affected), fix)
	for i, a := range e.Affected {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more", len(e.Affected)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// AddressImpact judges cfg against the cluster as the controller would: the
// Services' current addresses against the config in force (the accepted one,
// else the live ConfigMap's, else none).
func AddressImpact(ctx context.Context, c kubernetes.Interface, namespace, name, class string, cfg *config.Config) ([]allocator.Affected, error) {
	var old *config.Config
	for _, n := range []string{AcceptedName(name), name} {
		text, err := ConfigText(ctx, c, namespace, n)
		if err != nil {
			return nil, err
		}
		if text == "" {
			continue
		}
		if o, err := config.Parse([]byte(text)); err == nil {
			old = o
			break
		}
	}
	return AddressImpactAgainst(ctx, c, old, class, cfg)
}

// AddressImpactAgainst is AddressImpact with the configuration in force
// given (nil: none, a first install).
func AddressImpactAgainst(ctx context.Context, c kubernetes.Interface, old *config.Config, class string, cfg *config.Config) ([]allocator.Affected, error) {
	svcs, err := ListServices(ctx, c)
	if err != nil {
		return nil, err
	}
	nss, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Namespaces (pools' namespaceSelectors): %w", err)
	}
	labels := map[string]map[string]string{}
	for _, ns := range nss.Items {
		labels[ns.Name] = ns.Labels
	}
	return allocator.Impact(old, cfg, Holdings(svcs, class, func(ns string) map[string]string { return labels[ns] })), nil
}

// ConfigText returns the config key of a ConfigMap, "" when there is none.
func ConfigText(ctx context.Context, c kubernetes.Interface, namespace, name string) (string, error) {
	cm, err := c.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read ConfigMap %s/%s: %w", namespace, name, err)
	}
	return cm.Data[ConfigKey], nil
}

// PoolMessage says, for an Event on IPAddressPool pool, why the
// configuration that changes or deletes it is not applied.
func (e *AddressChangeError) PoolMessage(pool string) string {
	svcs := e.Pools[pool]
	list := strings.Join(svcs[:min(len(svcs), maxListed)], ", ")
	if len(svcs) > maxListed {
		list += fmt.Sprintf(" and %d more", len(svcs)-maxListed)
	}
	return fmt.Sprintf("%d Service(s) hold addresses of this pool, so the change (or deletion) that would take them is not applied, and a deletion waits: %s. "+
		"Delete those Services or move them to another pool, or renumber them on purpose: kubectl -n %s annotate ipaddresspool %s %s=true",
		len(svcs), list, e.Namespace, pool, AllowChangesAnnotation)
}
