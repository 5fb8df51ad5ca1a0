package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// cpuTicks is the user+system CPU time of a process, in clock ticks
// (1/100 s).
func cpuTicks(tb testing.TB, pid int) int {
	tb.Helper()
	n, err := testenv.CPUTicks(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func sumTicks(tb testing.TB, pids []int) int {
	n := 0
	for _, p := range pids {
		n += cpuTicks(tb, p)
	}
	return n
}

// countWrites counts, until ctx ends, the writes the speakers make to the
// API server: their Leases, and the Events they report.
func countWrites(ctx context.Context, tb testing.TB, cl *cluster) *atomic.Int64 {
	var n atomic.Int64
	lw, err := cl.c.CoordinationV1().Leases("metallb-system").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	ew, err := cl.c.CoreV1().Events("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		for ev := range lw.ResultChan() {
			if l, ok := ev.Object.(*coordinationv1.Lease); ok && ev.Type != watch.Bookmark && strings.HasPrefix(l.Name, "metallb-speaker-") {
				n.Add(1)
			}
		}
	}()
	go func() {
		for ev := range ew.ResultChan() {
			if e, ok := ev.Object.(*corev1.Event); ok && ev.Type != watch.Bookmark && e.Source.Component == "metallb-speaker" {
				n.Add(1)
			}
		}
	}()
	return &n
}

// BenchmarkSpeakerCost measures what idle speakers cost the control plane:
// the CPU of kube-apiserver and etcd over windows of 60 s
// (METALLB_COST_SECONDS) alternating without speakers and with one on each
// of the three nodes, started as the DaemonSet starts them (default flags),
// with one layer2 Service announced, for 3 rounds (METALLB_COST_ROUNDS),
// so that the control plane's own drift cancels out; then a window where
// the test makes the speakers' Lease writes itself (their floor). Also the
// speakers' own CPU, memory and API writes.
func BenchmarkSpeakerCost(b *testing.B) {
	window := time.Duration(envInt("METALLB_COST_SECONDS", 60)) * time.Second
	rounds := envInt("METALLB_COST_ROUNDS", 3)
	cl := startCluster(b, noSpeakers())
	cl.addBackend(b, "web-0", "web", "node-a")
	ip := cl.createService(b, "web", "web", false)
	cp := []int{cl.env.PID("kube-apiserver"), cl.env.PID("etcd")}
	if cp[0] == 0 || cp[1] == 0 {
		b.Fatalf("control plane PIDs: %v", cp)
	}
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	perMin := func(ticks int) float64 { return float64(ticks) / 100 / window.Minutes() }
	ctx := context.Background()
	var idleSum, busySum, spSum, wSum int
	var rss []int
	time.Sleep(5 * time.Second)
	for round := range rounds {
		t0 := sumTicks(b, cp)
		time.Sleep(window)
		idle := sumTicks(b, cp) - t0

		speakers := map[string]*exec.Cmd{}
		for _, n := range Nodes {
			speakers[n], _ = StartProcessLog(b, n, fmt.Sprintf("speaker-%s-%d.log", n, round), cl.bin, "speaker",
				"--node-name", n, "--kubeconfig", cl.env.Kubeconfig)
		}
		waitOneMAC(b, ip, cl.MACs[owner], 30*time.Second)
		time.Sleep(5 * time.Second) // past the start (informers' lists, joins)
		wctx, cancel := context.WithCancel(ctx)
		writes := countWrites(wctx, b, cl)
		time.Sleep(time.Second) // the watches are open
		var spids []int
		for _, n := range Nodes {
			spids = append(spids, speakers[n].Process.Pid)
		}
		t1, s1 := sumTicks(b, cp), sumTicks(b, spids)
		w1 := writes.Load()
		time.Sleep(window)
		busy, sp := sumTicks(b, cp)-t1, sumTicks(b, spids)-s1
		w := int(writes.Load() - w1)
		cancel()
		rss = rss[:0]
		for _, p := range spids {
			rss = append(rss, vmRSS(b, p)/1024)
		}
		if macs, out := Arping(b, ctx, ip, 3); len(macs) != 1 {
			b.Fatalf("after the window: %v\n%s", macs, out)
		}
		for _, c := range speakers {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			_ = c.Wait()
		}
		fmt.Printf("round %d: kube-apiserver+etcd CPU %.2f s/min without speakers, %.2f s/min with 3 (ratio %.2f); speakers %.2f s/min each; %d API writes\n",
			round+1, perMin(idle), perMin(busy), float64(busy)/float64(max(idle, 1)), perMin(sp)/3, w)
		idleSum, busySum, spSum, wSum = idleSum+idle, busySum+busy, spSum+sp, wSum+w
		time.Sleep(5 * time.Second)
	}

	// The floor for the writes: the same number of Lease updates per
	// window, spread over it, made by the test.
	w := wSum / rounds
	leases := cl.c.CoordinationV1().Leases("metallb-system")
	probe, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "cost-floor"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("bench")}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	t2 := sumTicks(b, cp)
	start := time.Now()
	for i := range w {
		time.Sleep(time.Until(start.Add(time.Duration(i) * window / time.Duration(max(w, 1)))))
		now := metav1.NewMicroTime(time.Now())
		probe.Spec.RenewTime = &now
		if probe, err = leases.Update(ctx, probe, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(time.Until(start.Add(window)))
	floor := sumTicks(b, cp) - t2
	idleAvg, busyAvg := idleSum/rounds, busySum/rounds
	ratio := float64(busySum) / float64(max(idleSum, 1))
	fmt.Printf("%d rounds of %v: kube-apiserver+etcd CPU %.2f s/min without speakers, %.2f s/min with 3 (ratio %.2f); the same %d Lease writes made by the test alone: %.2f s/min\n",
		rounds, window, perMin(idleAvg), perMin(busyAvg), ratio, w, perMin(floor))
	fmt.Printf("speakers: CPU %.2f s/min each, RSS %v MiB; API writes %d per %v (%.3f per second per node)\n",
		perMin(spSum/rounds)/3, rss, w, window, float64(w)/window.Seconds()/3)
	b.ReportMetric(ratio, "cp-cpu-ratio")
	b.ReportMetric(float64(w)/window.Seconds()/3, "writes/s/node")
	b.ReportMetric(perMin(spSum/rounds)/3, "speaker-cpu-s/min")
}
