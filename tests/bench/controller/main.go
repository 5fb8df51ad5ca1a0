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
	"maps"
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

var heapProfile, cpuProfile *string

// controllerEnv is extra environment for the controller process.
var controllerEnv envList

type envList []string

func (e *envList) String() string     { return strings.Join(*e, " ") }
func (e *envList) Set(v string) error { *e = append(*e, v); return nil }

func main() {
	ns := flag.String("n", "1000,5000", "comma-separated Service counts")
	fams := flag.String("families", "ipv4,ipv6", "comma-separated families")
	bin := flag.String("bin", "bin/metallb", "metallb binary")
	qps := flag.String("qps", "", "controller --kube-api-qps (default: the shipped manifests' setting)")
	workers := flag.String("workers", "", "controller --workers (default: the shipped manifests' setting)")
	heapProfile = flag.String("heap-profile", "", "write the controller's heap profile here after the run")
	cpuProfile = flag.String("cpu-profile", "", "write the controller's CPU profile of the run's first 20 s here")
	flag.Var(&controllerEnv, "env", "NAME=VALUE added to the controller's environment (repeatable), e.g. GOMEMLIMIT=32MiB")
	flag.Parse()
	if err := shipped(*qps, *workers); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer env.Stop()
	fmt.Printf("%-6s %-5s %10s %12s %7s %5s %9s %9s %9s\n", "N", "fam", "floor", "controller", "ratio", "dups", "peakRSS", "anonRSS", "fileRSS")
	for _, f := range strings.Split(*fams, ",") {
		for _, s := range strings.Split(*ns, ",") {
			n, _ := strconv.Atoi(s)
			if err := runOne(ctx, env, *bin, n, f); err != nil {
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
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80}},
			// No selector: kube-controller-manager writes an EndpointSlice
			// per selecting Service at its own 20 requests/s, long after a
			// run, and that trailing load would fall on the next run.
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

// tuning is the controller's tuning flags and environment: those of the
// shipped Deployment, unless a flag of the benchmark overrides them.
var tuning struct{ args, env []string }

// shipped sets tuning from the manifests enable renders (the flags it does
// not pass take the binary's defaults, which are then the shipped ones),
// then the overrides.
func shipped(qps, workers string) error {
	args, env, err := testenv.Shipped("Deployment/metallb-controller")
	if err != nil {
		return err
	}
	for _, a := range args {
		for _, p := range []string{"--workers", "--kube-api-qps", "--kube-api-burst"} {
			if strings.HasPrefix(a, p) {
				tuning.args = append(tuning.args, a)
			}
		}
	}
	if qps != "" {
		tuning.args = append(tuning.args, "--kube-api-qps", qps)
	}
	if workers != "" {
		tuning.args = append(tuning.args, "--workers", workers)
	}
	tuning.env = append(env, controllerEnv...)
	fmt.Printf("controller: shipped settings, then overrides: args %q, env %q\n", tuning.args, tuning.env)
	return nil
}

func runOne(ctx context.Context, env *testenv.Env, bin string, n int, fam string) error {
	c := env.Client
	cidr, r := pool(fam)

	// Floor: the benchmark writes each status itself.
	ns, err := newNS(ctx, c)
	if err != nil {
		return err
	}
	fw := watchAssigned(c, ns, n)
	api0, err := snapshotAPI(ctx, env)
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
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	if !fw.wait(10 * time.Minute) {
		return fmt.Errorf("floor: the watch did not see all %d statuses", n)
	}
	floor := time.Since(start)
	apiFloor, err := snapshotAPI(ctx, env)
	if err != nil {
		return err
	}
	fw.stop()
	if err := deleteNS(ctx, c, ns); err != nil {
		return err
	}

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
	defer logf.Close()
	cmd, err := startController(bin, env, ns, logf)
	if err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	w := watchAssigned(c, ns, n)
	defer w.stop()
	time.Sleep(2 * time.Second) // let the controller start and sync

	api1, err := snapshotAPI(ctx, env)
	if err != nil {
		return err
	}
	ctlTicks, _ := testenv.CPUTicks(cmd.Process.Pid)
	start = time.Now()
	if *cpuProfile != "" {
		prof := exec.Command("curl", "-sf", "-o", *cpuProfile, "http://127.0.0.1:17472/debug/pprof/profile?seconds=20")
		if err := prof.Start(); err != nil {
			return err
		}
		defer func() { _ = prof.Wait() }()
	}
	if err := createAll(ctx, c, ns, fam, n, nil); err != nil {
		return fmt.Errorf("controller run: %w", err)
	}
	created, assignedThen := time.Since(start), w.count()
	if !w.wait(10 * time.Minute) {
		return fmt.Errorf("controller did not assign all %d Services in 10 minutes (log: %s)", n, logPath)
	}
	ctrl := time.Since(start)
	apiCtrl, err := snapshotAPI(ctx, env)
	if err != nil {
		return err
	}
	ctlTicks2, _ := testenv.CPUTicks(cmd.Process.Pid)
	mem := procMem(cmd.Process.Pid)
	if *heapProfile != "" {
		if err := exec.Command("curl", "-sf", "-o", *heapProfile, "http://127.0.0.1:17472/debug/pprof/heap?gc=1").Run(); err != nil {
			fmt.Fprintln(os.Stderr, "heap profile:", err)
		}
	}
	dups := w.duplicates()
	fmt.Printf("%-6d %-5s %9.2fs %11.2fs %7.2f %5d %7.1fMB %7.1fMB %7.1fMB\n", n, fam, floor.Seconds(), ctrl.Seconds(),
		ctrl.Seconds()/floor.Seconds(), dups, mem["VmHWM:"], mem["RssAnon:"], mem["RssFile:"])

	fmt.Printf("       the creations ended %.2fs after the first, with %d of %d assigned by then; RSS now %.1fMB; the controller's CPU %.2f s\n",
		created.Seconds(), assignedThen, n, mem["VmRSS:"], float64(ctlTicks2-ctlTicks)/100)
	fmt.Println(apiFloor.since(api0, "floor"))
	fmt.Println(apiCtrl.since(api1, "controller"))

	// SIGKILL and a new process: nothing held may change, and Services
	// created while it starts get addresses no one holds.
	before := w.assigned()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	w.expect(n + restartNew)
	start = time.Now()
	if cmd, err = startController(bin, env, ns, logf); err != nil {
		return err
	}
	for i := range restartNew {
		if _, err := c.CoreV1().Services(ns).Create(ctx, svc(fmt.Sprintf("after-%02d", i), fam), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if !w.wait(10 * time.Minute) {
		return fmt.Errorf("the restarted controller did not assign the %d new Services in 10 minutes (log: %s)", restartNew, logPath)
	}
	after := w.assigned()
	changed := 0
	for name, ip := range before {
		if after[name] != ip {
			changed++
		}
	}
	fmt.Printf("       after SIGKILL and restart: %d of %d addresses changed, %d duplicates, %d new Services assigned %.2fs after the start\n",
		changed, len(before), w.duplicates(), restartNew, time.Since(start).Seconds())
	return deleteNS(ctx, c, ns)
}

// restartNew is how many Services are created as the controller restarts.
const restartNew = 10

// startController runs the controller on ns with the tuning, logging to
// logf.
func startController(bin string, env *testenv.Env, ns string, logf *os.File) (*exec.Cmd, error) {
	cmd := exec.Command(bin, "controller", "--kubeconfig", env.Kubeconfig, "--namespace", ns,
		"--metrics-addr", "127.0.0.1:17472", "--metrics-secure=false", "--health-addr", "", "--webhook-addr", "127.0.0.1:0", "--pprof", "--leader-elect=false", "--log-level", "warn")
	cmd.Args = append(cmd.Args, tuning.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), tuning.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, cmd.Start()
}

// deleteNS deletes a namespace and waits until it is gone, so the next run
// does not pay for this one's cleanup.
func deleteNS(ctx context.Context, c kubernetes.Interface, ns string) error {
	if err := c.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		return err
	}
	for range 600 {
		if _, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("namespace %s still present after 5 minutes", ns)
}

// watcher counts Services of a namespace that have an address, through a
// watch: the same instrument for the floor and the controller runs.
type watcher struct {
	mu     sync.Mutex
	got    map[string]string
	n      int
	done   chan struct{}
	stopCh chan struct{}
}

func watchAssigned(c kubernetes.Interface, ns string, n int) *watcher {
	w := &watcher{got: map[string]string{}, n: n, done: make(chan struct{}), stopCh: make(chan struct{})}
	factory := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Services().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.see,
		UpdateFunc: func(_, obj any) { w.see(obj) },
	})
	factory.Start(w.stopCh)
	factory.WaitForCacheSync(w.stopCh)
	return w
}

func (w *watcher) see(obj any) {
	s := obj.(*corev1.Service)
	if len(s.Status.LoadBalancer.Ingress) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got[s.Name] = s.Status.LoadBalancer.Ingress[0].IP
	if len(w.got) == w.n {
		select {
		case <-w.done:
		default:
			close(w.done)
		}
	}
}

func (w *watcher) wait(d time.Duration) bool {
	w.mu.Lock()
	done := w.done
	w.mu.Unlock()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func (w *watcher) stop() { close(w.stopCh) }

// expect makes wait wait for n Services from now on.
func (w *watcher) expect(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n, w.done = n, make(chan struct{})
}

// count is how many Services have an address.
func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.got)
}

// assigned is a copy of name -> address.
func (w *watcher) assigned() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.got)
}

func (w *watcher) duplicates() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[netip.Addr]bool{}
	dups := 0
	for _, ip := range w.got {
		a := netip.MustParseAddr(ip)
		if seen[a] {
			dups++
		}
		seen[a] = true
	}
	return dups
}

// procMem reads memory lines of /proc/PID/status, in MB: VmHWM (peak
// resident set), RssAnon (private memory now) and RssFile (pages of the
// binary and other files, shared and reclaimable).
func procMem(pid int) map[string]float64 {
	out := map[string]float64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				out[f[0]] = kb / 1024
			}
		}
	}
	return out
}
