package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/image"
	"github.com/microk8s-metallb/metallb/pkg/install"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// startRegistry runs Debian's docker-registry (the distribution registry)
// on a free loopback port, without auth, and returns host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if testenv.InCI() {
			t.Fatal("docker-registry is not installed: scripts/setup.sh installs it")
		}
		t.Skip("docker-registry is not installed (scripts/setup.sh installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.yml")
	body := fmt.Sprintf("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("registry log:\n%s", b)
		}
	})
	testenv.Eventually(t, 20*time.Second, "the registry listening on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// TestImagePushedToARegistry: with a registry (MicroK8s's registry addon,
// found by its Service), enable pushes the image there and the workloads
// run it from there, so a node that joins later pulls it. Against a real
// registry, the image then pulled and run by a real containerd.
func TestImagePushedToARegistry(t *testing.T) {
	env := cluster.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The registry addon is found by its Service, at its NodePort on localhost.
	if got, err := install.RegistryAddon(ctx, env.Client); err != nil || got != "" {
		t.Fatalf("without the addon: %q, %v", got, err)
	}
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: install.RegistryNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.CoreV1().Namespaces().Delete(context.Background(), install.RegistryNamespace, metav1.DeleteOptions{})
	})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: install.RegistryService},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "registry"},
			Ports: []corev1.ServicePort{{Name: "registry", Port: 5000, NodePort: 32000}}}}
	if _, err := env.Client.CoreV1().Services(install.RegistryNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := install.RegistryAddon(ctx, env.Client); err != nil || got != "localhost:32000" {
		t.Errorf("with the addon: %q, %v; want localhost:32000", got, err)
	}

	// The push, to a real registry.
	addr := startRegistry(t)
	bin := testenv.Binary(t)
	var logged []string
	d := image.Delivery{Exe: bin, Version: "v0.0.0-test", Registry: addr}
	log := func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	nodes := []image.Node{{Name: "node-a"}, {Name: "node-b"}}
	start := time.Now()
	ref, err := d.Deliver(ctx, nodes, false, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built and pushed %s in %v", ref, time.Since(start).Round(time.Millisecond))
	if !strings.HasPrefix(ref, addr+"/microk8s-metallb:v0.0.0-test-") || len(logged) != 1 || !strings.Contains(logged[0], "nodes that join later too") {
		t.Errorf("ref %s, logged %q", ref, logged)
	}
	// Every node reporting it: nothing pushed again.
	for i := range nodes {
		nodes[i].Images = []string{ref}
	}
	logged = nil
	if _, err := d.Deliver(ctx, nodes, false, log); err != nil || len(logged) != 1 || !strings.Contains(logged[0], "already on every node") {
		t.Errorf("second delivery: %v, %q", err, logged)
	}

	// A real containerd pulls it from the registry and runs it.
	ctr := startContainerd(t)
	if out, err := testenv.Ctr(ctx, ctr, "images", "pull", "--plain-http", ref).CombinedOutput(); err != nil {
		t.Fatalf("containerd pull %s: %v\n%s", ref, err, out)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Logf("runc not installed: not running the image")
		return
	}
	out, err := testenv.Ctr(ctx, ctr, "run", "--rm", ref, fmt.Sprintf("mlb-registry-test-%d", os.Getpid()), image.Path, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "metallb") {
		t.Fatalf("run %s: %v\n%s", ref, err, out)
	}
	t.Logf("pulled from the registry and ran: %s", strings.TrimSpace(string(out)))
}
