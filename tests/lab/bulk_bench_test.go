package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/ptr"

	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

// bulkConfig is a layer2 pool of 4,096 IPv6 addresses on the nodes' /64
// (the lab's IPv4 ranges hold too few for a bulk).
const bulkConfig = `address-pools:
- name: bulk
  protocol: layer2
  addresses: ["2001:db8::1:0-2001:db8::1:fff"]
`

// naWatch records, from the client's eth0, the first unsolicited or
// solicited Neighbor Advertisement for each address, and from which MAC.
type naWatch struct {
	mu    sync.Mutex
	first map[netip.Addr]naSeen
	conn  *packet.Conn
}

type naSeen struct {
	at  time.Time
	mac string
}

func watchNA(tb testing.TB) *naWatch {
	tb.Helper()
	w := &naWatch{first: map[netip.Addr]naSeen{}}
	if err := In("client", func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		w.conn, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeIPv6), nil)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.conn.Close() })
	go func() {
		buf := make([]byte, 1600)
		for {
			n, _, err := w.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			now := time.Now()
			var f ethernet.Frame
			if f.UnmarshalBinary(buf[:n]) != nil || len(f.Payload) < 64 {
				continue
			}
			ip6 := f.Payload
			if ip6[6] != 58 || ip6[40] != 136 { // ICMPv6 Neighbor Advertisement
				continue
			}
			target := netip.AddrFrom16([16]byte(ip6[48:64]))
			w.mu.Lock()
			if _, ok := w.first[target]; !ok {
				w.first[target] = naSeen{at: now, mac: f.Source.String()}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *naWatch) seen(ip netip.Addr) (naSeen, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.first[ip]
	return s, ok
}

// waitOwner waits until the owner of each address has announced it, or
// fails at deadline.
func (w *naWatch) waitOwner(tb testing.TB, cl *cluster, deadline time.Time, ips ...netip.Addr) {
	tb.Helper()
	for _, ip := range ips {
		for {
			if s, ok := w.seen(ip); ok && s.mac == cl.MACs[election.Owner(ip, Nodes)] {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("%s was never announced by its owner", ip)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// BenchmarkLayer2Bulk creates 3,000 layer2 Services at once
// (METALLB_BULK_SERVICES) on three speakers and a controller started with
// the shipped manifests' flags, and measures, for each address, the time
// from its status write (seen by a watch) to the first announcement from
// its owner (an unsolicited Neighbor Advertisement, the IPv6 gratuitous
// ARP), and the last announcement against the last status write (the
// floor: the controller and the API server's time for the same bulk).
// Also the CPU seconds each speaker and the controller spent on the bulk.
func BenchmarkLayer2Bulk(b *testing.B) {
	n := envInt("METALLB_BULK_SERVICES", 3000)
	// The CRDs as enable installs them: the speakers then write a
	// ServiceL2Status per Service (two writes each), as users get it.
	cl := startCluster(b, noSpeakers(), controllerProcess(), withConfig(bulkConfig), withCRDs())
	speakers := map[string]*exec.Cmd{}
	for _, node := range Nodes {
		speakers[node], _ = StartProcessLog(b, node, "speaker-"+node+".log", cl.bin, "speaker", "--log-level=info",
			"--metrics-addr=:7473", "--health-addr=:7474", "--node-name", node, "--kubeconfig", cl.env.Kubeconfig)
	}
	cl.addBackend(b, "bulk-0", "bulk", "node-b")
	na := watchNA(b)
	ctx := context.Background()
	svcs := cl.c.CoreV1().Services("demo")
	// Warm up: one Service announced, so every speaker has joined.
	na.waitOwner(b, cl, time.Now().Add(60*time.Second), netip.MustParseAddr(cl.createService(b, "warm", "bulk", false, corev1.IPv6Protocol)))
	time.Sleep(3 * time.Second) // past the joins

	var mu sync.Mutex
	status := map[string]time.Time{}
	ips := map[string]netip.Addr{}
	w, err := svcs.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type == watch.Deleted || len(s.Status.LoadBalancer.Ingress) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP)
			if err != nil {
				continue
			}
			mu.Lock()
			if _, ok := status[s.Name]; !ok {
				status[s.Name], ips[s.Name] = time.Now(), ip
			}
			mu.Unlock()
		}
	}()
	time.Sleep(time.Second)
	var spids []int
	for _, node := range Nodes {
		spids = append(spids, speakers[node].Process.Pid)
	}
	ctlPID := cl.ctl.Process.Pid
	sp0, ctl0 := make([]int, len(spids)), cpuTicks(b, ctlPID)
	for i, p := range spids {
		sp0[i] = cpuTicks(b, p)
	}
	writes0 := apiWrites(b, cl)
	b.ResetTimer()
	start := time.Now()
	createBulk(ctx, b, svcs, n)
	created := time.Since(start)

	// Wait for every status and every owner's announcement.
	var lats []time.Duration
	var lastStatus, lastNA time.Time
	wrong := 0
	deadline := time.Now().Add(3 * time.Minute)
	for {
		mu.Lock()
		done := len(status) >= n
		mu.Unlock()
		if done {
			missing := 0
			mu.Lock()
			for _, ip := range ips {
				if s, ok := na.seen(ip); !ok || s.mac != cl.MACs[election.Owner(ip, Nodes)] {
					missing++
				}
			}
			mu.Unlock()
			if missing == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			mu.Lock()
			noNA, other := 0, 0
			for _, ip := range ips {
				if s, ok := na.seen(ip); !ok {
					noNA++
				} else if s.mac != cl.MACs[election.Owner(ip, Nodes)] {
					other++
				}
			}
			b.Fatalf("after 3 min: %d of %d statuses; %d never announced, %d announced first by another node", len(status), n, noNA, other)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()
	mu.Lock()
	for name, at := range status {
		ip := ips[name]
		s, _ := na.seen(ip)
		if s.mac != cl.MACs[election.Owner(ip, Nodes)] {
			wrong++ // announced first by another node
		}
		lats = append(lats, s.at.Sub(at))
		if at.After(lastStatus) {
			lastStatus = at
		}
		if s.at.After(lastNA) {
			lastNA = s.at
		}
	}
	mu.Unlock()
	ctlCPU := float64(cpuTicks(b, ctlPID)-ctl0) / 100
	var spCPU []string
	for i, p := range spids {
		spCPU = append(spCPU, fmt.Sprintf("%s %.2f s", Nodes[i], float64(cpuTicks(b, p)-sp0[i])/100))
	}
	slices.Sort(lats)
	pct := func(q float64) time.Duration { return lats[min(len(lats)-1, int(q*float64(len(lats))))] }
	floor := lastStatus.Sub(start)
	last := lastNA.Sub(start)
	fmt.Printf("%d Services created in %v; last status write %v after the first create (floor), last owner announcement %v (ratio %.3f)\n",
		n, created.Round(time.Millisecond), floor.Round(time.Millisecond), last.Round(time.Millisecond), float64(last)/float64(floor))
	fmt.Printf("status to the owner's first announcement: p50 %v, p99 %v, max %v; announced first by another node: %d\n",
		pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lats[len(lats)-1].Round(time.Millisecond), wrong)
	fmt.Printf("CPU for the bulk: controller %.2f s; speakers %v\n", ctlCPU, spCPU)
	// The ServiceL2Status objects come from their own goroutines, after
	// the announcements: wait for all (and the warm-up's), then count.
	got := waitL2Statuses(b, cl, n+1, start.Add(5*time.Minute))
	fmt.Printf("%d ServiceL2Status objects %v after the first create (last announcement: %v)\n", got,
		time.Since(start).Round(time.Millisecond), last.Round(time.Millisecond))
	var writes []string
	for res, v := range apiWrites(b, cl) {
		if d := v - writes0[res]; d > 0 {
			writes = append(writes, fmt.Sprintf("%s %.0f", res, d))
		}
	}
	slices.Sort(writes)
	fmt.Printf("API writes for the bulk, by resource: %s\n", strings.Join(writes, ", "))
	b.ReportMetric(float64(pct(0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(float64(last)/float64(floor), "last/floor")
	if wrong > 0 {
		b.Errorf("%d addresses announced first by a node that does not own them", wrong)
	}
}

// createBulk creates the IPv6 LoadBalancer Services bulk-0 … bulk-(n-1)
// with 8 concurrent creators, and returns when every create has returned.
func createBulk(ctx context.Context, b *testing.B, svcs typedcorev1.ServiceInterface, n int) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				_, err := svcs.Create(ctx, &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bulk-%d", i)},
					Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "bulk"},
						Ports: []corev1.ServicePort{{Port: 80}}, IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol},
						AllocateLoadBalancerNodePorts: ptr.To(false)}, // more than the 2,768 NodePorts
				}, metav1.CreateOptions{})
				if err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

// pollECMP records in seen (under mu) when each prefix first had hops
// next hops in the router's kernel table, polling every interval; stop
// ends the polling and returns once it has.
func pollECMP(mu *sync.Mutex, seen map[string]time.Time, hops int, every time.Duration) (stop func()) {
	stopPoll, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		for {
			now := time.Now()
			ecmp := routerECMP(hops)
			mu.Lock()
			for p := range ecmp {
				if _, ok := seen[p]; !ok {
					seen[p] = now
				}
			}
			mu.Unlock()
			select {
			case <-stopPoll:
				return
			case <-time.After(every):
			}
		}
	}()
	return func() { close(stopPoll); <-polled }
}

// waitL2Statuses waits until metallb-system holds at least want
// ServiceL2Status objects, failing b at deadline, and returns how many.
func waitL2Statuses(b *testing.B, cl *cluster, want int, deadline time.Time) int {
	b.Helper()
	l2s := cl.dyn.Resource(k8s.ServiceL2StatusGVR).Namespace("metallb-system")
	for {
		list, err := l2s.List(context.Background(), metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(list.Items) >= want {
			return len(list.Items)
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d ServiceL2Status objects at the deadline, want %d", len(list.Items), want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
