package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/microk8s-metallb/metallb/pkg/bfd"
)

// errBFDDown ends a session whose BFD session went Down.
var errBFDDown = errors.New("BFD session down")

// BFDServer is what the Manager needs from pkg/bfd: the sessions to run.
type BFDServer interface {
	Set(peers []bfd.Peer) error
	Sessions() []bfd.Status
	Dropped() (ttl, malformed uint64)
	Done() <-chan struct{}
}

// ListenBFD opens a BFD server; nil in Manager is bfd.Listen on every
// address.
type ListenBFD func(ctx context.Context, log *slog.Logger, notify func(bfd.Event)) (BFDServer, error)

// bfdLink runs the BFD sessions of the peers that have a profile: the
// server opens (port 3784) with the first such peer and closes with the
// last, so a node whose peers have no profile leaves the port to others.
// Called with the Manager's lock held.
type bfdLink struct {
	log    *slog.Logger
	listen ListenBFD
	notify func(bfd.Event)

	srv    BFDServer
	cancel context.CancelFunc
}

func (l *bfdLink) set(peers map[string]Peer) error {
	var want []bfd.Peer
	for _, p := range peers {
		if !p.BFD.Enabled() {
			continue
		}
		want = append(want, bfd.Peer{Addr: p.Address, Local: p.SourceAddress, Config: bfd.Config{
			DesiredMinTx: p.BFD.TransmitInterval, RequiredMinRx: p.BFD.ReceiveInterval,
			DetectMult: p.BFD.DetectMultiplier, Passive: p.BFD.Passive}})
	}
	if len(want) == 0 {
		l.stop()
		return nil
	}
	if l.srv == nil {
		ctx, cancel := context.WithCancel(context.Background())
		srv, err := l.listen(ctx, l.log, l.notify)
		if err != nil {
			cancel()
			return fmt.Errorf("start BFD: %w", err)
		}
		l.srv, l.cancel = srv, cancel
		l.log.Info("BFD running", "port", bfd.Port, "sessions", len(want))
	}
	return l.srv.Set(want)
}

// stop takes every BFD session AdminDown and closes the port.
func (l *bfdLink) stop() {
	if l.srv == nil {
		return
	}
	l.cancel()
	<-l.srv.Done()
	l.srv, l.cancel = nil, nil
}

func (l *bfdLink) sessions() []bfd.Status {
	if l.srv == nil {
		return nil
	}
	return l.srv.Sessions()
}

func defaultListenBFD(ctx context.Context, log *slog.Logger, notify func(bfd.Event)) (BFDServer, error) {
	return bfd.Listen(ctx, log, nil, notify)
}

// onBFD closes the BGP session of a peer whose BFD session went Down (RFC
// 5882 section 4.3), then tells the Manager's OnBFD.
func (m *Manager) onBFD(ev bfd.Event) {
	if ev.Change.WentDown() {
		m.sess.PathDown(ev.Peer)
	}
	if m.OnBFD != nil {
		m.OnBFD(ev)
	}
}

// BFDSessions returns the state of every BFD session, for metrics and
// status.
func (m *Manager) BFDSessions() []bfd.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bfd.sessions()
}

// bfdStats returns the sessions and the dropped packets' counts, running
// false while no BFD server runs.
func (m *Manager) bfdStats() (sessions []bfd.Status, ttl, malformed uint64, running bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bfd.srv == nil {
		return nil, 0, 0, false
	}
	ttl, malformed = m.bfd.srv.Dropped()
	return m.bfd.srv.Sessions(), ttl, malformed, true
}

// Detach takes the BFD sessions AdminDown and leaves the BGP sessions to
// drop with the process: a speaker that restarts with graceful restart
// must not have its routers see a BFD failure, which would end their
// graceful restart (RFC 5882 section 3.2 keeps AdminDown from counting as
// one).
func (m *Manager) Detach() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bfd.stop()
}

// sessionFor returns the running session to addr.
func (s *Stub) sessionFor(addr netip.Addr) *peerSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers[addr.String()]
}

// PathDown implements Session: the session to addr closes at once and
// connects again (its BFD session saw the path go).
func (s *Stub) PathDown(addr netip.Addr) {
	if ps := s.sessionFor(addr); ps != nil {
		select {
		case ps.pathDown <- struct{}{}:
		default:
		}
	}
}
