package k8s

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --context picks a context of the kubeconfig, as kubectl's does.
func TestRestConfigForContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	kc := `apiVersion: v1
kind: Config
clusters:
- {name: a, cluster: {server: "https://192.0.2.1:16443"}}
- {name: b, cluster: {server: "https://192.0.2.2:16443"}}
users:
- {name: u, user: {token: t}}
contexts:
- {name: one, context: {cluster: a, user: u}}
- {name: two, context: {cluster: b, user: u}}
current-context: one
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	for ctx, want := range map[string]string{"": "https://192.0.2.1:16443", "two": "https://192.0.2.2:16443"} {
		cfg, err := RestConfigFor(Kubeconfig{Path: path, Context: ctx})
		if err != nil || cfg.Host != want {
			t.Errorf("context %q: %v, host %v, want %s", ctx, err, cfg, want)
		}
	}
	if _, err := RestConfigFor(Kubeconfig{Path: path, Context: "three"}); err == nil || !strings.Contains(err.Error(), "three") {
		t.Errorf("unknown context: %v", err)
	}
}
