package bgp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// recorder is a Session that records calls.
type recorder struct{ calls []string }

func (r *recorder) Start(_ context.Context, id netip.Addr) error {
	r.calls = append(r.calls, "start "+id.String())
	return nil
}
func (r *recorder) Stop() { r.calls = append(r.calls, "stop") }
func (r *recorder) AddPeer(_ context.Context, p Peer) error {
	r.calls = append(r.calls, "add-peer "+p.Key())
	return nil
}
func (r *recorder) DeletePeer(_ context.Context, p Peer) error {
	r.calls = append(r.calls, "delete-peer "+p.Key())
	return nil
}
func (r *recorder) PathDown(a netip.Addr) { r.calls = append(r.calls, "path-down "+a.String()) }
func (r *recorder) Advertise(_ context.Context, rt Route) error {
	r.calls = append(r.calls, "advertise "+rt.Prefix.String())
	return nil
}
func (r *recorder) Withdraw(_ context.Context, p netip.Prefix) error {
	r.calls = append(r.calls, "withdraw "+p.String())
	return nil
}

func TestManagerChangesOnlyWhatChanged(t *testing.T) {
	rec := &recorder{}
	m := NewManager(slog.New(slog.NewTextHandler(io.Discard, nil)), rec)
	ctx := context.Background()
	rid := netip.MustParseAddr("198.51.100.11")
	p1 := Peer{Address: netip.MustParseAddr("198.51.100.254"), Port: 179, ASN: 64500, MyASN: 64501, HoldTime: 3 * time.Second}
	p2 := Peer{Address: netip.MustParseAddr("198.51.100.253"), Port: 179, ASN: 64500, MyASN: 64501, HoldTime: 3 * time.Second}
	r1 := Route{Prefix: netip.MustParsePrefix("203.0.113.1/32")}
	r2 := Route{Prefix: netip.MustParsePrefix("203.0.113.2/32")}
	step := func(peers []Peer, routes []Route, want ...string) {
		t.Helper()
		rec.calls = nil
		if err := m.Set(ctx, rid, peers, routes); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, rec.calls); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	}
	step([]Peer{p1, p2}, []Route{r1, r2},
		"start 198.51.100.11", "add-peer 198.51.100.253", "add-peer 198.51.100.254", "advertise 203.0.113.1/32", "advertise 203.0.113.2/32")
	step([]Peer{p1, p2}, []Route{r1, r2}) // nothing changed: nothing done
	// A community added to one route: re-advertised in place, sessions kept.
	r1c := r1
	r1c.Communities = []config.Community{{Parts: [3]uint32{64500, 1}}}
	step([]Peer{p1, p2}, []Route{r1c, r2}, "advertise 203.0.113.1/32")
	// A peer's password changes: only that session is rebuilt.
	p1pw := p1
	p1pw.Password = "secret"
	step([]Peer{p1pw, p2}, []Route{r1c}, "delete-peer 198.51.100.254", "add-peer 198.51.100.254", "withdraw 203.0.113.2/32")
	step([]Peer{p2}, []Route{r1c}, "delete-peer 198.51.100.254")
	step([]Peer{p1pw, p2}, []Route{r1c}, "add-peer 198.51.100.254")
	// The same peers in another order: nothing at all.
	step([]Peer{p2, p1pw}, []Route{r1c})
	// One peer's local AS changes, and it is now the lowest: only that
	// session is rebuilt, BGP is not restarted.
	p2as := p2
	p2as.MyASN = 64400
	step([]Peer{p1pw, p2as}, []Route{r1c}, "delete-peer 198.51.100.253", "add-peer 198.51.100.253")
	step(nil, nil, "stop")
	step(nil, nil)
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&notifyError{sent: true, code: 4}, "this side closed the session with a NOTIFICATION (notification-sent: hold timer expired)"},
		{&notifyError{code: 2, subcode: 2}, "the peer closed the session with a NOTIFICATION (notification-received: OPEN: bad peer AS (the AS numbers on the two sides do not match: check peer-asn and my-asn))"},
		{&notifyError{code: 6, subcode: 3}, "the peer closed the session with a NOTIFICATION (notification-received: cease: peer de-configured)"},
		{errors.New("read-failed: EOF"), "the TCP connection broke (read-failed: EOF)"},
	} {
		if got := explainDown(tc.err); got != tc.want {
			t.Errorf("explainDown(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if got := explainConnect(context.DeadlineExceeded, true); !strings.Contains(got, "MD5") {
		t.Errorf("timeout with a password: %q", got)
	}
	if got := explainConnect(syscall.ECONNREFUSED, false); !strings.HasPrefix(got, "connection refused") {
		t.Errorf("refused: %q", got)
	}
}
