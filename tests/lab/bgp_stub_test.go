package lab

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/speaker"
	corev1 "k8s.io/api/core/v1"
)

// stubConfig peers every node with the router twice: iBGP with BIRD's main
// router address (which sends a table of routes), and eBGP with a second
// router address (AS 64501), which must get our service prefix only.
const stubConfig = `peers:
- {peer-address: 198.51.100.254, peer-asn: 64500, my-asn: 64500, hold-time: 9s}
- {peer-address: 198.51.100.253, peer-asn: 64501, my-asn: 64500, hold-time: 9s}
address-pools:
- {name: routed, protocol: bgp, addresses: [203.0.113.0/24]}
`

// stubBird is the main router for TestBGPKeepsNothingReceived: iBGP with
// every node, exporting n static /28 routes (disabled at first).
func stubBird(n int) string {
	var b strings.Builder
	b.WriteString(`log "LOGFILE" all;
router id 198.51.100.254;
protocol device { scan time 1; }
protocol kernel k4 { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }
protocol static table_routes {
  disabled;
  ipv4;
`)
	for i := range n {
		a := 100<<24 | 64<<16 + i*16
		fmt.Fprintf(&b, "  route %d.%d.%d.%d/28 blackhole;\n", a>>24&255, a>>16&255, a>>8&255, a&255)
	}
	b.WriteString("}\n")
	for i, n := range Nodes {
		fmt.Fprintf(&b, `protocol bgp %s { local 198.51.100.254 as 64500; neighbor 198.51.100.%d as 64500; passive on; strict bind on; hold time 9; error wait time 1,5; direct;
  ipv4 { import all; export where source = RTS_STATIC; }; }
`, strings.ReplaceAll(n, "-", "_"), 11+i)
	}
	return b.String()
}

// otherBird is a second router (AS 64501, eBGP with every node) that must
// learn our service prefixes and nothing else.
func otherBird() string {
	var b strings.Builder
	b.WriteString(`log "LOGFILE" all;
router id 198.51.100.253;
protocol device { scan time 1; }
`)
	for i, n := range Nodes {
		fmt.Fprintf(&b, `protocol bgp %s { local 198.51.100.253 as 64501; neighbor 198.51.100.%d as 64500; passive on; strict bind on; hold time 9; error wait time 1,5; direct;
  ipv4 { import all; export none; }; }
`, strings.ReplaceAll(n, "-", "_"), 11+i)
	}
	return b.String()
}

func vmRSS(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	kb, _ := strconv.Atoi(string(m[1]))
	return kb
}

// TestBGPKeepsNothingReceived: a router sends a full table (200,000 routes
// by default, METALLB_BGP_TABLE to change): the speaker refuses every one
// and counts them, passes none on to the other router (no transit: it gets
// our service prefix alone), and its memory stays within 1.2x. Then
// max-prefix on that peer closes its session, with an Event on the Node,
// and leaves the other router's sessions alone.
func TestBGPKeepsNothingReceived(t *testing.T) {
	RequireBird(t)
	n := envInt("METALLB_BGP_TABLE", 200000)
	cl := startCluster(t, withConfig(stubConfig))
	if out, err := Exec(context.Background(), "router", "ip", "addr", "add", "198.51.100.253/24", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	bird := StartBird(t, stubBird(n))
	other := StartBird(t, otherBird())
	waitEstablished(t, bird, 3, 30*time.Second)
	waitEstablished(t, other, 3, 30*time.Second)
	cl.addBackend(t, "web-1", "web", "node-b")
	vip := cl.createService(t, "web", "web", false)
	WaitNextHops(t, vip+"/32", allNodes, 10*time.Second)

	pid := cl.speakers["node-a"].Process.Pid
	time.Sleep(2 * time.Second) // let the heap settle after start; a reading, not an assertion
	before := vmRSS(t, pid)
	start := time.Now()
	if out, err := bird.Ctl("enable table_routes"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := fmt.Sprintf(`metallb_bgp_received_prefixes_refused_total{peer="198.51.100.254"} %d`, n)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		body, _ := HTTPGet("node-a", "127.0.0.1:7473", "/metrics")
		if strings.Contains(body, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-a never counted the %d routes:\n%s", n, grepLines(body, "metallb_bgp_"))
		}
		time.Sleep(250 * time.Millisecond)
	}
	took := time.Since(start)
	after := vmRSS(t, pid)
	t.Logf("%d routes received and refused by node-a in %v; speaker RSS %.1f MB before, %.1f MB after (x%.2f)",
		n, took.Round(time.Millisecond), float64(before)/1024, float64(after)/1024, float64(after)/float64(before))
	if float64(after) > 1.2*float64(before) {
		t.Errorf("the speaker's RSS grew x%.2f with the routes it refused: want at most x1.2", float64(after)/float64(before))
	}

	// The other router has our service prefix and nothing else: no transit.
	out, _ := other.Ctl("show route")
	var prefixes []string
	for _, f := range strings.Fields(out) {
		if strings.Contains(f, "/") && !strings.HasPrefix(f, "unicast") {
			prefixes = append(prefixes, f)
		}
	}
	if len(prefixes) != 1 || prefixes[0] != vip+"/32" {
		t.Errorf("the other router learnt %v, want only %s/32:\n%s", prefixes, vip, tail(out, 2000))
	}
	// The route to the service still works at the main router.
	WaitNextHops(t, vip+"/32", allNodes, 10*time.Second)

	// max-prefix below the table: the session closes (Cease), the Node gets
	// an Event, the other router's sessions stay as they are.
	since := other.Protocols()
	cl.setConfig(t, strings.Replace(stubConfig, "hold-time: 9s}", "hold-time: 9s, max-prefix: 1000}", 1))
	ev, err := waitNodeEvent(cl, "node-a", speaker.ReasonMaxPrefix, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Event on node-a: %s", ev)
	if st := bird.Protocols()["node_a"]; strings.HasSuffix(st, "Established") {
		t.Errorf("node-a's session is still up at the router: %s", st)
	}
	if !strings.Contains(cl.speakerLog(t, "node-a"), "max-prefix reached") {
		t.Error("the speaker did not log the max-prefix trip")
	}
	if diff := sessionsChanged(since, other.Protocols()); diff != "" {
		t.Errorf("the other router's sessions changed (-before +after):\n%s", diff)
	}
	cl.setConfig(t, stubConfig)
	waitEstablished(t, bird, 3, 30*time.Second)
}

// waitNodeEvent waits for an Event with reason on a Node and returns its
// message.
func waitNodeEvent(cl *cluster, node, reason string, timeout time.Duration) (string, error) {
	e, err := findEvent(cl, "default", "involvedObject.kind=Node,involvedObject.name="+node, timeout, func(e corev1.Event) bool { return e.Reason == reason })
	if err != nil {
		return "", fmt.Errorf("no %s Event on Node %s", reason, node)
	}
	return e.Message, nil
}
