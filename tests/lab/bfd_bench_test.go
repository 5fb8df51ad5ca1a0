package lab

import (
	"context"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// BenchmarkBFD measures, against BIRD in the lab with the shipped speaker
// and BFD at 100 ms x 3, how long the router keeps a node's next hop after
// that node's link is cut (no FIN, no AdminDown reaches it): 10 cuts,
// rotating over the nodes, next to the floor of the same cut without BFD
// (2 cuts: the 3 s hold time). During each cut new TCP connections from
// the router to the address go on (ECMP hashed on ports); once the next
// hop is gone every one must reach a remaining node. Then, for
// $METALLB_BFD_SOAK (default 0, the script sets 10m), both cores are kept
// saturated and any BFD session leaving Up is a false Down.
func BenchmarkBFD(b *testing.B) {
	RequireBird(b)
	plain := bgpConfig(birdPassword, "")
	cl := startCluster(b, withConfig(plain))
	bird := StartBird(b, BirdConfig(birdPassword))
	waitEstablished(b, bird, 6, 30*time.Second)
	cl.addBackend(b, "web-0", "web", "node-a")
	ip := cl.createService(b, "web", "web", false, corev1.IPv4Protocol)
	prefix := ip + "/32"
	WaitNextHops(b, prefix, allNodes, 20*time.Second)
	// Each node delivers the address itself (kube-proxy's part), and the
	// router spreads connections by ports, so each cut hits some.
	for _, n := range Nodes {
		if out, err := Exec(context.Background(), n, "ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		Serve(b, n, 8080)
	}
	if out, err := Exec(context.Background(), "router", "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1").CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	b.ResetTimer()

	cut := func(node string) time.Duration {
		others := otherNodeAddrs(node)
		cutLink(b, node, false)
		d := WaitNextHops(b, prefix, others, 10*time.Second)
		cutLink(b, node, true)
		return d
	}
	var floor []time.Duration
	for _, n := range []string{"node-b", "node-c"} {
		floor = append(floor, cut(n))
		waitEstablished(b, bird, 6, 30*time.Second)
		WaitNextHops(b, prefix, allNodes, 20*time.Second)
	}

	cl.setConfig(b, bfdConfig())
	bird.Reconfigure(BirdBFDConfig(birdPassword))
	waitEstablished(b, bird, 6, 30*time.Second)
	waitBFDUp(b, bird, 6, 30*time.Second)
	WaitNextHops(b, prefix, allNodes, 20*time.Second)

	var took []time.Duration
	var dials, failedAfter atomic.Int64
	for i := range 10 {
		node := Nodes[i%len(Nodes)]
		// New connections through the whole cut.
		ctx, stop := context.WithCancel(context.Background())
		var gone atomic.Int64 // when the next hop went (unix ns), 0 before
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				started := time.Now()
				err := In("router", func() error {
					c, err := net.DialTimeout("tcp", ip+":8080", 200*time.Millisecond)
					if err == nil {
						c.Close()
					}
					return err
				})
				if g := gone.Load(); g != 0 && started.UnixNano() > g+int64(50*time.Millisecond) {
					dials.Add(1)
					if err != nil {
						failedAfter.Add(1)
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		others := otherNodeAddrs(node)
		cutLink(b, node, false)
		d := WaitNextHops(b, prefix, others, 10*time.Second)
		gone.Store(time.Now().UnixNano())
		time.Sleep(time.Second) // connections while the node is cut off
		stop()
		wg.Wait()
		cutLink(b, node, true)
		took = append(took, d)
		waitBFDUp(b, bird, 6, 30*time.Second)
		WaitNextHops(b, prefix, allNodes, 20*time.Second)
	}
	slices.Sort(took)
	slices.Sort(floor)
	p50, worst := took[len(took)/2], took[len(took)-1]
	b.Logf("next hop removed after a link cut, BFD 100 ms x 3: p50 %v, max %v (10 cuts) | without BFD (hold time 3 s): %v | ratio p50 %.2f",
		p50.Round(time.Millisecond), worst.Round(time.Millisecond), floor, float64(p50)/float64(floor[0]))
	b.Logf("TCP from the router once the next hop was gone: %d connections, %d failed", dials.Load(), failedAfter.Load())
	b.ReportMetric(p50.Seconds(), "p50-s")
	b.ReportMetric(worst.Seconds(), "max-s")
	b.ReportMetric(float64(p50)/float64(floor[0]), "p50/holdtime")
	b.ReportMetric(float64(failedAfter.Load()), "tcp-failed")

	soak, _ := time.ParseDuration(os.Getenv("METALLB_BFD_SOAK"))
	if soak <= 0 {
		return
	}
	before := map[string]float64{}
	for _, n := range Nodes {
		before[n] = metric(n, `metallb_bfd_session_down_events{peer="198.51.100.254"}`)
	}
	ctx, stop := context.WithTimeout(context.Background(), soak)
	defer stop()
	for range runtime.NumCPU() {
		go func() {
			x := 0
			for ctx.Err() == nil {
				for i := range 1 << 16 {
					x += i
				}
			}
			_ = x
		}()
	}
	var lost int
	for ctx.Err() == nil {
		if up := birdBFDUp(bird); len(up) != 6 {
			lost++
			b.Logf("%s: BFD sessions up at the router: %v", time.Now().Format(time.TimeOnly), up)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var falseDowns float64
	for _, n := range Nodes {
		falseDowns += metric(n, `metallb_bfd_session_down_events{peer="198.51.100.254"}`) - before[n]
	}
	b.Logf("soak %v with both cores saturated: %v false Downs at the speakers, %d samples with a session not Up at the router", soak, falseDowns, lost)
	b.ReportMetric(falseDowns, "false-downs")
	if falseDowns > 0 || lost > 0 {
		b.Errorf("BFD went down %v times with every link up", falseDowns)
	}
}

// otherNodeAddrs are the addresses of every node but node.
func otherNodeAddrs(node string) []string {
	var others []string
	for _, n := range Nodes {
		if n != node {
			others = append(others, NodeAddr(n))
		}
	}
	return others
}
