package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"golang.org/x/sys/unix"
)

// ConnectRetry is how long the stub waits between two connection attempts.
const ConnectRetry = 2 * time.Second

// MaxPrefixRestart is how long a session closed by max-prefix stays down
// before the stub connects again.
const MaxPrefixRestart = time.Minute

// openWait bounds the OPEN and KEEPALIVE exchange of a new connection.
const openWait = 90 * time.Second

// Stub is a Session that speaks BGP itself, GoBGP's packet library encoding
// the messages: a stub router that originates this node's service prefixes
// and accepts nothing. It never listens (every session is initiated by
// this side), keeps no Adj-RIB-In (what a router sends is counted as it is
// read and dropped: a full table costs CPU for the scan and no memory), and
// so can never pass a route from one router to another.
type Stub struct {
	log *slog.Logger
	// OnMaxPrefix, when set, is told that a session was closed because the
	// router sent more prefixes than the peer's max-prefix.
	OnMaxPrefix func(p Peer, received int)

	mu       sync.Mutex
	running  bool
	routerID netip.Addr
	routes   map[netip.Prefix]Route
	peers    map[string]*peerSession
	// born is when this process started its first BGP session: sessions
	// opened within RestartTime of it say they restart (RFC 4724's R and F
	// bits), so routers keep the routes of the previous run until this one
	// sends End-of-RIB.
	born time.Time
}

// NewStub returns a stopped stub speaker.
func NewStub(log *slog.Logger) *Stub {
	return &Stub{log: log, routes: map[netip.Prefix]Route{}, peers: map[string]*peerSession{}}
}

// Start implements Session.
func (s *Stub) Start(_ context.Context, routerID netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running, s.routerID = true, routerID
	return nil
}

// Stop implements Session: every session closes with a Cease NOTIFICATION
// (administrative shutdown), so routers withdraw at once.
func (s *Stub) Stop() {
	s.mu.Lock()
	peers := s.peers
	s.running, s.peers, s.routes = false, map[string]*peerSession{}, map[netip.Prefix]Route{}
	s.mu.Unlock()
	for _, ps := range peers {
		ps.stop(pkt.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN)
	}
}

// AddPeer implements Session.
func (s *Stub) AddPeer(_ context.Context, p Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return errors.New("BGP is not running")
	}
	if _, ok := s.peers[p.Key()]; ok {
		return fmt.Errorf("peer %s exists", p)
	}
	if s.born.IsZero() {
		s.born = time.Now()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ps := &peerSession{s: s, p: p, routerID: s.routerID, restarting: time.Since(s.born) < RestartTime,
		cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1), pathDown: make(chan struct{}, 1),
		dirty: map[netip.Prefix]struct{}{}}
	ps.state.Store(stateName("idle"))
	s.peers[p.Key()] = ps
	go ps.run(ctx)
	return nil
}

// DeletePeer implements Session: the session closes with a Cease
// NOTIFICATION (peer de-configured).
func (s *Stub) DeletePeer(_ context.Context, p Peer) error {
	s.mu.Lock()
	ps, ok := s.peers[p.Key()]
	delete(s.peers, p.Key())
	s.mu.Unlock()
	if ok {
		ps.stop(pkt.BGP_ERROR_SUB_PEER_DECONFIGURED)
	}
	return nil
}

// Advertise implements Session.
func (s *Stub) Advertise(_ context.Context, r Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[r.Prefix] = r
	s.changed(r.Prefix)
	return nil
}

// Withdraw implements Session.
func (s *Stub) Withdraw(_ context.Context, prefix netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.routes, prefix)
	s.changed(prefix)
	return nil
}

// changed marks prefix for every session of its family and wakes them:
// a session's next sync looks at the prefixes changed since its last
// one, not at every route. Called with s.mu held.
func (s *Stub) changed(prefix netip.Prefix) {
	v4 := prefix.Addr().Is4()
	for _, ps := range s.peers {
		if ps.p.Address.Is4() != v4 {
			continue
		}
		ps.dirty[prefix] = struct{}{}
		select {
		case ps.wake <- struct{}{}:
		default:
		}
	}
}

// routesFor returns what a sync of peer p must look at: with all, every
// route of p's family that is for it; otherwise the prefixes changed since
// the last call, each with its route when it is still one for p (absent:
// withdrawn). Either way the changed prefixes are forgotten.
func (s *Stub) routesFor(ps *peerSession, all bool) (want map[netip.Prefix]Route, look []netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := ps.p
	want = map[netip.Prefix]Route{}
	if all {
		v4 := p.Address.Is4()
		for k, r := range s.routes {
			if k.Addr().Is4() == v4 && r.For(p) {
				want[k] = r
			}
		}
		clear(ps.dirty)
		return want, nil
	}
	look = make([]netip.Prefix, 0, len(ps.dirty))
	for k := range ps.dirty {
		look = append(look, k)
		if r, ok := s.routes[k]; ok && r.For(p) {
			want[k] = r
		}
	}
	clear(ps.dirty)
	return want, look
}

// SessionState is one session as the speaker publishes it.
type SessionState struct {
	Peer     string
	Up       bool
	Prefixes int    // advertised to the peer
	BFD      string // the BFD session's state, lower case ("": no BFD)
}

// Sessions lists the sessions and their state, by peer address.
func (s *Stub) Sessions() []SessionState {
	var out []SessionState
	for _, ps := range s.sessions() {
		out = append(out, SessionState{Peer: ps.p.Address.String(), Up: ps.up.Load(), Prefixes: int(ps.advertised.Load())})
	}
	return out
}

func (s *Stub) sessions() []*peerSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*peerSession, 0, len(s.peers))
	for _, ps := range s.peers {
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b *peerSession) int { return a.p.Address.Compare(b.p.Address) })
	return out
}

type stateName string

// peerSession runs the connection to one peer, again and again, until
// stopped.
type peerSession struct {
	s          *Stub
	p          Peer
	routerID   netip.Addr
	restarting bool
	cancel     context.CancelFunc
	done       chan struct{}
	wake       chan struct{}
	dirty      map[netip.Prefix]struct{} // changed since the last sync; guarded by s.mu
	pathDown   chan struct{}             // BFD saw the path go: end the connection
	stopCode   atomic.Uint32             // Cease subcode to send when stopped

	state      atomic.Value // stateName
	up         atomic.Bool
	advertised atomic.Int64
	updates    atomic.Uint64 // UPDATEs sent
	refused    atomic.Uint64 // prefixes received (and refused)
	lastWarn   time.Time     // last connection failure logged
}

func (ps *peerSession) stop(subcode uint8) {
	ps.stopCode.Store(uint32(subcode))
	ps.cancel()
	<-ps.done
}

func (ps *peerSession) run(ctx context.Context) {
	defer close(ps.done)
	log := ps.s.log.With("peer", ps.p.Address.String())
	for {
		ps.state.Store(stateName("connect"))
		conn, err := ps.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ps.state.Store(stateName("active"))
			if time.Since(ps.lastWarn) >= time.Minute {
				ps.lastWarn = time.Now()
				log.Warn("BGP peer unreachable", "error", err.Error(), "why", explainConnect(err, ps.p.Password != ""))
			} else {
				log.Debug("BGP connect failed", "error", err.Error())
			}
			if !sleep(ctx, ps.retry()) {
				return
			}
			continue
		}
		ps.lastWarn = time.Time{}
		wait := ps.retry()
		err = ps.session(ctx, conn, log)
		_ = conn.Close()
		wasUp := ps.up.Swap(false)
		ps.advertised.Store(0)
		ps.state.Store(stateName("idle"))
		if ctx.Err() != nil {
			return
		}
		var mp *maxPrefixError
		if errors.As(err, &mp) {
			wait = MaxPrefixRestart
			log.Error("BGP session closed: max-prefix reached", "received", mp.n, "max-prefix", ps.p.MaxPrefix,
				"why", "the router sends this speaker more prefixes than max-prefix allows; the speaker uses none of them: make the router export nothing to this node (e.g. an export filter that rejects all), or raise max-prefix",
				"retry in", wait)
			if ps.s.OnMaxPrefix != nil {
				ps.s.OnMaxPrefix(ps.p, mp.n)
			}
		} else if wasUp {
			log.Warn("BGP session down", "why", explainDown(err))
		} else {
			log.Warn("BGP session failed to open", "why", explainDown(err))
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// retry is the wait between two connection attempts: the peer's
// connectTime, else ConnectRetry.
func (ps *peerSession) retry() time.Duration {
	if ps.p.ConnectTime > 0 {
		return ps.p.ConnectTime
	}
	return ConnectRetry
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// dial opens the TCP connection: in the peer's VRF, from source-address,
// with the TCP MD5 signature option when a password is set, and TTL 1
// towards an eBGP peer unless ebgp-multihop (255).
func (ps *peerSession) dial(ctx context.Context) (net.Conn, error) {
	p := ps.p
	d := net.Dialer{Timeout: ConnectRetry}
	if p.SourceAddress.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.SourceAddress, 0))
	}
	ttl := 0
	switch {
	case p.EBGPMultiHop:
		ttl = 255
	case p.ASN != p.MyASN:
		ttl = 1
	}
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if p.VRF != "" {
				// Before connect: the route to the router is looked up in the
				// VRF's table. CAP_NET_RAW suffices (Linux 5.7+).
				if serr = unix.BindToDevice(int(fd), p.VRF); serr != nil {
					serr = fmt.Errorf("bind to VRF %s: %w", p.VRF, serr)
					return
				}
			}
			if p.Password != "" {
				if serr = setMD5(int(fd), p.Address, p.Password); serr != nil {
					return
				}
			}
			if ttl > 0 {
				if p.Address.Is4() {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
				}
			}
		})
		return errors.Join(err, serr)
	}
	return d.DialContext(ctx, "tcp", netip.AddrPortFrom(p.Address, p.Port).String())
}

// setMD5 sets the TCP MD5 signature key (RFC 2385) for segments to addr.
func setMD5(fd int, addr netip.Addr, password string) error {
	if len(password) > unix.TCP_MD5SIG_MAXKEYLEN {
		return fmt.Errorf("password longer than %d bytes", unix.TCP_MD5SIG_MAXKEYLEN)
	}
	sig := unix.TCPMD5Sig{Keylen: uint16(len(password))}
	copy(sig.Key[:], password)
	if addr.Is4() {
		sig.Addr.Family = unix.AF_INET
		a := addr.As4()
		copy(sig.Addr.Data[2:], a[:]) // sockaddr_in: port, address
	} else {
		sig.Addr.Family = unix.AF_INET6
		a := addr.As16()
		copy(sig.Addr.Data[6:], a[:]) // sockaddr_in6: port, flowinfo, address
	}
	if err := unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig); err != nil {
		return fmt.Errorf("set the TCP MD5 signature: %w", err)
	}
	return nil
}

type maxPrefixError struct{ n int }

func (e *maxPrefixError) Error() string {
	return fmt.Sprintf("max-prefix reached: %d prefixes received", e.n)
}

// session runs one connection until it ends; it returns why. It is the
// adapter of fsm: a reader goroutine (which scans UPDATEs itself, so a
// full table never reaches the machine), a timer at the machine's
// deadline, and the machine's outputs carried out.
func (ps *peerSession) session(ctx context.Context, conn net.Conn, log *slog.Logger) error {
	p := ps.p
	local, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	w := &writer{conn: conn}
	f := newFSM(p, ps.routerID, ps.restarting)

	msgs := make(chan rawMsg, 4)
	readErr := make(chan error, 1)
	var lastRecv atomic.Int64
	lastRecv.Store(time.Now().UnixNano())
	rctx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	tr := &tracker{max: p.MaxPrefix}
	go func() {
		buf := make([]byte, maxMsgLen)
		for {
			m, err := readMsg(conn, buf)
			if err != nil {
				readErr <- err
				return
			}
			lastRecv.Store(time.Now().UnixNano())
			if m.typ == pkt.BGP_MSG_UPDATE {
				announced, n, err := tr.update(m.body)
				ps.refused.Add(uint64(announced))
				if err != nil {
					readErr <- err
					return
				}
				if n > 0 {
					readErr <- &maxPrefixError{n}
					return
				}
			}
			if m.typ == pkt.BGP_MSG_UPDATE || m.typ == pkt.BGP_MSG_KEEPALIVE && ps.up.Load() {
				continue // the hold timer is all a KEEPALIVE is for once established
			}
			m.body = slices.Clone(m.body)
			select {
			case msgs <- m:
			case <-rctx.Done():
				return
			}
		}
	}()

	rf := routeFamily(p.Address)
	sent := map[netip.Prefix]Route{}
	all := true // the first sync of a connection compares every route
	// do carries out one output; done: the session is over, with err.
	do := func(o fsmOutput) (done bool, err error) {
		for _, m := range o.Send {
			if err := w.send(m); err != nil && !o.End {
				return true, err
			}
		}
		if o.End {
			return true, o.Err
		}
		if o.Established {
			ps.up.Store(true)
			log.Info("BGP session established", "peer-asn", f.caps.asn, "router-id", f.caps.routerID.String(),
				"hold-time", f.hold, "graceful-restart", p.GracefulRestart && f.caps.gr, "restarting", ps.restarting && p.GracefulRestart)
			if !f.caps.carries(rf) {
				log.Warn("the router does not take this family on the session: nothing is advertised to it", "family", rf.String(),
					"why", "enable "+rf.String()+" for this neighbor on the router")
			}
		}
		if o.Resync {
			clear(sent)
			all = true
		}
		if o.Sync && f.caps.carries(rf) {
			if err := ps.sync(w, sent, local.Addr(), f.caps, all); err != nil {
				return true, err
			}
			all = false
		} else if o.Sync {
			ps.s.routesFor(ps, false) // nothing goes to it: forget what changed
		}
		if o.EndOfRIB {
			if err := w.send(pkt.NewEndOfRib(rf)); err != nil {
				return true, err
			}
		}
		return false, nil
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	ev := fsmEvent{Start: true}
	for {
		ev.Now = time.Now()
		done, err := do(f.Step(ev))
		ps.state.Store(stateName(f.state))
		if done {
			return err
		}
		timer.Stop()
		var timerC <-chan time.Time
		if at := f.Deadline(time.Unix(0, lastRecv.Load())); !at.IsZero() {
			timer.Reset(time.Until(at))
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
			sub := uint8(ps.stopCode.Load())
			if sub == 0 {
				sub = pkt.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN
			}
			ev = fsmEvent{Stop: true, Subcode: sub}
		case err := <-readErr:
			ev = fsmEvent{ReadErr: err}
		case m := <-msgs:
			ev = fsmEvent{Msg: &m}
		case <-timerC:
			ev = fsmEvent{Tick: true, LastRecv: time.Unix(0, lastRecv.Load())}
		case <-ps.wake:
			ev = fsmEvent{Routes: true}
		case <-ps.pathDown:
			// No NOTIFICATION: the path it would take is gone, and the
			// router's own BFD ends its side (RFC 5882 section 4.3).
			return errBFDDown
		}
	}
}

// sync sends what changed between the routes advertised on this session
// (sent, updated in place) and the stub's routes for the session's peer.
// With all it compares every route (a new connection, a route refresh);
// otherwise only the prefixes changed since the last sync, so a change
// costs the same with 10 routes advertised or 10,000.
func (ps *peerSession) sync(w *writer, sent map[netip.Prefix]Route, local netip.Addr, caps peerCaps, all bool) error {
	want, look := ps.s.routesFor(ps, all)
	if all {
		look = make([]netip.Prefix, 0, len(sent)+len(want))
		for k := range sent {
			look = append(look, k)
		}
		for k := range want {
			if _, ok := sent[k]; !ok {
				look = append(look, k)
			}
		}
	}
	slices.SortFunc(look, netip.Prefix.Compare)
	var gone []netip.Prefix
	var changed []Route
	for _, k := range look {
		r, ok := want[k]
		cur, has := sent[k]
		switch {
		case !ok && has:
			gone = append(gone, k)
		case ok && (!has || !cur.Equal(r)):
			changed = append(changed, r)
		}
	}
	for _, m := range withdrawMsgs(gone) {
		if err := w.send(m); err != nil {
			return err
		}
		ps.updates.Add(1)
	}
	for _, k := range gone {
		delete(sent, k)
	}
	// Routes of equal attributes next to each other, so that they share
	// UPDATEs; in prefix order within each group.
	slices.SortStableFunc(changed, func(a, b Route) int { return compareAttrs(a, b) })
	msgs, err := updateMsgs(ps.p, caps, changed, local)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := w.send(m); err != nil {
			return err
		}
		ps.updates.Add(1)
	}
	for _, r := range changed {
		sent[r.Prefix] = r
	}
	ps.advertised.Store(int64(len(sent)))
	return nil
}

// writer sends messages, each within a deadline.
type writer struct{ conn net.Conn }

func (w *writer) send(m *pkt.BGPMessage) error {
	b, err := m.Serialize()
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := w.conn.Write(b); err != nil {
		return fmt.Errorf("write-failed: %w", err)
	}
	return nil
}

// tracker counts what a router sends on one session. With max-prefix set
// it keeps the set of prefixes the router currently announces (at most
// max-prefix + 1 of them: the session closes beyond), so withdrawals and
// re-announcements count exactly; without, it keeps nothing.
type tracker struct {
	max int
	set map[netip.Prefix]struct{}
}

// update scans one UPDATE: the prefixes it announces, and n > 0 when
// max-prefix is exceeded.
func (t *tracker) update(body []byte) (announced, n int, err error) {
	if t.max > 0 && t.set == nil {
		t.set = map[netip.Prefix]struct{}{}
	}
	_, err = scanUpdate(body, func(p netip.Prefix, withdrawn bool) {
		if withdrawn {
			if t.set != nil {
				delete(t.set, p)
			}
			return
		}
		announced++
		if t.set != nil && len(t.set) <= t.max {
			t.set[p] = struct{}{}
		}
	})
	if t.set != nil && len(t.set) > t.max {
		return announced, len(t.set), err
	}
	return announced, 0, err
}
