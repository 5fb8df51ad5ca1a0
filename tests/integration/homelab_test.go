package integration

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestHomelabExamples creates every YAML example of docs/homelab.md with a
// server-side dry run, so the docs stay valid against the real API.
func TestHomelabExamples(t *testing.T) {
	env := cluster.Require(t)
	ns := newNamespace(t, env.Client)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "homelab.md"))
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	blocks := yamlBlock.FindAllSubmatch(doc, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d YAML examples, want at least 3", len(blocks))
	}
	for _, b := range blocks {
		var obj map[string]any
		if err := yaml.Unmarshal(b[1], &obj); err != nil {
			t.Errorf("example does not parse: %v\n%s", err, b[1])
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		u.SetNamespace(ns) // the examples' namespaces may not exist here
		gvr, ok := map[string]string{"NetworkPolicy": "networkpolicies", "ResourceQuota": "resourcequotas", "Service": "services"}[u.GetKind()]
		if !ok {
			t.Errorf("no test for kind %s", u.GetKind())
			continue
		}
		gv := u.GroupVersionKind().GroupVersion()
		_, err := dyn.Resource(gv.WithResource(gvr)).Namespace(ns).Create(context.Background(), u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}
