package k8s

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Where MicroK8s keeps its admin kubeconfig.
const microk8sKubeconfig = "/var/snap/microk8s/current/credentials/client.config"

// Kubeconfig says which kubeconfig to use and which of its contexts (""
// for each: RestConfig's lookup, the file's current context).
type Kubeconfig struct {
	Path    string
	Context string
}

// RestConfig finds a kubeconfig: the explicit path, $KUBECONFIG, the in-cluster
// service account, MicroK8s's client.config ($SNAP_DATA or the default snap
// path), then ~/.kube/config.
func RestConfig(explicit string) (*rest.Config, error) {
	return RestConfigFor(Kubeconfig{Path: explicit})
}

// RestConfigFor is RestConfig with a context chosen (kubectl's --context).
func RestConfigFor(k Kubeconfig) (*rest.Config, error) {
	path := k.Path
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" && k.Context == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return cfg, nil
	}
	if path == "" {
		var candidates []string
		if d := os.Getenv("SNAP_DATA"); d != "" {
			candidates = append(candidates, filepath.Join(d, "credentials", "client.config"))
		}
		candidates = append(candidates, microk8sKubeconfig)
		if home, err := os.UserHomeDir(); err == nil {
			candidates = append(candidates, filepath.Join(home, ".kube", "config"))
		}
		for _, c := range candidates {
			if _, err := os.Stat(c); err == nil {
				path = c
				break
			}
		}
	}
	if path == "" {
		return nil, fmt.Errorf("no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or run inside the cluster")
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: path},
		&clientcmd.ConfigOverrides{CurrentContext: k.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// Client returns a clientset for the kubeconfig RestConfig finds. qps and
// burst set the client-side rate limit (0: 200 and 400, enough for a
// controller that writes a status and an Event per Service in bursts).
func Client(kubeconfig, userAgent string, qps float32, burst int) (kubernetes.Interface, *rest.Config, error) {
	return ClientFor(Kubeconfig{Path: kubeconfig}, userAgent, qps, burst)
}

// ClientFor is Client with a context chosen.
func ClientFor(k Kubeconfig, userAgent string, qps float32, burst int) (kubernetes.Interface, *rest.Config, error) {
	cfg, err := RestConfigFor(k)
	if err != nil {
		return nil, nil, err
	}
	cfg.UserAgent = userAgent
	cfg.QPS, cfg.Burst = qps, burst
	if cfg.QPS == 0 {
		cfg.QPS = 200
	}
	if cfg.Burst == 0 {
		cfg.Burst = 2 * int(cfg.QPS)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("build client: %w", err)
	}
	return cs, cfg, nil
}
