package members

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/election"
)

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkGossip runs 100 members (METALLB_GOSSIP_MEMBERS) in this
// process, each on its own loopback address, with the shipped timings and
// encryption, and measures: false deaths over a soak of 60 s
// (METALLB_GOSSIP_SOAK_SECONDS; the run is 600) with both cores
// kept busy by two spinning processes; how long until every other member
// sees a killed member dead (10 kills, METALLB_GOSSIP_KILLS); the bytes
// per second and the CPU each member uses at steady state; and how evenly the
// election spreads 1,000 addresses over the members.
func BenchmarkGossip(b *testing.B) {
	n := benchEnv("METALLB_GOSSIP_MEMBERS", 100)
	soak := time.Duration(benchEnv("METALLB_GOSSIP_SOAK_SECONDS", 60)) * time.Second
	kills := benchEnv("METALLB_GOSSIP_KILLS", 10)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := make([]byte, 32)
	began := time.Now()
	cpuNow := func() time.Duration { // this process's CPU time
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	names := make([]string, n)
	addrs := make([]netip.Addr, n)
	lists := make([]*List, n)
	for i := range n {
		names[i] = fmt.Sprintf("node-%03d", i)
		addrs[i] = netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)})
		l, err := Start(Options{Name: names[i], Bind: addrs[i], Port: DefaultPort + 100, Key: key, Log: log,
			OnChange: func(bool) {}, OnRelease: func(string, []netip.Addr) {}})
		if err != nil {
			b.Fatal(err)
		}
		lists[i] = l
		b.Cleanup(l.Shutdown)
	}
	var wg sync.WaitGroup
	for i, l := range lists {
		wg.Add(1)
		go func() { defer wg.Done(); l.Join(addrs[max(0, i-3):i]) }()
	}
	wg.Wait()
	all := func(pred func(i int, l *List) bool) bool {
		for i, l := range lists {
			if l != nil && !pred(i, l) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !all(func(_ int, l *List) bool { return l.Peers() == n-1 }) {
		if time.Now().After(deadline) {
			lo, hi := n, 0
			for _, l := range lists {
				lo, hi = min(lo, l.Peers()), max(hi, l.Peers())
			}
			cpu := cpuNow()
			b.Fatalf("%d members never all saw each other: each sees %d to %d peers alive (this process used %.0f%% of a core)", n, lo, hi,
				100*cpu.Seconds()/time.Since(began).Seconds())
		}
		for i, l := range lists {
			if l.Peers() < n-1 {
				l.Join(addrs[:i])
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(5 * time.Second) // past the joins' gossip
	b.ResetTimer()

	// Steady state: bytes per second per member, from the loopback's
	// counter (nothing else talks on it meanwhile).
	loBytes := func() float64 {
		raw, err := os.ReadFile("/sys/class/net/lo/statistics/tx_bytes")
		if err != nil {
			b.Fatal(err)
		}
		v, _ := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
		return v
	}
	s0, t0, c0 := loBytes(), time.Now(), cpuNow()
	time.Sleep(10 * time.Second)
	perMember := (loBytes() - s0) / time.Since(t0).Seconds() / float64(n)
	perMemberCPU := (cpuNow() - c0).Seconds() / time.Since(t0).Seconds() / float64(n)

	// Soak with both cores busy: every false death counted.
	var spinners []*exec.Cmd
	for range runtime.NumCPU() {
		c := exec.Command("sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		spinners = append(spinners, c)
	}
	stopSpin := func() {
		for _, c := range spinners {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
		spinners = nil
	}
	defer stopSpin()
	var falseDeaths, samples atomic.Int64
	soakEnd := time.Now().Add(soak)
	for time.Now().Before(soakEnd) {
		for _, l := range lists {
			falseDeaths.Add(int64(n - 1 - l.Peers()))
		}
		samples.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
	stopSpin()

	// Kills: a member stops answering (no goodbye); how long until every
	// other member sees it dead.
	var took []time.Duration
	for k := range min(kills, n-2) {
		victim := n - 1 - k
		lists[victim].Shutdown()
		at := time.Now()
		lists[victim] = nil
		for !all(func(_ int, l *List) bool { return !l.Alive(names[victim]) }) {
			if time.Since(at) > 30*time.Second {
				b.Fatalf("%s never seen dead by every member", names[victim])
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(at))
		time.Sleep(2 * time.Second)
	}
	b.StopTimer()
	slices.Sort(took)

	owners := map[string]int{}
	ip := netip.MustParseAddr("198.51.100.0")
	for range 1000 {
		owners[election.Owner(ip, names)]++
		ip = ip.Next()
	}
	most := 0
	for _, c := range owners {
		most = max(most, c)
	}
	fmt.Printf("%d members: steady state %.0f bytes/s sent per member, %.2f%% of a core per member\n", n, perMember, 100*perMemberCPU)
	fmt.Printf("soak %v with %d cores busy: %d member-samples saw a live member dead (%d samples of %d members)\n",
		soak, runtime.NumCPU(), falseDeaths.Load(), samples.Load(), n)
	fmt.Printf("killed member seen dead by every other: p50 %v, p99 %v, max %v over %d kills\n",
		took[len(took)/2].Round(time.Millisecond), took[(len(took)*99)/100].Round(time.Millisecond),
		took[len(took)-1].Round(time.Millisecond), len(took))
	fmt.Printf("1000 addresses over %d members: max %d, mean %.1f (max/mean %.2f)\n", n, most, 1000/float64(n), float64(most)/(1000/float64(n)))
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(falseDeaths.Load()), "false-deaths")
}
