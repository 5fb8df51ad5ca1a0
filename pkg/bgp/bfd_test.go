package bgp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/bfd"
	"github.com/microk8s-metallb/metallb/pkg/routes"
)

// fakeBFD records what the Manager asks of its BFD server into rec.
type fakeBFD struct {
	rec    *recorder
	notify func(bfd.Event)
	done   chan struct{}
}

func (f *fakeBFD) Set(peers []bfd.Peer) error {
	for _, p := range peers {
		f.rec.calls = append(f.rec.calls, fmt.Sprintf("bfd %s %v/%v x%d", p.Addr, p.Config.DesiredMinTx, p.Config.RequiredMinRx, p.Config.DetectMult))
	}
	return nil
}
func (f *fakeBFD) Sessions() []bfd.Status    { return nil }
func (f *fakeBFD) Done() <-chan struct{}     { return f.done }
func (f *fakeBFD) Dropped() (uint64, uint64) { return 0, 0 }

func TestManagerRunsBFDBesideTheSessions(t *testing.T) {
	rec := &recorder{}
	var srv *fakeBFD
	m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)), rec)
	m.ListenBFD = func(ctx context.Context, _ *slog.Logger, notify func(bfd.Event)) (BFDServer, error) {
		rec.calls = append(rec.calls, "bfd listen")
		srv = &fakeBFD{rec: rec, notify: notify, done: make(chan struct{})}
		go func() { <-ctx.Done(); rec.calls = append(rec.calls, "bfd admin-down"); close(srv.done) }()
		return srv, nil
	}
	var seen []bfd.Event
	m.OnBFD = func(ev bfd.Event) { seen = append(seen, ev) }
	ctx := context.Background()
	rid := netip.MustParseAddr("198.51.100.11")
	fast := routes.BFD{Profile: "fast", ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond, DetectMultiplier: 3}
	plain := Peer{Address: netip.MustParseAddr("198.51.100.254"), Port: 179, ASN: 64500, MyASN: 64500, HoldTime: 3 * time.Second}
	withBFD := plain
	withBFD.BFD = fast
	step := func(peers []Peer, want ...string) {
		t.Helper()
		rec.calls = nil
		if err := m.Set(ctx, rid, peers, nil); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, rec.calls); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	}
	// No profile: no BFD server, port 3784 stays free.
	step([]Peer{plain}, "start 198.51.100.11", "add-peer 198.51.100.254")
	// A profile added: the BGP session stays, BFD starts beside it.
	step([]Peer{withBFD}, "bfd listen", "bfd 198.51.100.254 100ms/100ms x3")
	// A profile edit: applied to the BFD session, the BGP session stays.
	slower := withBFD
	slower.BFD.ReceiveInterval, slower.BFD.DetectMultiplier = 300*time.Millisecond, 5
	step([]Peer{slower}, "bfd 198.51.100.254 100ms/300ms x5")

	// BFD Down closes the BGP session at once; other changes only tell.
	rec.calls = nil
	srv.notify(bfd.Event{Peer: plain.Address, Change: bfd.Change{From: bfd.Init, To: bfd.Up}})
	srv.notify(bfd.Event{Peer: plain.Address, Change: bfd.Change{From: bfd.Up, To: bfd.Down, Diag: bfd.DiagTimeExpired}})
	if diff := cmp.Diff([]string{"path-down 198.51.100.254"}, rec.calls); diff != "" {
		t.Errorf("calls on BFD changes (-want +got):\n%s", diff)
	}
	if len(seen) != 2 {
		t.Errorf("OnBFD got %v, want both changes", seen)
	}

	// The profile removed: BFD stops (AdminDown), the session stays.
	step([]Peer{plain}, "bfd admin-down")
	// Stop: the BGP sessions first (Cease), then BFD.
	step([]Peer{withBFD}, "bfd listen", "bfd 198.51.100.254 100ms/100ms x3")
	step(nil, "stop", "bfd admin-down")
}

// dynamicASN external: the session takes any AS from the router's OPEN
// but this side's own; internal is the parser's ASN = MyASN.
func TestParseOpenDynamicExternal(t *testing.T) {
	rid := netip.MustParseAddr("198.51.100.11")
	open := func(asn uint32) []byte {
		t.Helper()
		m := openMsg(Peer{MyASN: asn, HoldTime: 3 * time.Second}, netip.MustParseAddr("198.51.100.254"), false)
		b, err := m.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return b[headerLen:]
	}
	p := Peer{Address: netip.MustParseAddr("198.51.100.254"), ASN: 0, MyASN: 64500, HoldTime: 3 * time.Second}
	for _, tc := range []struct {
		router uint32
		ok     bool
	}{{64501, true}, {4200000000, true}, {64500, false}} {
		c, err := parseOpen(open(tc.router), p, rid)
		if (err == nil) != tc.ok || (tc.ok && c.asn != tc.router) {
			t.Errorf("router AS %d: caps AS %d, error %v; want ok %v", tc.router, c.asn, err, tc.ok)
		}
	}
}
