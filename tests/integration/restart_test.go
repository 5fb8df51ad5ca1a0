package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// metallbBinary is the real binary, built once per test run.
func metallbBinary(t *testing.T) string { return testenv.Binary(t) }

// startControllerProcess runs `metallb controller` as a separate process.
func startControllerProcess(t *testing.T, env *testenv.Env, ns string, extra ...string) *exec.Cmd {
	t.Helper()
	return startControllerProcessEnv(t, env, ns, nil, extra...)
}

// startControllerProcessEnv is startControllerProcess with NAME=VALUE
// variables added to its environment.
func startControllerProcessEnv(t *testing.T, env *testenv.Env, ns string, vars []string, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"controller", "--kubeconfig", env.Kubeconfig,
		"--namespace", ns, "--metrics-addr", "", "--health-addr", "", "--leader-elect=false", "--log-level", "warn"}, extra...)
	cmd := exec.Command(metallbBinary(t), args...)
	cmd.Env = append(os.Environ(), vars...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	return cmd
}

// assignedIPs returns name → ingress for every Service in ns.
func assignedIPs(t *testing.T, c kubernetes.Interface, ns string) map[string]string {
	t.Helper()
	svcs, err := c.CoreV1().Services(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range svcs.Items {
		ip := ""
		for _, i := range s.Status.LoadBalancer.Ingress {
			ip += i.IP
		}
		out[s.Name] = ip
	}
	return out
}

func duplicates(m map[string]string) []string {
	owner := map[string]string{}
	var dups []string
	for name, ip := range m {
		if ip == "" {
			continue
		}
		if o, ok := owner[ip]; ok {
			dups = append(dups, fmt.Sprintf("%s held by %s and %s", ip, o, name))
		}
		owner[ip] = name
	}
	return dups
}

func waitAllAssigned(t *testing.T, c kubernetes.Interface, ns string, n int, timeout time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := assignedIPs(t, c, ns)
		done := 0
		for _, ip := range m {
			if ip != "" {
				done++
			}
		}
		if done == n {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d Services assigned after %v", done, n, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestControllerRestartChangesNothing: 500 Services created by 50 concurrent
// creators get distinct IPs; after SIGKILL and restart of the controller
// process, not one IP has changed, and new Services never get an old IP.
func TestControllerRestartChangesNothing(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	setConfig(t, c, ns, "address-pools:\n- {name: big, protocol: layer2, addresses: [198.51.100.0/24, 203.0.113.0/24]}\n")
	ctl := startControllerProcess(t, env, ns)

	const creators, each = 50, 10
	var wg sync.WaitGroup
	errs := make(chan error, creators)
	for w := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				s := lbService(fmt.Sprintf("s-%02d-%02d", w, i))
				if _, err := c.CoreV1().Services(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	before := waitAllAssigned(t, c, ns, creators*each, 60*time.Second)
	if d := duplicates(before); len(d) > 0 {
		t.Fatalf("%d duplicate IPs: %v", len(d), d)
	}

	if err := ctl.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = ctl.Wait()
	startControllerProcess(t, env, ns)
	// New Services while the restarted controller re-learns: they must not
	// take an address already held.
	for i := range 10 {
		createSvc(t, c, ns, lbService(fmt.Sprintf("after-%02d", i)))
	}
	after := waitAllAssigned(t, c, ns, creators*each+10, 60*time.Second)
	changed := 0
	for name, ip := range before {
		if after[name] != ip {
			changed++
			t.Errorf("%s moved from %s to %s", name, ip, after[name])
		}
	}
	if d := duplicates(after); len(d) > 0 {
		t.Fatalf("%d duplicate IPs after restart: %v", len(d), d)
	}
	t.Logf("%d Services, 50 concurrent creators: 0 duplicates; after SIGKILL and restart: %d changed", len(before), changed)
}

// TestControllerLeaderElection runs two replicas: one is active, and when it
// is killed the other takes over.
func TestControllerLeaderElection(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	setConfig(t, c, ns, "address-pools:\n- {name: p, protocol: layer2, addresses: [192.0.2.100-192.0.2.110]}\n")
	procs := map[int]*exec.Cmd{}
	for range 2 {
		p := startControllerProcess(t, env, ns, "--leader-elect=true")
		procs[p.Process.Pid] = p
	}
	createSvc(t, c, ns, lbService("first"))
	waitIngress(t, c, ns, "first", "192.0.2.100")

	lease, err := c.CoordinationV1().Leases(ns).Get(context.Background(), "metallb-controller", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("no lease holder: %v", err)
	}
	var leaderPid int
	if _, err := fmt.Sscanf((*lease.Spec.HolderIdentity)[strings.LastIndex(*lease.Spec.HolderIdentity, "_")+1:], "%d", &leaderPid); err != nil || procs[leaderPid] == nil {
		t.Fatalf("lease holder %q is not one of our replicas", *lease.Spec.HolderIdentity)
	}
	killed := time.Now()
	_ = procs[leaderPid].Process.Signal(syscall.SIGKILL)
	_ = procs[leaderPid].Wait()

	createSvc(t, c, ns, lbService("second"))
	// A crash leaves the Lease to expire: LeaderLease + LeaderRetry.
	deadline := time.Now().Add(k8s.LeaderLease + 2*k8s.LeaderRetry + 10*time.Second)
	for ingressOf(t, c, ns, "second") != "192.0.2.101" {
		if time.Now().After(deadline) {
			t.Fatalf("the follower did not take over within %v (second = %q)", time.Until(deadline)+time.Since(killed), ingressOf(t, c, ns, "second"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("follower took over and assigned %v after the leader was killed", time.Since(killed).Round(100*time.Millisecond))
	if got := ingressOf(t, c, ns, "first"); got != "192.0.2.100" {
		t.Errorf("first moved to %q after the takeover", got)
	}
}

// TestControllerRollingUpdateHandsOver is a single-replica Deployment's
// rolling update: the new pod starts beside the leader and must be Ready as
// a follower (else the rollout waits forever for a pod that can lead only
// once the old one is gone); the old one then gets SIGTERM, releases the
// lease, and the new one takes over at once.
func TestControllerRollingUpdateHandsOver(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	setConfig(t, c, ns, "address-pools:\n- {name: p, protocol: layer2, addresses: [192.0.2.120-192.0.2.130]}\n")
	old := startControllerProcess(t, env, ns, "--leader-elect=true")
	createSvc(t, c, ns, lbService("before"))
	waitIngress(t, c, ns, "before", "192.0.2.120")

	addr := freeLoopbackAddr(t)
	startControllerProcess(t, env, ns, "--leader-elect=true", "--metrics-addr", addr, "--metrics-secure=false")
	eventually(t, 15*time.Second, "the new replica to be Ready as a follower", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	stopped := time.Now()
	_ = old.Process.Signal(syscall.SIGTERM)
	_ = old.Wait()
	createSvc(t, c, ns, lbService("after"))
	eventually(t, 15*time.Second, "the new replica to take over", func() bool { return ingressOf(t, c, ns, "after") == "192.0.2.121" })
	t.Logf("the new replica assigned an address %v after the old one got SIGTERM", time.Since(stopped).Round(10*time.Millisecond))
	if got := ingressOf(t, c, ns, "before"); got != "192.0.2.120" {
		t.Errorf("before moved to %q across the update", got)
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestControllerRestartedInPlaceLeadsAtOnce: the controller of a pod
// (METALLB_POD_NAME, as the manifests set it) killed and started again in
// the same pod takes its Lease back at once instead of waiting for it to
// expire; and the leader's Lease writes, counted by a watch over a whole
// window, are one per LeaderRetry.
func TestControllerRestartedInPlaceLeadsAtOnce(t *testing.T) {
	env := cluster.Require(t)
	c := env.Client
	ns := newNamespace(t, c)
	setConfig(t, c, ns, "address-pools:\n- {name: p, protocol: layer2, addresses: [192.0.2.140-192.0.2.150]}\n")
	pod := []string{k8s.PodNameEnv + "=metallb-controller-abc12"}
	ctl := startControllerProcessEnv(t, env, ns, pod, "--leader-elect=true")
	createSvc(t, c, ns, lbService("first"))
	waitIngress(t, c, ns, "first", "192.0.2.140")

	// Writes of the Lease over a window of five retry periods.
	w, err := c.CoordinationV1().Leases(ns).Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=metallb-controller"})
	if err != nil {
		t.Fatal(err)
	}
	window := 5 * k8s.LeaderRetry
	end := time.After(window)
	writes := 0
count:
	for {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == "MODIFIED" {
				writes++
			}
		case <-end:
			break count
		}
	}
	w.Stop()
	t.Logf("leader Lease: %d writes in %v", writes, window)
	if max := int(window/k8s.LeaderRetry) + 1; writes > max || writes == 0 {
		t.Errorf("%d Lease writes in %v, want 1 to %d (one per %v)", writes, window, max, k8s.LeaderRetry)
	}

	_ = ctl.Process.Signal(syscall.SIGKILL)
	_ = ctl.Wait()
	killed := time.Now()
	startControllerProcessEnv(t, env, ns, pod, "--leader-elect=true")
	createSvc(t, c, ns, lbService("second"))
	eventually(t, k8s.LeaderLease/2, "the restarted controller to lead without waiting for its Lease to expire", func() bool {
		return ingressOf(t, c, ns, "second") == "192.0.2.141"
	})
	t.Logf("restarted in the same pod: assigned %v after the kill (the Lease lasts %v)", time.Since(killed).Round(100*time.Millisecond), k8s.LeaderLease)
	if got := ingressOf(t, c, ns, "first"); got != "192.0.2.140" {
		t.Errorf("first moved to %q across the restart", got)
	}
}
