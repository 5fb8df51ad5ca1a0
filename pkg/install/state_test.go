package install

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

const savedConfig = `# our pools
address-pools:
- {name: default, protocol: layer2, addresses: [192.0.2.200-192.0.2.210]}
- {name: bgp-pool, protocol: bgp, addresses: [198.51.100.0/28]}
peers:
- {peer-address: 192.0.2.1, peer-asn: 64500, my-asn: 64501, password: s3cret}
`

func cm(name, text string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "metallb-system"}, Data: map[string]string{"config": text}}
}

func TestSaveConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		objs     []*corev1.ConfigMap
		wantFrom string
		want     string
	}{
		{"the ConfigMap", []*corev1.ConfigMap{cm("config", savedConfig), cm("config-accepted", "address-pools: []\n")}, "ConfigMap metallb-system/config", savedConfig},
		{"a broken ConfigMap: the accepted copy", []*corev1.ConfigMap{cm("config", "address-pools: [\n"), cm("config-accepted", savedConfig)}, "ConfigMap metallb-system/config-accepted", savedConfig},
		{"nothing", nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientset()
			for _, o := range tc.objs {
				if _, err := c.CoreV1().ConfigMaps("metallb-system").Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			path := SavedConfigPath(t.TempDir())
			from, err := SaveConfig(context.Background(), c, "metallb-system", path)
			if err != nil || from != tc.wantFrom {
				t.Fatalf("SaveConfig = %q, %v; want %q", from, err, tc.wantFrom)
			}
			got, err := LoadSaved(path)
			if err != nil || got != tc.want {
				t.Fatalf("LoadSaved = %q, %v; want %q", got, err, tc.want)
			}
			if tc.want == "" {
				return
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("saved with mode %v: it may hold BGP passwords", fi.Mode().Perm())
			}
			if gone, err := ForgetSaved(path); !gone || err != nil {
				t.Fatalf("ForgetSaved = %v, %v", gone, err)
			}
			if got, _ := LoadSaved(path); got != "" {
				t.Errorf("still saved after ForgetSaved: %q", got)
			}
		})
	}
}

func TestLoadSavedRefusesABrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("address-pools:\n- name: default\n  adresses: [192.0.2.1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSaved(path)
	want := "the configuration saved by disable (" + path + ") is not valid: fix it, or remove it to start afresh (microk8s disable metallb --purge): "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v, want it to start with %q", err, want)
	}
}

// Enable restores what disable saved: every pool and peer, with the
// "default" pool's addresses from the range given, or, without one, as
// saved.
func TestEnableRestoresTheSavedConfig(t *testing.T) {
	path := SavedConfigPath(t.TempDir())
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(savedConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"with a range", []string{"192.0.2.220-192.0.2.230"}, "192.0.2.220-192.0.2.230"},
		{"without one", nil, "192.0.2.200-192.0.2.210"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			e := &Enable{Args: tc.args, Out: &out, Host: fakeHost{}, DryRun: true, NoProbe: true, Yes: true, SavedPath: path,
				Image: func(context.Context, bool) (string, error) { return "x", nil }}
			if err := e.Run(context.Background()); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, want := range []string{
				"restoring the configuration saved by disable (" + path + "): 2 pool(s), 1 BGP peer(s)\n",
				"name: default, protocol: layer2, addresses: [" + tc.want + "]",
				"name: bgp-pool, protocol: bgp, addresses: [198.51.100.0/28]",
				"password: s3cret",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("missing %q in:\n%s", want, out.String())
				}
			}
		})
	}
}
