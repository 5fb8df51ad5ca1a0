package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// ConnectRetry is how long GoBGP waits between two connection attempts.
const ConnectRetry = 2 * time.Second

// GoBGP is a Session on an embedded GoBGP v3 server. It does not listen on
// port 179: every session is initiated by this side.
type GoBGP struct {
	log *slog.Logger

	mu     sync.Mutex
	srv    *server.BgpServer
	cancel context.CancelFunc
	peers  map[string]Peer // for messages about failures
	logs   *logAdapter
	// born is when this process started its first BGP session: sessions
	// opened within RestartTime of it say they restart (RFC 4724's R and F
	// bits), so routers keep the routes of the previous run until this one
	// sends End-of-RIB.
	born time.Time
}

// NewGoBGP returns a stopped GoBGP session set.
func NewGoBGP(log *slog.Logger) *GoBGP {
	return &GoBGP{log: log, peers: map[string]Peer{}}
}

// Start implements Session.
func (g *GoBGP) Start(ctx context.Context, routerID netip.Addr, asn uint32) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.logs = &logAdapter{g: g}
	srv := server.NewBgpServer(server.LoggerOption(g.logs))
	go srv.Serve()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: routerID.String(), ListenPort: -1,
	}}); err != nil {
		srv.Stop()
		return err
	}
	if err := ownRoutesOnly(ctx, srv); err != nil {
		srv.Stop()
		return fmt.Errorf("set the BGP import and export policies: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	if err := srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, g.peerEvent); err != nil {
		cancel()
		srv.Stop()
		return err
	}
	g.srv, g.cancel = srv, cancel
	return nil
}

// ownPolicy accepts the routes this speaker originates and nothing else.
const ownPolicy = "metallb-own-routes-only"

// ownRoutesOnly makes the server a stub: nothing a peer sends enters the
// global RIB (so it is never used, nor re-advertised to another peer, which
// would make this node a transit path between two routers), and only this
// speaker's own service prefixes are exported.
func ownRoutesOnly(ctx context.Context, srv *server.BgpServer) error {
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: ownPolicy, Statements: []*api.Statement{{
		Name:       ownPolicy + "-local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
	}}}}); err != nil {
		return err
	}
	for _, dir := range []api.PolicyDirection{api.PolicyDirection_IMPORT, api.PolicyDirection_EXPORT} {
		if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: "global", Direction: dir, Policies: []*api.Policy{{Name: ownPolicy}}, DefaultAction: api.RouteAction_REJECT,
		}}); err != nil {
			return err
		}
	}
	return nil
}

// Stop implements Session.
func (g *GoBGP) Stop() {
	g.mu.Lock()
	srv, cancel := g.srv, g.cancel
	g.srv, g.cancel = nil, nil
	g.peers = map[string]Peer{}
	g.mu.Unlock()
	if srv != nil {
		cancel()
		srv.Stop()
	}
}

func (g *GoBGP) server() (*server.BgpServer, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv == nil {
		return nil, errors.New("BGP is not running")
	}
	return g.srv, nil
}

func family(a netip.Addr) *api.Family {
	if a.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// AddPeer implements Session.
func (g *GoBGP) AddPeer(ctx context.Context, p Peer) error {
	srv, err := g.server()
	if err != nil {
		return err
	}
	peer := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN, LocalAsn: p.MyASN, AuthPassword: p.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: uint64(p.HoldTime / time.Second), KeepaliveInterval: uint64(max(1, p.KeepaliveTime/time.Second)),
			ConnectRetry: uint64(ConnectRetry / time.Second),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port), PassiveMode: false},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family(p.Address), Enabled: true}}},
	}
	if p.SourceAddress.IsValid() {
		peer.Transport.LocalAddress = p.SourceAddress.String()
	}
	if p.EBGPMultiHop {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	g.mu.Lock()
	if g.born.IsZero() {
		g.born = time.Now()
	}
	if p.GracefulRestart {
		peer.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(RestartTime / time.Second),
			LocalRestarting: time.Since(g.born) < RestartTime}
		peer.AfiSafis[0].MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	g.peers[p.Key()] = p
	logs := g.logs
	g.mu.Unlock()
	logs.forget(p.Key()) // a changed peer deserves a fresh diagnosis
	return srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer})
}

// DeletePeer implements Session.
func (g *GoBGP) DeletePeer(ctx context.Context, p Peer) error {
	srv, err := g.server()
	if err != nil {
		return err
	}
	g.mu.Lock()
	delete(g.peers, p.Key())
	g.mu.Unlock()
	return srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()})
}

func apiPath(r Route) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: r.Prefix.Addr().String(), PrefixLen: uint32(r.Prefix.Bits())})
	if err != nil {
		return nil, err
	}
	fam := family(r.Prefix.Addr())
	attrs := []proto.Message{&api.OriginAttribute{Origin: 0}}
	if r.Prefix.Addr().Is4() {
		attrs = append(attrs, &api.NextHopAttribute{NextHop: "0.0.0.0"}) // the session's local address
	} else {
		attrs = append(attrs, &api.MpReachNLRIAttribute{Family: fam, NextHops: []string{"::"}, Nlris: []*anypb.Any{nlri}})
	}
	var std []uint32
	var large []*api.LargeCommunity
	for _, c := range r.Communities {
		if c.Large {
			large = append(large, &api.LargeCommunity{GlobalAdmin: c.Parts[0], LocalData1: c.Parts[1], LocalData2: c.Parts[2]})
		} else {
			std = append(std, c.Parts[0]<<16|c.Parts[1])
		}
	}
	if len(std) > 0 {
		attrs = append(attrs, &api.CommunitiesAttribute{Communities: std})
	}
	if len(large) > 0 {
		attrs = append(attrs, &api.LargeCommunitiesAttribute{Communities: large})
	}
	if r.HasLocalPref {
		attrs = append(attrs, &api.LocalPrefAttribute{LocalPref: r.LocalPref})
	}
	pattrs := make([]*anypb.Any, 0, len(attrs))
	for _, a := range attrs {
		x, err := anypb.New(a)
		if err != nil {
			return nil, err
		}
		pattrs = append(pattrs, x)
	}
	return &api.Path{Family: fam, Nlri: nlri, Pattrs: pattrs}, nil
}

// Advertise implements Session.
func (g *GoBGP) Advertise(ctx context.Context, r Route) error {
	srv, err := g.server()
	if err != nil {
		return err
	}
	p, err := apiPath(r)
	if err != nil {
		return err
	}
	_, err = srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p})
	return err
}

// Withdraw implements Session.
func (g *GoBGP) Withdraw(ctx context.Context, prefix netip.Prefix) error {
	srv, err := g.server()
	if err != nil {
		return err
	}
	p, err := apiPath(Route{Prefix: prefix})
	if err != nil {
		return err
	}
	return srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p})
}

func (g *GoBGP) peerEvent(r *api.WatchEventResponse) {
	pe := r.GetPeer()
	if pe == nil || pe.Type != api.WatchEventResponse_PeerEvent_STATE || pe.Peer == nil || pe.Peer.State == nil {
		return
	}
	st := pe.Peer.State
	state := strings.ToLower(strings.TrimPrefix(st.SessionState.String(), "SESSION_STATE_"))
	if st.SessionState == api.PeerState_ESTABLISHED {
		g.log.Info("BGP session established", "peer", st.NeighborAddress, "peer-asn", st.PeerAsn, "router-id", st.RouterId)
		return
	}
	g.log.Debug("BGP session state", "peer", st.NeighborAddress, "state", state)
}

// logAdapter sends GoBGP's logs to slog: session changes with their reason
// at info/warn, connection failures explained (once per peer and minute),
// the rest at debug.
type logAdapter struct {
	g    *GoBGP
	mu   sync.Mutex
	last map[string]time.Time
}

func (l *logAdapter) attrs(f gobgplog.Fields) []any {
	var out []any
	for k, v := range f {
		switch k {
		case "Topic", gobgplog.FieldFacility:
			continue
		case "Key":
			k = "peer"
		}
		out = append(out, strings.ToLower(k), fmt.Sprint(v))
	}
	return out
}

func (l *logAdapter) Panic(msg string, f gobgplog.Fields) {
	l.g.log.Error("gobgp: "+msg, l.attrs(f)...)
}
func (l *logAdapter) Fatal(msg string, f gobgplog.Fields) {
	l.g.log.Error("gobgp: "+msg, l.attrs(f)...)
}
func (l *logAdapter) Error(msg string, f gobgplog.Fields) {
	l.g.log.Error("gobgp: "+msg, l.attrs(f)...)
}
func (l *logAdapter) Warn(msg string, f gobgplog.Fields) { l.g.log.Warn("gobgp: "+msg, l.attrs(f)...) }

func (l *logAdapter) Info(msg string, f gobgplog.Fields) {
	switch msg {
	case "Peer Down":
		l.g.log.Warn("BGP session down", append(l.attrs(f), "why", explainDown(fmt.Sprint(f["Reason"])))...)
	case "Peer Up":
		// peerEvent logs it with more detail.
	default:
		l.g.log.Debug("gobgp: "+msg, l.attrs(f)...)
	}
}

func (l *logAdapter) Debug(msg string, f gobgplog.Fields) {
	if msg != "failed to connect" {
		// GoBGP logs every received UPDATE at debug: format nothing unless
		// debug is on (a router sending a full table would cost seconds).
		if l.g.log.Enabled(context.Background(), slog.LevelDebug) {
			l.g.log.Debug("gobgp: "+msg, l.attrs(f)...)
		}
		return
	}
	key := fmt.Sprint(f["Key"])
	l.mu.Lock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	recent := time.Since(l.last[key]) < time.Minute
	if !recent {
		l.last[key] = time.Now()
	}
	l.mu.Unlock()
	if recent {
		return
	}
	l.g.mu.Lock()
	p, known := l.g.peers[key]
	l.g.mu.Unlock()
	err, _ := f["Error"].(error)
	l.g.log.Warn("BGP peer unreachable", "peer", key, "error", fmt.Sprint(f["Error"]), "why", explainConnect(err, known && p.Password != ""))
}

// forget lets the next connection failure to key be logged at once.
func (l *logAdapter) forget(key string) {
	l.mu.Lock()
	delete(l.last, key)
	l.mu.Unlock()
}

// SetLevel implements gobgplog.Logger; connection failures are only logged
// by GoBGP at debug level, so it always runs at debug and filters here.
func (l *logAdapter) SetLevel(gobgplog.LogLevel) {}

// GetLevel implements gobgplog.Logger.
func (l *logAdapter) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }

// explainConnect says why a TCP connection to a peer failed, in operator's
// terms.
func explainConnect(err error, md5 bool) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || (err != nil && strings.Contains(err.Error(), "i/o timeout")):
		if md5 {
			return "no answer to the TCP handshake: with a password set this is usually a TCP MD5 mismatch (the router silently drops segments whose signature is wrong or missing); check that both sides use the same password"
		}
		return "no answer to the TCP handshake: the router is down, unreachable, or filters port 179 from this address"
	case errors.As(err, &errno) && errno == syscall.ECONNREFUSED, err != nil && strings.Contains(err.Error(), "connection refused"):
		return "connection refused: the router does not accept BGP from this address (check its neighbor configuration and port)"
	case err != nil && strings.Contains(err.Error(), "no route to host"):
		return "no route to the peer: set ebgp-multihop or source-address, or fix routing"
	}
	return "the TCP connection failed"
}

// explainDown turns GoBGP's session-down reason into words.
func explainDown(reason string) string {
	switch {
	case strings.Contains(reason, "hold-timer-expired"):
		return "hold timer expired: no keepalive from the peer within the hold time"
	case strings.Contains(reason, "notification-received"):
		return "the peer closed the session with a NOTIFICATION (" + reason + ")"
	case strings.Contains(reason, "notification-sent"):
		return "this side closed the session with a NOTIFICATION (" + reason + ")"
	case strings.Contains(reason, "read-failed"), strings.Contains(reason, "write-failed"):
		return "the TCP connection broke (" + reason + ")"
	case strings.Contains(reason, "deconfigured"):
		return "the peer was removed or changed in the config"
	}
	return reason
}

// Collector returns Prometheus metrics read from the running sessions:
// metallb_bgp_session_up, metallb_bgp_announced_prefixes_total,
// metallb_bgp_updates_total, metallb_bgp_received_prefixes_refused, each
// labelled with the peer.
func (g *GoBGP) Collector() prometheus.Collector { return collector{g} }

type collector struct{ g *GoBGP }

var (
	descUp = prometheus.NewDesc(metrics.Namespace+"_bgp_session_up",
		"1 when the BGP session with the peer is established.", []string{"peer"}, nil)
	descPrefixes = prometheus.NewDesc(metrics.Namespace+"_bgp_announced_prefixes_total",
		"Prefixes currently advertised to the peer.", []string{"peer"}, nil)
	descUpdates = prometheus.NewDesc(metrics.Namespace+"_bgp_updates_total",
		"BGP UPDATE messages sent to the peer.", []string{"peer"}, nil)
	descRefused = prometheus.NewDesc(metrics.Namespace+"_bgp_received_prefixes_refused",
		"Prefixes the peer sends this speaker: every one is refused (never used, never passed on).", []string{"peer"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUp
	ch <- descPrefixes
	ch <- descUpdates
	ch <- descRefused
}

// SessionState is one session as the speaker publishes it.
type SessionState struct {
	Peer     string
	Up       bool
	Prefixes int // advertised to the peer
}

// Sessions lists the sessions and their state, by peer address.
func (g *GoBGP) Sessions() []SessionState {
	srv, err := g.server()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var out []SessionState
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		st := SessionState{Peer: p.State.NeighborAddress, Up: p.State.SessionState == api.PeerState_ESTABLISHED}
		st.Prefixes = int(advertised(p))
		out = append(out, st)
	})
	slices.SortFunc(out, func(a, b SessionState) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	srv, err := c.g.server()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		addr := p.State.NeighborAddress
		up := 0.0
		if p.State.SessionState == api.PeerState_ESTABLISHED {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, addr)
		var received uint64
		for _, af := range p.AfiSafis {
			if af.State != nil {
				received += af.State.Received
			}
		}
		adv := advertised(p)
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.GaugeValue, float64(received), addr)
		ch <- prometheus.MustNewConstMetric(descPrefixes, prometheus.GaugeValue, float64(adv), addr)
		var upd uint64
		if m := p.State.Messages; m != nil && m.Sent != nil {
			upd = m.Sent.Update
		}
		ch <- prometheus.MustNewConstMetric(descUpdates, prometheus.CounterValue, float64(upd), addr)
	})
}

// advertised counts the prefixes GoBGP reports advertised to a peer. With
// graceful restart negotiated, GoBGP counts an End-of-RIB marker per family
// among them: it is not a prefix.
func advertised(p *api.Peer) uint64 {
	gr := p.GracefulRestart
	eor := gr != nil && gr.Enabled && (gr.PeerRestartTime > 0 || gr.PeerRestarting)
	var n uint64
	for _, af := range p.AfiSafis {
		if af.State == nil {
			continue
		}
		a := af.State.Advertised
		if eor && a > 0 {
			a--
		}
		n += a
	}
	return n
}
