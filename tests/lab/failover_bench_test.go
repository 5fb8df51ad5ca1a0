package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/election"
)

// BenchmarkFailover kills the announcing speaker (SIGKILL) 20 times and
// measures, from the client namespace, the time until the new owner's first
// gratuitous ARP arrives and until a TCP connection to VIP:port succeeds
// again. Run it with scripts/bench-failover.sh.
//
// By default the node dies with its speaker (its link goes down: silent,
// found by the gossip's suspicion). METALLB_FAILOVER_NODE_LIVES=1 kills
// the process alone, the commonest failure (a crash, an OOM kill): its node
// refuses the others' connections to the speaker's port, certain evidence
// they act on at once (pkg/members, evidence.go).
func BenchmarkFailover(b *testing.B) {
	nodeLives := os.Getenv("METALLB_FAILOVER_NODE_LIVES") != ""
	// METALLB_HA=1: on the MicroK8s-HA-like datastore (two API servers
	// over kine; see TestLayer2OverKine).
	cl := startCluster(b, withHA(os.Getenv("METALLB_HA") != ""))
	cl.addBackend(b, "web-0", "web", "node-a")
	ipStr := cl.createService(b, "web", "web", false)
	ip := netip.MustParseAddr(ipStr)
	DeliverVIP(b, ipStr)
	w := newARPProbe(b, ip)
	const trials = 20
	var garp, tcp []time.Duration
	var fbLost []int
	var fbDual int
	for trial := range trials {
		owner := election.Owner(ip, Nodes)
		waitOneMAC(b, ipStr, cl.MACs[owner], 30*time.Second)
		next := nextOwner(ip)
		w.reset()
		killed := time.Now()
		_ = syscall.Kill(-cl.speakers[owner].Process.Pid, syscall.SIGKILL)
		// The dead node's kernel still holds the VIP on lo: take it away, as
		// a crashed node would stop answering.
		if !nodeLives {
			_, _ = Exec(context.Background(), owner, "ip", "link", "set", "eth0", "down").CombinedOutput()
		}
		var tGARP, tTCP time.Duration
		deadline := killed.Add(30 * time.Second)
		for (tGARP == 0 || tTCP == 0) && time.Now().Before(deadline) {
			if t, ok := w.seen(cl.MACs[next]); ok && tGARP == 0 {
				tGARP = t.Sub(killed)
			}
			if tTCP == 0 {
				// A short dial timeout: a SYN sent to the old MAC is lost, and
				// the next attempt must not wait long to notice the new one.
				if reply, err := Dial("client", ipStr+":8080", 20*time.Millisecond); err == nil && reply == next {
					tTCP = time.Since(killed)
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		macs, _ := Arping(b, context.Background(), ipStr, 3)
		fmt.Printf("trial %2d: %s killed, %s took over: gratuitous ARP after %v, TCP after %v, repliers %v\n",
			trial+1, owner, next, tGARP.Round(time.Millisecond), tTCP.Round(time.Millisecond), macs)
		if len(macs) != 1 {
			b.Errorf("trial %d: %d MACs answer after takeover: %v", trial+1, len(macs), macs)
		}
		garp, tcp = append(garp, tGARP), append(tcp, tTCP)
		// Bring the node back for the next trial: failback, probed every
		// 100 ms until the owner answers alone and a second after.
		pctx, stop := context.WithCancel(context.Background())
		probes := probeARP(pctx, b, ip, 100*time.Millisecond)
		back := time.Now()
		if !nodeLives {
			_, _ = Exec(context.Background(), owner, "ip", "link", "set", "eth0", "up").CombinedOutput()
		}
		cl.startSpeaker(b, owner)
		waitOneMAC(b, ipStr, cl.MACs[owner], 30*time.Second)
		time.Sleep(time.Second)
		stop()
		n, lost, dual := countProbes(<-probes, back, time.Now())
		fmt.Printf("          failback to %s: %d probes, %d unanswered, %d answered by two MACs\n", owner, n, lost, dual)
		fbLost, fbDual = append(fbLost, lost), fbDual+dual
	}
	fmt.Printf("failbacks: %d trials, unanswered probes per failback %v, probes answered by two MACs %d\n", trials, fbLost, fbDual)
	b.ReportMetric(float64(fbDual), "failback-dual-mac")
	b.ReportMetric(float64(slices.Max(fbLost)), "failback-max-unanswered")
	report := func(name string, ds []time.Duration) {
		s := slices.Clone(ds)
		slices.Sort(s)
		fmt.Printf("%s: p50 %v, max %v, all %v\n", name, s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), roundAll(ds))
		b.ReportMetric(float64(s[len(s)/2].Milliseconds()), name+"-p50-ms")
		b.ReportMetric(float64(s[len(s)-1].Milliseconds()), name+"-max-ms")
	}
	what := "node dead (link down)"
	if nodeLives {
		what = "process dead, node alive"
	}
	fmt.Printf("%d SIGKILLs of the announcing speaker, %s:\n", trials, what)
	report("garp", garp)
	report("tcp", tcp)
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
