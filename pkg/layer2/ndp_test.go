package layer2

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
)

// fakeNDP records what the responder writes and which groups it joins.
type fakeNDP struct {
	mu     sync.Mutex
	sent   []string
	groups map[netip.Addr]bool
}

func (f *fakeNDP) ReadFrom() (ndp.Message, netip.Addr, time.Time, error) {
	select {}
}
func (f *fakeNDP) WriteTo(m ndp.Message, dst netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
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
