// Command demo is README's first command: it starts the local control plane
// (real etcd, kube-apiserver and kube-controller-manager on loopback), creates
// a sample LoadBalancer Service, shows what happens to it, and cleans up.
// It grows with the project into the full end-to-end story.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

func main() {
	keep := flag.Bool("keep", false, "keep the control plane running until Ctrl-C (prints its kubeconfig)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(ctx context.Context, keep bool) error {
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
	external := "<pending>"
	if ing := got.Status.LoadBalancer.Ingress; len(ing) > 0 {
		external = ing[0].IP
	}
	fmt.Printf("\nNAME    TYPE           CLUSTER-IP      EXTERNAL-IP\n%-7s %-14s %-15s %s\n\n",
		got.Name, got.Spec.Type, got.Spec.ClusterIP, external)
	say("without a load-balancer implementation the Service stays %s: that is what this project fixes", external)

	if keep {
		say("kubeconfig: %s (Ctrl-C to stop)", env.Kubeconfig)
		<-ctx.Done()
	}
	return nil
}
