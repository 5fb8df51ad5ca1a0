package lab

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// routerECMP returns the prefixes the router's kernel holds with as many
// next hops as want.
func routerECMP(want int) map[string]bool {
	out := map[string]bool{}
	for _, fam := range []string{"-4", "-6"} {
		b, _ := exec.Command("ip", "-n", NS("router"), fam, "route", "show", "proto", "bird").CombinedOutput()
		prefix, hops := "", 0
		flush := func() {
			if prefix != "" && hops == want {
				out[prefix] = true
			}
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line == "" {
				continue
			}
			if line[0] != ' ' && line[0] != '\t' {
				flush()
				prefix, hops = strings.Fields(line)[0], 0
				if strings.Contains(line, " via ") {
					hops = 1
				}
				continue
			}
			if strings.Contains(line, "nexthop via") {
				hops++
			}
		}
		flush()
	}
	return out
}

// BenchmarkBGP measures, against BIRD in the lab, the time from Service
// creation to its route at the router with every node as next hop: one
// Service (10 trials) and 500 Services created at once. The floor is the
// time until the controller's status write is seen by a watch (the API
// server and controller cost of the same creations); BGP adds the rest.
func BenchmarkBGP(b *testing.B) {
	RequireBird(b)
	cl := startCluster(b, withConfig(bgpConfig(birdPassword, "")))
	bird := StartBird(b, BirdConfig(birdPassword))
	waitEstablished(b, bird, 6, 30*time.Second)
	cl.addBackend(b, "bench-1", "bench", "node-b")
	ctx := context.Background()
	svcs := cl.c.CoreV1().Services("demo")

	// Watch for assigned addresses: name → when the status was seen.
	assigned := map[string]time.Time{}
	ips := map[string]string{}
	var mu sync.Mutex
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
			mu.Lock()
			if _, seen := assigned[s.Name]; !seen {
				assigned[s.Name] = time.Now()
				ips[s.Name] = s.Status.LoadBalancer.Ingress[0].IP
			}
			mu.Unlock()
		}
	}()
	createdAt := map[string]time.Time{}
	create := func(name string) {
		mu.Lock()
		createdAt[name] = time.Now()
		mu.Unlock()
		_, err := svcs.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "bench"},
				Ports: []corev1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			b.Error(err)
		}
	}
	b.ResetTimer()

	var one, oneFloor []time.Duration
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("one-%d", i)
		start := time.Now()
		create(name)
		var ip string
		for ip == "" {
			mu.Lock()
			ip = ips[name]
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
		for !routerECMP(3)[ip] {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s (%s) never reached the router", name, ip)
			}
			time.Sleep(5 * time.Millisecond)
		}
		one = append(one, time.Since(start))
		mu.Lock()
		oneFloor = append(oneFloor, assigned[name].Sub(start))
		mu.Unlock()
		if err := svcs.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			b.Fatal(err)
		}
		WaitNextHops(b, ip+"/32", nil, 10*time.Second)
	}

	const n = 500
	// Poll the router from the start, recording when each route appears.
	routeSeen := map[string]time.Time{}
	stopPoll := pollECMP(&mu, routeSeen, 3, 20*time.Millisecond)
	start := time.Now()
	var wg sync.WaitGroup
	names := make(chan string)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				create(name)
			}
		}()
	}
	for i := 0; i < n; i++ {
		names <- fmt.Sprintf("many-%03d", i)
	}
	close(names)
	wg.Wait()
	created := time.Since(start)
	var allAssigned time.Duration
	for {
		mu.Lock()
		cnt := 0
		var last time.Time
		for name, at := range assigned {
			if strings.HasPrefix(name, "many-") {
				cnt++
				if at.After(last) {
					last = at
				}
			}
		}
		mu.Unlock()
		if cnt == n && allAssigned == 0 {
			allAssigned = last.Sub(start)
		}
		mu.Lock()
		routes := len(routeSeen)
		mu.Unlock()
		if cnt == n && routes >= n {
			break
		}
		if time.Since(start) > 2*time.Minute {
			b.Fatalf("after 2 min: %d assigned, %d routes at the router", cnt, len(routerECMP(3)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	many := time.Since(start)
	stopPoll()
	b.StopTimer()
	var lat, floor, added []time.Duration
	mu.Lock()
	for name, ip := range ips {
		if at, ok := routeSeen[ip]; ok && strings.HasPrefix(name, "many-") {
			lat = append(lat, at.Sub(createdAt[name]))
			floor = append(floor, assigned[name].Sub(createdAt[name]))
			added = append(added, max(0, at.Sub(assigned[name])))
		}
	}
	mu.Unlock()
	for _, ds := range [][]time.Duration{lat, floor, added} {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	}

	sort.Slice(one, func(i, j int) bool { return one[i] < one[j] })
	sort.Slice(oneFloor, func(i, j int) bool { return oneFloor[i] < oneFloor[j] })
	ms := func(ds []time.Duration) string {
		var parts []string
		for _, d := range ds {
			parts = append(parts, fmt.Sprintf("%.0f", float64(d.Microseconds())/1000))
		}
		return strings.Join(parts, " ")
	}
	b.Logf("1 Service, 10 trials, creation → /32 at the router with 3 ECMP next hops (ms, sorted): %s", ms(one))
	b.Logf("  p50 %v, max %v; floor (creation → status IP seen by a watch) p50 %v", one[len(one)/2].Round(time.Millisecond), one[len(one)-1].Round(time.Millisecond), oneFloor[len(oneFloor)/2].Round(time.Millisecond))
	b.Logf("%d Services at once (50 creators): created in %v, all IPs assigned (floor) at %v, all %d routes with 3 next hops at the router at %v (ratio %.2f)",
		n, created.Round(time.Millisecond), allAssigned.Round(time.Millisecond), n, many.Round(time.Millisecond), float64(many)/float64(allAssigned))
	if len(lat) > 0 {
		q := func(ds []time.Duration) string {
			return fmt.Sprintf("p50 %v, p99 %v, max %v", ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)*99/100].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
		}
		b.Logf("  per Service of the batch (%d; routes polled every ~20 ms): creation → route %s", len(lat), q(lat))
		b.Logf("    of which creation → IP in status (floor): %s; IP in status → route at the router: %s", q(floor), q(added))
	}
	b.ReportMetric(float64(one[len(one)/2].Milliseconds()), "ms/1-svc-p50")
	b.ReportMetric(float64(many.Milliseconds()), "ms/500-svc")
}
