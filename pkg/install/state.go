package install

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	sigsyaml "sigs.k8s.io/yaml"

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

// Saved is what disable keeps: the configuration in force, and the
// operator's edit when the ConfigMap held another one (refused by the
// controller, or not judged yet), with what the controller said of it.
// The next enable restores both as they were, so a refusal is not lifted
// by disabling and enabling again.
type Saved struct {
	Accepted string // in force: the controller's accepted copy
	Edit     string // the ConfigMap's text when it differs; "" when none
	Reason   string // why the controller refused Edit ("" when it did not)
	// Secrets are the Secrets of the namespace that Accepted's BGPPeers
	// name in passwordSecret, one YAML document each: the namespace goes
	// with disable, and a peer without its key has no session.
	Secrets [][]byte
}

// editPath, reasonPath and secretsPath sit next to the accepted
// configuration.
func editPath(path string) string    { return strings.TrimSuffix(path, ".yaml") + ".edit.yaml" }
func reasonPath(path string) string  { return strings.TrimSuffix(path, ".yaml") + ".edit-refused.txt" }
func secretsPath(path string) string { return strings.TrimSuffix(path, ".yaml") + ".secrets.yaml" }

// SaveConfig writes the cluster's configuration to path (mode 0600: it may
// hold BGP passwords): the controller's accepted copy (the ConfigMap's
// when there is none that parses: a controller that never ran), and next
// to it the ConfigMap's text when it differs, with the controller's reason
// for refusing it. It returns what it saved, for a person ("" when metallb
// holds no configuration).
func SaveConfig(ctx context.Context, c kubernetes.Interface, namespace, path string) (string, error) {
	edit, err := k8s.ConfigText(ctx, c, namespace, k8s.DefaultConfigMap)
	if err != nil {
		return "", err
	}
	accName := k8s.AcceptedName(k8s.DefaultConfigMap)
	acc, err := c.CoreV1().ConfigMaps(namespace).Get(ctx, accName, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("read ConfigMap %s/%s: %w", namespace, accName, err)
	}
	var s Saved
	from := ""
	if acc != nil && err == nil {
		if _, perr := config.Parse([]byte(acc.Data[k8s.ConfigKey])); perr == nil && acc.Data[k8s.ConfigKey] != "" {
			s.Accepted, from = acc.Data[k8s.ConfigKey], "the configuration in force (ConfigMap "+namespace+"/"+accName+")"
			if acc.Annotations[k8s.StateAnnotation] == "stale" {
				s.Reason = acc.Annotations[k8s.StateReasonAnnotation]
			}
		}
	}
	if s.Accepted == "" {
		if _, perr := config.Parse([]byte(edit)); perr != nil || edit == "" {
			return "", nil
		}
		s.Accepted, from = edit, "the configuration (ConfigMap "+namespace+"/"+k8s.DefaultConfigMap+")"
	}
	// The accepted copy holds the ConfigMap's text followed by the
	// metallb.io resources in force: the edit is the ConfigMap's part.
	inForce, _, err := config.SplitCombined(s.Accepted)
	if err != nil {
		inForce = s.Accepted
	}
	if edit != "" && edit != inForce {
		s.Edit = edit
		from += " and the edit of ConfigMap " + namespace + "/" + k8s.DefaultConfigMap + " not in force"
		if s.Reason != "" {
			from += ", with the controller's reason for refusing it"
		}
	} else {
		s.Reason = ""
	}
	secrets, err := peerSecrets(ctx, c, namespace, s.Accepted)
	if err != nil {
		return "", err
	}
	if len(secrets) > 0 {
		from += fmt.Sprintf(", and the %d Secret(s) its BGPPeers' passwordSecret name", len(secrets))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("save the configuration: %w", err)
	}
	files := []struct{ path, text string }{{editPath(path), s.Edit}, {reasonPath(path), s.Reason},
		{secretsPath(path), string(bytes.Join(secrets, []byte("---\n")))}, {path, s.Accepted}}
	for _, f := range files {
		if err := writeOrRemove(f.path, f.text); err != nil {
			return "", fmt.Errorf("save the configuration: %w", err)
		}
	}
	return from, nil
}

// peerSecrets returns the Secrets of namespace that the BGPPeers of the
// configuration text name in passwordSecret, as YAML documents holding
// what a Secret needs to be made again (name, type, data). A Secret that
// does not exist is left out: there was no session with that peer either.
func peerSecrets(ctx context.Context, c kubernetes.Interface, namespace, text string) ([][]byte, error) {
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		return nil, nil
	}
	var out [][]byte
	seen := map[string]bool{}
	for _, p := range cfg.Peers {
		name := p.PasswordSecret
		if name == "" || seen[name] || (p.PasswordSecretNamespace != "" && p.PasswordSecretNamespace != namespace) {
			continue
		}
		seen[name] = true
		sec, err := c.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read Secret %s/%s (BGPPeer %s's passwordSecret): %w", namespace, name, p.Name, err)
		}
		doc := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": name}, "type": string(sec.Type)}
		if len(sec.Data) > 0 {
			doc["data"] = sec.Data
		}
		b, err := sigsyaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("save Secret %s/%s: %w", namespace, name, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// readSecrets reads the Secrets saved at path (one YAML document each),
// refusing anything else.
func readSecrets(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the Secrets saved by disable: %w", err)
	}
	var out [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("the Secrets saved by disable (%s): %w", path, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("the Secrets saved by disable (%s): %w", path, err)
		}
		switch {
		case head.APIVersion == "" && head.Kind == "":
			continue // an empty document
		case head.APIVersion != "v1" || head.Kind != "Secret":
			return nil, fmt.Errorf("the Secrets saved by disable (%s) hold a %s %s: only Secrets belong there; fix the file, or remove it", path, head.APIVersion, head.Kind)
		}
		out = append(out, doc)
	}
}

// writeOrRemove writes text to path atomically, or removes path when text
// is "".
func writeOrRemove(path, text string) error {
	if text == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadSaved returns what SaveConfig saved at path (nil when nothing), and
// refuses an accepted configuration that does not parse. An edit that
// does not parse is returned as it is: enable keeps it aside.
func LoadSaved(path string) (*Saved, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the configuration saved by disable: %w", err)
	}
	if _, err := config.Parse(b); err != nil {
		return nil, fmt.Errorf("the configuration saved by disable (%s) is not valid: fix it, or remove it to start afresh (microk8s disable lab/metallb --purge): %w", path, err)
	}
	s := &Saved{Accepted: string(b)}
	if s.Secrets, err = readSecrets(secretsPath(path)); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		to   *string
	}{{editPath(path), &s.Edit}, {reasonPath(path), &s.Reason}} {
		b, err := os.ReadFile(f.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read the configuration saved by disable: %w", err)
		}
		*f.to = string(b)
	}
	return s, nil
}

// ForgetSaved removes the saved configuration (disable --purge).
func ForgetSaved(path string) (bool, error) {
	if path == "" {
		return false, nil
	}
	for _, p := range []string{editPath(path), reasonPath(path), secretsPath(path)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("forget the saved configuration: %w", err)
		}
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
