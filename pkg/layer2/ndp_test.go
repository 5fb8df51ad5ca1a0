package layer2

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// fakeNDP records what the responder writes and which groups it joins.
type fakeNDP struct {
	mu     sync.Mutex
	sent   []string
	groups map[netip.Addr]bool
	err    error // what every write fails with, if set
}

func (f *fakeNDP) ReadFrom() (ndp.Message, netip.Addr, time.Time, error) {
	select {}
}
func (f *fakeNDP) WriteTo(m ndp.Message, dst netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	na := m.(*ndp.NeighborAdvertisement)
	f.sent = append(f.sent, dst.String()+" NA "+na.TargetAddress.String()+" mac "+linkAddr(na.Options, ndp.Target).String()+
		map[bool]string{true: " solicited", false: ""}[na.Solicited]+map[bool]string{true: " override", false: ""}[na.Override])
	return nil
}
func (f *fakeNDP) JoinGroup(g netip.Addr) error  { f.groups[g] = true; return nil }
func (f *fakeNDP) LeaveGroup(g netip.Addr) error { delete(f.groups, g); return nil }
func (f *fakeNDP) Close() error                  { return nil }

func TestNDPResponder(t *testing.T) {
	vip := netip.MustParseAddr("2001:db8::200")
	client := netip.MustParseAddr("2001:db8::9")
	tests := []struct {
		name      string
		msg       ndp.Message
		src       netip.Addr
		want      []string
		conflicts []string
	}{
		{name: "solicitation for our address",
			msg:  &ndp.NeighborSolicitation{TargetAddress: vip, Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: clientMAC}}},
			src:  client,
			want: []string{"2001:db8::9 NA 2001:db8::200 mac 02:00:00:00:00:01 solicited override"}},
		{name: "duplicate address detection is answered to all nodes",
			msg:  &ndp.NeighborSolicitation{TargetAddress: vip},
			src:  netip.IPv6Unspecified(),
			want: []string{"ff02::1 NA 2001:db8::200 mac 02:00:00:00:00:01 override"}},
		{name: "duplicate address detection, the source zoned as the socket reads it",
			msg:  &ndp.NeighborSolicitation{TargetAddress: vip},
			src:  netip.IPv6Unspecified().WithZone("eth0"),
			want: []string{"ff02::1 NA 2001:db8::200 mac 02:00:00:00:00:01 override"}},
		{name: "other target ignored",
			msg: &ndp.NeighborSolicitation{TargetAddress: netip.MustParseAddr("2001:db8::201")}, src: client},
		{name: "another MAC advertising our address",
			msg:       &ndp.NeighborAdvertisement{TargetAddress: vip, Override: true, Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: rogueMAC}}},
			src:       client,
			conflicts: []string{"2001:db8::200 02:00:00:00:00:ad"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := &fakeNDP{groups: map[netip.Addr]bool{}}
			h := newFakeHandler(vip.String())
			r := newNDPResponder("eth0", ourMAC, conn, h)
			if err := r.handle(tc.msg, tc.src, time.Now()); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, conn.sent); diff != "" {
				t.Errorf("sent (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.conflicts, h.conflicts); diff != "" {
				t.Errorf("conflicts (-want +got):\n%s", diff)
			}
		})
	}
}

// A reply that cannot be sent to this requester (off the link, say) is
// dropped and the responder goes on; only an interface that is gone stops
// it.
func TestReplyFailures(t *testing.T) {
	vip4, vip6 := netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("2001:db8::200")
	tests := []struct {
		err  error
		stop bool
	}{
		{syscall.ENETUNREACH, false},
		{syscall.EHOSTUNREACH, false},
		{syscall.EACCES, false},
		{syscall.EINVAL, false},
		{syscall.ENETDOWN, true},
		{syscall.ENODEV, true},
		{syscall.ENXIO, true},
		{net.ErrClosed, true},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			wrapped := &net.OpError{Op: "write", Net: "ip", Err: os.NewSyscallError("sendmsg", tc.err)}
			nc := &fakeNDP{groups: map[netip.Addr]bool{}, err: wrapped}
			nr := newNDPResponder("eth0", ourMAC, nc, newFakeHandler(vip6.String()))
			ndpErr := nr.handle(&ndp.NeighborSolicitation{TargetAddress: vip6}, netip.MustParseAddr("2001:db8:1::9"), time.Now())
			ac := newMemConn()
			ac.err = wrapped
			ar := newARPResponder("eth0", ourMAC, ac, newFakeHandler(vip4.String()))
			arpErr := ar.handle(arpFrame(t, arp.OperationRequest, clientMAC, "192.0.2.9", ethernet.Broadcast, vip4.String()), time.Now())
			for proto, err := range map[string]error{"NDP": ndpErr, "ARP": arpErr} {
				if (err != nil) != tc.stop {
					t.Errorf("%s reply failing with %v: responder error %v, want stop=%v", proto, tc.err, err, tc.stop)
				}
			}
		})
	}
}

func TestNDPWatchAndGratuitous(t *testing.T) {
	conn := &fakeNDP{groups: map[netip.Addr]bool{}}
	r := newNDPResponder("eth0", ourMAC, conn, newFakeHandler())
	vip := netip.MustParseAddr("2001:db8::1:200")
	if err := r.watch(vip); err != nil {
		t.Fatal(err)
	}
	if !conn.groups[netip.MustParseAddr("ff02::1:ff01:200")] {
		t.Errorf("joined %v, want the solicited-node group ff02::1:ff01:200", conn.groups)
	}
	if err := r.gratuitous(vip); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ff02::1 NA 2001:db8::1:200 mac 02:00:00:00:00:01 override"}, conn.sent); diff != "" {
		t.Error(diff)
	}
	if err := r.unwatch(vip); err != nil || len(conn.groups) != 0 {
		t.Errorf("unwatch: %v, groups %v", err, conn.groups)
	}
}

// FuzzNDPHandle parses arbitrary ICMPv6 payloads as NDP and hands them to the
// responder: it must never panic and only ever send advertisements for the
// address it owns.
func FuzzNDPHandle(f *testing.F) {
	vip := netip.MustParseAddr("2001:db8::200")
	ns, _ := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: vip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: clientMAC}}})
	f.Add(ns)
	na, _ := ndp.MarshalMessage(&ndp.NeighborAdvertisement{TargetAddress: vip,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: rogueMAC}}})
	f.Add(na)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ndp.ParseMessage(b)
		if err != nil {
			return
		}
		conn := &fakeNDP{groups: map[netip.Addr]bool{}}
		r := newNDPResponder("eth0", ourMAC, conn, newFakeHandler(vip.String()))
		if err := r.handle(m, netip.MustParseAddr("2001:db8::9"), time.Now()); err != nil {
			t.Fatal(err)
		}
		for _, s := range conn.sent {
			if !strings.Contains(s, " NA 2001:db8::200 ") {
				t.Fatalf("sent %q", s)
			}
		}
	})
}
