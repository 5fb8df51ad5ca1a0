package install

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/microk8s-metallb/metallb/pkg/config"
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
	const edit = "address-pools:\n- {name: default, protocol: bgp, addresses: [192.0.2.200-192.0.2.210]}\n"
	pool, err := config.ResourceDocument("metallb.io/v1beta1", "IPAddressPool", "extra", nil, map[string]any{"addresses": []any{"198.51.100.64/28"}})
	if err != nil {
		t.Fatal(err)
	}
	withPool, err := config.Combine(savedConfig, [][]byte{pool})
	if err != nil {
		t.Fatal(err)
	}
	stale := cm("config-accepted", savedConfig)
	stale.Annotations = map[string]string{"metallb.io/config-state": "stale", "metallb.io/config-stale-reason": "demo/web [192.0.2.200]: its pool's protocol changes"}
	for _, tc := range []struct {
		name     string
		objs     []*corev1.ConfigMap
		wantFrom string
		want     *Saved
	}{
		{"the ConfigMap in force", []*corev1.ConfigMap{cm("config", savedConfig), cm("config-accepted", savedConfig)},
			"the configuration in force (ConfigMap metallb-system/config-accepted)", &Saved{Accepted: savedConfig}},
		{"a refused edit, with the reason", []*corev1.ConfigMap{cm("config", edit), stale},
			"the configuration in force (ConfigMap metallb-system/config-accepted) and the edit of ConfigMap metallb-system/config not in force, with the controller's reason for refusing it",
			&Saved{Accepted: savedConfig, Edit: edit, Reason: "demo/web [192.0.2.200]: its pool's protocol changes"}},
		{"a broken ConfigMap: kept too", []*corev1.ConfigMap{cm("config", "address-pools: [\n"), cm("config-accepted", savedConfig)},
			"the configuration in force (ConfigMap metallb-system/config-accepted) and the edit of ConfigMap metallb-system/config not in force",
			&Saved{Accepted: savedConfig, Edit: "address-pools: [\n"}},
		{"metallb.io resources in force: the ConfigMap is its part", []*corev1.ConfigMap{cm("config", savedConfig), cm("config-accepted", withPool)},
			"the configuration in force (ConfigMap metallb-system/config-accepted)", &Saved{Accepted: withPool}},
		{"no accepted copy: the ConfigMap", []*corev1.ConfigMap{cm("config", savedConfig)},
			"the configuration (ConfigMap metallb-system/config)", &Saved{Accepted: savedConfig}},
		{"nothing", nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientset()
			for _, o := range tc.objs {
				if _, err := c.CoreV1().ConfigMaps("metallb-system").Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			path := SavedConfigPath(dir)
			// What an earlier disable left is replaced, not mixed in.
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(editPath(path), []byte("stale edit"), 0o600); err != nil {
				t.Fatal(err)
			}
			from, err := SaveConfig(context.Background(), c, "metallb-system", path)
			if err != nil || from != tc.wantFrom {
				t.Fatalf("SaveConfig = %q, %v; want %q", from, err, tc.wantFrom)
			}
			if tc.want == nil {
				return
			}
			got, err := LoadSaved(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("LoadSaved (-want +got):\n%s", diff)
			}
			for _, p := range []string{path, editPath(path), reasonPath(path)} {
				if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != 0o600 {
					t.Errorf("%s saved with mode %v: it may hold BGP passwords", p, fi.Mode().Perm())
				}
			}
			if gone, err := ForgetSaved(path); !gone || err != nil {
				t.Fatalf("ForgetSaved = %v, %v", gone, err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
				t.Errorf("still saved after ForgetSaved: %v", entries)
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
	want := "the configuration saved by disable (" + path + ") is not valid: fix it, or remove it to start afresh (microk8s disable lab/metallb --purge): "
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
				Image: fixedImage("x")}
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

// A saved edit that was not in force comes back as the ConfigMap (the
// controller judges it again against the saved configuration in force);
// one that does not parse stays aside, in its file.
func TestEnableRestoresTheSavedEdit(t *testing.T) {
	const edit = "address-pools:\n- {name: default, protocol: bgp, addresses: [192.0.2.200-192.0.2.210]}\n"
	for _, tc := range []struct {
		name, edit, reason string
		want               []string
	}{
		{"refused", edit, "demo/web [192.0.2.200]: its pool's protocol changes", []string{
			"restoring the ConfigMap's edit that was not in force at disable (refused by the controller: demo/web [192.0.2.200]: its pool's protocol changes)",
			"name: default, protocol: bgp, addresses: [192.0.2.200-192.0.2.210]",
		}},
		{"not judged yet", edit, "", []string{
			"restoring the ConfigMap's edit that was not in force at disable (not yet judged by the controller)",
			"name: default, protocol: bgp",
		}},
		{"broken", "address-pools: [\n", "", []string{
			"note: the edit the ConfigMap held at disable does not parse, so it is not restored (it stays in ",
			"name: bgp-pool, protocol: bgp, addresses: [198.51.100.0/28]",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := SavedConfigPath(t.TempDir())
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			for p, text := range map[string]string{path: savedConfig, editPath(path): tc.edit, reasonPath(path): tc.reason} {
				if err := writeOrRemove(p, text); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			e := &Enable{Out: &out, Host: fakeHost{}, DryRun: true, NoProbe: true, Yes: true, SavedPath: path,
				Image: fixedImage("x")}
			if err := e.Run(context.Background()); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, want := range tc.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("missing %q in:\n%s", want, out.String())
				}
			}
		})
	}
}

// The Secrets the BGPPeers' passwordSecret name go with the namespace at
// disable: they are saved (mode 0600) with the configuration and the next
// enable makes them again; one missing, or in another namespace, is not.
func TestSavedPeerSecretsComeBack(t *testing.T) {
	ctx := context.Background()
	var docs [][]byte
	for i, p := range []struct{ name, secret, ns string }{{"r1", "router-key", ""}, {"r2", "router-key", "metallb-system"}, {"r3", "no-such", ""}, {"r4", "elsewhere", "kube-system"}} {
		ref := map[string]any{"name": p.secret}
		if p.ns != "" {
			ref["namespace"] = p.ns
		}
		d, err := config.ResourceDocument("metallb.io/v1beta2", "BGPPeer", p.name, nil, map[string]any{
			"myASN": 64501, "peerASN": 64500, "peerAddress": fmt.Sprintf("192.0.2.%d", i+1), "passwordSecret": ref})
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	pool, err := config.ResourceDocument("metallb.io/v1beta1", "IPAddressPool", config.DefaultResourcePool, nil, map[string]any{"addresses": []any{"198.51.100.64/28"}})
	if err != nil {
		t.Fatal(err)
	}
	adv, err := config.ResourceDocument("metallb.io/v1beta1", "BGPAdvertisement", "routed", nil, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	accepted, err := config.Combine("", append(docs, pool, adv))
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientset(cm("config", ""), cm("config-accepted", accepted),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "router-key", Namespace: "metallb-system"}, Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{"password": []byte("s3cret")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "kube-system"}, Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{"password": []byte("x")}})
	path := SavedConfigPath(t.TempDir())
	from, err := SaveConfig(ctx, c, "metallb-system", path)
	if want := "the configuration in force (ConfigMap metallb-system/config-accepted), and the 1 Secret(s) its BGPPeers' passwordSecret name"; err != nil || from != want {
		t.Fatalf("SaveConfig = %q, %v; want %q", from, err, want)
	}
	if fi, err := os.Stat(secretsPath(path)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the saved Secrets: %v, %v: want mode 0600", fi, err)
	}
	saved, err := LoadSaved(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "apiVersion: v1\ndata:\n  password: czNjcmV0\nkind: Secret\nmetadata:\n  name: router-key\ntype: kubernetes.io/basic-auth\n"
	if len(saved.Secrets) != 1 || string(saved.Secrets[0]) != want {
		t.Fatalf("saved Secrets = %q, want [%q]", saved.Secrets, want)
	}

	var out bytes.Buffer
	e := &Enable{Out: &out, Host: fakeHost{}, DryRun: true, NoProbe: true, Yes: true, SavedPath: path, Image: fixedImage("x")}
	if err := e.Run(ctx); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"restoring 1 Secret(s) saved by disable for the BGPPeers' passwordSecret\n",
		"kind: Secret\nmetadata:\n  name: router-key\n  namespace: metallb-system\ntype: kubernetes.io/basic-auth\n",
		"password: czNjcmV0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}

	if err := os.WriteFile(secretsPath(path), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSaved(path); err == nil || !strings.Contains(err.Error(), "hold a v1 ConfigMap: only Secrets belong there") {
		t.Errorf("LoadSaved with a ConfigMap among the Secrets = %v", err)
	}
	if gone, err := ForgetSaved(path); !gone || err != nil {
		t.Fatalf("ForgetSaved = %v, %v", gone, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Errorf("still saved after ForgetSaved: %v", entries)
	}
}
