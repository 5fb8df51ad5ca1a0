package layer2

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEligible(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	up := net.FlagUp | net.FlagBroadcast
	tests := []struct {
		name   string
		ifi    net.Interface
		master bool
		want   string
	}{
		{"lan", net.Interface{Name: "eth0", Flags: up, HardwareAddr: mac}, false, ""},
		{"down", net.Interface{Name: "eth1", Flags: net.FlagBroadcast, HardwareAddr: mac}, false, "down"},
		{"loopback", net.Interface{Name: "lo", Flags: up | net.FlagLoopback}, false, "loopback"},
		{"bridge member", net.Interface{Name: "eth2", Flags: up, HardwareAddr: mac}, true, "member of a bridge or bond"},
		{"veth", net.Interface{Name: "veth12ab", Flags: up, HardwareAddr: mac}, false, "container interface (veth*)"},
		{"calico", net.Interface{Name: "cali0", Flags: up, HardwareAddr: mac}, false, "container interface (cali*)"},
		{"flannel", net.Interface{Name: "flannel.1", Flags: up, HardwareAddr: mac}, false, "container interface (flannel*)"},
		{"cni", net.Interface{Name: "cni0", Flags: up, HardwareAddr: mac}, false, "container interface (cni*)"},
		{"lxc", net.Interface{Name: "lxcbr0", Flags: up, HardwareAddr: mac}, false, "container interface (lxc*)"},
		{"docker", net.Interface{Name: "docker0", Flags: up, HardwareAddr: mac}, false, "container interface (docker*)"},
		{"no mac", net.Interface{Name: "wg0", Flags: up}, false, "no Ethernet address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := eligible(tc.ifi, tc.master); got != tc.want {
				t.Errorf("eligible = %q, want %q", got, tc.want)
			}
		})
	}
}

type nopEvents struct{}

func (nopEvents) Conflict(netip.Addr, string, net.HardwareAddr) {}
func (nopEvents) Count(string, netip.Addr)                      {}

func TestOwnsFollowsSubnetsAndInterfaces(t *testing.T) {
	a := NewAnnouncer(slog.New(slog.NewTextHandler(io.Discard, nil)), nopEvents{})
	a.ifs["eth0"] = &iface{name: "eth0", prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::/64")}}
	a.ifs["eth1"] = &iface{name: "eth1", prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
	a.SetClaims([]Claim{
		{IP: netip.MustParseAddr("198.51.100.200")},
		{IP: netip.MustParseAddr("2001:db8::200")},
		{IP: netip.MustParseAddr("192.0.2.9"), Interfaces: []string{"eth1"}},
	})
	tests := []struct {
		ifname, ip string
		want       bool
	}{
		{"eth0", "198.51.100.200", true},
		{"eth1", "198.51.100.200", false}, // subnet is elsewhere
		{"eth0", "2001:db8::200", true},
		{"eth1", "192.0.2.9", true}, // named by the pool
		{"eth0", "192.0.2.9", false},
		{"eth0", "198.51.100.201", false}, // not claimed
	}
	for _, tc := range tests {
		if got := a.Owns(tc.ifname, netip.MustParseAddr(tc.ip), time.Now()); got != tc.want {
			t.Errorf("Owns(%s, %s) = %v, want %v", tc.ifname, tc.ip, got, tc.want)
		}
	}
	a.SetClaims(nil)
	if a.Owns("eth0", netip.MustParseAddr("198.51.100.200"), time.Time{}) {
		t.Error("still owns an address after it was dropped")
	}
}

// An interface lost while it served a claimed address makes that address
// unanswered until the interface is back; other interfaces do not.
func TestUnansweredFollowsLostInterfaces(t *testing.T) {
	a := NewAnnouncer(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	lan := &iface{name: "eth0", prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	wifi := &iface{name: "wlan0", prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	a.ifs = map[string]*iface{"eth0": lan, "wlan0": wifi}
	a.SetClaims([]Claim{{IP: netip.MustParseAddr("198.51.100.200")}, {IP: netip.MustParseAddr("203.0.113.9"), Interfaces: []string{"wlan0"}}})
	if got := a.Unanswered(); len(got) != 0 {
		t.Fatalf("unanswered with every interface up: %v", got)
	}
	a.mu.Lock()
	delete(a.ifs, "eth0")
	a.lose("eth0", lan)
	a.mu.Unlock()
	if diff := cmp.Diff([]netip.Addr{netip.MustParseAddr("198.51.100.200")}, a.Unanswered(), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("eth0 lost (-want +got):\n%s", diff)
	}
	a.mu.Lock()
	delete(a.ifs, "wlan0")
	a.lose("wlan0", wifi)
	a.mu.Unlock()
	if got := a.Unanswered(); len(got) != 2 {
		t.Errorf("both lost: %v", got)
	}
}

// A request the kernel received before this node claimed the address was
// the previous owner's to answer: however late it is read, it gets no
// answer. Later ones do, and so does every request once the claim is a
// second old (a wall clock stepped back cannot silence an address).
func TestRequestsBeforeTheClaimAreNotAnswered(t *testing.T) {
	a := NewAnnouncer(slog.New(slog.NewTextHandler(io.Discard, nil)), nopEvents{})
	a.ifs["eth0"] = &iface{name: "eth0", prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	vip := netip.MustParseAddr("198.51.100.200")
	before := time.Now()
	a.SetClaims([]Claim{{IP: vip}})
	after := time.Now()
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"received before the claim", before.Round(0), false},
		{"received after the claim", after.Round(0), true},
		{"arrival unknown", time.Time{}, true},
	}
	for _, tc := range tests {
		if got := a.Owns("eth0", vip, tc.at); got != tc.want {
			t.Errorf("%s: Owns = %v, want %v", tc.name, got, tc.want)
		}
	}
	a.mu.Lock()
	a.since[vip] = time.Now().Add(-staleRequestWindow)
	a.mu.Unlock()
	if !a.Owns("eth0", vip, before.Add(-time.Hour)) {
		t.Error("a claim older than the window does not answer a request stamped long before it")
	}
	// Claimed again after a release: the new claim's time counts.
	a.SetClaims(nil)
	a.SetClaims([]Claim{{IP: vip}})
	if a.Owns("eth0", vip, after.Round(0)) {
		t.Error("a request received before the address was claimed again is answered")
	}
}

// blockingConn is a frameConn whose writes wait until released.
type blockingConn struct {
	*memConn
	writing chan struct{}
	release chan struct{}
}

func (c *blockingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.writing <- struct{}{}
	<-c.release
	return c.memConn.WriteTo(b, addr)
}

// A gratuitous announcement stuck in the kernel (a full queue) holds no
// lock the receive path takes: every frame received meanwhile is still
// judged (Owns), and a claim dropped meanwhile is not announced after.
func TestGratuitousHoldsNoReceiveLock(t *testing.T) {
	a := NewAnnouncer(slog.New(slog.NewTextHandler(io.Discard, nil)), nopEvents{})
	conn := &blockingConn{memConn: newMemConn(), writing: make(chan struct{}), release: make(chan struct{})}
	eth0 := &iface{name: "eth0", prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	eth0.arp = newARPResponder("eth0", ourMAC, conn, a)
	a.ifs["eth0"] = eth0
	ip := netip.MustParseAddr("198.51.100.200")
	a.SetClaims([]Claim{{IP: ip}}) // no Run: no burst of its own
	sent := make(chan struct{})
	go func() { a.gratuitous(ip); close(sent) }()
	<-conn.writing
	owns := make(chan bool)
	go func() { owns <- a.Owns("eth0", ip, time.Time{}) }()
	select {
	case got := <-owns:
		if !got {
			t.Error("Owns false for a claimed address")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Owns waited for a gratuitous announcement to be sent")
	}
	// Dropping the claim waits for the send in flight, then no more go out.
	dropped := make(chan struct{})
	go func() { a.SetClaims(nil); close(dropped) }()
	select {
	case <-dropped:
		t.Fatal("SetClaims returned while an announcement of the dropped address was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(conn.release)
	<-sent
	<-dropped
	a.gratuitous(ip)
	if n := len(conn.written()); n != 1 {
		t.Errorf("%d frames written, want the one in flight only", n)
	}
}
