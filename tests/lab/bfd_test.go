package lab

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/microk8s-metallb/metallb/pkg/bfd"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// bfdConfig is bgpConfig with a 100 ms x 3 BFD profile on both peers.
func bfdConfig() string {
	cfg := strings.Replace(bgpConfig(birdPassword, ""), "  hold-time: 3s\n", "  hold-time: 3s\n  bfd-profile: fast\n", 2)
	return cfg + `bfd-profiles:
- name: fast
  receive-interval: 100
  transmit-interval: 100
  detect-multiplier: 3
`
}

// BirdBFDConfig is BirdConfig with BFD on every session, 100 ms x 3: the
// router drops a node's routes when its BFD session goes Down.
func BirdBFDConfig(password string) string {
	cfg := strings.Replace(BirdConfig(password), "  direct;\n", "  direct;\n  bfd on;\n", 1)
	return cfg + `protocol bfd { interface "eth0" { interval 100 ms; multiplier 3; }; }
`
}

// birdBFDUp returns the neighbours whose BFD session BIRD has Up.
func birdBFDUp(b *Bird) []string {
	out, _ := b.Ctl("show bfd sessions")
	var up []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "Up" {
			up = append(up, f[0])
		}
	}
	slices.Sort(up)
	return up
}

func waitBFDUp(t testing.TB, b *Bird, want int, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, fmt.Sprintf("%d BFD sessions Up at the router", want), func() bool { return len(birdBFDUp(b)) == want })
}

// cutLink takes node's port on the lab bridge down (up: back): its
// packets stop at once, and nothing (no FIN, no AdminDown) tells the
// router.
func cutLink(t testing.TB, node string, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "link", "set", Prefix+"-"+node+"-h", state).CombinedOutput(); err != nil {
		t.Fatalf("bridge port of %s %s: %v: %s", node, state, err, out)
	}
}

// metric returns the value of the first sample of a speaker's metrics
// whose line starts with name (with its labels), -1 if there is none.
func metric(node, name string) float64 {
	body, err := HTTPGet(node, "127.0.0.1:7473", "/metrics")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// TestBFD runs the speakers' BFD against BIRD's: sessions come Up at
// 100 ms beside the BGP sessions; a node's link cut makes the router drop
// that node's next hop within the detection time, not the hold time; the
// link back brings the path back without a flap; a Down packet forged
// from the LAN with TTL 64 changes nothing.
func TestBFD(t *testing.T) {
	RequireBird(t)
	cl := startCluster(t, withConfig(bfdConfig()))
	bird := StartBird(t, BirdBFDConfig(birdPassword))
	waitEstablished(t, bird, 6, 30*time.Second)
	waitBFDUp(t, bird, 6, 20*time.Second)
	cl.addBackend(t, "web-0", "web", "node-a")
	ip := cl.createService(t, "web", "web", false, corev1.IPv4Protocol)
	prefix := ip + "/32"
	WaitNextHops(t, prefix, allNodes, 20*time.Second)
	if v := metric("node-a", `metallb_bfd_session_up{peer="198.51.100.254"}`); v != 1 {
		t.Fatalf("metallb_bfd_session_up on node-a = %v, want 1", v)
	}

	t.Run("link cut: the next hop goes within the detection time", func(t *testing.T) {
		others := []string{NodeAddr("node-a"), NodeAddr("node-c")}
		var took []time.Duration
		for range 3 {
			cutLink(t, "node-b", false)
			d := WaitNextHops(t, prefix, others, 5*time.Second)
			took = append(took, d)
			cutLink(t, "node-b", true)
			waitBFDUp(t, bird, 6, 20*time.Second)
			WaitNextHops(t, prefix, allNodes, 20*time.Second)
		}
		slices.Sort(took)
		t.Logf("next hop removed after %v (3 cuts, BFD 100 ms x 3; hold time 3 s)", took)
		if took[len(took)-1] > time.Second {
			t.Errorf("the router removed the cut node's next hop after %v: that is the hold time, not BFD", took[len(took)-1])
		}
	})

	t.Run("IPv6: the next hop goes within the detection time too", func(t *testing.T) {
		// The same cut, seen by the IPv6 BFD sessions (single hop over
		// 2001:db8::/64, hop limit 255).
		cl.addBackend(t, "web6-0", "web6", "node-a")
		ip6 := cl.createService(t, "web6", "web6", false, corev1.IPv6Protocol)
		prefix6 := ip6 + "/128"
		all6 := []string{"2001:db8::11", "2001:db8::12", "2001:db8::13"}
		WaitNextHops(t, prefix6, all6, 20*time.Second)
		if v := metric("node-a", `metallb_bfd_session_up{peer="2001:db8::254"}`); v != 1 {
			t.Fatalf("metallb_bfd_session_up for the IPv6 peer on node-a = %v, want 1", v)
		}
		var took []time.Duration
		for range 3 {
			cutLink(t, "node-b", false)
			took = append(took, WaitNextHops(t, prefix6, []string{"2001:db8::11", "2001:db8::13"}, 5*time.Second))
			cutLink(t, "node-b", true)
			waitBFDUp(t, bird, 6, 20*time.Second)
			WaitNextHops(t, prefix6, all6, 20*time.Second)
			WaitNextHops(t, prefix, allNodes, 20*time.Second) // both back before the next step
		}
		slices.Sort(took)
		t.Logf("IPv6: next hop removed after %v (3 cuts, BFD 100 ms x 3; hold time 3 s)", took)
		if took[len(took)-1] > time.Second {
			t.Errorf("the router removed the cut node's IPv6 next hop after %v: that is the hold time, not BFD", took[len(took)-1])
		}
	})

	t.Run("the path back stays", func(t *testing.T) {
		// Probe across the whole window: every sample has the three hops.
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			if got := NextHops(prefix); len(got) != 3 {
				t.Fatalf("the path flapped after the link came back: %s via %v", prefix, got)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("a Down forged from the LAN with TTL 64 is dropped", func(t *testing.T) {
		downs := metric("node-a", `metallb_bfd_session_down_events{peer="198.51.100.254"}`)
		forgeBFDDown(t, "client", netip.MustParseAddr("198.51.100.254"), netip.MustParseAddr(NodeAddr("node-a")), 64)
		testenv.Eventually(t, 5*time.Second, "node-a to count the forged packet", func() bool {
			return metric("node-a", `metallb_bfd_packets_dropped_total{reason="ttl"}`) >= 1
		})
		if got := metric("node-a", `metallb_bfd_session_down_events{peer="198.51.100.254"}`); got != downs {
			t.Errorf("down events %v → %v: the forged packet took the session down", downs, got)
		}
		if got := metric("node-a", `metallb_bfd_session_up{peer="198.51.100.254"}`); got != 1 {
			t.Errorf("metallb_bfd_session_up = %v after the forged packet", got)
		}
	})

	t.Run("status shows BFD per session", func(t *testing.T) {
		testenv.Eventually(t, 10*time.Second, "every session with BFD up in status", func() bool {
			r := cl.status(t)
			n := 0
			for _, s := range r.Sessions {
				if s.BFD == "up" {
					n++
				}
			}
			return n == 6
		})
	})
}

// forgeBFDDown sends, from host, a BFD Down packet that claims to come
// from src (the router) to dst:3784, with the given TTL, over a raw socket:
// what anyone on the LAN can send.
func forgeBFDDown(t testing.TB, host string, src, dst netip.Addr, ttl int) {
	t.Helper()
	p := bfd.Packet{State: bfd.Down, Diag: bfd.DiagNeighborDown, DetectMult: 3, MyDiscr: 0x12345678,
		DesiredMinTx: time.Second, RequiredMinRx: time.Second}
	payload, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 28, 28+len(payload))
	pkt[0], pkt[8], pkt[9] = 0x45, byte(ttl), syscall.IPPROTO_UDP
	binary.BigEndian.PutUint16(pkt[2:], uint16(28+len(payload)))
	s4, d4 := src.As4(), dst.As4()
	copy(pkt[12:], s4[:])
	copy(pkt[16:], d4[:])
	binary.BigEndian.PutUint16(pkt[20:], 49200)
	binary.BigEndian.PutUint16(pkt[22:], bfd.Port)
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload))) // checksum 0: none (IPv4)
	pkt = append(pkt, payload...)
	err = In(host, func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		return syscall.Sendto(fd, pkt, 0, &syscall.SockaddrInet4{Addr: d4})
	})
	if err != nil {
		t.Fatalf("forge a BFD packet from %s: %v", host, err)
	}
}

// frrBFDConfig is bgpd's FRRConfig with BFD on every neighbour, and
// bfdd's profile: 100 ms x 3.
func frrBFDConfig() (bgpd, bfdd string) {
	bgpd = FRRConfig(birdPassword, allNodes)
	var b strings.Builder
	for _, n := range allNodes {
		fmt.Fprintf(&b, " neighbor %s bfd profile fast\n", n)
	}
	bgpd = strings.Replace(bgpd, " address-family ipv4 unicast\n", b.String()+" address-family ipv4 unicast\n", 1)
	bfdd = "bfd\n profile fast\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n exit\nexit\n"
	return bgpd, bfdd
}

// TestBFDFRR is TestBFD's link cut against FRR's bfdd (with zebra, which
// installs the routes in the router's kernel).
func TestBFDFRR(t *testing.T) {
	RequireFRR(t)
	cfg := strings.Replace(frrBGPConfig(birdPassword), "  hold-time: 3s\n", "  hold-time: 3s\n  bfd-profile: fast\n", 1) + `bfd-profiles:
- name: fast
  receive-interval: 100
  transmit-interval: 100
  detect-multiplier: 3
`
	cl := startCluster(t, withConfig(cfg))
	bgpd, bfdd := frrBFDConfig()
	frr := StartFRRWithBFD(t, bgpd, bfdd)
	testenv.Eventually(t, 30*time.Second, "3 sessions established at FRR", func() bool { return len(frr.Established()) == 3 })
	// bfdd installs bgpd's sessions only once it reaches zebra, which it
	// retries every 10 s or so after a start that came too early: allow
	// two retries.
	testenv.Eventually(t, 45*time.Second, "3 BFD sessions up at FRR", func() bool { return len(frr.BFDUp()) == 3 })
	cl.addBackend(t, "web-0", "web", "node-a")
	ip := cl.createService(t, "web", "web", false, corev1.IPv4Protocol)
	prefix := ip + "/32"
	WaitNextHops(t, prefix, allNodes, 20*time.Second)

	others := []string{NodeAddr("node-a"), NodeAddr("node-c")}
	var took []time.Duration
	for range 3 {
		cutLink(t, "node-b", false)
		took = append(took, WaitNextHops(t, prefix, others, 5*time.Second))
		cutLink(t, "node-b", true)
		testenv.Eventually(t, 20*time.Second, "3 BFD sessions up at FRR", func() bool { return len(frr.BFDUp()) == 3 })
		WaitNextHops(t, prefix, allNodes, 20*time.Second)
	}
	slices.Sort(took)
	t.Logf("FRR: next hop removed after %v (3 cuts, BFD 100 ms x 3; hold time 3 s)", took)
	if took[len(took)-1] > time.Second {
		t.Errorf("FRR removed the cut node's next hop after %v: that is the hold time, not BFD", took[len(took)-1])
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if got := NextHops(prefix); len(got) != 3 {
			t.Fatalf("the path flapped after the link came back: %s via %v", prefix, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
