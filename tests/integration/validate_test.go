package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestValidateFromClusterListsMovedServices runs the real binary against the
// real API server: the live ConfigMap validates, and a new config that drops
// a Service's address is flagged before it is applied.
func TestValidateFromClusterListsMovedServices(t *testing.T) {
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
	want := "warning: " + ns + "/web: 192.0.2.5 is in no pool of the new config: the controller would move the Service to a new IP"
	if err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("validate new config: %v\n%s\nwant a line %q", err, out, want)
	}
}
