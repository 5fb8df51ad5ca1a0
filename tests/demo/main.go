// Command demo is README's first command: the whole story on one machine.
//
// It builds a network-namespace lab (three nodes and a client on a bridge,
// documentation addresses only), starts a real control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) on the lab bridge
// and three real nodes (containerd, kubelet and kube-proxy in each node
// namespace), and creates a sample LoadBalancer Service with its pod, which
// stays <pending>. Then it runs the real enable hook the way MicroK8s does,
// from a node, with a stand-in $SNAP for this cluster: the image reaches
// every node's containerd through a stand-in cluster agent, and the
// kubelets run the controller and the speakers. The Service gets its
// address, the client's arping is answered by one node, and a TCP request
// to the address reaches the pod through kube-proxy. Finally the disable
// hook removes everything, and the demo deletes all it created.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	if m := lab.RealNodesMissing(); m != "" {
		return errors.New(m)
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

	say("starting a real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) on the lab bridge, 198.51.100.1")
	start := time.Now()
	env, err := testenv.Start(ctx, testenv.Options{Address: "198.51.100.1", Workloads: true})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the control plane and removing its files")
		env.Stop()
	}()
	fmt.Printf("ready in %v at %s\n", time.Since(start).Round(time.Millisecond), env.APIServerURL)
	c := env.Client

	say("starting three real nodes: in each node namespace, containerd (CRI, CNI bridge), kubelet v1.34.4 and kube-proxy")
	rn, err := lab.StartRealNodes(env, func(format string, args ...any) { fmt.Printf(format+"\n", args...) })
	defer func() {
		say("stopping the nodes (pods first) and removing their files")
		rn.Stop()
	}()
	if err != nil {
		return err
	}
	if err := showNodes(ctx, c); err != nil {
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
	images, err := lab.StartAgents(snap, dir, rn.Ctr)
	if err != nil {
		return err
	}
	defer images.Stop()

	say("creating Deployment default/hello (a pod on node-b answering TCP) and its Service (type LoadBalancer)")
	if err := lab.CreateHello(ctx, c); err != nil {
		return err
	}
	svc, err := c.CoreV1().Services("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		return err
	}
	show(svc)
	fmt.Println("No load balancer is installed: the Service stays <pending>.")

	say("microk8s enable metallb:%s   (the real enable hook, run from node-a as MicroK8s runs it)", demoRange)
	fmt.Println("    the image goes to each node's containerd through the node's cluster agent (a stand-in for MicroK8s's);")
	fmt.Println("    the kubelets run the controller and the speakers, and their probes gate the rollout")
	if err := hook(ctx, l, snap, "enable", demoRange); err != nil {
		return err
	}
	if d, err := c.AppsV1().DaemonSets("metallb-system").Get(ctx, "metallb-speaker", metav1.GetOptions{}); err == nil {
		ref := d.Spec.Template.Spec.Containers[0].Image
		for _, n := range lab.Nodes {
			ok, err := images.Has(n, ref)
			fmt.Printf("    %s's containerd has %s: %v%s\n", n, ref, ok, map[bool]string{true: " (" + fmt.Sprint(err) + ")", false: ""}[err != nil])
		}
	}
	if err := showPods(ctx, c); err != nil {
		return err
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

	say("from the client namespace: arping -c 3 %s", ip)
	owner, err := arping(ctx, l, ip)
	if err != nil {
		return err
	}
	say("from the client namespace: a TCP request to %s:80 (kube-proxy on %s forwards it to the pod)", ip, owner)
	reply, err := lab.DialUntil("client", ip+":80", 20*time.Second)
	if err != nil {
		return fmt.Errorf("TCP to %s:80: %w", ip, err)
	}
	fmt.Printf("reply: %q\n", strings.TrimSpace(reply))

	if keep {
		say("everything is running. Try, as root:\n    ip netns exec %s-client arping -c 3 %s\n    KUBECONFIG=%s kubectl get pods -A -o wide\n  Ctrl-C disables metallb and cleans up.", lab.Prefix, ip, env.Kubeconfig)
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
	say("the address is no longer answered once the speakers are gone:")
	macs, out, err := lab.ArpingErr(ctx, ip, 1)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	fmt.Printf("arping %s: %d replies\n", ip, len(macs))
	say("done: Service <pending> → metallb enabled on three real nodes → %s answered by %s and served over TCP → metallb disabled", ip, owner)
	return nil
}

// showNodes prints the nodes as kubectl get nodes -o wide would.
func showNodes(ctx context.Context, c kubernetes.Interface) error {
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("\n%-7s %-6s %-15s %-8s %s\n", "NAME", "STATUS", "INTERNAL-IP", "VERSION", "CONTAINER-RUNTIME")
	for _, n := range nodes.Items {
		status, ip := "NotReady", ""
		for _, cnd := range n.Status.Conditions {
			if cnd.Type == corev1.NodeReady && cnd.Status == corev1.ConditionTrue {
				status = "Ready"
			}
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ip = a.Address
			}
		}
		fmt.Printf("%-7s %-6s %-15s %-8s %s\n", n.Name, status, ip, n.Status.NodeInfo.KubeletVersion, n.Status.NodeInfo.ContainerRuntimeVersion)
	}
	return nil
}

// showPods prints every pod with its node, phase and container ID.
func showPods(ctx context.Context, c kubernetes.Interface) error {
	pods, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("\n%-15s %-28s %-7s %-8s %-8s %s\n", "NAMESPACE", "NAME", "NODE", "PHASE", "RESTARTS", "CONTAINER")
	for _, p := range pods.Items {
		id, restarts := "", int32(0)
		if len(p.Status.ContainerStatuses) > 0 {
			id, restarts = p.Status.ContainerStatuses[0].ContainerID, p.Status.ContainerStatuses[0].RestartCount
		}
		if len(id) > 40 {
			id = id[:40] + "…"
		}
		fmt.Printf("%-15s %-28s %-7s %-8s %-8d %s\n", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase, restarts, id)
	}
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
		macs, out, err := lab.ArpingErr(ctx, ip, 3)
		if err != nil {
			return "", fmt.Errorf("%w\n%s", err, out)
		}
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
