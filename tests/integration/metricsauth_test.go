package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// TestMetricsTokenAuthorizer: the metrics endpoints' authorizer, running
// with the speaker's and the controller's RBAC from the shipped manifests,
// asks the real API server (TokenReview, SubjectAccessReview). The token of
// the shipped metrics-reader ServiceAccount (what the PodMonitors send) is
// served /metrics and nothing else; another ServiceAccount's token is
// refused; a bad token is unauthorized.
func TestMetricsTokenAuthorizer(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ctx := context.Background()
	ns := newNamespace(t, c)
	applyShippedRBAC(t, ns, "Secret")
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nosy"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	// The PodMonitors' token: the one the token controller puts in the
	// shipped Secret.
	var reader string
	eventually(t, 20*time.Second, "the metrics-reader token Secret filled", func() bool {
		s, err := c.CoreV1().Secrets(ns).Get(ctx, "metrics-reader-token", metav1.GetOptions{})
		if err == nil {
			reader = string(s.Data["token"])
		}
		return reader != ""
	})
	for _, sa := range []string{"speaker", "controller"} {
		cfg := rest.AnonymousClientConfig(env.Config)
		cfg.BearerToken = token(sa)
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		auth := k8s.NewTokenAuthorizer(client)
		got := map[string]int{}
		got["metrics-reader"], _ = auth.Authorize(ctx, reader, "/metrics")
		got["metrics-reader, other path"], _ = auth.Authorize(ctx, reader, "/debug/pprof/")
		got["nosy"], _ = auth.Authorize(ctx, token("nosy"), "/metrics")
		got["garbage"], _ = auth.Authorize(ctx, "not-a-token", "/metrics")
		want := map[string]int{"metrics-reader": http.StatusOK, "metrics-reader, other path": http.StatusForbidden,
			"nosy": http.StatusForbidden, "garbage": http.StatusUnauthorized}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", sa, diff)
		}
	}
}
