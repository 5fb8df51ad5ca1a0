package bfd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// events records a server's changes.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) downs() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Change.WentDown() {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func state(s *Server, peer netip.Addr) (Status, bool) {
	for _, st := range s.Sessions() {
		if st.Peer == peer {
			return st, true
		}
	}
	return Status{}, false
}

// serverPair starts two servers on 127.0.0.1 and 127.0.0.2, each the other's
// peer, and waits until both sessions are Up at the fast rate.
func serverPair(t *testing.T) (a, b *Server, ea, eb *events, cancelB context.CancelFunc) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addrA, addrB := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	ea, eb = &events{}, &events{}
	ctxA, cancelA := context.WithCancel(context.Background())
	ctxB, cancelB := context.WithCancel(context.Background())
	a, err := Listen(ctxA, log, []netip.Addr{addrA}, ea.add)
	if err != nil {
		t.Fatal(err)
	}
	b, err = Listen(ctxB, log, []netip.Addr{addrB}, eb.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancelA(); cancelB(); <-a.Done(); <-b.Done() })
	if err := a.Set([]Peer{{Addr: addrB, Local: addrA, Config: fast}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set([]Peer{{Addr: addrA, Local: addrB, Config: fast}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both sessions Up at 100 ms", func() bool {
		sa, _ := state(a, addrB)
		sb, _ := state(b, addrA)
		return sa.State == Up && sb.State == Up && sa.TxInterval == 100*time.Millisecond && sb.TxInterval == 100*time.Millisecond
	})
	return a, b, ea, eb, cancelB
}

// spoof sends p to 127.0.0.1:3784 from 127.0.0.2 with the given TTL.
func spoof(t *testing.T, p Packet, ttl int) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := setsockopt(c, unix.IPPROTO_IP, unix.IP_TTL, ttl); err != nil {
		t.Fatal(err)
	}
	b, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDPAddrPort(b, netip.MustParseAddrPort("127.0.0.1:3784")); err != nil {
		t.Fatal(err)
	}
}

func TestServerPairComesUpAndStaysUp(t *testing.T) {
	a, _, ea, eb, _ := serverPair(t)
	peer := netip.MustParseAddr("127.0.0.2")
	before, _ := state(a, peer)
	time.Sleep(time.Second) // ten packets each way at the fast rate
	after, _ := state(a, peer)
	if got := after.ControlIn - before.ControlIn; got < 7 || got > 14 {
		t.Errorf("%d packets received in 1 s at 100 ms (less 0-25 %% jitter), want 7-14", got)
	}
	if ea.downs()+eb.downs() != 0 {
		t.Errorf("sessions went down while both sides ran: %v %v", ea.all, eb.all)
	}
}

// A Down packet from beyond the link (TTL 64) is dropped; the same packet
// with TTL 255 takes the session down, so the first proves the check.
func TestServerDropsSpoofedDownWithLowTTL(t *testing.T) {
	a, _, ea, _, _ := serverPair(t)
	peer := netip.MustParseAddr("127.0.0.2")
	st, _ := state(a, peer)
	forged := Packet{State: Down, Diag: DiagNeighborDown, DetectMult: 3, MyDiscr: st.RemoteDiscr, YourDiscr: st.LocalDiscr,
		DesiredMinTx: time.Second, RequiredMinRx: time.Second}

	spoof(t, forged, 64)
	waitFor(t, 2*time.Second, "the forged packet dropped", func() bool { ttl, _ := a.Dropped(); return ttl == 1 })
	if st, _ := state(a, peer); st.State != Up || ea.downs() != 0 {
		t.Fatalf("a TTL-64 Down took the session to %v (events %v)", st.State, ea.all)
	}

	spoof(t, forged, 255)
	waitFor(t, 2*time.Second, "the TTL-255 Down obeyed", func() bool { return ea.downs() == 1 })
	waitFor(t, 5*time.Second, "the session Up again", func() bool { st, _ := state(a, peer); return st.State == Up })
}

// A peer that stops gracefully sends AdminDown: the other side goes Down
// at once, with diagnostic Neighbor Signaled Session Down.
func TestServerStopSignalsAdminDown(t *testing.T) {
	a, b, ea, _, cancelB := serverPair(t)
	t0 := time.Now()
	cancelB()
	<-b.Done()
	waitFor(t, time.Second, "the session down", func() bool { return ea.downs() == 1 })
	if d := time.Since(t0); d > 150*time.Millisecond {
		t.Errorf("down after %v: an AdminDown must act at once, not after the detection time", d)
	}
	st, _ := state(a, netip.MustParseAddr("127.0.0.2"))
	if st.State != Down || st.Diag != DiagNeighborDown {
		t.Errorf("state %v diag %v, want Down, %v", st.State, st.Diag, DiagNeighborDown)
	}
}

// The wire: source port 49152-65535, TTL 255, DSCP CS6, to port 3784.
func TestServerTransmitsByRFC5881(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3), Port: Port})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := setsockopt(rx, unix.IPPROTO_IP, unix.IP_RECVTTL, 1); err != nil {
		t.Fatal(err)
	}
	if err := setsockopt(rx, unix.IPPROTO_IP, unix.IP_RECVTOS, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Listen(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); <-s.Done() }()
	if err := s.Set([]Peer{{Addr: netip.MustParseAddr("127.0.0.3"), Config: fast}}); err != nil {
		t.Fatal(err)
	}
	_ = rx.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf, oob := make([]byte, 64), make([]byte, 64)
	n, oobn, _, from, err := rx.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	ttl, _ := rxTTL(oob[:oobn])
	var tos int
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TOS && len(m.Data) > 0 {
			tos = int(m.Data[0])
		}
	}
	if from.Port() < minSrcPort || ttl != 255 || tos != tosCS6 || p.State != Down || p.DesiredMinTx != SlowTx {
		t.Errorf("from port %d, TTL %d, TOS %#x, %v at %v; want port >= %d, TTL 255, TOS %#x, Down at %v",
			from.Port(), ttl, tos, p.State, p.DesiredMinTx, minSrcPort, tosCS6, SlowTx)
	}
}
