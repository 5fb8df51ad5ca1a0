package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestValidateFromClusterGivesTheControllersVerdict runs the real binary against the
// real API server: the live ConfigMap validates, and a new config that drops
// a Service's address is refused, with the controller's words, before it is
// applied.
func TestValidateFromClusterGivesTheControllersVerdict(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	ctx := context.Background()
	setConfig(t, c, ns, "address-pools:\n- {name: old, protocol: layer2, addresses: [192.0.2.0/28]}\n")
	s, err := c.CoreV1().Services(ns).Create(ctx, lbService("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vip := corev1.LoadBalancerIPModeVIP
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.5", IPMode: &vip}}
	if _, err := c.CoreV1().Services(ns).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	bin := metallbBinary(t)

	out, err := exec.Command(bin, "config", "validate", "--from-cluster", "--kubeconfig", env.Kubeconfig, "--namespace", ns).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok\n  pool \"old\": layer2, IPv4, 16 addresses (192.0.2.0/28)") {
		t.Fatalf("validate live config: %v\n%s", err, out)
	}

	newCfg := filepath.Join(t.TempDir(), "new.yaml")
	if err := os.WriteFile(newCfg, []byte("address-pools:\n- {name: new, protocol: layer2, addresses: [198.51.100.0/28]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "config", "validate", "--from-cluster", "-f", newCfg, "--kubeconfig", env.Kubeconfig, "--namespace", ns).CombinedOutput()
	want := "refused by the controller: the new config would take or change the addresses of 1 Service(s); keep their addresses in a pool of the same protocol, or, to renumber them on purpose, annotate the ConfigMap (kubectl -n " +
		ns + " annotate configmap config metallb.io/allow-address-changes=true): " + ns + "/web [192.0.2.5]: 192.0.2.5 is in no pool of the new config\n"
	if code := exitCode(err); code != 1 || !strings.HasSuffix(string(out), want) {
		t.Fatalf("validate new config: exit %d\n%s\nwant exit 1 and the line %q", code, out, want)
	}
	out, err = exec.Command(bin, "config", "validate", "--from-cluster", "-f", newCfg, "--allow-address-changes", "--kubeconfig", env.Kubeconfig, "--namespace", ns).CombinedOutput()
	want = "  renumbered (allowed): " + ns + "/web [192.0.2.5]: 192.0.2.5 is in no pool of the new config\n"
	if err != nil || !strings.HasSuffix(string(out), want) {
		t.Fatalf("validate new config with --allow-address-changes: %v\n%s\nwant the line %q", err, out, want)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestValidateFromClusterJudgesAResourceEdit: a file of one edited
// IPAddressPool is judged with everything else the cluster holds (the
// ConfigMap's pools, the other resources), as kubectl apply would leave
// it: a pool grown is fine, one shrunk under a Service refused, one that
// overlaps the ConfigMap's pool invalid. Against the real API server and
// the real controller.
func TestValidateFromClusterJudgesAResourceEdit(t *testing.T) {
	env := cluster.Require(t)
	_, ns := startTwoSources(t)
	bin := metallbBinary(t)
	validate := func(file string) (string, int) {
		path := filepath.Join(t.TempDir(), "edit.yaml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "config", "validate", "--from-cluster", "-f", path, "--kubeconfig", env.Kubeconfig, "--namespace", ns).CombinedOutput()
		return string(out), exitCode(err)
	}
	for _, tc := range []struct {
		name, file string
		code       int
		want       string
	}{
		{"grown: ok, judged with the ConfigMap's pool and the advertisement", strings.Replace(webPool, "%s", "198.51.100.10-198.51.100.12", 1), 0,
			"applied to namespace " + ns + ", which keeps the ConfigMap's config and 1 metallb.io resource(s): ok\n"},
		{"shrunk under a Service: refused", strings.Replace(webPool, "%s", "198.51.100.20/32", 1), 1,
			"refused by the controller: the new config would take or change the addresses of 1 Service(s)"},
		{"overlapping the ConfigMap's pool: invalid", "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: more}\nspec: {addresses: [192.0.2.11/32]}\n", 1,
			"the file makes the configuration invalid:\n  IPAddressPool/more: spec.addresses: 192.0.2.11 overlaps 192.0.2.10/31 of address-pools[0] (old) on 192.0.2.11: an address may belong to one pool only\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := validate(tc.file)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d\n%s\nwant exit %d and %q", code, out, tc.code, tc.want)
			}
			if strings.Contains(out, "is not announced") {
				t.Errorf("a warning judged on the file alone (the cluster's L2Advertisement announces every pool):\n%s", out)
			}
			if tc.code == 1 && strings.Contains(out, ns+"/b") {
				t.Errorf("Service b, in the ConfigMap's pool the file leaves alone, is named:\n%s", out)
			}
		})
	}
}
