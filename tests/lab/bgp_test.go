package lab

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/microk8s-metallb/metallb/tests/testenv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const birdPassword = "lab-secret"

// bgpConfig peers every node with the lab router over IPv4 (MD5) and IPv6,
// iBGP with a 3 s hold time, and routes one pool with a community, a large
// community and a local preference.
func bgpConfig(password, extraCommunity string) string {
	comms := `["64500:100", "large:64500:1:2"` + extraCommunity + `]`
	return fmt.Sprintf(`peers:
- peer-address: 198.51.100.254
  peer-asn: 64500
  my-asn: 64500
  hold-time: 3s
  password: %q
- peer-address: "2001:db8::254"
  peer-asn: 64500
  my-asn: 64500
  hold-time: 3s
address-pools:
- name: routed
  protocol: bgp
  addresses: [203.0.113.0/24, "2001:db8:1::/120", 192.0.2.0/24]
  bgp-advertisements:
  - communities: %s
    localpref: 150
`, password, comms)
}

var allNodes = []string{NodeAddr("node-a"), NodeAddr("node-b"), NodeAddr("node-c")}

func waitEstablished(t testing.TB, b *Bird, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		for _, st := range b.Protocols() {
			if strings.HasSuffix(st, "Established") {
				n++
			}
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			out, _ := b.Ctl("show protocols")
			t.Fatalf("%d of %d BGP sessions established after %v:\n%s", n, want, timeout, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBGP runs three speakers against a real BIRD router.
func TestBGP(t *testing.T) {
	RequireBird(t)
	outer := t // processes started in subtests must outlive them
	cl := startCluster(t, withConfig(bgpConfig(birdPassword, "")))
	bird := StartBird(t, BirdConfig(birdPassword))
	ctx := context.Background()

	t.Run("sessions with every node, IPv4 with MD5 and IPv6", func(t *testing.T) {
		waitEstablished(t, bird, 6, 20*time.Second)
	})

	var vip, localIP string
	t.Run("Cluster policy: ECMP over every node, communities and local-pref at the router", func(t *testing.T) {
		cl.addBackend(t, "web-1", "web", "node-b")
		start := time.Now()
		vip = cl.createService(t, "web", "web", false)
		took := WaitNextHops(t, vip+"/32", allNodes, 10*time.Second)
		t.Logf("%s/32 via %v at the router %v after the Service was created", vip, allNodes, (time.Since(start)).Round(time.Millisecond))
		_ = took
		out, _ := bird.Ctl("show route for", vip+"/32", "all")
		for _, want := range []string{"BGP.community: (64500,100)", "BGP.large_community: (64500, 1, 2)", "BGP.local_pref: 150"} {
			if !strings.Contains(out, want) {
				t.Errorf("router's route lacks %q:\n%s", want, out)
			}
		}
		if err := waitEvent(cl, "web", `announcing from node "node-a" with protocol "bgp"`); err != nil {
			t.Error(err)
		}
		body, err := HTTPGet("node-a", "127.0.0.1:7473", "/metrics")
		if err != nil || !strings.Contains(body, `metallb_bgp_session_up{peer="198.51.100.254"} 1`) ||
			!strings.Contains(body, `metallb_bgp_announced_prefixes_total{peer="198.51.100.254"} 1`) ||
			!strings.Contains(body, `metallb_speaker_announced{ip="`+vip+`",node="node-a",protocol="bgp",service="demo/web"} 1`) {
			t.Errorf("speaker metrics (%v):\n%s", err, grepLines(body, "metallb_bgp_", "metallb_speaker_announced"))
		}
	})

	t.Run("Local policy: only the endpoint's node", func(t *testing.T) {
		cl.addBackend(t, "local-1", "local", "node-c")
		localIP = cl.createService(t, "local", "local", true)
		WaitNextHops(t, localIP+"/32", []string{NodeAddr("node-c")}, 10*time.Second)
	})

	t.Run("IPv6 Service: its /128 over the IPv6 sessions", func(t *testing.T) {
		cl.addBackend(t, "v6-1", "v6", "node-a")
		ip := cl.createService(t, "v6", "v6", false, corev1.IPv6Protocol)
		WaitNextHops(t, ip+"/128", []string{"2001:db8::11", "2001:db8::12", "2001:db8::13"}, 10*time.Second)
	})

	t.Run("a ConfigMap edit adding a community reaches the router without a flap", func(t *testing.T) {
		before := bird.Protocols()
		if out, _ := bird.Ctl("show route for", vip+"/32", "all"); strings.Contains(out, "(64500,200)") || !strings.Contains(out, "(64500,100)") {
			t.Fatalf("before the edit:\n%s", out)
		}
		cl.setConfig(t, bgpConfig(birdPassword, `, "64500:200"`))
		edited := time.Now()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, _ := bird.Ctl("show route for", vip+"/32", "all")
			if strings.Contains(out, "(64500,100) (64500,200)") {
				t.Logf("new community at the router %v after the edit", time.Since(edited).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the new community did not arrive:\n%s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if diff := sessionsChanged(before, bird.Protocols()); diff != "" {
			t.Errorf("sessions changed (-before +after):\n%s", diff)
		}
	})

	t.Run("peers reordered in the ConfigMap: no session reset", func(t *testing.T) {
		before := bird.Protocols()
		// The same peers, IPv6 first, and one more community: the community
		// at the router is the barrier that shows the speakers applied it.
		v4, rest, _ := strings.Cut(strings.TrimPrefix(bgpConfig(birdPassword, `, "64500:200", "64500:300"`), "peers:\n"), "- peer-address: \"2001:db8::254\"")
		v6, pools, _ := strings.Cut(rest, "address-pools:")
		cl.setConfig(t, "peers:\n- peer-address: \"2001:db8::254\""+v6+v4+"address-pools:"+pools)
		eventually(t, 10*time.Second, "the barrier community at the router", func() bool {
			out, _ := bird.Ctl("show route for", vip+"/32", "all")
			return strings.Contains(out, "(64500,300)")
		})
		if diff := sessionsChanged(before, bird.Protocols()); diff != "" {
			t.Errorf("sessions changed (-before +after):\n%s", diff)
		}
	})

	t.Run("Service deleted: route withdrawn", func(t *testing.T) {
		if err := cl.c.CoreV1().Services("demo").Delete(ctx, "local", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		WaitNextHops(t, localIP+"/32", nil, 10*time.Second)
		t.Logf("withdrawn at the router %v after the delete", time.Since(start).Round(time.Millisecond))
	})

	t.Run("hold time: a silent node's next hop goes after 3 s; back on restart", func(t *testing.T) {
		cmd := cl.speakers["node-a"]
		// Silence first (no TCP reset can reach the router), then kill.
		if out, err := Exec(ctx, "node-a", "ip", "link", "set", "eth0", "down").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		took := WaitNextHops(t, vip+"/32", allNodes[1:], 10*time.Second)
		t.Logf("hold-time expiry: node-a's next hop withdrawn %v after it went silent (hold time 3 s)", took.Round(time.Millisecond))
		if took < 1500*time.Millisecond { // expiry comes 2-3 s after the last keepalive
			t.Errorf("withdrawn after %v: faster than the hold time allows, so it was not the hold timer", took)
		}
		// Up again, with what the kernel dropped on down (IPv6 address,
		// default route).
		for _, args := range [][]string{
			{"ip", "link", "set", "eth0", "up"},
			{"ip", "-6", "addr", "replace", "2001:db8::11/64", "dev", "eth0", "nodad"},
			{"ip", "route", "replace", "default", "via", "198.51.100.254"},
		} {
			if out, err := Exec(ctx, "node-a", args...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v: %s", args, err, out)
			}
		}
		start := time.Now()
		cl.startSpeaker(outer, "node-a")
		took = WaitNextHops(t, vip+"/32", allNodes, 30*time.Second)
		t.Logf("speaker restarted: session re-established and route re-advertised %v after the start", took.Round(time.Millisecond))
		waitEstablished(t, bird, 6, 20*time.Second)
		t.Logf("all 6 sessions established %v after the start", time.Since(start).Round(time.Millisecond))
	})

	t.Run("wrong MD5 password: no session, and the speaker says why; right password: established", func(t *testing.T) {
		logBefore := len(cl.speakerLog(t, "node-b"))
		cl.setConfig(t, bgpConfig("wrong-secret", `, "64500:200"`))
		deadline := time.Now().Add(20 * time.Second)
		for {
			n := 0
			for name, st := range bird.Protocols() {
				if !strings.HasSuffix(name, "_v6") && strings.HasSuffix(st, "Established") {
					n++
				}
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d IPv4 sessions still up with a wrong password", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Second)
		if n := len(NextHops(vip + "/32")); n != 0 {
			t.Errorf("the route is still there via %d nodes", n)
		}
		// The first connection attempt times out within ConnectRetry.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			log := cl.speakerLog(t, "node-b")[logBefore:]
			if strings.Contains(log, "TCP MD5 mismatch") {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("the speaker log does not explain the failure:\n%s", tail(grepLines(log, "BGP"), 3000))
				break
			}
		}
		cl.setConfig(t, bgpConfig(birdPassword, `, "64500:200"`))
		start := time.Now()
		waitEstablished(t, bird, 6, 30*time.Second)
		WaitNextHops(t, vip+"/32", allNodes, 10*time.Second)
		t.Logf("right password: sessions and routes back %v after the edit", time.Since(start).Round(time.Millisecond))
	})
}

func waitEvent(cl *cluster, svc, msg string) error {
	_, err := findEvent(cl, "demo", "involvedObject.name="+svc, 10*time.Second, func(e corev1.Event) bool {
		return e.Reason == "nodeAssigned" && e.Message == msg
	})
	if err != nil {
		return fmt.Errorf("no nodeAssigned Event %q on %s", msg, svc)
	}
	return nil
}

// findEvent waits for an Event in ns, among those the field selector
// picks, that match accepts.
func findEvent(cl *cluster, ns, selector string, timeout time.Duration, match func(corev1.Event) bool) (corev1.Event, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		evs, err := cl.c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: selector})
		if err == nil {
			for _, e := range evs.Items {
				if match(e) {
					return e, nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return corev1.Event{}, fmt.Errorf("no such Event in %s (%s)", ns, selector)
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// eventually polls cond until it holds or timeout passes.
var eventually = testenv.Eventually

// sessionsChanged compares two readings of Bird.Protocols: the same states,
// and "since" times within 50 ms (BIRD keeps them on a monotonic clock and
// converts them to wall-clock time when it prints them, so the same instant
// can print a millisecond apart; a reset would move it by seconds).
func sessionsChanged(before, after map[string]string) string {
	same := cmp.Comparer(func(a, b string) bool {
		fa, fb := strings.Fields(a), strings.Fields(b)
		if len(fa) != 3 || len(fb) != 3 || fa[0] != fb[0] || fa[2] != fb[2] {
			return a == b
		}
		ta, errA := time.Parse("15:04:05.000", fa[1])
		tb, errB := time.Parse("15:04:05.000", fb[1])
		if errA != nil || errB != nil {
			return a == b
		}
		return (ta.Sub(tb)).Abs() <= 50*time.Millisecond
	})
	return cmp.Diff(before, after, same)
}
