package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Snap is where MicroK8s keeps its files. "microk8s enable" runs the hook
// with $SNAP, $SNAP_DATA and $SNAP_COMMON set; run directly (to change the
// range, say) the hook finds the snap's standard paths instead, when they
// exist.
type Snap struct {
	Root   string // $SNAP: the snap's files (microk8s-ctr.wrapper)
	Data   string // $SNAP_DATA: args, credentials, certs
	Common string // $SNAP_COMMON: what survives refreshes (the saved configuration)
}

// The snap's standard paths, used when the environment does not name them.
const (
	DefaultSnapRoot   = "/snap/microk8s/current"
	DefaultSnapData   = "/var/snap/microk8s/current"
	DefaultSnapCommon = "/var/snap/microk8s/common"
)

// FindSnap reads the environment (getenv; nil: os.Getenv), falling back on
// each standard path that exists on this host (exists; nil: os.Stat).
func FindSnap(getenv func(string) string, exists func(string) bool) Snap {
	if getenv == nil {
		getenv = os.Getenv
	}
	if exists == nil {
		exists = func(p string) bool { _, err := os.Stat(p); return err == nil }
	}
	pick := func(env, def string) string {
		if v := getenv(env); v != "" {
			return v
		}
		if exists(def) {
			return def
		}
		return ""
	}
	return Snap{
		Root:   pick("SNAP", DefaultSnapRoot),
		Data:   pick("SNAP_DATA", DefaultSnapData),
		Common: pick("SNAP_COMMON", DefaultSnapCommon),
	}
}

// Ctr is MicroK8s's containerd client, which targets the kubelet's k8s.io
// namespace; nil outside MicroK8s.
func (s Snap) Ctr() []string {
	if s.Root == "" {
		return nil
	}
	return []string{filepath.Join(s.Root, "microk8s-ctr.wrapper")}
}

// CallbackToken is the cluster agents' token file; "" outside MicroK8s.
func (s Snap) CallbackToken() string { return s.under(s.Data, "credentials", "callback-token.txt") }

// ClusterCA is the cluster's CA certificate; "" outside MicroK8s.
func (s Snap) ClusterCA() string { return s.under(s.Data, "certs", "ca.crt") }

// SavedConfig is where disable keeps the configuration; "" outside MicroK8s.
func (s Snap) SavedConfig() string { return SavedConfigPath(s.Common) }

func (Snap) under(dir string, elem ...string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(append([]string{dir}, elem...)...)
}

// The Service of MicroK8s's registry addon.
const (
	RegistryNamespace = "container-registry"
	RegistryService   = "registry"
)

// RegistryAddon returns where MicroK8s's registry addon takes images on
// every node ("localhost:NODEPORT", 32000 by default), or "" when it is not
// enabled.
func RegistryAddon(ctx context.Context, client kubernetes.Interface) (string, error) {
	if client == nil {
		return "", nil
	}
	svc, err := client.CoreV1().Services(RegistryNamespace).Get(ctx, RegistryService, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look for MicroK8s's registry addon (Service %s/%s): %w", RegistryNamespace, RegistryService, err)
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			return fmt.Sprintf("localhost:%d", p.NodePort), nil
		}
	}
	return "", nil
}
