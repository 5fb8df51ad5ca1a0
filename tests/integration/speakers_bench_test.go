package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/microk8s-metallb/metallb/pkg/bgp"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/layer2"
	"github.com/microk8s-metallb/metallb/pkg/members"
	"github.com/microk8s-metallb/metallb/pkg/speaker"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// quietL2 and quietBGP stand in for the parts of a speaker that touch the
// network: this benchmark measures the API server's side.
type quietL2 struct{}

func (quietL2) Run(ctx context.Context)                   { <-ctx.Done() }
func (quietL2) UpdateClaims([]layer2.Claim, []netip.Addr) {}
func (quietL2) Reassert(netip.Addr)                       {}
func (quietL2) Unanswered() []netip.Addr                  { return nil }
func (quietBGP) Update(context.Context, netip.Addr, []bgp.Peer, []bgp.Route, []netip.Prefix) error {
	return nil
}

type quietBGP struct{}

func (quietBGP) Close()  {}
func (quietBGP) Detach() {}

func benchInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// apiRequests returns the API server's request counts so far, by verb.
func apiRequests(tb testing.TB) map[string]float64 {
	b, err := cluster.Require(tb).Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		i := strings.Index(line, `verb="`)
		sp := strings.LastIndexByte(line, ' ')
		if i < 0 || sp < 0 {
			continue
		}
		verb := line[i+6:]
		verb = verb[:strings.IndexByte(verb, '"')]
		v, _ := strconv.ParseFloat(line[sp+1:], 64)
		out[verb] += v
	}
	return out
}

func cpuTicks(tb testing.TB, pid int) int {
	n, err := testenv.CPUTicks(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkSpeakers100 runs 100 speakers (METALLB_SPEAKERS) in this
// process against the real API server, each with its own client,
// informers and memberlist (on its own loopback address, shipped timings
// and flags; the layer2 and BGP parts replaced, since they would touch the
// host's network), with 100 Nodes and 100 layer2 Services. Over a window
// of 60 s (METALLB_SPEAKERS_SECONDS) without them and one with them, it
// measures the API server's and etcd's CPU (ratio) and requests per second
// by verb, and counts the speakers' Lease writes.
func BenchmarkSpeakers100(b *testing.B) {
	env := cluster.Require(b)
	n := benchInt("METALLB_SPEAKERS", 100)
	window := time.Duration(benchInt("METALLB_SPEAKERS_SECONDS", 60)) * time.Second
	ctx := context.Background()
	c := env.Client
	ns := "metallb-system"
	for _, name := range []string{ns, "demo"} {
		_, _ = c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "config-accepted"},
		Data: map[string]string{"config": "address-pools:\n- {name: lan, protocol: layer2, addresses: [192.0.2.0/24]}\n"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 2, byte(10 + i)}) }
	for i := range n {
		node, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%03d", i)}}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		node.Status = corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr(i).String()}}}
		if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		for i := range n {
			_ = c.CoreV1().Nodes().Delete(ctx, fmt.Sprintf("bench-%03d", i), metav1.DeleteOptions{})
		}
	})
	for i := range 100 {
		svc, err := c.CoreV1().Services("demo").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i)},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("192.0.2.%d", 10+i)}}
		if _, err := c.CoreV1().Services("demo").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	cp := []int{env.PID("kube-apiserver"), env.PID("etcd")}
	ticks := func() int { return cpuTicks(b, cp[0]) + cpuTicks(b, cp[1]) }
	measure := func() (int, map[string]float64) {
		r0, t0 := apiRequests(b), ticks()
		time.Sleep(window)
		r1, t1 := apiRequests(b), ticks()
		for k := range r1 {
			r1[k] -= r0[k]
		}
		return t1 - t0, r1
	}
	time.Sleep(5 * time.Second)
	idleCPU, idleReq := measure()

	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lists []*members.List
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := make([]byte, 32)
	for i := range n {
		client, _, err := k8s.Client(env.Kubeconfig, "metallb-speaker", 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		s := speaker.New(sctx, speaker.Options{Client: client, Log: log, NodeName: fmt.Sprintf("bench-%03d", i), Namespace: ns,
			BindAddr: addr(i), Port: members.DefaultPort + 200, Key: key, Layer2: quietL2{}, BGP: quietBGP{},
			StartMembers: func(o members.Options) (speaker.Members, error) {
				l, err := members.Start(o)
				if err == nil {
					mu.Lock()
					lists = append(lists, l)
					mu.Unlock()
				}
				return l, err
			}})
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(sctx) }()
	}
	defer func() { stop(); wg.Wait() }()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		mu.Lock()
		all := len(lists) == n
		for _, l := range lists {
			all = all && l.Peers() == n-1
		}
		mu.Unlock()
		if all {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the %d speakers never all saw each other", n)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(30 * time.Second) // past the start: lists, joins, first Lease writes
	lw, err := c.CoordinationV1().Leases(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer lw.Stop()
	var leaseWrites int
	var lmu sync.Mutex
	go func() {
		for ev := range lw.ResultChan() {
			if l, ok := ev.Object.(*coordinationv1.Lease); ok && ev.Type != watch.Bookmark && strings.HasPrefix(l.Name, "metallb-speaker-") {
				lmu.Lock()
				leaseWrites++
				lmu.Unlock()
			}
		}
	}()
	time.Sleep(time.Second)
	lmu.Lock()
	leaseWrites = 0
	lmu.Unlock()
	b.ResetTimer()
	busyCPU, busyReq := measure()
	b.StopTimer()
	lmu.Lock()
	lw0 := leaseWrites
	lmu.Unlock()
	sec := window.Seconds()
	perVerb := func(r map[string]float64) string {
		var parts []string
		for _, v := range []string{"GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "DELETE"} {
			if r[v] > 0 {
				parts = append(parts, fmt.Sprintf("%s %.2f", v, r[v]/sec))
			}
		}
		return strings.Join(parts, ", ")
	}
	writes := func(r map[string]float64) float64 { return (r["POST"] + r["PUT"] + r["PATCH"] + r["DELETE"]) / sec }
	fmt.Printf("kube-apiserver+etcd CPU: %.2f s/min without speakers, %.2f s/min with %d (ratio %.2f)\n",
		float64(idleCPU)/100/window.Minutes(), float64(busyCPU)/100/window.Minutes(), n, float64(busyCPU)/float64(max(idleCPU, 1)))
	fmt.Printf("requests/s without speakers: %s; with %d: %s\n", perVerb(idleReq), n, perVerb(busyReq))
	fmt.Printf("writes/s with %d speakers: %.2f (without: %.2f); speaker Lease writes %.2f/s\n", n, writes(busyReq), writes(idleReq), float64(lw0)/sec)
	b.ReportMetric(float64(lw0)/sec, "lease-writes/s")
	b.ReportMetric(writes(busyReq)-writes(idleReq), "writes/s")
}
