package election

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func addrs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	a := netip.MustParseAddr("198.51.100.0")
	for i := range out {
		out[i] = a
		a = a.Next()
	}
	return out
}

func TestOwnerMatchesOrder(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	for _, ip := range addrs(256) {
		if o := Order(ip, nodes); o[0] != Owner(ip, nodes) {
			t.Fatalf("%s: Order %v, Owner %s", ip, o, Owner(ip, nodes))
		}
	}
	if Owner(netip.MustParseAddr("192.0.2.1"), nil) != "" {
		t.Error("owner with no candidates")
	}
}

func TestDeterministicAndOrderIndependent(t *testing.T) {
	ip := netip.MustParseAddr("2001:db8::7")
	a := Owner(ip, []string{"x", "y", "z"})
	b := Owner(ip, []string{"z", "x", "y"})
	if a != b {
		t.Fatalf("owner depends on input order: %s vs %s", a, b)
	}
}

// Removing a node moves only its own addresses; adding one moves addresses
// only to itself.
func TestMinimalDisruption(t *testing.T) {
	before := []string{"n1", "n2", "n3", "n4"}
	after := []string{"n1", "n2", "n4"}
	moved := 0
	for _, ip := range addrs(1000) {
		o1, o2 := Owner(ip, before), Owner(ip, after)
		if o1 != "n3" && o1 != o2 {
			t.Fatalf("%s moved from %s to %s though %s is still there", ip, o1, o2, o1)
		}
		if o1 == "n3" {
			moved++
		}
		if o3 := Owner(ip, append(after, "n5")); o3 != o2 && o3 != "n5" {
			t.Fatalf("%s moved from %s to %s when n5 joined", ip, o2, o3)
		}
	}
	if moved < 150 || moved > 350 {
		t.Errorf("n3 owned %d of 1000 addresses, want about 250 (balance)", moved)
	}
}

func TestBalance(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	count := map[string]int{}
	for _, ip := range addrs(3000) {
		count[Owner(ip, nodes)]++
	}
	for _, n := range nodes {
		if count[n] < 850 || count[n] > 1150 {
			t.Errorf("balance: %v", count)
		}
	}
}

func TestStableValues(t *testing.T) {
	// Pinned so that a change of hash (which would move every address on
	// upgrade) is a deliberate decision.
	got := fmt.Sprint(Order(netip.MustParseAddr("192.0.2.10"), []string{"node-a", "node-b", "node-c"}))
	want := "[node-a node-b node-c]"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
