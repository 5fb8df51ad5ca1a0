// Package bgp announces service addresses to the operator's routers.
//
// A Manager holds the sessions this node should have and the routes it
// should advertise, and makes a Session (the BGP implementation: Stub, a
// send-only speaker on GoBGP's packet library, see stub.go) match them with the fewest changes:
// a peer whose settings did not change keeps its session when the config is
// edited; a route whose attributes changed is re-advertised in place. The
// rest of the project sees only Manager, Peer and Route, so moving to another
// BGP library touches this package alone.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/bfd"
	"github.com/microk8s-metallb/metallb/pkg/routes"
)

// Peer is one BGP session as this node runs it; Route one advertised
// prefix with its attributes (both described in pkg/routes).
type (
	Peer  = routes.Peer
	Route = routes.Route
)

// RestartTime is how long a router keeps the routes of a speaker that
// restarts with graceful restart before it drops them.
const RestartTime = 120 * time.Second

// Session is what Manager needs from a BGP implementation.
type Session interface {
	// Start runs the BGP speaker with this router ID (each peer has its
	// own local AS).
	Start(ctx context.Context, routerID netip.Addr) error
	Stop()
	AddPeer(ctx context.Context, p Peer) error
	DeletePeer(ctx context.Context, p Peer) error
	// Advertise adds or replaces the route for r.Prefix.
	Advertise(ctx context.Context, r Route) error
	Withdraw(ctx context.Context, prefix netip.Prefix) error
	// PathDown closes the session to addr at once: its BFD session saw
	// the path to the router go.
	PathDown(addr netip.Addr)
}

// Manager makes a Session match the desired peers and routes.
type Manager struct {
	log  *slog.Logger
	sess Session
	// OnBFD, when set before the first Set, is told each BFD state change
	// (from the BFD server's goroutine; it must not block).
	OnBFD func(bfd.Event)
	// ListenBFD opens the BFD server (nil: bfd.Listen on every address).
	ListenBFD ListenBFD

	mu       sync.Mutex
	started  bool
	routerID netip.Addr
	peers    map[string]Peer
	routes   map[string]Route // advertised
	want     map[string]Route // to advertise
	pending  map[string]bool  // keys where routes and want may differ
	bfd      bfdLink
}

// NewManager returns a Manager over sess.
func NewManager(log *slog.Logger, sess Session) *Manager {
	m := &Manager{log: log, sess: sess, peers: map[string]Peer{}, routes: map[string]Route{}, want: map[string]Route{}, pending: map[string]bool{}}
	m.bfd = bfdLink{log: log, notify: m.onBFD}
	return m
}

// Set makes the session hold exactly peers and routes. routerID is this
// node's BGP identifier. With no peers the BGP speaker stops.
func (m *Manager) Set(ctx context.Context, routerID netip.Addr, peers []Peer, routes []Route) error {
	m.mu.Lock()
	keep := map[string]bool{}
	for _, r := range routes {
		keep[r.Key()] = true
	}
	var withdraw []netip.Prefix
	for k, r := range m.want {
		if !keep[k] {
			withdraw = append(withdraw, r.Prefix)
		}
	}
	m.mu.Unlock()
	return m.Update(ctx, routerID, peers, routes, withdraw)
}

// Update makes the session hold exactly peers, and changes the routes to
// advertise: those of advertise are added or replaced, the prefixes of
// withdraw removed. It costs what changes (and what failed before, which
// it tries again), not what is advertised.
func (m *Manager) Update(ctx context.Context, routerID netip.Addr, peers []Peer, advertise []Route, withdraw []netip.Prefix) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range withdraw {
		k := p.String()
		delete(m.want, k)
		m.pending[k] = true
	}
	for _, r := range advertise {
		m.want[r.Key()] = r
		m.pending[r.Key()] = true
	}
	if m.bfd.listen == nil {
		m.bfd.listen = m.ListenBFD
		if m.bfd.listen == nil {
			m.bfd.listen = defaultListenBFD
		}
	}
	if len(peers) == 0 {
		if m.started {
			m.log.Info("no BGP peers for this node: stopping BGP")
			m.stop()
		}
		for k := range m.pending {
			if _, ok := m.want[k]; !ok {
				delete(m.pending, k) // nothing is advertised while stopped
			}
		}
		return nil
	}
	if m.started && routerID != m.routerID {
		m.log.Info("BGP router ID changed: restarting BGP", "router-id", routerID)
		m.stop()
	}
	if !m.started {
		if !routerID.Is4() {
			return fmt.Errorf("BGP needs an IPv4 router ID: this node has no IPv4 address; set router-id on its peers")
		}
		if err := m.sess.Start(ctx, routerID); err != nil {
			return fmt.Errorf("start BGP: %w", err)
		}
		m.started, m.routerID = true, routerID
		for k := range m.want {
			m.pending[k] = true
		}
	}
	var errs []error
	want := map[string]Peer{}
	for _, p := range peers {
		want[p.Key()] = p
	}
	for k, p := range m.peers {
		if w, ok := want[k]; ok && w.SameSession(p) {
			m.peers[k] = w // at most its BFD profile changed
		} else {
			if err := m.sess.DeletePeer(ctx, p); err != nil {
				errs = append(errs, fmt.Errorf("remove peer %s: %w", p, err))
				continue
			}
			delete(m.peers, k)
			if !ok {
				m.log.Info("BGP peer removed", "peer", p.String())
			}
		}
	}
	for _, k := range sortedKeys(want) {
		p := want[k]
		if _, ok := m.peers[k]; ok {
			continue
		}
		if err := m.sess.AddPeer(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("add peer %s: %w", p, err))
			continue
		}
		m.peers[k] = p
		m.log.Info("BGP peer configured", "peer", p.String(), "my-asn", p.MyASN, "hold-time", p.HoldTime, "md5", p.Password != "", "bfd-profile", p.BFD.Profile)
	}
	if err := m.bfd.set(m.peers); err != nil {
		errs = append(errs, err)
	}

	for _, k := range sortedKeys(m.pending) {
		w, ok := m.want[k]
		cur, has := m.routes[k]
		switch {
		case !ok && has:
			if err := m.sess.Withdraw(ctx, cur.Prefix); err != nil {
				errs = append(errs, fmt.Errorf("withdraw %s: %w", cur.Prefix, err))
				continue
			}
			delete(m.routes, k)
		case ok && (!has || !cur.Equal(w)):
			if err := m.sess.Advertise(ctx, w); err != nil {
				errs = append(errs, fmt.Errorf("advertise %s: %w", w.Prefix, err))
				continue
			}
			m.routes[k] = w
		}
		delete(m.pending, k)
	}
	return errors.Join(errs...)
}

// Close stops BGP: routers withdraw the routes when the sessions close
// (each with a Cease), then the BFD sessions go AdminDown.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		m.stop()
	}
}

// stop stops the session, which forgets every peer and route, then BFD.
func (m *Manager) stop() {
	m.sess.Stop()
	m.bfd.stop()
	m.started = false
	m.peers, m.routes = map[string]Peer{}, map[string]Route{}
}

// Routes returns the advertised prefixes, sorted.
func (m *Manager) Routes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sortedKeys(m.routes)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
