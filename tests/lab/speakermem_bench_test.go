package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// BenchmarkSpeakerMemory measures a speaker's RSS with 1,000 layer2
// Services (METALLB_MEMORY_SERVICES), as users run it: three speakers and
// the controller as processes with the shipped manifests' environment, the
// CRDs installed (a ServiceL2Status per Service). Next to them the floor,
// a Go process with client-go watching what a speaker watches
// (tests/bench/floor, the same environment). For each, the RSS split into
// the binary's file-backed pages and the process's own memory, and, for a
// speaker and the floor, which sections and packages of the binary those
// pages hold. Then one speaker restarts among the Services (its first
// list holds them all).
//
// METALLB_MEMORY_PROFILE=DIR: node-a's speaker runs with --pprof, and its
// heap profile with the Services (heap.pb.gz, for go tool pprof) and the
// same as text with the runtime's MemStats (heap.txt) land in DIR.
func BenchmarkSpeakerMemory(b *testing.B) {
	n := envInt("METALLB_MEMORY_SERVICES", 1000)
	profileDir := os.Getenv("METALLB_MEMORY_PROFILE")
	cl := startCluster(b, noSpeakers(), controllerProcess(), withConfig(bulkConfig), withCRDs())
	spkEnv := shippedEnv(b, "DaemonSet/metallb-speaker")
	speakers := map[string]*exec.Cmd{}
	start := func(node string) {
		args := []string{cl.bin, "speaker", "--metrics-addr=:7473", "--health-addr=:7474", "--node-name", node, "--kubeconfig", cl.env.Kubeconfig}
		if profileDir != "" && node == Nodes[0] {
			args = append(args, "--pprof", "--metrics-secure=false")
		}
		speakers[node] = StartProcess(b, node, "speaker-"+node+".log", slices.Concat([]string{"env"}, spkEnv, args)...)
	}
	for _, node := range Nodes {
		start(node)
	}
	floorBin := filepath.Join(b.TempDir(), "floor")
	if err := testenv.BuildStatic("./tests/bench/floor", floorBin); err != nil {
		b.Fatal(err)
	}
	floor := StartProcess(b, "node-a", "floor.log", slices.Concat([]string{"env"}, spkEnv, []string{floorBin, "--kubeconfig", cl.env.Kubeconfig})...)
	cl.addBackend(b, "mem-0", "bulk", "node-b")
	na := watchNA(b)
	ctx := context.Background()
	announced := func(ips ...netip.Addr) { na.waitOwner(b, cl, time.Now().Add(3*time.Minute), ips...) }
	announced(netip.MustParseAddr(cl.createService(b, "warm", "bulk", false, corev1.IPv6Protocol)))

	// report samples every 2 s for 20 s (the largest of each process),
	// then prints the RSS of each and where a speaker's and the floor's go.
	report := func(what string) []int64 {
		procs := []*exec.Cmd{speakers[Nodes[0]], speakers[Nodes[1]], speakers[Nodes[2]], floor, cl.ctl}
		worst := make([]int64, len(procs))
		for range 10 {
			time.Sleep(2 * time.Second)
			for i, p := range procs {
				worst[i] = max(worst[i], testenv.RSS(p.Process.Pid))
			}
		}
		mib := func(x int64) string { return fmt.Sprintf("%.1f", float64(x)/(1<<20)) }
		var sp []string
		for i := range 3 {
			pid := procs[i].Process.Pid
			sp = append(sp, fmt.Sprintf("%s %s (file %s, own %s)", Nodes[i], mib(worst[i]), mib(testenv.RSSFile(pid)), mib(testenv.RSS(pid)-testenv.RSSFile(pid))))
		}
		fpid := floor.Process.Pid
		fmt.Printf("%s: RSS MiB, the largest over 20 s: speakers %v; floor %s (file %s, own %s); controller %s\n", what, sp,
			mib(worst[3]), mib(testenv.RSSFile(fpid)), mib(testenv.RSS(fpid)-testenv.RSSFile(fpid)), mib(worst[4]))
		for _, p := range []struct {
			name string
			pid  int
			bin  string
		}{{Nodes[0] + "'s speaker", procs[0].Process.Pid, cl.bin}, {"the floor", fpid, floorBin}} {
			r, err := testenv.ResidentBinary(p.pid, p.bin)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Printf("  %s: %v\n", p.name, r)
		}
		return worst
	}
	report("at rest (1 Service)")

	createBulk(ctx, b, cl.c.CoreV1().Services("demo"), n)
	ips := waitBulkIPs(b, cl, n)
	announced(ips...)
	// The ServiceL2Status objects come last: wait for them all.
	waitL2Statuses(b, cl, n+1, time.Now().Add(5*time.Minute))
	withN := report(fmt.Sprintf("with %d layer2 Services", n))
	if profileDir != "" {
		for file, path := range map[string]string{"heap.pb.gz": "/debug/pprof/heap", "heap.txt": "/debug/pprof/heap?debug=1"} {
			if err := saveProfile(Nodes[0], path, filepath.Join(profileDir, file)); err != nil {
				b.Fatalf("heap profile: %v", err)
			}
		}
	}

	victim := Nodes[1]
	_ = syscall.Kill(-speakers[victim].Process.Pid, syscall.SIGKILL)
	_ = speakers[victim].Wait()
	start(victim)
	restarted := netip.MustParseAddr(cl.createService(b, "after-restart", "bulk", false, corev1.IPv6Protocol))
	announced(restarted)
	after := report(fmt.Sprintf("after %s's speaker restarted among them", victim))
	b.ReportMetric(float64(slices.Max(withN[:3]))/(1<<20), "speaker-MiB")
	b.ReportMetric(float64(withN[3])/(1<<20), "floor-MiB")
	b.ReportMetric(float64(after[1])/(1<<20), "restarted-MiB")
}

// waitBulkIPs waits until the n Services bulk-0 … bulk-(n-1) of demo have
// an address in their status, and returns those addresses.
func waitBulkIPs(b *testing.B, cl *cluster, n int) []netip.Addr {
	b.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		list, err := cl.c.CoreV1().Services("demo").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var ips []netip.Addr
		for _, s := range list.Items {
			if len(s.Status.LoadBalancer.Ingress) > 0 && len(s.Name) > 5 && s.Name[:5] == "bulk-" {
				if ip, err := netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP); err == nil {
					ips = append(ips, ip)
				}
			}
		}
		if len(ips) >= n {
			return ips
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 3 min %d of %d Services have an address", len(ips), n)
		}
		time.Sleep(time.Second)
	}
}
