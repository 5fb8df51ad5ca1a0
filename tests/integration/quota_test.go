package integration

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestResourceQuotaLimitsLoadBalancers shows the documented protection
// against a namespace exhausting the pools: a ResourceQuota on
// services.loadbalancers is enforced by the API server, and the Services
// admitted get their addresses as usual.
func TestResourceQuotaLimitsLoadBalancers(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	ctx := context.Background()
	if _, err := c.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "load-balancers"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceServicesLoadBalancers: resource.MustParse("2")}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the quota controller to compute the quota", func() bool {
		q, err := c.CoreV1().ResourceQuotas(ns).Get(ctx, "load-balancers", metav1.GetOptions{})
		return err == nil && q.Status.Hard != nil
	})
	startController(t, c, ns, smallPools)
	createSvc(t, c, ns, lbService("a"))
	createSvc(t, c, ns, lbService("b"))
	_, err := c.CoreV1().Services(ns).Create(ctx, lbService("c"), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "exceeded quota") {
		t.Fatalf("a third LoadBalancer Service was not refused: %v", err)
	}
	t.Logf("refused: %v", err)
	// The two admitted Services get the pool's first two addresses, in
	// whichever order the controller's workers take them.
	eventually(t, 10*time.Second, "addresses for a and b", func() bool {
		got := []string{ingressOf(t, c, ns, "a"), ingressOf(t, c, ns, "b")}
		sort.Strings(got)
		return got[0] == "192.0.2.10" && got[1] == "192.0.2.11"
	})
}
