// Command demo is README's first command: it starts the local control plane
// (real etcd, kube-apiserver and kube-controller-manager on loopback), creates
// a sample LoadBalancer Service and shows it <pending>, starts the metallb
// controller with the embedded default pool, shows the Service get its
// address and the Event that says so, and cleans up. It grows with the
// project into the full end-to-end story (speaker, installer).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

func main() {
	keep := flag.Bool("keep", false, "keep the control plane running until Ctrl-C (prints its kubeconfig)")
	bin := flag.String("bin", "bin/metallb", "the metallb binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

// defaultConfig is the embedded default: one layer2 pool from a
// documentation range, as "microk8s enable metallb:RANGE" would write it.
const defaultConfig = `address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.0.2.200-192.0.2.220
`

func run(ctx context.Context, bin string, keep bool) error {
	say("starting a real control plane (etcd, kube-apiserver, kube-controller-manager) on loopback")
	start := time.Now()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the control plane and removing its files")
		env.Stop()
	}()
	say("control plane ready in %v at %s", time.Since(start).Round(time.Millisecond), env.APIServerURL)

	c := env.Client
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "hello"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
	say("creating Service default/hello of type LoadBalancer")
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create service: %w", err)
	}
	got, err := c.CoreV1().Services("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get service: %w", err)
	}
	show(got)
	say("without a load-balancer implementation the Service stays <pending>")

	say("writing ConfigMap metallb-system/config with the default pool:\n%s", strings.TrimSpace(defaultConfig))
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "metallb-system"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	if _, err := c.CoreV1().ConfigMaps("metallb-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "config"}, Data: map[string]string{"config": defaultConfig},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create configmap: %w", err)
	}
	say("starting: %s controller --kubeconfig %s --metrics-addr 127.0.0.1:0", bin, env.Kubeconfig)
	ctl := exec.CommandContext(ctx, bin, "controller", "--kubeconfig", env.Kubeconfig, "--metrics-addr", "127.0.0.1:0")
	ctl.Stdout, ctl.Stderr = os.Stdout, os.Stdout
	if err := ctl.Start(); err != nil {
		return fmt.Errorf("start controller: %w", err)
	}
	defer func() { _ = ctl.Process.Signal(syscall.SIGTERM); _ = ctl.Wait() }()

	deadline := time.Now().Add(30 * time.Second)
	for len(got.Status.LoadBalancer.Ingress) == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("the Service got no address within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
		if got, err = c.CoreV1().Services("default").Get(ctx, "hello", metav1.GetOptions{}); err != nil {
			return err
		}
	}
	show(got)
	evs, _ := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=hello"})
	for _, e := range evs.Items {
		fmt.Printf("Event  %-8s %-12s %s\n", e.Type, e.Reason, e.Message)
	}
	say("the Service left <pending>: %s is its external IP", got.Status.LoadBalancer.Ingress[0].IP)

	if keep {
		say("kubeconfig: %s (Ctrl-C to stop)", env.Kubeconfig)
		<-ctx.Done()
	}
	return nil
}

func show(s *corev1.Service) {
	external := "<pending>"
	if ing := s.Status.LoadBalancer.Ingress; len(ing) > 0 {
		external = ing[0].IP
	}
	fmt.Printf("\nNAME    TYPE           CLUSTER-IP      EXTERNAL-IP\n%-7s %-14s %-15s %s\n\n",
		s.Name, s.Spec.Type, s.Spec.ClusterIP, external)
}
