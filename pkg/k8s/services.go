package k8s

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// ReadConfigMap returns the config text stored in the ConfigMap.
func ReadConfigMap(ctx context.Context, c kubernetes.Interface, namespace, name string) (string, error) {
	cm, err := c.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("ConfigMap %s/%s not found: is metallb installed (microk8s enable metallb)?", namespace, name)
	}
	if err != nil {
		return "", fmt.Errorf("read ConfigMap %s/%s: %w", namespace, name, err)
	}
	data, ok := cm.Data[ConfigKey]
	if !ok {
		return "", fmt.Errorf("ConfigMap %s/%s has no %q key", namespace, name, ConfigKey)
	}
	return data, nil
}

// Uncovered is a Service IP that a config would no longer cover.
type Uncovered struct {
	Service string // namespace/name
	IP      netip.Addr
}

func (u Uncovered) String() string {
	return fmt.Sprintf("%s: %s is in no pool of the new config: the controller would move the Service to a new IP", u.Service, u.IP)
}

// UncoveredServices lists the LoadBalancer Services whose current IPs no pool
// of cfg contains.
func UncoveredServices(ctx context.Context, c kubernetes.Interface, cfg *config.Config) ([]Uncovered, error) {
	svcs, err := c.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	var out []Uncovered
	for _, s := range svcs.Items {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			if cfg.PoolFor(ip) == nil {
				out = append(out, Uncovered{Service: s.Namespace + "/" + s.Name, IP: ip})
			}
		}
	}
	return out, nil
}
