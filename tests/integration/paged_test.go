package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// TestListServicesPagesAndTrims lists, through the real API server, more
// Services than two pages hold: every one comes back once, trimmed (a
// LoadBalancer keeps metallb's annotations, loses the others).
func TestListServicesPagesAndTrims(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	n := 2*k8s.ListPageSize + 3
	want := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		createSvc(t, c, ns, lbService(name, annotate("metallb.io/address-pool", "p"), annotate("example.com/junk", strings.Repeat("x", 4096))))
		want[name] = "metallb.io/address-pool=p"
	}
	svcs, err := k8s.ListServices(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range svcs {
		if s.Namespace != ns {
			continue
		}
		if _, dup := got[s.Name]; dup {
			t.Errorf("%s listed twice", s.Name)
		}
		var kv []string
		for k, v := range s.Annotations {
			kv = append(kv, k+"="+v)
		}
		got[s.Name] = strings.Join(kv, ",")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed Services (-want +got):\n%s", diff)
	}
}
