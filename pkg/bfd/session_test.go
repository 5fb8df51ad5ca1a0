package bfd

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Unix(1_000_000, 0)

var fast = Config{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}

// pair is two sessions over a simulated link with a one-way delay; the
// clock is virtual, so a run of minutes takes microseconds.
type pair struct {
	t       *testing.T
	s       [2]*Session
	now     time.Time
	delay   time.Duration
	cut     bool
	flights []flight
	changes []timedChange
	sent    [2]int
}

type flight struct {
	at time.Time
	to int
	p  Packet
}

type timedChange struct {
	at  time.Duration // since t0
	who int
	ch  Change
}

func newPair(t *testing.T, a, b Config) *pair {
	r := rand.New(rand.NewPCG(1, 2))
	return &pair{t: t, now: t0, delay: time.Millisecond,
		s: [2]*Session{NewSession(a, 11, r.Float64, t0), NewSession(b, 22, r.Float64, t0)}}
}

// run moves the clock to until, delivering packets and running timers.
func (p *pair) run(until time.Time) {
	for {
		next, what := until, -1
		for i, s := range p.s {
			if n := s.Next(p.now); !n.IsZero() && n.Before(next) {
				next, what = n, i
			}
		}
		fi := -1
		for i, f := range p.flights {
			if f.at.Before(next) || (f.at.Equal(next) && what < 0) {
				next, fi, what = f.at, i, -1
			}
		}
		if next.After(until) || (what < 0 && fi < 0) {
			p.now = until
			return
		}
		p.now = next
		if fi >= 0 {
			f := p.flights[fi]
			p.flights = append(p.flights[:fi], p.flights[fi+1:]...)
			p.record(f.to, p.s[f.to].Receive(p.now, p.wire(f.p)))
			what = f.to
		}
		out, ch := p.s[what].Advance(p.now)
		p.record(what, ch)
		for _, pk := range out {
			p.sent[what]++
			if !p.cut {
				p.flights = append(p.flights, flight{at: p.now.Add(p.delay), to: 1 - what, p: pk})
			}
		}
	}
}

// wire sends a packet through the codec, as the socket does.
func (p *pair) wire(pk Packet) Packet {
	b, err := pk.Append(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		p.t.Fatalf("a session sent a packet Parse refuses: %v (%+v)", err, pk)
	}
	return got
}

func (p *pair) record(who int, ch Change) {
	if ch.Changed() {
		p.changes = append(p.changes, timedChange{at: p.now.Sub(t0), who: who, ch: ch})
	}
}

func TestSessionsComeUpAndSpeedUp(t *testing.T) {
	p := newPair(t, fast, fast)
	p.run(t0.Add(5 * time.Second))
	for i, s := range p.s {
		if s.State() != Up || s.TxInterval() != 100*time.Millisecond || s.DetectTime() != 300*time.Millisecond || s.polling {
			t.Errorf("session %d: %v, tx %v, detect %v, polling %v", i, s.State(), s.TxInterval(), s.DetectTime(), s.polling)
		}
	}
	up := p.changes[len(p.changes)-1].at
	if len(p.changes) != 4 || up > 1100*time.Millisecond {
		t.Errorf("changes %+v: want Down→Init→Up on both within 1.1 s", p.changes)
	}
	// Ten seconds Up: about 10/(0.875*0.1) packets each way, no change.
	before, n := p.sent, len(p.changes)
	p.run(p.now.Add(10 * time.Second))
	for i := range p.s {
		if got := p.sent[i] - before[i]; got < 100 || got > 134 {
			t.Errorf("session %d sent %d packets in 10 s at 100 ms with 0-25%% jitter", i, got)
		}
	}
	if len(p.changes) != n {
		t.Errorf("changes while Up: %+v", p.changes[n:])
	}
}

func TestLinkCutDetectedWithinDetectTime(t *testing.T) {
	p := newPair(t, fast, fast)
	p.run(t0.Add(5 * time.Second))
	cut := p.now
	p.cut, p.flights = true, nil
	p.run(cut.Add(2 * time.Second))
	for who := range 2 {
		var got *timedChange
		for i, c := range p.changes {
			if c.who == who && c.ch.WentDown() {
				got = &p.changes[i]
			}
		}
		if got == nil {
			t.Fatalf("session %d never went down: %+v", who, p.changes)
		}
		took := t0.Add(got.at).Sub(cut)
		if took > 300*time.Millisecond || got.ch.Diag != DiagTimeExpired || got.ch.To != Down {
			t.Errorf("session %d: %+v after %v; want Down, detection time expired, within 300 ms", who, got.ch, took)
		}
		if p.s[who].TxInterval() != SlowTx || p.s[who].RemoteDiscr() != 0 {
			t.Errorf("session %d after the cut: tx %v, remote discriminator %d", who, p.s[who].TxInterval(), p.s[who].RemoteDiscr())
		}
	}
	// The link back: Up again, at the fast rate.
	p.cut = false
	p.run(p.now.Add(5 * time.Second))
	for i, s := range p.s {
		if s.State() != Up || s.TxInterval() != 100*time.Millisecond {
			t.Errorf("session %d after the link came back: %v, tx %v", i, s.State(), s.TxInterval())
		}
	}
}

func TestShutdownTakesThePeerDownAtOnce(t *testing.T) {
	p := newPair(t, fast, fast)
	p.run(t0.Add(5 * time.Second))
	pk, ch := p.s[0].Shutdown()
	if diff := cmp.Diff(Change{From: Up, To: AdminDown, Diag: DiagAdminDown}, ch); diff != "" {
		t.Error(diff)
	}
	got := p.s[1].Receive(p.now, p.wire(pk))
	if diff := cmp.Diff(Change{From: Up, To: Down, Diag: DiagNeighborDown}, got); diff != "" {
		t.Error(diff)
	}
	// AdminDown ignores what the peer sends.
	if ch := p.s[0].Receive(p.now, Packet{State: Init, DetectMult: 3, MyDiscr: 22, YourDiscr: 11}); ch.Changed() {
		t.Errorf("AdminDown session changed: %+v", ch)
	}
}

// TestReception walks RFC 5880 section 6.8.6's state table.
func TestReception(t *testing.T) {
	for _, tc := range []struct {
		name        string
		local, recv State
		want        State
		diag        Diag
	}{
		{"down hears down", Down, Down, Init, DiagNone},
		{"down hears init", Down, Init, Up, DiagNone},
		{"down hears up: stays down", Down, Up, Down, DiagNone},
		{"down hears admindown", Down, AdminDown, Down, DiagNone},
		{"init hears down: stays", Init, Down, Init, DiagNone},
		{"init hears init", Init, Init, Up, DiagNone},
		{"init hears up", Init, Up, Up, DiagNone},
		{"init hears admindown", Init, AdminDown, Down, DiagNeighborDown},
		{"up hears down", Up, Down, Down, DiagNeighborDown},
		{"up hears init: stays", Up, Init, Up, DiagNone},
		{"up hears up", Up, Up, Up, DiagNone},
		{"up hears admindown", Up, AdminDown, Down, DiagNeighborDown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSession(fast, 11, func() float64 { return 0 }, t0)
			s.state = tc.local
			your := uint32(11)
			if tc.recv == Down || tc.recv == AdminDown {
				your = 0
			}
			got := s.Receive(t0, Packet{State: tc.recv, DetectMult: 3, MyDiscr: 22, YourDiscr: your, DesiredMinTx: time.Second, RequiredMinRx: time.Second})
			if diff := cmp.Diff(Change{From: tc.local, To: tc.want, Diag: tc.diag}, got); diff != "" {
				t.Error(diff)
			}
			if s.RemoteDiscr() != 22 {
				t.Errorf("remote discriminator %d, want 22", s.RemoteDiscr())
			}
		})
	}
}

func TestForeignDiscriminatorIgnored(t *testing.T) {
	s := NewSession(fast, 11, func() float64 { return 0 }, t0)
	if ch := s.Receive(t0, Packet{State: Init, DetectMult: 3, MyDiscr: 22, YourDiscr: 99}); ch.Changed() || s.RemoteDiscr() != 0 {
		t.Errorf("a packet for discriminator 99 changed session 11: %+v", ch)
	}
}

func TestJitter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mult   uint8
		r      float64
		wantMs float64
	}{
		{"none drawn", 3, 0, 100},
		{"most drawn", 3, 0.999999, 75},
		{"detect multiplier 1: at most 90 %", 1, 0, 90},
		{"detect multiplier 1: at least 75 %", 1, 0.999999, 75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSession(Config{DetectMult: tc.mult}, 1, func() float64 { return tc.r }, t0)
			got := float64(s.jitter(100*time.Millisecond)) / float64(time.Millisecond)
			if got < tc.wantMs-0.01 || got > tc.wantMs+0.01 {
				t.Errorf("jittered 100 ms: %.3f ms, want %.1f", got, tc.wantMs)
			}
		})
	}
}

func TestPassiveWaitsForThePeer(t *testing.T) {
	passive := fast
	passive.Passive = true
	s := NewSession(passive, 11, func() float64 { return 0 }, t0)
	if out, _ := s.Advance(t0.Add(10 * time.Second)); len(out) != 0 || !s.Next(t0).IsZero() {
		t.Fatalf("a passive session sent %d packets before hearing from its peer", len(out))
	}
	p := newPair(t, passive, fast)
	p.run(t0.Add(5 * time.Second))
	if p.s[0].State() != Up || p.s[1].State() != Up {
		t.Errorf("passive and active: %v and %v, want Up", p.s[0].State(), p.s[1].State())
	}
}

// TestPeerSpeedsUp: a peer that asks for packets faster (as FRR does once
// Up, from 1 s to 100 ms) gets the next one at the new rate, not after the
// slow interval already scheduled, which would outlast its detection time.
func TestPeerSpeedsUp(t *testing.T) {
	s := NewSession(fast, 11, func() float64 { return 0 }, t0)
	s.Receive(t0, Packet{State: Down, DetectMult: 3, MyDiscr: 22, DesiredMinTx: time.Second, RequiredMinRx: time.Second})
	s.Advance(t0) // sends Init, next in 1 s
	s.Receive(t0.Add(10*time.Millisecond), Packet{State: Up, DetectMult: 3, MyDiscr: 22, YourDiscr: 11, DesiredMinTx: time.Second, RequiredMinRx: time.Second})
	if s.State() != Up {
		t.Fatalf("state %v", s.State())
	}
	at := t0.Add(20 * time.Millisecond)
	s.Receive(at, Packet{State: Up, Poll: true, DetectMult: 3, MyDiscr: 22, YourDiscr: 11, DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond})
	if next := s.Next(at); !next.Equal(at) {
		t.Errorf("a Poll owes a Final at once; next at %v", next.Sub(at))
	}
	out, _ := s.Advance(at)
	if len(out) != 1 || !out[0].Final || out[0].Poll {
		t.Fatalf("answer to a Poll: %+v", out)
	}
	if next := s.Next(at); next.Sub(t0) != 100*time.Millisecond {
		t.Errorf("next periodic packet %v after the last one, want 100 ms", next.Sub(t0))
	}
}

// TestPollHoldsASlowerRate: a wider transmit interval while Up waits for
// the peer's Final (section 6.8.3); a narrower one applies at once.
func TestPollHoldsASlowerRate(t *testing.T) {
	p := newPair(t, fast, fast)
	p.run(t0.Add(5 * time.Second))
	s := p.s[0]
	slower := fast
	slower.DesiredMinTx = 300 * time.Millisecond
	s.Reconfigure(p.now, slower)
	if s.TxInterval() != 100*time.Millisecond || !s.polling {
		t.Errorf("before the Final: tx %v, polling %v; want 100 ms, polling", s.TxInterval(), s.polling)
	}
	p.run(p.now.Add(time.Second))
	if s.TxInterval() != 300*time.Millisecond || s.polling || p.s[1].DetectTime() != 900*time.Millisecond {
		t.Errorf("after the Final: tx %v, polling %v, peer's detection time %v", s.TxInterval(), s.polling, p.s[1].DetectTime())
	}
	if s.State() != Up || p.s[1].State() != Up {
		t.Error("a profile edit took the session down")
	}
}

func TestSilenceForgetsThePeer(t *testing.T) {
	s := NewSession(fast, 11, func() float64 { return 0 }, t0)
	s.Receive(t0, Packet{State: Down, DetectMult: 3, MyDiscr: 22, DesiredMinTx: time.Second, RequiredMinRx: time.Second})
	if s.State() != Init {
		t.Fatalf("state %v", s.State())
	}
	_, ch := s.Advance(t0.Add(3 * time.Second))
	if diff := cmp.Diff(Change{From: Init, To: Down, Diag: DiagTimeExpired}, ch); diff != "" || s.RemoteDiscr() != 0 {
		t.Errorf("%s remote discriminator %d", diff, s.RemoteDiscr())
	}
}
