package lab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// TestBGPGracefulRestart: with graceful restart (the default), a speaker
// that stops for a restart (SIGTERM while its DaemonSet stays, as in a
// rolling update) and starts again keeps its routes at both routers, BIRD
// and FRR, throughout: its next hop never leaves their ECMP routes, and TCP
// connections to the address from the router namespace (routed by BIRD's
// kernel routes), every 50 ms, all succeed. Once the DaemonSet is deleted
// (disable), a stopping speaker withdraws.
func TestBGPGracefulRestart(t *testing.T) {
	RequireBird(t)
	RequireFRR(t)
	// FRR on port 1179: BIRD listens on port 179 of every address.
	frrPeer := fmt.Sprintf("- {peer-address: %s, peer-port: 1179, peer-asn: 64500, my-asn: 64500, hold-time: 3s, password: %q}\naddress-pools:", FRRAddress, birdPassword)
	cl := startCluster(t, withConfig(strings.Replace(bgpConfig(birdPassword, ""), "address-pools:", frrPeer, 1)))
	bird := StartBird(t, BirdConfig(birdPassword))
	frr := StartFRROn(t, FRRConfig(birdPassword, allNodes), 1179)
	waitEstablished(t, bird, 6, 20*time.Second)
	testenv.Eventually(t, 20*time.Second, "3 sessions established at FRR", func() bool { return len(frr.Established()) == 3 })
	cl.addBackend(t, "web-1", "web", "node-b")
	vip := cl.createService(t, "web", "web", false)
	WaitNextHops(t, vip+"/32", allNodes, 10*time.Second)
	testenv.Eventually(t, 10*time.Second, vip+"/32 over the three nodes at FRR", func() bool {
		return slices.Equal(frr.ECMP(vip+"/32"), allNodes)
	})
	DeliverVIP(t, vip)

	// The DaemonSet the speakers belong to (nothing runs it here).
	ctx := context.Background()
	labels := map[string]string{"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "speaker"}
	if _, err := cl.c.AppsV1().DaemonSets("metallb-system").Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "metallb-speaker", Labels: map[string]string{"app.kubernetes.io/part-of": manifests.PartOf}},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "speaker", Image: "example.invalid/none"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var probes, failed, missing, frrMissing int
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pctx.Err() == nil {
			_, err := Dial("router", vip+":8080", 200*time.Millisecond)
			hops := NextHops(vip + "/32")
			mu.Lock()
			probes++
			if err != nil {
				failed++
			}
			if !slices.Contains(hops, NodeAddr("node-b")) {
				missing++
			}
			if !slices.ContainsFunc(frr.Paths(vip+"/32"), func(p FRRPath) bool { return p.NextHop == NodeAddr("node-b") }) {
				frrMissing++
			}
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	term := time.Now()
	_ = syscall.Kill(-cl.speakers["node-b"].Process.Pid, syscall.SIGTERM)
	_ = cl.speakers["node-b"].Wait()
	log := cl.speakerLog(t, "node-b")
	time.Sleep(2 * time.Second) // down for a while: longer than the hold time
	cl.startSpeaker(t, "node-b")
	waitEstablished(t, bird, 6, 20*time.Second)
	time.Sleep(2 * time.Second) // End-of-RIB: the stale routes are replaced
	stop()
	wg.Wait()
	t.Logf("node-b's speaker stopped (SIGTERM) and restarted over %v: %d probes, %d TCP connects failed, its next hop missing %d times at BIRD and %d at FRR",
		time.Since(term).Round(100*time.Millisecond), probes, failed, missing, frrMissing)
	if failed > 0 || missing > 0 || frrMissing > 0 || probes < 20 {
		t.Errorf("graceful restart: %d of %d connects failed, next hop missing %d times at BIRD and %d at FRR; want none\n%s", failed, probes, missing, frrMissing,
			grepLines(log, "graceful", "BGP"))
	}
	WaitNextHops(t, vip+"/32", allNodes, 10*time.Second)

	// Removed for good: the DaemonSet goes, the speaker stops, its routes go.
	if err := cl.c.AppsV1().DaemonSets("metallb-system").Delete(ctx, "metallb-speaker", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(-cl.speakers["node-c"].Process.Pid, syscall.SIGTERM)
	_ = cl.speakers["node-c"].Wait()
	took := WaitNextHops(t, vip+"/32", []string{NodeAddr("node-a"), NodeAddr("node-b")}, 5*time.Second)
	t.Logf("with the DaemonSet gone, node-c's stop withdrew its route in %v", took.Round(time.Millisecond))
	testenv.Eventually(t, 5*time.Second, "node-c withdrawn at FRR", func() bool {
		return slices.Equal(frr.ECMP(vip+"/32"), []string{NodeAddr("node-a"), NodeAddr("node-b")})
	})
}
