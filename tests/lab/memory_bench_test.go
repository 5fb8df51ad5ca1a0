package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// memoryConfig: the attacker's LoadBalancer Services spend the default
// pool and stay pending; the barriers take theirs from a pool of their own.
const memoryConfig = `address-pools:
- {name: lab, protocol: layer2, addresses: [198.51.100.200-198.51.100.210]}
- {name: barrier, protocol: layer2, addresses: [198.51.100.220-198.51.100.230], auto-assign: false}
`

// fatAnnotation is as large as the API server lets one object's
// annotations be (256 KiB, keys included).
const fatAnnotation = 256<<10 - 64

// BenchmarkHostileMemory measures what one namespace with the edit role
// can make the controller and the speakers hold: the memory (RSS, and the
// peak VmHWM) of the controller and the three speakers, run as processes
// with the shipped manifests' flags, at rest; after 1,000 Services with
// 256 KiB of annotations each (METALLB_FAT_SERVICES), half of them
// LoadBalancer; after a speaker restarts with them present (its first list
// holds them all); and after 10,000 ordinary Services
// (METALLB_MANY_SERVICES). The floor is the bytes the API server holds for
// the same objects: the ratio says how much of it a component keeps.
func BenchmarkHostileMemory(b *testing.B) {
	fat, many := envInt("METALLB_FAT_SERVICES", 1000), envInt("METALLB_MANY_SERVICES", 10000)
	l, env := UpWithControlPlane(b)
	c := env.Client
	ctx := context.Background()
	for _, ns := range []string{"metallb-system", "demo", "attack"} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := c.CoreV1().ConfigMaps("metallb-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "config"}, Data: map[string]string{"config": memoryConfig},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	bin := testenv.Binary(b)
	// As the shipped manifests run them (their ports, their literal
	// environment such as GOMEMLIMIT, the default log level and timings).
	ctlEnv, spkEnv := shippedEnv(b, "Deployment/metallb-controller"), shippedEnv(b, "DaemonSet/metallb-speaker")
	fmt.Printf("shipped environment: controller %v, speaker %v\n", ctlEnv, spkEnv)
	startController := func() *exec.Cmd {
		return StartProcess(b, "node-a", "controller.log", slices.Concat([]string{"env"}, ctlEnv,
			[]string{bin, "controller", "--kubeconfig", env.Kubeconfig, "--metrics-addr=:7472", "--health-addr=:7471"})...)
	}
	ctl := startController()
	speakers := map[string]*exec.Cmd{}
	startSpeaker := func(n string) {
		speakers[n] = StartProcess(b, n, "speaker-"+n+".log", slices.Concat([]string{"env"}, spkEnv,
			[]string{bin, "speaker", "--node-name", n, "--kubeconfig", env.Kubeconfig, "--metrics-addr=:7473", "--health-addr=:7474"})...)
	}
	for _, n := range Nodes {
		startSpeaker(n)
	}
	// The floor of a speaker: client-go watching what a speaker watches,
	// nothing else (tests/bench/floor), with the speaker's environment.
	floorBin := filepath.Join(b.TempDir(), "floor")
	if err := testenv.BuildStatic("./tests/bench/floor", floorBin); err != nil {
		b.Fatal(err)
	}
	floorProc := StartProcess(b, "node-a", "floor.log", slices.Concat([]string{"env"}, spkEnv, []string{floorBin, "--kubeconfig", env.Kubeconfig})...)
	cl := &cluster{Lab: l, env: env, c: c}
	cl.addBackend(b, "web-0", "web", "node-a")

	// barrier waits until every component has seen all that came before: a
	// new LoadBalancer Service gets an address (the controller) and its
	// owner answers ARP for it (the speakers' caches hold what preceded it
	// in the watch); then a few seconds for the others to settle.
	round := 0
	barrier := func() string {
		round++
		name := fmt.Sprintf("barrier-%d", round)
		svc := ordinaryService(name, true)
		svc.Annotations = map[string]string{"metallb.universe.tf/address-pool": "barrier"}
		svc.Spec.Selector = map[string]string{"app": "web"}
		if _, err := c.CoreV1().Services("demo").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		ip := waitServiceIP(b, c, "demo", name, 120*time.Second)
		waitOneMAC(b, ip, cl.MACs[election.Owner(netip.MustParseAddr(ip), Nodes)], 60*time.Second)
		time.Sleep(5 * time.Second)
		_ = c.CoreV1().Services("demo").Delete(ctx, name, metav1.DeleteOptions{})
		return ip
	}
	type sample struct{ rss, peak []int64 }
	measure := func() sample {
		var s sample
		for _, p := range append([]*exec.Cmd{ctl}, speakers[Nodes[0]], speakers[Nodes[1]], speakers[Nodes[2]], floorProc) {
			s.rss = append(s.rss, testenv.RSS(p.Process.Pid)>>20)
			s.peak = append(s.peak, testenv.PeakRSS(p.Process.Pid)>>20)
		}
		return s
	}
	var rest sample
	// report prints the RSS of each component and, against the floor (the
	// bytes of the objects), the largest growth since rest.
	report := func(what string, s sample, floor int64) {
		share := ""
		if floor > 0 {
			var grown int64
			for i := range s.rss[:4] {
				grown = max(grown, s.peak[i]-rest.rss[i])
			}
			share = fmt.Sprintf("; objects %d MiB, largest peak growth %.2fx of it", floor>>20, float64(grown<<20)/float64(floor))
		}
		fmt.Printf("%-46s controller %3d MiB (peak %3d), speakers %v MiB (peaks %v), client-go floor %d MiB%s\n",
			what, s.rss[0], s.peak[0], s.rss[1:4], s.peak[1:4], s.rss[4], share)
		fmt.Printf("%-46s %s's speaker: %s\n", "", Nodes[0], memBreakdown(env.Config.BearerToken, Nodes[0], speakers[Nodes[0]].Process.Pid))
		fmt.Printf("%-46s the floor: %d MiB of its RSS file-backed (the binary's pages)\n", "", testenv.RSSFile(floorProc.Process.Pid)>>20)
	}

	barrier()
	rest = measure()
	report("at rest (1 Service)", rest, 0)

	junk := strings.Repeat("x", fatAnnotation)
	created := createMany(b, c, "attack", fat, func(i int) *corev1.Service {
		s := ordinaryService(fmt.Sprintf("fat-%d", i), i%2 == 0)
		s.Annotations = map[string]string{"example.com/junk": junk}
		return s
	})
	barrier()
	report(fmt.Sprintf("after %d Services with 256 KiB annotations", created), measure(), int64(created)*fatAnnotation)

	// A speaker that restarts lists them all at once.
	victim := Nodes[1]
	_ = syscall.Kill(-speakers[victim].Process.Pid, syscall.SIGKILL)
	_ = speakers[victim].Wait()
	startSpeaker(victim)
	barrier()
	report("after "+victim+"'s speaker restarted among them", measure(), int64(created)*fatAnnotation)
	// And the controller.
	_ = syscall.Kill(-ctl.Process.Pid, syscall.SIGKILL)
	_ = ctl.Wait()
	ctl = startController()
	barrier()
	restarted := measure()
	report("after the controller restarted among them", restarted, int64(created)*fatAnnotation)

	inParallel(b, fat, func(i int) error {
		return c.CoreV1().Services("attack").Delete(ctx, fmt.Sprintf("fat-%d", i), metav1.DeleteOptions{})
	})
	created = createMany(b, c, "attack", many, func(i int) *corev1.Service {
		return ordinaryService(fmt.Sprintf("svc-%d", i), false)
	})
	barrier()
	one, _ := c.CoreV1().Services("attack").Get(ctx, "svc-0", metav1.GetOptions{})
	size := 0
	if one != nil {
		size = one.Size()
	}
	s := measure()
	report(fmt.Sprintf("after %d ordinary Services", created), s, int64(created*size))
	b.ReportMetric(float64(restarted.peak[0]), "controller-restart-peak-MiB")
	b.ReportMetric(float64(restarted.peak[1+slices.Index(Nodes, victim)]), "speaker-restart-peak-MiB")
	b.ReportMetric(float64(s.rss[0]), "controller-10k-MiB")
	b.ReportMetric(float64(slices.Max(s.rss[1:])), "speaker-10k-MiB")
}

// memBreakdown says where a speaker's RSS goes, from the Go runtime's
// own figures on its /metrics: the heap in use, heap the runtime keeps
// but does not use (idle, not yet returned), stacks, the runtime's other
// structures, next to the file-backed part of the RSS (the binary's text
// and data pages it touched).
func memBreakdown(token, node string, pid int) string {
	rss, file := testenv.RSS(pid), testenv.RSSFile(pid)
	body, err := HTTPSGet("client", NodeAddr(node)+":7473", "/metrics", token)
	if err != nil {
		return err.Error()
	}
	v := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if name, val, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, "go_memstats_") {
			f, _ := strconv.ParseFloat(val, 64)
			v[strings.TrimPrefix(name, "go_memstats_")] = f
		}
	}
	mib := func(x float64) float64 { return x / (1 << 20) }
	heap, idle, stack := v["heap_inuse_bytes"], v["heap_idle_bytes"]-v["heap_released_bytes"], v["stack_inuse_bytes"]
	runtime := v["sys_bytes"] - v["heap_sys_bytes"] - v["stack_sys_bytes"]
	anon := float64(rss - file)
	return fmt.Sprintf("RSS %.0f MiB = file-backed %.1f MiB (the binary's pages, shared, reclaimable) + anonymous %.1f MiB: heap in use %.1f, idle heap kept %.1f, stacks %.1f, the runtime's other structures %.1f (at most), the rest %.1f",
		mib(float64(rss)), mib(float64(file)), mib(anon), mib(heap), mib(idle), mib(stack), mib(runtime), mib(anon-heap-idle-stack-runtime))
}

// ordinaryService is a ClusterIP Service, or a LoadBalancer one with lb
// (which stays pending once the pool is spent).
func ordinaryService(name string, lb bool) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if lb {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
	}
	return s
}

// inParallel runs do(0..n-1) on 20 workers and returns how many succeeded.
func inParallel(b *testing.B, n int, do func(i int) error) int {
	b.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	ok := 0
	next := make(chan int)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := do(i)
				mu.Lock()
				if err == nil {
					ok++
				} else if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		b.Logf("%d of %d failed; the first: %v", n-ok, n, firstErr)
	}
	return ok
}

// createMany creates n Services in ns and returns how many were created.
func createMany(b *testing.B, c kubernetes.Interface, ns string, n int, build func(i int) *corev1.Service) int {
	b.Helper()
	return inParallel(b, n, func(i int) error {
		_, err := c.CoreV1().Services(ns).Create(context.Background(), build(i), metav1.CreateOptions{})
		return err
	})
}

// shippedEnv is the literal environment of the first container of the
// shipped workload (testenv.Shipped).
func shippedEnv(b *testing.B, workload string) []string {
	b.Helper()
	_, env, err := testenv.Shipped(workload)
	if err != nil {
		b.Fatal(err)
	}
	return env
}
