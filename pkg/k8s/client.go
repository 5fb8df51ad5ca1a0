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

// RestConfig finds a kubeconfig: the explicit path, $KUBECONFIG, the in-cluster
// service account, MicroK8s's client.config ($SNAP_DATA or the default snap
// path), then ~/.kube/config.
func RestConfig(explicit string) (*rest.Config, error) {
	path := explicit
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
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
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// Client returns a clientset for the kubeconfig RestConfig finds. qps and
// burst set the client-side rate limit (0: 200 and 400, enough for a
// controller that writes a status and an Event per Service in bursts).
func Client(kubeconfig, userAgent string, qps float32, burst int) (kubernetes.Interface, *rest.Config, error) {
	cfg, err := RestConfig(kubeconfig)
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
