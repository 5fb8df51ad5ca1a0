package bfd

import "time"

// Config is what one side of a session asks for: a BFD profile's timers.
type Config struct {
	DesiredMinTx  time.Duration // the transmit interval wanted once Up
	RequiredMinRx time.Duration // the fastest this side accepts packets
	DetectMult    uint8         // packets missed before the session goes Down
	Passive       bool          // send nothing until the peer has spoken
}

// SlowTx is the transmit interval while a session is not Up (RFC 5880
// section 6.8.3: not less than one second).
const SlowTx = time.Second

// Change is a session state transition; the zero Change is none.
type Change struct {
	From, To State
	Diag     Diag // the local diagnostic after the transition
}

// Changed reports whether the state changed.
func (c Change) Changed() bool { return c.From != c.To }

// WentDown reports whether a session that was Up is not any more: the
// moment its client (BGP) must act (RFC 5882).
func (c Change) WentDown() bool { return c.From == Up && c.To != Up }

// Session is one BFD session in asynchronous mode (RFC 5880), without the
// echo function or authentication, as a pure state machine: the caller
// feeds it packets that passed Parse and the time, sends the packets it
// returns, and wakes it at Next. It keeps no clock and opens no socket.
type Session struct {
	cfg  Config
	rand func() float64 // in [0, 1), for the transmit jitter

	state, remoteState      State
	diag                    Diag
	localDiscr, remoteDiscr uint32
	remoteDemand            bool

	// bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval as sent, and
	// the values in force: during a Poll Sequence an increased transmit
	// interval and a decreased receive interval wait for the Final (section
	// 6.8.3), so the peer never sees a rate it has not acknowledged.
	desiredMinTx, requiredMinRx time.Duration
	txInForce, rxInForce        time.Duration
	remoteMinRx, remoteMinTx    time.Duration
	remoteMult                  uint8

	polling   bool // sending P until a packet with F arrives
	owesFinal bool // a P arrived: answer with F at once
	lastTx    time.Time
	nextTx    time.Time
	detectAt  time.Time // zero: nothing heard within a detection time
}

// NewSession returns a Down session with local discriminator discr (unique
// and non-zero), its first packet due at now (unless passive).
func NewSession(cfg Config, discr uint32, rand func() float64, now time.Time) *Session {
	s := &Session{cfg: cfg, rand: rand, state: Down, remoteState: Down, localDiscr: discr,
		requiredMinRx: cfg.RequiredMinRx, rxInForce: cfg.RequiredMinRx,
		remoteMinRx: time.Microsecond, nextTx: now}
	s.desiredMinTx = max(SlowTx, cfg.DesiredMinTx)
	s.txInForce = s.desiredMinTx
	return s
}

// State returns the local session state.
func (s *Session) State() State { return s.state }

// RemoteState returns the state the peer last reported.
func (s *Session) RemoteState() State { return s.remoteState }

// Diag returns the local diagnostic (why the session last left Up).
func (s *Session) Diag() Diag { return s.diag }

// LocalDiscr returns this side's discriminator.
func (s *Session) LocalDiscr() uint32 { return s.localDiscr }

// RemoteDiscr returns the peer's discriminator (0 until heard, and again
// after a detection time of silence).
func (s *Session) RemoteDiscr() uint32 { return s.remoteDiscr }

// TxInterval is the negotiated transmit interval, before jitter.
func (s *Session) TxInterval() time.Duration { return max(s.txInForce, s.remoteMinRx) }

// DetectTime is how long silence lasts before the session goes Down: the
// peer's multiplier times the larger of the interval this side accepts
// and the one the peer wants to send at (section 6.8.4).
func (s *Session) DetectTime() time.Duration {
	return time.Duration(s.remoteMult) * max(s.rxInForce, s.remoteMinTx)
}

// Receive takes a packet that passed Parse and came from this session's
// peer, at now (RFC 5880 section 6.8.6).
func (s *Session) Receive(now time.Time, p Packet) Change {
	if p.YourDiscr != 0 && p.YourDiscr != s.localDiscr {
		return Change{From: s.state, To: s.state, Diag: s.diag}
	}
	oldTx := s.TxInterval()
	s.remoteDiscr, s.remoteState, s.remoteDemand = p.MyDiscr, p.State, p.Demand
	s.remoteMinRx, s.remoteMinTx, s.remoteMult = p.RequiredMinRx, p.DesiredMinTx, p.DetectMult
	if p.Final && s.polling {
		s.polling = false
		s.txInForce, s.rxInForce = s.desiredMinTx, s.requiredMinRx
	}
	s.detectAt = now.Add(s.DetectTime())
	from := s.state
	if s.state == AdminDown {
		return Change{From: from, To: from, Diag: s.diag}
	}
	switch {
	case p.State == AdminDown:
		if s.state != Down {
			s.down(now, DiagNeighborDown)
		}
	case s.state == Down && p.State == Down:
		s.state = Init
	case s.state == Down && p.State == Init, s.state == Init && (p.State == Init || p.State == Up):
		s.up(now)
	case s.state == Up && p.State == Down:
		s.down(now, DiagNeighborDown)
	}
	if p.Poll {
		s.owesFinal = true
	}
	if s.TxInterval() != oldTx {
		s.reschedule(now)
	}
	return Change{From: from, To: s.state, Diag: s.diag}
}

// up enters Up and asks for the configured rate, a Poll Sequence telling
// the peer (the transmit interval drops at once: a decrease needs no wait).
func (s *Session) up(now time.Time) {
	s.state = Up
	s.setDesiredMinTx(now, s.cfg.DesiredMinTx)
}

// down leaves Up or Init, and goes back to the slow rate.
func (s *Session) down(now time.Time, d Diag) {
	s.state, s.diag = Down, d
	s.setDesiredMinTx(now, max(SlowTx, s.cfg.DesiredMinTx))
}

func (s *Session) setDesiredMinTx(now time.Time, v time.Duration) {
	if v == s.desiredMinTx {
		return
	}
	old := s.TxInterval()
	s.desiredMinTx, s.polling = v, true
	if s.state != Up || v < s.txInForce {
		s.txInForce = v
	}
	if s.TxInterval() != old {
		s.reschedule(now)
	}
}

// Reconfigure applies a changed profile to a live session, by a Poll
// Sequence (section 6.8.3): an edit never takes the session down.
func (s *Session) Reconfigure(now time.Time, cfg Config) {
	s.cfg = cfg
	if cfg.RequiredMinRx != s.requiredMinRx {
		s.requiredMinRx, s.polling = cfg.RequiredMinRx, true
		if s.state != Up || cfg.RequiredMinRx > s.rxInForce {
			s.rxInForce = cfg.RequiredMinRx
		}
	}
	if s.state == Up {
		s.setDesiredMinTx(now, cfg.DesiredMinTx)
	} else {
		s.setDesiredMinTx(now, max(SlowTx, cfg.DesiredMinTx))
	}
}

// reschedule moves the next periodic packet to one jittered interval
// after the last one, at the new rate: a peer that asks for a faster rate
// gets it now, not after the slow interval already scheduled (else its
// shorter detection time runs out first).
func (s *Session) reschedule(now time.Time) {
	if s.lastTx.IsZero() {
		s.nextTx = now
		return
	}
	s.nextTx = s.lastTx.Add(s.jitter(s.TxInterval()))
	if s.nextTx.Before(now) {
		s.nextTx = now
	}
}

// jitter shortens an interval by 0-25 %, or 10-25 % with a detect
// multiplier of 1 (section 6.8.7).
func (s *Session) jitter(d time.Duration) time.Duration {
	if s.cfg.DetectMult == 1 {
		return time.Duration(float64(d) * (0.9 - 0.15*s.rand()))
	}
	return time.Duration(float64(d) * (1 - 0.25*s.rand()))
}

// periodic reports whether periodic packets go out now (section 6.8.7).
func (s *Session) periodic() bool {
	switch {
	case s.cfg.Passive && s.remoteDiscr == 0:
		return false
	case s.remoteMinRx == 0:
		return false
	case s.remoteDemand && s.state == Up && s.remoteState == Up:
		return false
	}
	return true
}

// Next returns when Advance has something to do: now when a Final is
// owed, zero when nothing is until a packet arrives.
func (s *Session) Next(now time.Time) time.Time {
	if s.owesFinal {
		return now
	}
	t := s.detectAt
	if s.periodic() && (t.IsZero() || s.nextTx.Before(t)) {
		t = s.nextTx
	}
	return t
}

// Advance runs what is due at now: the detection time, an owed Final and
// the periodic packet. It returns the packets to send, in order.
func (s *Session) Advance(now time.Time) ([]Packet, Change) {
	ch := Change{From: s.state, To: s.state, Diag: s.diag}
	if !s.detectAt.IsZero() && !now.Before(s.detectAt) {
		s.detectAt = time.Time{}
		if s.state == Init || s.state == Up {
			s.down(now, DiagTimeExpired)
		}
		s.remoteDiscr, s.remoteState = 0, Down
		ch.To, ch.Diag = s.state, s.diag
	}
	var out []Packet
	if s.owesFinal {
		s.owesFinal = false
		p := s.packet()
		p.Poll, p.Final = false, true
		out = append(out, p)
	}
	if s.periodic() && !now.Before(s.nextTx) {
		out = append(out, s.packet())
		s.lastTx = now
		s.nextTx = now.Add(s.jitter(s.TxInterval()))
	}
	return out, ch
}

// Shutdown takes the session AdminDown (section 6.8.16) and returns the
// packet that tells the peer, so that it goes Down at once instead of
// after its detection time.
func (s *Session) Shutdown() (Packet, Change) {
	ch := Change{From: s.state, To: AdminDown, Diag: DiagAdminDown}
	s.state, s.diag = AdminDown, DiagAdminDown
	return s.packet(), ch
}

// packet is the Control packet this side sends now (section 6.8.7).
func (s *Session) packet() Packet {
	return Packet{Diag: s.diag, State: s.state, Poll: s.polling, DetectMult: s.cfg.DetectMult,
		MyDiscr: s.localDiscr, YourDiscr: s.remoteDiscr,
		DesiredMinTx: s.desiredMinTx, RequiredMinRx: s.requiredMinRx}
}
