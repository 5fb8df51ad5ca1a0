package lab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/microk8s-metallb/metallb/pkg/counting"
	"github.com/microk8s-metallb/metallb/pkg/traffic"
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

// inNS runs fn on a thread in the named namespace.
func inNS(name string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return err
	}
	defer func() { _ = unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) }()
	return fn()
}

// sendUDP sends n datagrams of size bytes of payload to ip:9 from inside
// the namespace, where a socket receives them (no ICMP error comes back
// to the address).
func sendUDP(name, ip string, n, size int) error {
	return inNS(name, func() error {
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
