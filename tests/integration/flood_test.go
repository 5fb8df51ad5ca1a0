package integration

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// TestFloodKeepsTheLeader is the flood of the hardening issue against the
// real API server: 3,000 callers with random tokens on the leader's
// /metrics, spread over 300 loopback addresses (300 pods), and 1,000 idle
// connections to its health port, for 25 s (the controller used to lose
// its leadership after 19 s). Throughout, the Lease is renewed every retry
// period, a health probe from an address of its own (the kubelet) is
// answered every time, memory stays bounded, and once the flood stops the
// idle connections are closed.
func TestFloodKeepsTheLeader(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	setConfig(t, c, ns, "address-pools:\n- {name: p, protocol: layer2, addresses: [192.0.2.10-192.0.2.20]}\n")
	metricsAddr, healthAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	proc := startControllerProcess(t, env, ns, "--leader-elect=true", "--metrics-addr", metricsAddr, "--health-addr", healthAddr, "--log-level", "info")
	pid := proc.Process.Pid
	ctx := context.Background()
	var holder string
	eventually(t, 20*time.Second, "the controller to lead", func() bool {
		l, err := c.CoordinationV1().Leases(ns).Get(ctx, "metallb-controller", metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		return holder != ""
	})
	createSvc(t, c, ns, lbService("web"))
	waitIngress(t, c, ns, "web", "192.0.2.10")
	before := testenv.RSS(pid)

	idle := testenv.HoldIdle(healthAddr, 1000, testenv.LoopbackSources(500)[300:])
	defer func() {
		for _, conn := range idle {
			conn.Close()
		}
	}()
	t.Logf("%d idle connections opened to the health port", len(idle))

	// The controller gets one core (its pod's CPU limit), the flood the
	// other (an attacker on another node); the API server shares both.
	cpus := [][]int{nil, nil}
	if runtime.NumCPU() >= 2 {
		cpus = [][]int{{0}, {1}}
		if err := testenv.Pin(pid, cpus[0]...); err != nil {
			t.Fatal(err)
		}
	}
	const window = 25 * time.Second
	fctx, stop := context.WithTimeout(ctx, window)
	defer stop()
	var wg sync.WaitGroup
	var flood testenv.FloodResult
	var floodErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		flood, floodErr = testenv.Flood{URL: "https://" + metricsAddr + "/metrics", Callers: 3000,
			Sources: testenv.LoopbackSources(300), Backoff: 50 * time.Millisecond}.RunApart(ctx, window, nil, cpus[1]...)
	}()

	// The watchers: the Lease's renewals, and the kubelet's probe.
	var renewals []time.Time
	var probes, probeFails, inARow, worstRun int
	var lastProbeErr error
	kubelet := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: testenv.SourceDialer(testenv.LoopbackSources(600)[599:], 0).DialContext}}
	for fctx.Err() == nil {
		l, err := c.CoordinationV1().Leases(ns).Get(ctx, "metallb-controller", metav1.GetOptions{})
		if err == nil && l.Spec.RenewTime != nil {
			if rt := l.Spec.RenewTime.Time; len(renewals) == 0 || rt.After(renewals[len(renewals)-1]) {
				renewals = append(renewals, rt)
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != holder {
				t.Fatalf("the Lease changed hands during the flood: %v", l.Spec.HolderIdentity)
			}
		}
		probes++
		resp, err := kubelet.Get("http://" + healthAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = &statusError{resp.StatusCode}
			}
		}
		if err != nil {
			probeFails++
			inARow++
			worstRun = max(worstRun, inARow)
			lastProbeErr = err
		} else {
			inARow = 0
		}
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()
	if floodErr != nil {
		t.Fatal(floodErr)
	}
	peak := testenv.PeakRSS(pid)
	heldAtEnd := testenv.StillOpen(idle)

	var maxGap time.Duration
	for i := 1; i < len(renewals); i++ {
		maxGap = max(maxGap, renewals[i].Sub(renewals[i-1]))
	}
	t.Logf("flood: %d requests in %v (%v), %d idle connections opened to the health port, %d still open at the end",
		flood.Total(), window, flood.ByStatus, len(idle), heldAtEnd)
	t.Logf("leader: %d renewals, longest gap %v; kubelet probes %d, failed %d (at most %d in a row, last: %v); RSS %d MiB before, peak %d MiB",
		len(renewals), maxGap.Round(10*time.Millisecond), probes, probeFails, worstRun, lastProbeErr, before>>20, peak>>20)
	if proc.Process.Signal(syscall.Signal(0)) != nil {
		t.Fatal("the controller exited during the flood")
	}
	// Renewed every retry period after the previous PUT returned: a gap
	// of two is a renewal that did not land.
	if maxGap > 2*k8s.LeaderRetry || len(renewals) < int(window/k8s.LeaderRetry)/2 {
		t.Errorf("missed renewals: %d in %v, longest gap %v", len(renewals), window, maxGap)
	}
	// The shipped liveness probe restarts the pod after 3 failures in a
	// row (1 s timeout each, as here).
	if worstRun >= 3 {
		t.Errorf("%d health probes in a row from the kubelet's address failed (%d of %d; last: %v): the kubelet would restart the controller", worstRun, probeFails, probes, lastProbeErr)
	}
	if flood.ByStatus[http.StatusUnauthorized]+flood.ByStatus[http.StatusServiceUnavailable] == 0 {
		t.Errorf("the flood got no 401 nor 503: %v; is /metrics served?", flood.ByStatus)
	}
	if flood.ByStatus[http.StatusOK] > 0 {
		t.Errorf("%d random tokens were served /metrics", flood.ByStatus[http.StatusOK])
	}
	if peak > 150<<20 {
		t.Errorf("peak RSS %d MiB during the flood, want bounded (< 150 MiB)", peak>>20)
	}
	// The idle connections are closed: over the cap at once, the rest when
	// they send no request (5 s) or stay idle (30 s).
	eventually(t, 40*time.Second, "the idle connections closed", func() bool { return testenv.StillOpen(idle) == 0 })
	if log := controllerLog(t, proc); strings.Contains(log, "lost leadership") || strings.Contains(log, "rate limiter") {
		t.Errorf("the controller's log:\n%s", log)
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// controllerLog is the log of a controller from startControllerProcess.
func controllerLog(t *testing.T, proc *exec.Cmd) string {
	t.Helper()
	f, ok := proc.Stdout.(*os.File)
	if !ok {
		return ""
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
