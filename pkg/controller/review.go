package controller

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/microk8s-metallb/metallb/pkg/allocator"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/webhook"
)

// Review judges an edit of the configuration before it is stored, as
// install would judge it once stored: the configuration the sources would
// then hold must be valid and keep every held address (unless the
// ConfigMap or the pool allows the change). While the sources already hold
// a refused configuration, an edit is allowed with a warning, so that it
// can be fixed one object at a time; the controller's verdict on the
// stored edit stays the authority.
func (c *Controller) Review(_ context.Context, r webhook.Request) webhook.Verdict {
	if r.Namespace != c.opts.Namespace {
		return webhook.Verdict{}
	}
	if !c.watcher.HasSynced() {
		return webhook.Verdict{Warnings: []string{"metallb: not judged before it is stored: the controller is starting"}}
	}
	allowCM := c.watcher.ConfigMapAnnotation(k8s.AllowChangesAnnotation) == "true"
	allows := c.poolAllows
	var text string
	var err error
	switch {
	case r.Kind == "ConfigMap":
		if r.Name != c.opts.ConfigMap {
			return webhook.Verdict{}
		}
		t, _, _ := unstructured.NestedString(r.Object.Object, "data", k8s.ConfigKey)
		text, err = c.watcher.Prospective("", nil, &t)
		allowCM = r.Object.GetAnnotations()[k8s.AllowChangesAnnotation] == "true"
	case slices.Contains(config.ConfigKinds(), r.Kind):
		text, err = c.watcher.Prospective(r.Kind, r.Object, nil)
		if r.Kind == config.KindIPAddressPool {
			allows = func(pool string) bool {
				if pool == r.Name {
					return r.Object.GetAnnotations()[k8s.AllowChangesAnnotation] == "true"
				}
				return c.poolAllows(pool)
			}
		}
	default:
		return webhook.Verdict{}
	}
	if err != nil {
		return webhook.Verdict{Warnings: []string{"metallb: not judged before it is stored: " + err.Error()}}
	}
	stale := c.watcher.Stale()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		if stale {
			return webhook.Verdict{Warnings: []string{"metallb: the configuration is still invalid, the last accepted one stays in force: " + err.Error()}}
		}
		return webhook.Verdict{Refused: fmt.Errorf("the configuration would be invalid: %w", err)}
	}
	var warnings []string
	for _, w := range cfg.Warnings {
		warnings = append(warnings, "metallb: "+w)
	}
	c.mu.Lock()
	var affected []allocator.Affected
	if c.inForce != nil {
		affected = allocator.Impact(c.inForce, cfg, c.alloc.Holdings())
	}
	pools, poolsAllow := c.heldPools(affected, allows)
	c.mu.Unlock()
	if len(affected) == 0 || allowCM || poolsAllow {
		return webhook.Verdict{Warnings: warnings}
	}
	refusal := &k8s.AddressChangeError{Affected: affected, Namespace: c.opts.Namespace, Name: c.opts.ConfigMap, Pools: pools}
	if stale {
		return webhook.Verdict{Warnings: append(warnings, "metallb: the last accepted configuration stays in force: "+refusal.Error())}
	}
	return webhook.Verdict{Refused: refusal, Warnings: warnings}
}
