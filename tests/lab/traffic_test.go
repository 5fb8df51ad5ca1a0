package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/microk8s-metallb/metallb/pkg/counting"
	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/pkg/traffic"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// trafficNS makes a namespace of its own with lo up and the given
// addresses on lo, and opens nf_tables in it. Deleted at the end.
func trafficNS(t testing.TB, addrs ...string) (string, *counting.NFT) {
	t.Helper()
	Require(t)
	name := NS("traffic")
	_ = exec.Command("ip", "netns", "del", name).Run() // a failed run's
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	cmds := [][]string{{"link", "set", "lo", "up"}}
	for _, a := range addrs {
		cmds = append(cmds, []string{"addr", "add", a, "dev", "lo"})
	}
	for _, c := range cmds {
		if out, err := exec.Command("ip", append([]string{"-n", name}, c...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", c, err, out)
		}
	}
	f, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	k, err := counting.NewNFT(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return name, k
}

// sendUDP sends n datagrams of size bytes of payload to ip:9 from inside
// the namespace, where a socket receives them (no ICMP error comes back
// to the address).
func sendUDP(name, ip string, n, size int) error {
	return In(strings.TrimPrefix(name, Prefix+"-"), func() error {
		l, err := net.ListenPacket("udp", net.JoinHostPort(ip, "9"))
		if err != nil {
			return err
		}
		defer l.Close()
		c, err := net.Dial("udp", net.JoinHostPort(ip, "9"))
		if err != nil {
			return err
		}
		defer c.Close()
		buf, got := make([]byte, size), make([]byte, 65536)
		for range n {
			if _, err := c.Write(buf); err != nil {
				return err
			}
			_ = l.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := l.ReadFrom(got); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestTrafficTable drives the nftables table in a namespace of its own:
// exact counts per address and family (whole IP packets), an address
// removed stops being counted, and a table flushed by `nft flush ruleset`
// is found incomplete and built again.
func TestTrafficTable(t *testing.T) {
	ns, k := trafficNS(t, "192.0.2.1/32", "192.0.2.2/32", "2001:db8::1/128")
	if fresh, err := k.Ensure(); err != nil || !fresh {
		t.Fatalf("first Ensure: fresh %v, %v", fresh, err)
	}
	if fresh, err := k.Ensure(); err != nil || fresh {
		t.Fatalf("second Ensure: fresh %v, %v (want the table kept)", fresh, err)
	}
	v4, v4b, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1")
	if err := k.Apply([]netip.Addr{v4, v6}, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		ip string
		n  int
	}{{"192.0.2.1", 10}, {"192.0.2.2", 3}, {"2001:db8::1", 7}} {
		if err := sendUDP(ns, s.ip, s.n, 100); err != nil {
			t.Fatal(err)
		}
	}
	counts, err := k.Read()
	if err != nil {
		t.Fatal(err)
	}
	// IPv4: 20 + 8 + 100 bytes a packet; IPv6: 40 + 8 + 100.
	want := map[netip.Addr]traffic.Count{v4: {Packets: 10, Bytes: 10 * 128}, v6: {Packets: 7, Bytes: 7 * 148}}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v (192.0.2.2 is not in the set: not counted)", counts, want)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", counting.TableName).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "192.0.2.1 counter packets 10 bytes 1280") {
		t.Errorf("nft list table inet %s: %v\n%s", counting.TableName, err, out)
	}
	t.Logf("nft list table inet %s:\n%s", counting.TableName, out)

	if err := k.Apply([]netip.Addr{v4b}, []netip.Addr{v4}); err != nil {
		t.Fatal(err)
	}
	_ = sendUDP(ns, "192.0.2.1", 5, 100)
	if counts, _ := k.Read(); len(counts) != 2 || counts[v4b] != (traffic.Count{}) {
		t.Errorf("after swapping 192.0.2.1 for 192.0.2.2: %v", counts)
	}

	// A read right after a batch holds every address (the resizable hash
	// the kernel picks for a set without a size left some out while it
	// grew).
	many := manyAddrs(1000)
	for i := range 10 {
		if err := k.Apply(many, nil); err != nil {
			t.Fatal(err)
		}
		counts, err := k.Read()
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, ip := range many {
			if _, ok := counts[ip]; !ok {
				missing++
			}
		}
		if missing > 0 {
			t.Fatalf("round %d: %d of %d addresses missing from the read", i, missing, len(many))
		}
		if err := k.Apply(nil, many); err != nil {
			t.Fatal(err)
		}
	}

	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "ruleset").CombinedOutput(); err != nil {
		t.Fatalf("nft flush ruleset: %v %s", err, out)
	}
	if fresh, err := k.Ensure(); err != nil || !fresh {
		t.Fatalf("Ensure after the flush: fresh %v, %v (want it built again)", fresh, err)
	}
	// Only the chain's rules deleted: incomplete, built again too.
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "chain", "inet", counting.TableName, "traffic").CombinedOutput(); err != nil {
		t.Fatalf("nft flush chain: %v %s", err, out)
	}
	if fresh, err := k.Ensure(); err != nil || !fresh {
		t.Fatalf("Ensure after the rules went: fresh %v, %v", fresh, err)
	}
	if err := k.Delete(); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").CombinedOutput(); strings.Contains(string(out), counting.TableName) {
		t.Errorf("the table is left after Delete: %s", out)
	}
}

// deliverAll puts every ip on lo of every node, with one TCP server per
// node on 8080 answering the node's name (kube-proxy's stand-in).
func deliverAll(t testing.TB, ips ...string) {
	t.Helper()
	for _, n := range Nodes {
		Serve(t, n, 8080)
		for _, ip := range ips {
			bits := "/32"
			if strings.Contains(ip, ":") {
				bits = "/128"
			}
			if out, err := Exec(context.Background(), n, "ip", "addr", "add", ip+bits, "dev", "lo").CombinedOutput(); err != nil {
				t.Fatalf("%s: %v %s", n, err, out)
			}
		}
	}
}

// heldBy reads a node's counter through its socket (the test's side of
// the shared directory): the count of ip, and whether its table holds it.
func (cl *cluster) heldBy(t testing.TB, node, ip string) (traffic.Count, bool) {
	t.Helper()
	c, ok, err := cl.tryHeldBy(node, ip)
	if err != nil {
		t.Fatalf("%s's counter: %v", node, err)
	}
	return c, ok
}

func (cl *cluster) tryHeldBy(node, ip string) (traffic.Count, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := counting.NewClient(cl.trafficDirs[node]).Read(ctx)
	c, ok := counts[netip.MustParseAddr(ip)]
	return c, ok, err
}

// waitHeld waits until node's table holds ip.
func (cl *cluster) waitHeld(t testing.TB, node, ip string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("%s's traffic table holds %s", node, ip), func() bool {
		_, ok, _ := cl.tryHeldBy(node, ip)
		return ok
	})
}

// connect makes n TCP connections from the client to ip:8080; every one
// must be answered by node.
func connect(t testing.TB, ip, node string, n int) {
	t.Helper()
	for i := range n {
		reply, err := Dial("client", net.JoinHostPort(ip, "8080"), 3*time.Second)
		if err != nil || reply != node {
			t.Fatalf("connection %d to %s: %q, %v (want %s)", i, ip, reply, err, node)
		}
	}
}

var receivedRE = regexp.MustCompile(`(?m)^metallb_service_received_(packets|bytes)_total\{ip="([^"]+)",namespace="([^"]+)",node="([^"]+)",service="([^"]+)"\} (\S+)$`)

// scraped returns a speaker's metallb_service_received_* series for ip
// ("packets"/"bytes" → value), by its plain-HTTP /metrics.
func scraped(t testing.TB, node, ip string) map[string]float64 {
	t.Helper()
	body, err := HTTPGet("client", NodeAddr(node)+":7473", "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", node, err)
	}
	if !strings.Contains(body, fmt.Sprintf("metallb_traffic_counter_up{node=%q} 1", node)) {
		t.Errorf("%s: metallb_traffic_counter_up is not 1", node)
	}
	out := map[string]float64{}
	for _, m := range receivedRE.FindAllStringSubmatch(body, -1) {
		if m[2] == ip {
			if m[3] != "demo" || m[4] != node {
				t.Errorf("%s: series with labels %v", node, m[2:6])
			}
			v, _ := strconv.ParseFloat(m[6], 64)
			out[m[1]] = v
		}
	}
	return out
}

// checkCounted: after n connections, between 3 and 10 packets each
// (SYN, ACK, FIN, ACKs; the reply's segments are the server's), and
// whole IP packets of at least 40 bytes.
func checkCounted(t testing.TB, what string, c traffic.Count, n int) {
	t.Helper()
	if c.Packets < uint64(3*n) || c.Packets > uint64(10*n) || c.Bytes < 40*c.Packets {
		t.Errorf("%s: %d packets, %d bytes after %d connections (want 3 to 10 packets each, >= 40 bytes a packet)", what, c.Packets, c.Bytes, n)
	}
}

// TestTrafficLayer2 counts TCP to a layer2 address on the announcing node
// only, IPv4 and IPv6; after the owner's speaker is killed the new owner
// counts and the old owner's table counts nothing more; a table flushed
// with `nft flush ruleset` is built again and counts; the speaker's
// metrics and `metallb status` show it.
func TestTrafficLayer2(t *testing.T) {
	cl := startCluster(t, withTraffic())
	cl.addBackend(t, "web-0", "web", "node-b")
	ip4 := cl.createService(t, "web", "web", false, corev1.IPv4Protocol)
	ip6 := cl.createService(t, "web6", "web", false, corev1.IPv6Protocol)
	deliverAll(t, ip4, ip6)
	const n = 20
	for _, ip := range []string{ip4, ip6} {
		owner := election.Owner(netip.MustParseAddr(ip), Nodes)
		cl.waitHeld(t, owner, ip)
		if _, err := DialUntil("client", net.JoinHostPort(ip, "8080"), 20*time.Second); err != nil {
			t.Fatal(err)
		}
		before, _ := cl.heldBy(t, owner, ip)
		connect(t, ip, owner, n)
		after, _ := cl.heldBy(t, owner, ip)
		got := traffic.Count{Packets: after.Packets - before.Packets, Bytes: after.Bytes - before.Bytes}
		checkCounted(t, ip+" on "+owner, got, n)
		m := scraped(t, owner, ip)
		if m["packets"] < float64(after.Packets) || m["bytes"] < float64(after.Bytes) {
			t.Errorf("%s's metrics for %s: %v, below the table's %+v", owner, ip, m, after)
		}
		for _, other := range Nodes {
			if other == owner {
				continue
			}
			if _, held := cl.heldBy(t, other, ip); held {
				t.Errorf("%s counts %s, which %s announces", other, ip, owner)
			}
			if m := scraped(t, other, ip); len(m) != 0 {
				t.Errorf("%s shows traffic for %s: %v", other, ip, m)
			}
		}
		t.Logf("%s: %d connections -> %d packets, %d bytes counted on %s (the owner) only", ip, n, got.Packets, got.Bytes, owner)
	}

	t.Run("metallb status shows the traffic per Service and node", func(t *testing.T) {
		owner := election.Owner(netip.MustParseAddr(ip4), Nodes)
		testenv.Eventually(t, 15*time.Second, "status shows demo/web's traffic on "+owner, func() bool {
			for _, tr := range cl.status(t).Traffic {
				if tr.Service == "demo/web" && tr.Address == ip4 && tr.Node == owner && tr.Packets >= 3*n {
					return true
				}
			}
			return false
		})
	})

	t.Run("a flushed table is built again and counts", func(t *testing.T) {
		owner := election.Owner(netip.MustParseAddr(ip4), Nodes)
		if out, err := Exec(context.Background(), owner, "nft", "flush", "ruleset").CombinedOutput(); err != nil {
			t.Fatalf("nft flush ruleset on %s: %v %s", owner, err, out)
		}
		start := time.Now()
		testenv.Eventually(t, 10*time.Second, "the table built again, counting from 0", func() bool {
			c, ok, err := cl.tryHeldBy(owner, ip4)
			return err == nil && ok && c.Packets < 3*n
		})
		t.Logf("built again within %v", time.Since(start).Round(10*time.Millisecond))
		before, _ := cl.heldBy(t, owner, ip4)
		connect(t, ip4, owner, n)
		after, _ := cl.heldBy(t, owner, ip4)
		checkCounted(t, "after the flush", traffic.Count{Packets: after.Packets - before.Packets, Bytes: after.Bytes - before.Bytes}, n)
	})

	t.Run("after a failover the new owner counts", func(t *testing.T) {
		ip := ip4
		owner := election.Owner(netip.MustParseAddr(ip), Nodes)
		next := nextOwner(netip.MustParseAddr(ip))
		_ = syscall.Kill(-cl.speakers[owner].Process.Pid, syscall.SIGKILL)
		cl.waitHeld(t, next, ip)
		testenv.Eventually(t, 20*time.Second, ip+" answered by "+next, func() bool {
			reply, err := Dial("client", net.JoinHostPort(ip, "8080"), time.Second)
			return err == nil && reply == next
		})
		oldBefore, _ := cl.heldBy(t, owner, ip) // its counter runs on, its speaker is dead
		before, _ := cl.heldBy(t, next, ip)
		connect(t, ip, next, n)
		after, _ := cl.heldBy(t, next, ip)
		oldAfter, _ := cl.heldBy(t, owner, ip)
		checkCounted(t, ip+" on the new owner "+next, traffic.Count{Packets: after.Packets - before.Packets, Bytes: after.Bytes - before.Bytes}, n)
		if oldAfter != oldBefore {
			t.Errorf("the old owner %s counted %+v -> %+v while %s answered", owner, oldBefore, oldAfter, next)
		}
		t.Logf("%s killed: %s counts %d packets for %d connections; %s's table unchanged", owner, next, after.Packets-before.Packets, n, owner)
	})
}

// TestTrafficBGPECMP: in BGP mode every node advertises the address and
// the router spreads connections over the three next hops (hashed on
// ports); each node counts its share, IPv4 and IPv6, and the shares add
// up to what the router sent.
func TestTrafficBGPECMP(t *testing.T) {
	RequireBird(t)
	cl := startCluster(t, withConfig(bgpConfig(birdPassword, "")), withTraffic())
	bird := StartBird(t, BirdConfig(birdPassword))
	waitEstablished(t, bird, 6, 30*time.Second)
	cl.addBackend(t, "web-0", "web", "node-a")
	ip4 := cl.createService(t, "web", "web", false, corev1.IPv4Protocol)
	ip6 := cl.createService(t, "web6", "web", false, corev1.IPv6Protocol)
	WaitNextHops(t, ip4+"/32", allNodes, 20*time.Second)
	WaitNextHops(t, ip6+"/128", []string{"2001:db8::11", "2001:db8::12", "2001:db8::13"}, 20*time.Second)
	deliverAll(t, ip4, ip6)
	for _, k := range []string{"net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1"} {
		if out, err := Exec(context.Background(), "router", "sysctl", "-qw", k).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	const n = 60
	for _, ip := range []string{ip4, ip6} {
		before := map[string]traffic.Count{}
		for _, node := range Nodes {
			cl.waitHeld(t, node, ip)
			before[node], _ = cl.heldBy(t, node, ip)
		}
		share := map[string]int{}
		for i := range n {
			reply, err := Dial("router", net.JoinHostPort(ip, "8080"), 3*time.Second)
			if err != nil {
				t.Fatalf("connection %d from the router to %s: %v", i, ip, err)
			}
			share[reply]++
		}
		var line []string
		for _, node := range Nodes {
			after, _ := cl.heldBy(t, node, ip)
			got := traffic.Count{Packets: after.Packets - before[node].Packets, Bytes: after.Bytes - before[node].Bytes}
			if share[node] == 0 {
				if got.Packets != 0 {
					t.Errorf("%s: %d packets counted, but no connection reached it", node, got.Packets)
				}
			} else {
				checkCounted(t, ip+" on "+node, got, share[node])
			}
			line = append(line, fmt.Sprintf("%s %d connections / %d packets", node, share[node], got.Packets))
		}
		if len(share) < 2 {
			t.Errorf("%s: the router sent all %d connections to %v: not spread", ip, n, share)
		}
		t.Logf("%s, %d connections from the router: %s", ip, n, strings.Join(line, ", "))
	}
}
