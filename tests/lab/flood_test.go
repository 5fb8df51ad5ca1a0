package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// TestSpeakerFloodKeepsAddresses is the speaker's side of the hardening
// issue's flood: a speaker cut off from its peers (they are gone), which
// therefore checks the API server every second to know whether it must
// withdraw, is flooded from the LAN for 25 s: 3,000 callers with random
// tokens on its /metrics from 60 addresses of the client host, and 1,000
// idle connections on its health port. Throughout, it answers ARP for its
// address, its kubelet's probes are answered, it never withdraws, and its
// memory stays bounded.
func TestSpeakerFloodKeepsAddresses(t *testing.T) {
	cl := startCluster(t, noSpeakers())
	cl.speakers = map[string]*exec.Cmd{}
	for _, n := range Nodes { // the shipped manifests' ports, secure metrics
		cl.speakers[n], cl.logs[n] = StartProcessLog(t, n, "speaker-"+n+".log", cl.bin, "speaker",
			"--node-name", n, "--kubeconfig", cl.env.Kubeconfig, "--metrics-addr=:7473", "--health-addr=:7474")
	}
	cl.addBackend(t, "web-0", "web", "node-a")
	ip := cl.createService(t, "web", "web", false, corev1.IPv4Protocol)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	waitOneMAC(t, ip, cl.MACs[owner], 30*time.Second)
	nodeAddr := NodeAddr(owner)
	for _, n := range Nodes {
		if n != owner {
			_ = syscall.Kill(-cl.speakers[n].Process.Pid, syscall.SIGKILL)
			_ = cl.speakers[n].Wait()
		}
	}
	// Barrier: the owner sees itself alone, so it checks the API server.
	testenv.Eventually(t, 20*time.Second, owner+" alone", func() bool {
		body, err := HTTPSGet("client", nodeAddr+":7473", "/metrics", cl.env.Config.BearerToken)
		return err == nil && strings.Contains(body, "\nmetallb_speaker_members 1\n")
	})
	pid := cl.speakers[owner].Process.Pid
	before := testenv.RSS(pid)

	sources := clientSources(t, 60)
	var idle []net.Conn
	_ = In("client", func() error {
		idle = testenv.HoldIdle(nodeAddr+":7474", 1000, sources)
		return nil
	})
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()

	// The speaker gets one core (its pod's CPU limit), the flood the other.
	var floodCPU []int
	if runtime.NumCPU() >= 2 {
		floodCPU = []int{1}
		if err := testenv.Pin(pid, 0); err != nil {
			t.Fatal(err)
		}
	}
	const window = 25 * time.Second
	ctx := context.Background()
	type result struct {
		r   testenv.FloodResult
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		r, err := testenv.Flood{URL: "https://" + nodeAddr + ":7473/metrics", Callers: 3000, Sources: sources,
			Backoff: 50 * time.Millisecond}.RunApart(ctx, window, []string{"ip", "netns", "exec", NS("client")}, floodCPU...)
		done <- result{r, err}
	}()

	// Across the whole window, a scraper with a valid token on the
	// client's own address: the flood must not shut it out.
	type scrapeResult struct{ tries, ok int }
	scraped := make(chan scrapeResult, 1)
	go func() {
		var s scrapeResult
		for time.Since(start) < window {
			s.tries++
			body, err := HTTPSGet("client", nodeAddr+":7473", "/metrics", cl.env.Config.BearerToken)
			if err == nil && strings.Contains(body, "\nmetallb_speaker_members 1\n") {
				s.ok++
			}
			time.Sleep(time.Second)
		}
		scraped <- s
	}()

	// Across the whole window: ARP from the client, and the kubelet's
	// probe from the node itself (1 s, as the kubelet's default timeout).
	var arps, arpMiss, probes, probeFails, inARow, worstRun int
	var lastMiss string
	for time.Since(start) < window {
		macs, out := Arping(t, ctx, ip, 1)
		arps++
		if len(macs) != 1 || macs[cl.MACs[owner]] == 0 {
			arpMiss++
			lastMiss = fmt.Sprintf("%v\n%s", macs, out)
		}
		probes++
		t0 := time.Now()
		body, err := HTTPGet(owner, nodeAddr+":7474", "/healthz")
		if err != nil || !strings.HasPrefix(body, "HTTP/1.0 200") || time.Since(t0) > time.Second {
			probeFails++
			inARow++
			worstRun = max(worstRun, inARow)
		} else {
			inARow = 0
		}
		time.Sleep(200 * time.Millisecond)
	}
	res := <-done
	scrape := <-scraped
	if res.err != nil {
		t.Fatal(res.err)
	}
	peak := testenv.PeakRSS(pid)
	t.Logf("flood: %d requests in %v (%v), %d idle connections opened to the health port, %d still open at the end",
		res.r.Total(), window, res.r.ByStatus, len(idle), testenv.StillOpen(idle))
	t.Logf("a scraper with a valid token during the flood: %d of %d scrapes answered", scrape.ok, scrape.tries)
	t.Logf("%s alone: ARP %d probes, %d missed; kubelet probes %d, failed %d (at most %d in a row); RSS %d MiB before, peak %d MiB",
		owner, arps, arpMiss, probes, probeFails, worstRun, before>>20, peak>>20)
	if cl.speakers[owner].Process.Signal(syscall.Signal(0)) != nil {
		t.Fatal("the speaker exited during the flood")
	}
	if arpMiss > 0 {
		t.Errorf("%d of %d ARP probes not answered by %s alone; the last:\n%s", arpMiss, arps, owner, lastMiss)
	}
	if worstRun >= 3 {
		t.Errorf("%d health probes in a row failed (%d of %d): the kubelet would restart the speaker", worstRun, probeFails, probes)
	}
	// Most of the flood is closed before its handshake ends (each newcomer
	// evicts a connection of the busiest source), so what matters is that
	// no random token is let in and the valid scraper gets through.
	if res.r.ByStatus[http.StatusOK] > 0 {
		t.Errorf("the flood got %v: want 401 or 503 or no answer, never 200", res.r.ByStatus)
	}
	if scrape.ok*2 < scrape.tries {
		t.Errorf("the valid scraper got %d answers in %d scrapes during the flood, want most", scrape.ok, scrape.tries)
	}
	if peak > 150<<20 {
		t.Errorf("peak RSS %d MiB during the flood, want bounded (< 150 MiB)", peak>>20)
	}
	testenv.Eventually(t, 40*time.Second, "the idle connections closed", func() bool { return testenv.StillOpen(idle) == 0 })
	log, err := os.ReadFile(cl.logs[owner])
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"withdrawing", "rate limiter"} {
		if strings.Contains(string(log), bad) {
			t.Errorf("the speaker logged %q:\n%s", bad, log)
		}
	}
}

// clientSources gives the client host n more addresses (198.51.100.30
// onwards), as n callers of the LAN, removed when the test ends.
func clientSources(t *testing.T, n int) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(30 + i)})
		if b, err := Exec(context.Background(), "client", "ip", "addr", "add", a.String()+"/32", "dev", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, b)
		}
		out = append(out, a)
	}
	t.Cleanup(func() {
		for _, a := range out {
			_ = Exec(context.Background(), "client", "ip", "addr", "del", a.String()+"/32", "dev", "eth0").Run()
		}
	})
	return out
}
