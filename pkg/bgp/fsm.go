package bgp

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	pkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// fsm is the state machine of one BGP connection (RFC 4271 8) from
// OpenSent to its end, without I/O: the session adapter dials, reads and
// writes, and feeds it events (Step); it answers with what to send and
// do. The clock comes with each event. Connect and Active (dialling,
// retrying) are the adapter's.
type fsm struct {
	p          Peer
	routerID   netip.Addr
	restarting bool

	state      string // opensent, openconfirm, established, closed
	caps       peerCaps
	hold, keep time.Duration // negotiated; 0: no keepalives, no hold timer
	openBy     time.Time     // the OPEN and KEEPALIVE are due by then
	keepAt     time.Time     // the next KEEPALIVE is due
}

// fsmEvent is what happened: exactly one of its fields (besides Now) says
// what.
type fsmEvent struct {
	Now time.Time
	// Start: the TCP connection is up.
	Start bool
	// Msg: a message other than an UPDATE was read (UPDATEs are scanned
	// and counted by the reader; they never change the state).
	Msg *rawMsg
	// ReadErr: the reader stopped (a malformed message, max-prefix, the
	// connection broke).
	ReadErr error
	// Tick: a deadline passed (Deadline); LastRecv is when anything was
	// last read.
	Tick     bool
	LastRecv time.Time
	// Routes: the routes to advertise changed.
	Routes bool
	// Stop: this side closes the session with a Cease of this subcode.
	Stop    bool
	Subcode uint8
}

// fsmOutput is what to do, in this order: send Send, then (on
// Established) log it, then send the route changes (Sync; Resync: every
// route again), then End-of-RIB; End ends the session with Err (the sends
// before it are best effort).
type fsmOutput struct {
	Send        []*pkt.BGPMessage
	Established bool
	Sync        bool
	Resync      bool
	EndOfRIB    bool
	End         bool
	Err         error
}

func newFSM(p Peer, routerID netip.Addr, restarting bool) *fsm {
	return &fsm{p: p, routerID: routerID, restarting: restarting, state: "idle"}
}

// Deadline is when the adapter must Tick next (zero: none).
func (f *fsm) Deadline(lastRecv time.Time) time.Time {
	switch f.state {
	case "opensent", "openconfirm":
		return f.openBy
	case "established":
		if f.keep == 0 {
			return time.Time{}
		}
		expiry := lastRecv.Add(f.hold)
		if expiry.Before(f.keepAt) {
			return expiry
		}
		return f.keepAt
	}
	return time.Time{}
}

// Step moves the machine on one event.
func (f *fsm) Step(ev fsmEvent) fsmOutput {
	if f.state == "closed" {
		return fsmOutput{End: true}
	}
	switch {
	case ev.Start:
		f.state, f.openBy = "opensent", ev.Now.Add(openWait)
		return fsmOutput{Send: []*pkt.BGPMessage{openMsg(f.p, f.routerID, f.restarting)}}
	case ev.Stop:
		return f.end(nil, pkt.NewBGPNotificationMessage(pkt.BGP_ERROR_CEASE, ev.Subcode, nil))
	case ev.ReadErr != nil:
		return f.readFailed(ev.ReadErr)
	case ev.Msg != nil:
		return f.received(*ev.Msg, ev.Now)
	case ev.Tick:
		return f.tick(ev.Now, ev.LastRecv)
	case ev.Routes:
		if f.state == "established" {
			return fsmOutput{Sync: true}
		}
	}
	return fsmOutput{}
}

func (f *fsm) received(m rawMsg, now time.Time) fsmOutput {
	if m.typ == pkt.BGP_MSG_NOTIFICATION {
		e := &notifyError{}
		if len(m.body) >= 2 {
			e.code, e.subcode = m.body[0], m.body[1]
		}
		return f.end(e)
	}
	switch {
	case f.state == "opensent" && m.typ == pkt.BGP_MSG_OPEN:
		c, err := parseOpen(m.body, f.p, f.routerID)
		if err != nil {
			return f.readFailed(err)
		}
		f.caps, f.state = c, "openconfirm"
		return fsmOutput{Send: []*pkt.BGPMessage{pkt.NewBGPKeepAliveMessage()}}
	case f.state == "openconfirm" && m.typ == pkt.BGP_MSG_KEEPALIVE:
		h, k := negotiated(f.p, f.caps.holdTime)
		f.hold, f.keep = time.Duration(h)*time.Second, time.Duration(k)*time.Second
		f.state, f.keepAt = "established", now.Add(f.keep)
		return fsmOutput{Established: true, Sync: true, EndOfRIB: f.caps.gr && f.p.GracefulRestart}
	case f.state == "established" && m.typ == pkt.BGP_MSG_KEEPALIVE:
		return fsmOutput{}
	case f.state == "established" && m.typ == pkt.BGP_MSG_ROUTE_REFRESH:
		return fsmOutput{Sync: true, Resync: true}
	}
	return f.fail(&pkt.MessageError{TypeCode: pkt.BGP_ERROR_FSM_ERROR, Message: fmt.Sprintf("unexpected message type %d in %s", m.typ, f.state)})
}

func (f *fsm) tick(now, lastRecv time.Time) fsmOutput {
	switch f.state {
	case "opensent", "openconfirm":
		if !now.Before(f.openBy) {
			return f.fail(&pkt.MessageError{TypeCode: pkt.BGP_ERROR_HOLD_TIMER_EXPIRED, Message: "no OPEN and KEEPALIVE from the router"})
		}
	case "established":
		if f.keep == 0 {
			return fsmOutput{}
		}
		if now.Sub(lastRecv) >= f.hold {
			return f.fail(&pkt.MessageError{TypeCode: pkt.BGP_ERROR_HOLD_TIMER_EXPIRED})
		}
		if !now.Before(f.keepAt) {
			f.keepAt = now.Add(f.keep)
			return fsmOutput{Send: []*pkt.BGPMessage{pkt.NewBGPKeepAliveMessage()}}
		}
	}
	return fsmOutput{}
}

// readFailed ends the session on an error of the reader or of the OPEN.
func (f *fsm) readFailed(err error) fsmOutput {
	var me *pkt.MessageError
	var mp *maxPrefixError
	switch {
	case errors.As(err, &me):
		return f.fail(me)
	case errors.Is(err, errMalformed):
		return f.fail(&pkt.MessageError{TypeCode: pkt.BGP_ERROR_UPDATE_MESSAGE_ERROR, SubTypeCode: pkt.BGP_ERROR_SUB_MALFORMED_ATTRIBUTE_LIST, Message: err.Error()})
	case errors.As(err, &mp):
		return f.end(err, pkt.NewBGPNotificationMessage(pkt.BGP_ERROR_CEASE, pkt.BGP_ERROR_SUB_MAXIMUM_NUMBER_OF_PREFIXES_REACHED, nil))
	case errors.Is(err, io.EOF):
		return f.end(errors.New("read-failed: the router closed the connection"))
	}
	return f.end(fmt.Errorf("read-failed: %w", err))
}

// fail ends the session with a NOTIFICATION saying e.
func (f *fsm) fail(e *pkt.MessageError) fsmOutput {
	return f.end(&notifyError{sent: true, code: e.TypeCode, subcode: e.SubTypeCode, detail: e.Message},
		pkt.NewBGPNotificationMessage(e.TypeCode, e.SubTypeCode, e.Data))
}

func (f *fsm) end(err error, send ...*pkt.BGPMessage) fsmOutput {
	f.state = "closed"
	return fsmOutput{Send: send, End: true, Err: err}
}
