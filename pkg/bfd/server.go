package bfd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Port is the UDP port of single-hop BFD Control packets (RFC 5881).
const Port = 3784

// The source ports of a session's packets (RFC 5881 section 4).
const (
	minSrcPort = 49152
	maxSrcPort = 65535
)

// tosCS6 is DSCP CS6 (network control) in the IPv4 TOS / IPv6 traffic
// class byte: routers queue BFD ahead of bulk traffic.
const tosCS6 = 0xc0

// Peer is one session to set up: the router's address, the local address
// its packets leave from (unset: the kernel's choice), and the timers.
type Peer struct {
	Addr   netip.Addr
	Local  netip.Addr
	Device string // bind the session to this interface or VRF device ("" none)
	Config Config
}

// Event is a session's state change, as the Server tells it.
type Event struct {
	Peer   netip.Addr
	Change Change
}

// Status is one session as seen now, for metrics and `metallb status`.
type Status struct {
	Peer                  netip.Addr
	State, RemoteState    State
	Diag                  Diag
	LocalDiscr            uint32
	RemoteDiscr           uint32
	TxInterval            time.Duration
	DetectTime            time.Duration
	ControlIn, ControlOut uint64
	UpEvents, DownEvents  uint64
}

// Server runs BFD sessions over UDP: it owns the sockets, and one
// goroutine owns every Session (run), fed by the readers and by Set.
type Server struct {
	log    *slog.Logger
	notify func(Event)
	conns  []*net.UDPConn

	in   chan received
	cmds chan func()
	done chan struct{}

	sessions map[netip.Addr]*session // owned by run
	byDiscr  map[uint32]*session     // owned by run

	droppedTTL atomic.Uint64 // packets whose TTL / hop limit was not 255
	malformed  atomic.Uint64 // packets Parse refused
}

type session struct {
	peer  Peer
	core  *Session
	tx    *net.UDPConn
	stats Status
}

type received struct {
	from netip.Addr
	pkt  Packet
}

// ErrPortInUse says that another BFD implementation holds port 3784.
var ErrPortInUse = errors.New("UDP port 3784 is taken: a BFD daemon (BIRD's or FRR's bfdd) on this node holds it; stop it, or leave BFD profiles out of the speaker's peers")

// Listen opens the receive sockets on addrs (none: every IPv4 and IPv6
// address) and runs the server until ctx ends, when every session is
// taken AdminDown so that its peer learns it at once. notify is called
// from the server's goroutine for each state change; it must not block.
func Listen(ctx context.Context, log *slog.Logger, addrs []netip.Addr, notify func(Event)) (*Server, error) {
	s := &Server{log: log, notify: notify, in: make(chan received, 256), cmds: make(chan func()),
		done: make(chan struct{}), sessions: map[netip.Addr]*session{}, byDiscr: map[uint32]*session{}}
	every := len(addrs) == 0
	if every {
		addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	}
	for _, a := range addrs {
		c, err := listenRx(a)
		if err != nil && every && a.Is6() && !errors.Is(err, ErrPortInUse) {
			log.Warn("BFD over IPv6 off: this node cannot listen on it", "error", err)
			continue
		}
		if err != nil {
			for _, c := range s.conns {
				c.Close()
			}
			return nil, err
		}
		s.conns = append(s.conns, c)
	}
	for _, c := range s.conns {
		go s.read(c)
	}
	go s.run(ctx)
	return s, nil
}

// Done is closed once the server has stopped and sent its AdminDowns.
func (s *Server) Done() <-chan struct{} { return s.done }

// Dropped returns the packets dropped for a TTL other than 255 and those
// Parse refused.
func (s *Server) Dropped() (ttl, malformed uint64) {
	return s.droppedTTL.Load(), s.malformed.Load()
}

func listenRx(a netip.Addr) (*net.UDPConn, error) {
	network := "udp4"
	if a.Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, Port)))
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen on %s: %w", netip.AddrPortFrom(a, Port), ErrPortInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("bfd: listen on %s: %w", netip.AddrPortFrom(a, Port), err)
	}
	level, opt := unix.IPPROTO_IP, unix.IP_RECVTTL
	if a.Is6() {
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT
	}
	if err := setsockopt(c, level, opt, 1); err != nil {
		c.Close()
		return nil, fmt.Errorf("bfd: ask for received TTLs on %s: %w", a, err)
	}
	return c, nil
}

func setsockopt(c *net.UDPConn, level, opt, v int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		return err
	}
	return serr
}

// read passes each packet that came with TTL 255 and parses to run. The
// kernel does not enforce a minimum TTL on UDP, so it is checked here
// (RFC 5881 section 5): a packet from beyond the link is dropped before
// it can reach a session.
func (s *Server) read(c *net.UDPConn) {
	buf := make([]byte, 512)
	oob := make([]byte, unix.CmsgSpace(4)*2)
	for {
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if ttl, ok := rxTTL(oob[:oobn]); !ok || ttl != 255 {
			s.droppedTTL.Add(1)
			continue
		}
		p, err := Parse(buf[:n])
		if err != nil {
			s.malformed.Add(1)
			continue
		}
		select {
		case s.in <- received{from: from.Addr().Unmap(), pkt: p}:
		default: // run is behind: a flood; the sessions' own packets come again
		}
	}
}

// rxTTL returns the IP_TTL or IPV6_HOPLIMIT of a datagram's control
// messages, false if there is none.
func rxTTL(oob []byte) (int, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		v4 := m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL
		v6 := m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT
		if (v4 || v6) && len(m.Data) >= 4 {
			return int(int32(binary.NativeEndian.Uint32(m.Data))), true
		}
	}
	return 0, false
}

// Set makes the sessions those of peers: new peers get a session, gone
// ones are taken AdminDown, and a changed profile is applied to a live
// session without taking it down.
func (s *Server) Set(peers []Peer) error {
	errc := make(chan error, 1)
	select {
	case s.cmds <- func() { errc <- s.set(peers) }:
		return <-errc
	case <-s.done:
		return errors.New("bfd: server stopped")
	}
}

// Sessions returns every session's status, in no particular order.
func (s *Server) Sessions() []Status {
	res := make(chan []Status, 1)
	select {
	case s.cmds <- func() {
		var out []Status
		for _, ss := range s.sessions {
			out = append(out, ss.status())
		}
		res <- out
	}:
		return <-res
	case <-s.done:
		return nil
	}
}

func (ss *session) status() Status {
	st := ss.stats
	st.Peer = ss.peer.Addr
	st.State, st.RemoteState, st.Diag = ss.core.State(), ss.core.RemoteState(), ss.core.Diag()
	st.LocalDiscr, st.RemoteDiscr = ss.core.LocalDiscr(), ss.core.RemoteDiscr()
	st.TxInterval, st.DetectTime = ss.core.TxInterval(), ss.core.DetectTime()
	return st
}

func (s *Server) set(peers []Peer) error {
	want := map[netip.Addr]Peer{}
	for _, p := range peers {
		want[p.Addr.Unmap()] = p
	}
	for addr, ss := range s.sessions {
		p, ok := want[addr]
		if ok && p.Local == ss.peer.Local && p.Device == ss.peer.Device {
			if p.Config != ss.peer.Config {
				ss.peer.Config = p.Config
				ss.core.Reconfigure(time.Now(), p.Config)
			}
			continue
		}
		s.remove(ss)
	}
	var errs []error
	for addr, p := range want {
		if _, ok := s.sessions[addr]; ok {
			continue
		}
		p.Addr = addr
		tx, err := dialTx(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		discr := s.newDiscr()
		ss := &session{peer: p, core: NewSession(p.Config, discr, rand.Float64, time.Now()), tx: tx}
		s.sessions[addr], s.byDiscr[discr] = ss, ss
		s.log.Info("BFD session added", "peer", addr, "discriminator", discr,
			"transmit", p.Config.DesiredMinTx, "receive", p.Config.RequiredMinRx, "multiplier", p.Config.DetectMult)
	}
	return errors.Join(errs...)
}

func (s *Server) newDiscr() uint32 {
	for {
		d := rand.Uint32()
		if _, taken := s.byDiscr[d]; d != 0 && !taken {
			return d
		}
	}
}

// remove takes a session AdminDown, tells the peer, and forgets it.
func (s *Server) remove(ss *session) {
	p, ch := ss.core.Shutdown()
	s.send(ss, p)
	s.report(ss, ch)
	ss.tx.Close()
	delete(s.sessions, ss.peer.Addr)
	delete(s.byDiscr, ss.core.LocalDiscr())
}

// dialTx opens a session's transmit socket: a source port in
// 49152-65535, the same for the session's life, TTL / hop limit 255 and
// DSCP CS6 (RFC 5881 sections 4 and 5).
func dialTx(p Peer) (*net.UDPConn, error) {
	network, local := "udp4", p.Local
	if p.Addr.Is6() {
		network = "udp6"
	}
	if !local.IsValid() {
		local = netip.IPv4Unspecified()
		if p.Addr.Is6() {
			local = netip.IPv6Unspecified()
		}
	}
	lc := net.ListenConfig{}
	if p.Device != "" {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), p.Device) })
			return errors.Join(err, serr)
		}
	}
	start := minSrcPort + rand.IntN(maxSrcPort-minSrcPort+1)
	for i := range maxSrcPort - minSrcPort + 1 {
		port := minSrcPort + (start-minSrcPort+i)%(maxSrcPort-minSrcPort+1)
		pc, err := lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(local, uint16(port)).String())
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bfd: socket to %s: %w", p.Addr, err)
		}
		c := pc.(*net.UDPConn)
		if err := setTxOptions(c, p.Addr.Is6()); err != nil {
			c.Close()
			return nil, fmt.Errorf("bfd: socket to %s: %w", p.Addr, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("bfd: socket to %s: no free source port in %d-%d", p.Addr, minSrcPort, maxSrcPort)
}

func setTxOptions(c *net.UDPConn, v6 bool) error {
	if v6 {
		return errors.Join(setsockopt(c, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255),
			setsockopt(c, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, tosCS6))
	}
	return errors.Join(setsockopt(c, unix.IPPROTO_IP, unix.IP_TTL, 255),
		setsockopt(c, unix.IPPROTO_IP, unix.IP_TOS, tosCS6))
}

func (s *Server) send(ss *session, p Packet) {
	b, err := p.Append(make([]byte, 0, PacketLen))
	if err != nil {
		s.log.Error("BFD packet not encoded", "peer", ss.peer.Addr, "error", err)
		return
	}
	if _, err := ss.tx.WriteToUDPAddrPort(b, netip.AddrPortFrom(ss.peer.Addr, Port)); err != nil {
		s.log.Debug("BFD packet not sent", "peer", ss.peer.Addr, "error", err)
		return
	}
	ss.stats.ControlOut++
}

func (s *Server) report(ss *session, ch Change) {
	if !ch.Changed() {
		return
	}
	switch {
	case ch.To == Up:
		ss.stats.UpEvents++
	case ch.From == Up:
		ss.stats.DownEvents++
	}
	level := slog.LevelInfo
	if ch.WentDown() {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "BFD session "+ch.To.String(), "peer", ss.peer.Addr, "from", ch.From, "diagnostic", ch.Diag)
	if s.notify != nil {
		s.notify(Event{Peer: ss.peer.Addr, Change: ch})
	}
}

// deliver matches a packet to its session (RFC 5880 section 6.8.6): by
// Your Discriminator, else by the source address, and only from the
// session's peer.
func (s *Server) deliver(now time.Time, r received) {
	var ss *session
	if r.pkt.YourDiscr != 0 {
		ss = s.byDiscr[r.pkt.YourDiscr]
	} else {
		ss = s.sessions[r.from]
	}
	if ss == nil || ss.peer.Addr != r.from {
		return
	}
	ss.stats.ControlIn++
	s.report(ss, ss.core.Receive(now, r.pkt))
}

// advance runs what is due on a session at now, and returns when it is
// next due (zero: when a packet arrives).
func (s *Server) advance(ss *session, now time.Time) time.Time {
	for range 4 { // at most a detection, a Final and a periodic packet are due
		t := ss.core.Next(now)
		if t.IsZero() || t.After(now) {
			return t
		}
		pkts, ch := ss.core.Advance(now)
		for _, p := range pkts {
			s.send(ss, p)
		}
		s.report(ss, ch)
	}
	return now
}

// run owns every session: it feeds them packets and the time, sends what
// they return, and reports their changes.
func (s *Server) run(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var next time.Time
		for _, ss := range s.sessions {
			if t := s.advance(ss, now); !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			for _, ss := range s.sessions {
				s.remove(ss)
			}
			for _, c := range s.conns {
				c.Close()
			}
			return
		case r := <-s.in:
			s.deliver(time.Now(), r)
		case f := <-s.cmds:
			f()
		case <-timer.C:
		}
	}
}
