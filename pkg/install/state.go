package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// SavedConfigPath is where disable keeps the configuration for the next
// enable: under MicroK8s's $SNAP_COMMON, which survives disable, snap
// refreshes and reboots. "" when snapCommon is "".
func SavedConfigPath(snapCommon string) string {
	if snapCommon == "" {
		return ""
	}
	return filepath.Join(snapCommon, "metallb", "config.yaml")
}

// SaveConfig writes the cluster's configuration to path (mode 0600: it may
// hold BGP passwords): the ConfigMap's, or the controller's accepted copy
// when the ConfigMap is missing or does not parse. It returns what it saved
// from ("" when metallb holds no configuration).
func SaveConfig(ctx context.Context, c kubernetes.Interface, namespace, path string) (string, error) {
	var text, from string
	for _, name := range []string{k8s.DefaultConfigMap, k8s.AcceptedName(k8s.DefaultConfigMap)} {
		t, err := k8s.ConfigText(ctx, c, namespace, name)
		if err != nil {
			return "", err
		}
		if _, perr := config.Parse([]byte(t)); t != "" && perr == nil {
			text, from = t, "ConfigMap "+namespace+"/"+name
			break
		}
	}
	if text == "" {
		return "", nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("save the configuration: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return "", fmt.Errorf("save the configuration: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("save the configuration: %w", err)
	}
	return from, nil
}

// LoadSaved returns what SaveConfig saved at path ("" when nothing), and
// refuses a file that does not parse.
func LoadSaved(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the configuration saved by disable: %w", err)
	}
	if _, err := config.Parse(b); err != nil {
		return "", fmt.Errorf("the configuration saved by disable (%s) is not valid: fix it, or remove it to start afresh (microk8s disable metallb --purge): %w", path, err)
	}
	return string(b), nil
}

// ForgetSaved removes the saved configuration (disable --purge).
func ForgetSaved(path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("forget the saved configuration: %w", err)
	}
	return true, nil
}
