package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// bgpBulkConfig: the lab router's IPv6 sessions, and a pool of 65,536
// IPv6 addresses announced by BGP (the lab's IPv4 ranges hold too few).
const bgpBulkConfig = `peers:
- peer-address: "2001:db8::254"
  peer-asn: 64500
  my-asn: 64500
  hold-time: 3s
address-pools:
- name: routed6
  protocol: bgp
  addresses: ["2001:db8:2::/112"]
`

var updatesRE = regexp.MustCompile(`(?m)^metallb_bgp_updates_total\{peer="2001:db8::254"\} (\S+)$`)

// bgpUpdates reads a speaker's UPDATE messages sent to the router.
func bgpUpdates(tb testing.TB, node string) float64 {
	tb.Helper()
	body, err := HTTPGet("client", NodeAddr(node)+":7473", "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	m := updatesRE.FindStringSubmatch(body)
	if m == nil {
		tb.Fatalf("%s: no metallb_bgp_updates_total for the router", node)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// BenchmarkBGPBulk creates METALLB_BGP_BULK (default 10,000) IPv6
// Services at once on three speakers and a controller run with the
// shipped flags, against BIRD with ECMP, and measures: from each address
// in status (seen by a watch) to its /128 at the router with all three
// next hops (the router's kernel table, polled every 100 ms); the last
// route against the last status write (the floor: the controller and the
// API server's time for the same bulk); the UPDATE messages each speaker
// sent (prefixes of equal attributes share one); and the CPU seconds of
// each speaker and the controller.
func BenchmarkBGPBulk(b *testing.B) {
	RequireBird(b)
	n := envInt("METALLB_BGP_BULK", 10000)
	cl := startCluster(b, noSpeakers(), controllerProcess(), withConfig(bgpBulkConfig))
	speakers := map[string]*exec.Cmd{}
	// METALLB_PPROF=FILE: node-a's speaker's CPU profile of the bulk's
	// first 30 s goes there.
	profile := os.Getenv("METALLB_PPROF")
	for _, node := range Nodes {
		args := []string{cl.bin, "speaker", "--log-level=info",
			"--metrics-addr=:7473", "--metrics-secure=false", "--health-addr=:7474", "--node-name", node, "--kubeconfig", cl.env.Kubeconfig}
		if profile != "" {
			args = append(args, "--pprof")
		}
		speakers[node], _ = StartProcessLog(b, node, "speaker-"+node+".log", args...)
	}
	bird := StartBird(b, BirdConfig(birdPassword))
	waitEstablished(b, bird, 3, 60*time.Second)
	cl.addBackend(b, "bulk-0", "bulk", "node-b")
	warm := cl.createService(b, "warm", "bulk", false, corev1.IPv6Protocol)
	WaitNextHops(b, warm+"/128", []string{"2001:db8::11", "2001:db8::12", "2001:db8::13"}, 30*time.Second)
	time.Sleep(2 * time.Second)

	ctx := context.Background()
	svcs := cl.c.CoreV1().Services("demo")
	var mu sync.Mutex
	status := map[string]time.Time{} // address → when its status was seen
	w, err := svcs.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type == watch.Deleted || len(s.Status.LoadBalancer.Ingress) == 0 || !strings.HasPrefix(s.Name, "bulk-") {
				continue
			}
			ip := s.Status.LoadBalancer.Ingress[0].IP
			mu.Lock()
			if _, ok := status[ip]; !ok {
				status[ip] = time.Now()
			}
			mu.Unlock()
		}
	}()
	routes := map[string]time.Time{} // address → when the router had it with 3 next hops
	stopPoll := pollECMP(&mu, routes, 3, 100*time.Millisecond)
	var spids []int
	upd0 := map[string]float64{}
	for _, node := range Nodes {
		spids = append(spids, speakers[node].Process.Pid)
		upd0[node] = bgpUpdates(b, node)
	}
	ctlPID := cl.ctl.Process.Pid
	sp0, ctl0 := make([]int, len(spids)), cpuTicks(b, ctlPID)
	for i, p := range spids {
		sp0[i] = cpuTicks(b, p)
	}
	b.ResetTimer()
	start := time.Now()
	if profile != "" {
		go func() {
			if err := saveProfile("node-a", "/debug/pprof/profile?seconds=30", profile); err != nil {
				b.Logf("profile: %v", err)
			}
		}()
	}
	createBulk(ctx, b, svcs, n)
	created := time.Since(start)

	deadline := time.Now().Add(10 * time.Minute)
	for {
		mu.Lock()
		missing := 0
		for ip := range status {
			if _, ok := routes[ip]; !ok {
				missing++
			}
		}
		done := len(status) >= n && missing == 0
		got := len(status)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 10 min: %d of %d statuses, %d of them without their route at the router", got, n, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stopPoll()
	b.StopTimer()
	var lats []time.Duration
	var lastStatus, lastRoute time.Time
	mu.Lock()
	for ip, at := range status {
		r := routes[ip]
		lats = append(lats, max(0, r.Sub(at)))
		if at.After(lastStatus) {
			lastStatus = at
		}
		if r.After(lastRoute) {
			lastRoute = r
		}
	}
	mu.Unlock()
	ctlCPU := float64(cpuTicks(b, ctlPID)-ctl0) / 100
	var spCPU, msgs []string
	for i, node := range Nodes {
		spCPU = append(spCPU, fmt.Sprintf("%s %.2f s", node, float64(cpuTicks(b, spids[i])-sp0[i])/100))
		u := bgpUpdates(b, node) - upd0[node]
		msgs = append(msgs, fmt.Sprintf("%s %.0f (%.1f prefixes each)", node, u, float64(n)/u))
	}
	slices.Sort(lats)
	pct := func(q float64) time.Duration { return lats[min(len(lats)-1, int(q*float64(len(lats))))] }
	floor, last := lastStatus.Sub(start), lastRoute.Sub(start)
	fmt.Printf("%d IPv6 Services created in %v; last status write %v after the first create (floor), last /128 with 3 next hops at the router %v (ratio %.3f; the router polled every 100 ms)\n",
		n, created.Round(time.Millisecond), floor.Round(time.Millisecond), last.Round(time.Millisecond), float64(last)/float64(floor))
	fmt.Printf("status to the route at the router: p50 %v, p99 %v, max %v\n", pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lats[len(lats)-1].Round(time.Millisecond))
	fmt.Printf("UPDATE messages to the router for the bulk: %s\n", strings.Join(msgs, ", "))
	fmt.Printf("CPU for the bulk: controller %.2f s; speakers %v\n", ctlCPU, spCPU)
	b.ReportMetric(float64(pct(0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(float64(last)/float64(floor), "last/floor")
}
