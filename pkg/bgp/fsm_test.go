package bgp

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

var t0 = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

// at is an event at t0 + s seconds.
func at(s float64, ev fsmEvent) fsmEvent {
	ev.Now = t0.Add(time.Duration(s * float64(time.Second)))
	return ev
}

// fromRouter is a message as the reader hands it over.
func fromRouter(t *testing.T, m *pkt.BGPMessage) fsmEvent {
	t.Helper()
	b, err := m.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return fsmEvent{Msg: &rawMsg{typ: b[18], body: b[headerLen:]}}
}

// routerOpen is the router's OPEN: AS, hold time, graceful restart.
func routerOpen(t *testing.T, asn uint32, hold uint16, gr bool) fsmEvent {
	caps := []pkt.ParameterCapabilityInterface{pkt.NewCapMultiProtocol(pkt.RF_IPv4_UC), pkt.NewCapFourOctetASNumber(asn)}
	if gr {
		caps = append(caps, pkt.NewCapGracefulRestart(false, false, 120, []*pkt.CapGracefulRestartTuple{pkt.NewCapGracefulRestartTuple(pkt.RF_IPv4_UC, false)}))
	}
	return fromRouter(t, pkt.NewBGPOpenMessage(twoOctetAS(asn), hold, "192.0.2.254", []pkt.OptionParameterInterface{pkt.NewOptionParameterCapability(caps)}))
}

// summarize writes an output as one line: what is sent, then what is done.
func summarize(o fsmOutput) string {
	var parts []string
	for _, m := range o.Send {
		switch b := m.Body.(type) {
		case *pkt.BGPOpen:
			parts = append(parts, fmt.Sprintf("OPEN(AS %d, hold %d)", b.MyAS, b.HoldTime))
		case *pkt.BGPKeepAlive:
			parts = append(parts, "KEEPALIVE")
		case *pkt.BGPNotification:
			parts = append(parts, fmt.Sprintf("NOTIFICATION %d/%d", b.ErrorCode, b.ErrorSubcode))
		default:
			parts = append(parts, fmt.Sprintf("type %d", m.Header.Type))
		}
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{o.Established, "established"}, {o.Resync, "resync"}, {o.Sync, "sync"}, {o.EndOfRIB, "end-of-rib"}, {o.End, "end"}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	if o.Err != nil {
		parts = append(parts, "("+o.Err.Error()+")")
	}
	return strings.Join(parts, " ")
}

func TestFSM(t *testing.T) {
	peer := Peer{Address: netip.MustParseAddr("192.0.2.254"), Port: 179, ASN: 64500, MyASN: 64500,
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, GracefulRestart: true}
	open := routerOpen(t, 64500, 9, true)
	ka := fromRouter(t, pkt.NewBGPKeepAliveMessage())
	up := []fsmEvent{at(0, fsmEvent{Start: true}), at(0.1, open), at(0.2, ka)}
	upOut := []string{"OPEN(AS 64500, hold 9)", "KEEPALIVE", "established sync end-of-rib"}
	type step struct {
		ev   fsmEvent
		want string
	}
	steps := func(evs []fsmEvent, outs []string, more ...step) []step {
		var s []step
		for i := range evs {
			s = append(s, step{evs[i], outs[i]})
		}
		return append(s, more...)
	}
	for _, tc := range []struct {
		name  string
		peer  Peer
		steps []step
		state string // at the end
	}{
		{name: "open, established, routes, keepalives", steps: steps(up, upOut,
			step{at(1, fsmEvent{Routes: true}), "sync"},
			step{at(3.2, fsmEvent{Tick: true, LastRecv: t0.Add(time.Second)}), "KEEPALIVE"},
			step{at(4, fsmEvent{Tick: true, LastRecv: t0.Add(time.Second)}), ""}, // not due yet
			step{at(6.2, fsmEvent{Tick: true, LastRecv: t0.Add(5 * time.Second)}), "KEEPALIVE"},
			step{at(7, ka), ""},
			step{at(8, fromRouter(t, pkt.NewBGPRouteRefreshMessage(pkt.AFI_IP, 0, pkt.SAFI_UNICAST))), "resync sync"},
		), state: "established"},
		{name: "no graceful restart: no End-of-RIB", steps: []step{
			{at(0, fsmEvent{Start: true}), "OPEN(AS 64500, hold 9)"},
			{at(0.1, routerOpen(t, 64500, 9, false)), "KEEPALIVE"},
			{at(0.2, ka), "established sync"},
		}, state: "established"},
		{name: "the router's shorter hold time wins", steps: []step{
			{at(0, fsmEvent{Start: true}), "OPEN(AS 64500, hold 9)"},
			{at(0.1, routerOpen(t, 64500, 3, true)), "KEEPALIVE"},
			{at(0.2, ka), "established sync end-of-rib"},
			{at(3.2, fsmEvent{Tick: true, LastRecv: t0.Add(200 * time.Millisecond)}), "NOTIFICATION 4/0 end (notification-sent: hold timer expired)"},
		}, state: "closed"},
		{name: "hold timer expires", steps: steps(up, upOut,
			step{at(9.2, fsmEvent{Tick: true, LastRecv: t0.Add(200 * time.Millisecond)}), "NOTIFICATION 4/0 end (notification-sent: hold timer expired)"},
			step{at(10, ka), "end"}, // closed stays closed
		), state: "closed"},
		{name: "bad peer AS", steps: []step{
			{at(0, fsmEvent{Start: true}), "OPEN(AS 64500, hold 9)"},
			{at(0.1, routerOpen(t, 64999, 9, true)), "NOTIFICATION 2/2 end (notification-sent: OPEN: bad peer AS (the AS numbers on the two sides do not match: check peer-asn and my-asn): as number mismatch expected 64500, received 64999)"},
		}, state: "closed"},
		{name: "no OPEN in time", steps: []step{
			{at(0, fsmEvent{Start: true}), "OPEN(AS 64500, hold 9)"},
			{at(30, fsmEvent{Tick: true}), ""},
			{at(90, fsmEvent{Tick: true}), "NOTIFICATION 4/0 end (notification-sent: hold timer expired: no OPEN and KEEPALIVE from the router)"},
		}, state: "closed"},
		{name: "KEEPALIVE before the OPEN", steps: []step{
			{at(0, fsmEvent{Start: true}), "OPEN(AS 64500, hold 9)"},
			{at(0.1, ka), "NOTIFICATION 5/0 end (notification-sent: finite state machine error: unexpected message type 4 in opensent)"},
		}, state: "closed"},
		{name: "a second OPEN", steps: []step{
			{at(0, fsmEvent{Start: true}), "OPEN(AS 64500, hold 9)"},
			{at(0.1, open), "KEEPALIVE"},
			{at(0.2, open), "NOTIFICATION 5/0 end (notification-sent: finite state machine error: unexpected message type 1 in openconfirm)"},
		}, state: "closed"},
		{name: "the router closes with a NOTIFICATION", steps: steps(up, upOut,
			step{at(1, fromRouter(t, pkt.NewBGPNotificationMessage(pkt.BGP_ERROR_CEASE, pkt.BGP_ERROR_SUB_ADMINISTRATIVE_RESET, nil))), "end (notification-received: cease: administrative reset)"},
		), state: "closed"},
		{name: "routes before Established wait for it", steps: []step{
			{at(0, fsmEvent{Start: true}), "OPEN(AS 64500, hold 9)"},
			{at(0.05, fsmEvent{Routes: true}), ""},
		}, state: "opensent"},
		{name: "stopped: Cease", steps: steps(up, upOut,
			step{at(1, fsmEvent{Stop: true, Subcode: pkt.BGP_ERROR_SUB_PEER_DECONFIGURED}), "NOTIFICATION 6/3 end"},
		), state: "closed"},
		{name: "max-prefix", steps: steps(up, upOut,
			step{at(1, fsmEvent{ReadErr: &maxPrefixError{2001}}), "NOTIFICATION 6/1 end (max-prefix reached: 2001 prefixes received)"},
		), state: "closed"},
		{name: "a malformed UPDATE", steps: steps(up, upOut,
			step{at(1, fsmEvent{ReadErr: fmt.Errorf("withdrawn routes: %w", errMalformed)}), "NOTIFICATION 3/1 end (notification-sent: UPDATE message error (subcode 1): withdrawn routes: malformed UPDATE)"},
		), state: "closed"},
		{name: "the connection closes", steps: steps(up, upOut,
			step{at(1, fsmEvent{ReadErr: io.EOF}), "end (read-failed: the router closed the connection)"},
		), state: "closed"},
		{name: "the connection breaks", steps: steps(up, upOut,
			step{at(1, fsmEvent{ReadErr: errors.New("connection reset by peer")}), "end (read-failed: connection reset by peer)"},
		), state: "closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := peer
			if tc.peer.Address.IsValid() {
				p = tc.peer
			}
			f := newFSM(p, netip.MustParseAddr("192.0.2.1"), false)
			var want, got []string
			for _, s := range tc.steps {
				want = append(want, s.want)
				got = append(got, summarize(f.Step(s.ev)))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
			if f.state != tc.state {
				t.Errorf("state %s, want %s", f.state, tc.state)
			}
		})
	}
}

// The deadline is the OPEN's until Established, then the earlier of the
// next KEEPALIVE and the hold timer's expiry; none without keepalives.
func TestFSMDeadline(t *testing.T) {
	p := Peer{Address: netip.MustParseAddr("192.0.2.254"), ASN: 64500, MyASN: 64500, HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second}
	f := newFSM(p, netip.MustParseAddr("192.0.2.1"), false)
	f.Step(at(0, fsmEvent{Start: true}))
	if d := f.Deadline(t0); !d.Equal(t0.Add(openWait)) {
		t.Errorf("OpenSent deadline %v", d.Sub(t0))
	}
	f.Step(at(0, routerOpen(t, 64500, 9, false)))
	f.Step(at(1, fromRouter(t, pkt.NewBGPKeepAliveMessage())))
	if d := f.Deadline(t0.Add(time.Second)); !d.Equal(t0.Add(4 * time.Second)) {
		t.Errorf("Established deadline %v, want the KEEPALIVE at 4s", d.Sub(t0))
	}
	if d := f.Deadline(t0.Add(-7 * time.Second)); !d.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("deadline %v, want the hold timer's expiry at 2s", d.Sub(t0))
	}
	p.HoldTime = 0
	f = newFSM(p, netip.MustParseAddr("192.0.2.1"), false)
	f.Step(at(0, fsmEvent{Start: true}))
	f.Step(at(0, routerOpen(t, 64500, 0, false)))
	f.Step(at(0, fromRouter(t, pkt.NewBGPKeepAliveMessage())))
	if d := f.Deadline(t0); !d.IsZero() {
		t.Errorf("hold time 0: deadline %v, want none", d)
	}
}
