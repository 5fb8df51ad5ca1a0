// Command demo is README's first command: the whole story on one machine.
//
// It builds a network-namespace lab (three nodes and a client on a bridge,
// documentation addresses only), starts a real control plane (etcd,
// kube-apiserver, kube-controller-manager) on the lab bridge and a private
// containerd, and creates a sample LoadBalancer Service, which stays
// <pending>. Then it runs the real enable hook the way MicroK8s does, from a
// node, with a stand-in $SNAP whose wrappers point at this cluster and
// containerd; a stand-in kubelet runs the controller and the speakers
// exactly as the applied Deployment and DaemonSet say. The Service gets its
// address, the client's arping is answered by one node, and a TCP request
// to the address is served. Finally the disable hook removes everything, and
// the demo deletes all it created.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/tests/lab"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// The range the demo enables, as a user would type it.
const demoRange = "198.51.100.200-198.51.100.210"

func main() {
	keep := flag.Bool("keep", false, "before disabling, keep everything running until Ctrl-C (prints how to reach it)")
	bin := flag.String("bin", "bin/metallb", "the metallb binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	abs, err := filepath.Abs(*bin)
	if err == nil {
		err = run(ctx, abs, *keep)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run(ctx context.Context, bin string, keep bool) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces: run it as root (sudo scripts/demo.sh)")
	}
	lab.Prefix = "mlbd"
	say("building the lab: bridge %sbr with namespaces node-a/b/c (198.51.100.11-13) and client (198.51.100.100)", lab.Prefix)
	l, err := lab.Create()
	if err != nil {
		return err
	}
	defer func() {
		say("deleting the lab's namespaces and bridge")
		if err := lab.Down(); err != nil {
			fmt.Println(err)
		}
	}()

	say("starting a real control plane (etcd, kube-apiserver, kube-controller-manager) on the lab bridge, 198.51.100.1")
	start := time.Now()
	env, err := testenv.Start(ctx, testenv.Options{Address: "198.51.100.1"})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the control plane and removing its files")
		env.Stop()
	}()
	fmt.Printf("ready in %v at %s\n", time.Since(start).Round(time.Millisecond), env.APIServerURL)
	c := env.Client
	if err := lab.CreateNodes(ctx, c); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "mlb-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	snap, err := lab.NewSnap(dir, env.Kubeconfig, lab.RecordingCtr)
	if err != nil {
		return err
	}
	if m := testenv.ContainerdMissing(); m != "" {
		fmt.Printf("(containerd %s: the nodes' cluster agents only record the image)\n", m)
	}
	images, err := lab.StartNodeImages(snap.Token, dir)
	if err != nil {
		return err
	}
	defer images.Stop()

	say("creating Service default/hello (type LoadBalancer) and its pod on node-b")
	if err := createApp(ctx, c); err != nil {
		return err
	}
	svc, err := c.CoreV1().Services("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		return err
	}
	show(svc)
	fmt.Println("No load balancer is installed: the Service stays <pending>.")

	k := &lab.Kubelet{Client: c, Namespace: "metallb-system", Binary: bin, Kubeconfig: env.Kubeconfig,
		Nodes: lab.Nodes, ControllerNode: "node-a", Run: true, LogDir: dir,
		Logf: func(format string, args ...any) { fmt.Printf("    [kubelet] "+format+"\n", args...) }}
	stopKubelet := k.Start(ctx)
	defer stopKubelet()

	say("microk8s enable metallb:%s   (the real enable hook, run from node-a as MicroK8s runs it)", demoRange)
	fmt.Println("    the image goes to each node's containerd through the node's cluster agent (a stand-in for MicroK8s's);")
	fmt.Println("    a stand-in kubelet runs the controller and speakers as the applied Deployment and DaemonSet say")
	if err := hook(ctx, l, snap, "enable", demoRange); err != nil {
		return err
	}
	if d, err := c.AppsV1().DaemonSets("metallb-system").Get(ctx, "speaker", metav1.GetOptions{}); err == nil {
		ref := d.Spec.Template.Spec.Containers[0].Image
		for _, n := range lab.Nodes {
			ok, err := images.Has(n, ref)
			fmt.Printf("    %s's containerd has %s: %v%s\n", n, ref, ok, map[bool]string{true: " (" + fmt.Sprint(err) + ")", false: ""}[err != nil])
		}
	}

	ip, err := waitIP(ctx, c)
	if err != nil {
		return err
	}
	svc, _ = c.CoreV1().Services("default").Get(ctx, "hello", metav1.GetOptions{})
	show(svc)
	if err := showEvents(ctx, c); err != nil {
		return err
	}

	// kube-proxy stand-in: every node delivers VIP:80 to "the pod".
	for _, n := range lab.Nodes {
		if out, err := lab.Exec(ctx, n, "ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
			return fmt.Errorf("add %s to %s: %v: %s", ip, n, err, out)
		}
		ln, err := lab.Listen(n, 80, "hello from the pod, via "+n)
		if err != nil {
			return err
		}
		defer ln.Close()
	}

	say("from the client namespace: arping -c 3 %s", ip)
	owner, err := arping(ctx, l, ip)
	if err != nil {
		return err
	}
	say("from the client namespace: a TCP request to %s:80", ip)
	reply, err := dialRetry(ip+":80", 10*time.Second)
	if err != nil {
		return fmt.Errorf("TCP to %s:80: %w", ip, err)
	}
	fmt.Printf("reply: %q\n", reply)
	if !strings.HasSuffix(reply, owner) {
		return fmt.Errorf("the request reached %q, but %s answers ARP", reply, owner)
	}

	if keep {
		say("everything is running. Try, as root:\n    ip netns exec %s-client arping -c 3 %s\n    KUBECONFIG=%s kubectl get svc -A\n  Ctrl-C disables metallb and cleans up.", lab.Prefix, ip, env.Kubeconfig)
		<-ctx.Done()
		ctx = context.Background()
	}

	say("microk8s disable metallb   (the real disable hook)")
	if err := hook(ctx, l, snap, "disable"); err != nil {
		return err
	}
	if _, err := c.CoreV1().Namespaces().Get(ctx, "metallb-system", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace metallb-system is still there: %v", err)
	}
	time.Sleep(time.Second) // the stand-in kubelet stops the processes
	say("the address is no longer answered once the speakers are gone:")
	macs, _ := lab.Arping(ctx, ip, 1)
	fmt.Printf("arping %s: %d replies\n", ip, len(macs))
	say("done: Service <pending> → metallb enabled → %s answered by %s and served over TCP → metallb disabled", ip, owner)
	return nil
}

// hook runs ./enable or ./disable inside node-a with the snap's environment,
// its output indented.
func hook(ctx context.Context, l *lab.Lab, snap *lab.Snap, name string, args ...string) error {
	cmd := snap.Hook(ctx, l.Root, name, nil, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Println("    | " + sc.Text())
		}
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	return nil
}

func createApp(ctx context.Context, c kubernetes.Interface) error {
	pod, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello-1", Labels: map[string]string{"app": "hello"}},
		Spec:       corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "web", Image: "example.invalid/hello"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.5", PodIPs: []corev1.PodIP{{IP: "10.1.0.5"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return err
	}
	_, err = c.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "hello"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{})
	return err
}

func waitIP(ctx context.Context, c kubernetes.Interface) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s, err := c.CoreV1().Services("default").Get(ctx, "hello", metav1.GetOptions{})
		if err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
			return s.Status.LoadBalancer.Ingress[0].IP, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", errors.New("the Service got no address within 30 s")
}

func showEvents(ctx context.Context, c kubernetes.Interface) error {
	// The speaker's nodeAssigned Event follows the controller's shortly.
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=hello"})
		if err != nil {
			return err
		}
		assigned := false
		for _, e := range evs.Items {
			assigned = assigned || e.Reason == "nodeAssigned"
		}
		if assigned || time.Now().After(deadline) {
			sort.Slice(evs.Items, func(i, j int) bool { return evs.Items[i].CreationTimestamp.Before(&evs.Items[j].CreationTimestamp) })
			for _, e := range evs.Items {
				fmt.Printf("Event  %-8s %-12s %-20s %s\n", e.Type, e.Reason, e.Source.Component, e.Message)
			}
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// arping asks from the client until exactly one MAC answers, and returns
// the node it belongs to.
func arping(ctx context.Context, l *lab.Lab, ip string) (string, error) {
	byMAC := map[string]string{}
	for n, mac := range l.MACs {
		byMAC[mac] = n
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		macs, out := lab.Arping(ctx, ip, 3)
		if len(macs) == 1 || time.Now().After(deadline) {
			fmt.Print(indent(out))
			for mac := range macs {
				if len(macs) == 1 {
					fmt.Printf("exactly one MAC answers: %s, which is %s's eth0\n", mac, byMAC[mac])
					return byMAC[mac], nil
				}
			}
			return "", fmt.Errorf("arping %s: %d MACs answered", ip, len(macs))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func dialRetry(addr string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		reply, err := lab.Dial("client", addr, 2*time.Second)
		if err == nil || time.Now().After(deadline) {
			return reply, err
		}
		var ne net.Error
		_ = errors.As(err, &ne)
		time.Sleep(200 * time.Millisecond)
	}
}

func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

func show(s *corev1.Service) {
	external := "<pending>"
	if ing := s.Status.LoadBalancer.Ingress; len(ing) > 0 {
		external = ing[0].IP
	}
	fmt.Printf("\nNAMESPACE  NAME    TYPE           CLUSTER-IP      EXTERNAL-IP   PORT(S)\n%-10s %-7s %-14s %-15s %-13s 80/TCP\n\n",
		s.Namespace, s.Name, s.Spec.Type, s.Spec.ClusterIP, external)
}
