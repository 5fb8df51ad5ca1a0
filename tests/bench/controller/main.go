// Command controller-bench measures how long the controller takes to give N
// new LoadBalancer Services an IP, against a floor measured in the same run
// on the same API server: the same creations where the benchmark writes each
// status itself (no controller). It prints the ratio, duplicates and the
// controller process's peak RSS.
//
//	go run ./tests/bench/controller -n 1000,5000 -families ipv4,ipv6
package main

import (
	"context"
	"flag"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

const creators = 50

var noNodePorts = false

func main() {
	ns := flag.String("n", "1000,5000", "comma-separated Service counts")
	fams := flag.String("families", "ipv4,ipv6", "comma-separated families")
	bin := flag.String("bin", "bin/metallb", "metallb binary")
	qps := flag.String("qps", "1000", "controller --kube-api-qps (the floor's client allows 1000)")
	flag.Parse()
	ctx := context.Background()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer env.Stop()
	fmt.Printf("%-6s %-5s %10s %12s %7s %5s %9s\n", "N", "fam", "floor", "controller", "ratio", "dups", "peakRSS")
	for _, f := range strings.Split(*fams, ",") {
		for _, s := range strings.Split(*ns, ",") {
			n, _ := strconv.Atoi(s)
			if err := runOne(ctx, env, *bin, *qps, n, f); err != nil {
				fmt.Fprintln(os.Stderr, err)
				env.Stop()
				os.Exit(1)
			}
		}
	}
}

func pool(fam string) (string, iprange.Range) {
	if fam == "ipv6" {
		r, _ := iprange.Parse("2001:db8:100::/64")
		return "2001:db8:100::/64", r
	}
	r, _ := iprange.Parse("10.200.0.0/16")
	return "10.200.0.0/16", r
}

func svc(name, fam string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80}},
			// 5000 Services would exhaust the NodePort range (2768 ports).
			AllocateLoadBalancerNodePorts: &noNodePorts,
		},
	}
	if fam == "ipv6" {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	}
	return s
}

func newNS(ctx context.Context, c kubernetes.Interface) (string, error) {
	n, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return n.Name, nil
}

// createAll creates n Services with 50 concurrent creators; after is called
// with each created Service (the floor writes its status there).
func createAll(ctx context.Context, c kubernetes.Interface, ns, fam string, n int, after func(*corev1.Service, int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, creators)
	for range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				created, err := c.CoreV1().Services(ns).Create(ctx, svc(fmt.Sprintf("s-%05d", i), fam), metav1.CreateOptions{})
				if err == nil && after != nil {
					err = after(created, i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func runOne(ctx context.Context, env *testenv.Env, bin, qps string, n int, fam string) error {
	c := env.Client
	cidr, r := pool(fam)

	// Floor: the benchmark writes each status itself.
	ns, err := newNS(ctx, c)
	if err != nil {
		return err
	}
	start := time.Now()
	err = createAll(ctx, c, ns, fam, n, func(s *corev1.Service, i int) error {
		ip, _ := r.Nth(big.NewInt(int64(i)))
		vip := corev1.LoadBalancerIPModeVIP
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: &vip}}
		_, err := c.CoreV1().Services(ns).UpdateStatus(ctx, s, metav1.UpdateOptions{})
		return err
	})
	floor := time.Since(start)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	_ = c.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})

	// The controller.
	ns, err = newNS(ctx, c)
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf("address-pools:\n- name: bench\n  protocol: layer2\n  addresses: [%q]\n", cidr)
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "config"}, Data: map[string]string{"config": cfg},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	logPath := filepath.Join(env.Dir, "bench-controller.log")
	logf, _ := os.Create(logPath)
	cmd := exec.Command(bin, "controller", "--kubeconfig", env.Kubeconfig, "--namespace", ns,
		"--metrics-addr", "", "--leader-elect=false", "--log-level", "warn", "--kube-api-qps", qps, "--workers", "16")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() }()

	// Count Services with an address through a watch.
	var mu sync.Mutex
	got := map[string]string{}
	done := make(chan struct{})
	factory := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Services().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) {
			s := obj.(*corev1.Service)
			if len(s.Status.LoadBalancer.Ingress) == 0 {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			got[s.Name] = s.Status.LoadBalancer.Ingress[0].IP
			if len(got) == n {
				select {
				case <-done:
				default:
					close(done)
				}
			}
		},
	})
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	factory.WaitForCacheSync(stop)
	time.Sleep(2 * time.Second) // let the controller start and sync

	start = time.Now()
	if err := createAll(ctx, c, ns, fam, n, nil); err != nil {
		return fmt.Errorf("controller run: %w", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("controller did not assign all %d Services in 10 minutes (log: %s)", n, logPath)
	}
	ctrl := time.Since(start)
	rss := peakRSS(cmd.Process.Pid)

	mu.Lock()
	seen := map[netip.Addr]bool{}
	dups := 0
	for _, ip := range got {
		a := netip.MustParseAddr(ip)
		if seen[a] {
			dups++
		}
		seen[a] = true
	}
	mu.Unlock()
	fmt.Printf("%-6d %-5s %9.2fs %11.2fs %7.2f %5d %7.1fMB\n", n, fam, floor.Seconds(), ctrl.Seconds(), ctrl.Seconds()/floor.Seconds(), dups, rss)
	_ = c.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	return nil
}

// peakRSS reads VmHWM (peak resident set) of a process, in MB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}
