package lab

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/election"
)

// TestLayer2SIGTERMHandsOver stops the announcing speaker the way a
// rolling update does (SIGTERM), three times: it hands its address to the
// next owner before it exits, so no request is answered by two MACs and at
// most one 100 ms probe per hand-off goes unanswered; then it starts again
// (the address comes back to it: failback, held to the same).
func TestLayer2SIGTERMHandsOver(t *testing.T) {
	cl := startCluster(t)
	cl.addBackend(t, "web-0", "web", "node-b")
	ip := cl.createService(t, "web", "web", false)
	vip := netip.MustParseAddr(ip)
	owner := election.Owner(vip, Nodes)
	waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)
	next := nextOwner(vip)

	ctx, stop := context.WithCancel(context.Background())
	results := probeARP(ctx, t, vip, 100*time.Millisecond)
	time.Sleep(time.Second)
	type window struct{ term, restart, end time.Time }
	var ws []window
	var exits []time.Duration
	var stoppedLog string
	for range 3 {
		var w window
		w.term = time.Now()
		_ = syscall.Kill(-cl.speakers[owner].Process.Pid, syscall.SIGTERM)
		_ = cl.speakers[owner].Wait()
		exits = append(exits, time.Since(w.term).Round(time.Millisecond))
		stoppedLog = cl.speakerLog(t, owner)
		// The next owner answers alone: the barrier before the restart.
		waitOneMAC(t, ip, cl.MACs[next], 10*time.Second)
		time.Sleep(time.Second)
		w.restart = time.Now()
		cl.startSpeaker(t, owner)
		waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)
		time.Sleep(time.Second)
		w.end = time.Now()
		ws = append(ws, w)
	}
	stop()
	rs := <-results

	var n, lost, dual, fn, flost, fdual int
	for _, w := range ws {
		a, b, c := countProbes(rs, w.term, w.restart)
		n, lost, dual = n+a, lost+b, dual+c
		a, b, c = countProbes(rs, w.restart, w.end)
		fn, flost, fdual = fn+a, flost+b, fdual+c
	}
	t.Logf("3 SIGTERMs of %s (exited %v after the signal), hand-off to %s: %d probes, %d unanswered, %d answered by two MACs",
		owner, exits, next, n, lost, dual)
	// The old owner stops answering, then releases: never two MACs; the
	// address goes unanswered only while one datagram crosses the LAN, so a
	// probe sent in that moment is lost: at most one per hand-off.
	if dual > 0 || lost > len(ws) {
		t.Errorf("the hand-offs had %d dual-MAC probes and lost %d; want none and at most one per hand-off", dual, lost)
	}
	t.Logf("failbacks to %s after its restarts: %d probes, %d unanswered, %d answered by two MACs", owner, fn, flost, fdual)
	if fdual > 0 || flost > len(ws) {
		t.Errorf("the failbacks had %d dual-MAC probes and %d unanswered; want none and at most one per failback", fdual, flost)
	}
	if t.Failed() {
		for _, r := range rs {
			if len(r.macs) != 1 {
				t.Logf("probe at %s: %v", r.at.Format("15:04:05.000"), r.macs)
			}
		}
		for _, n := range []string{owner, next} {
			t.Logf("%s:\n%s", n, grepLines(cl.speakerLog(t, n), "announcing", "releas", "joined", "left", "dead", "waiting"))
		}
	}
	if !strings.Contains(stoppedLog, "handed the addresses over and left") {
		t.Errorf("the stopping speaker did not report the hand-off:\n%s", tail(stoppedLog, 3000))
	}
}
