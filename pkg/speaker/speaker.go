package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/bgp"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/layer2"
	"github.com/microk8s-metallb/metallb/pkg/members"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// DefaultLeaseRenew is how often a speaker renews its Lease. The Lease is
// not liveness (the speakers find each other alive by memberlist): it tells
// `metallb status` that the speaker runs, and carries its BGP sessions. So
// an idle speaker writes to the API server once every 10 s.
const DefaultLeaseRenew = 10 * time.Second

// Labels and reasons.
const (
	ExcludeLabel   = "node.kubernetes.io/exclude-from-external-load-balancers"
	ReasonAssigned = "nodeAssigned"
	ReasonConflict = "IPConflict"
	// ReasonMaxPrefix (on the Node): a BGP session closed by max-prefix.
	ReasonMaxPrefix = "BGPMaxPrefix"
	leasePrefix     = "metallb-speaker-"
)

// Isolation: a speaker that sees none of the peers it knew checks the API
// server this often; unreachable, it withdraws its layer2 addresses.
const (
	apiCheckInterval = 250 * time.Millisecond
	apiCheckTimeout  = 500 * time.Millisecond
	rejoinInterval   = 5 * time.Second
)

// BGPAnnouncer makes the BGP sessions and routes match what this node
// should have (bgp.Manager).
type BGPAnnouncer interface {
	Set(ctx context.Context, routerID netip.Addr, peers []bgp.Peer, routes []bgp.Route) error
	Close()
}

// Options configure a speaker.
type Options struct {
	Client    kubernetes.Interface
	Log       *slog.Logger
	Metrics   *metrics.Registry
	NodeName  string
	Namespace string // of the ConfigMap and the Leases
	ConfigMap string
	LBClass   string
	// DaemonSet runs the speakers (default "speaker"): while it exists, a
	// stopping speaker is restarting, and keeps its routes at the routers.
	DaemonSet string
	// LeaseRenew is how often this speaker renews its Lease (status only).
	// Zero: DefaultLeaseRenew.
	LeaseRenew time.Duration
	// Memberlist: the address to listen on (zero: the node's InternalIP),
	// the port (zero: members.DefaultPort) and the key.
	BindAddr netip.Addr
	Port     int
	Key      []byte
	// Level, when set, follows the ConfigMap's log-level annotation
	// (k8s.LogLevelAnnotation), back to BaseLevel without it.
	Level     *slog.LevelVar
	BaseLevel slog.Level
}

// Speaker announces this node's share of the addresses.
type Speaker struct {
	o        Options
	log      *slog.Logger
	recorder record.EventRecorder
	watcher  *k8s.ConfigWatcher
	l2       *layer2.Announcer
	bgp      BGPAnnouncer
	sessions func() []bgp.SessionState // published on the Lease
	bgpErr   string                    // last BGP error logged, to log each once
	trigger  chan struct{}

	svcs   cache.Indexer
	slices cache.Indexer
	nodes  cache.Indexer

	ml atomic.Pointer[members.List] // set once, when the first config arrives

	mu        sync.Mutex
	core      *announce.Core
	announced map[string]announce.Announcement // ip/service → what
	resend    bool                             // a speaker joined since the last plan
	isolated  bool                             // sees none of the peers it knew
	apiDown   bool                             // isolated, and the API server does not answer
	ready     bool                             // /readyz, last set
	waitLog   map[netip.Addr]string            // addresses waiting for a release, as last logged
	peers     []bgp.Peer                       // BGP sessions of the last plan
	// isolatedCh wakes watchAPI when the speaker becomes isolated.
	isolatedCh chan struct{}

	mAnnounced *prometheus.GaugeVec
	mL2        map[string]*prometheus.CounterVec
	mConflicts *prometheus.CounterVec
	mMembers   prometheus.Gauge
}

// New builds a speaker; Run starts it.
func New(ctx context.Context, o Options) *Speaker {
	if o.LeaseRenew <= 0 {
		o.LeaseRenew = DefaultLeaseRenew
	}
	if o.DaemonSet == "" {
		o.DaemonSet = "speaker"
	}
	s := &Speaker{
		o: o, log: o.Log, trigger: make(chan struct{}, 1), announced: map[string]announce.Announcement{},
		core: announce.NewCore(), waitLog: map[netip.Addr]string{}, isolatedCh: make(chan struct{}, 1),
		recorder: k8s.NewRecorder(ctx, o.Client, k8s.SpeakerComponent),
		mAnnounced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "speaker", Name: "announced",
			Help: "1 for each address this speaker announces.",
		}, []string{"service", "node", "ip", "protocol"}),
		// Per address: the requests for an address are the traffic signal
		// layer2 gives per Service (each client asks before it connects).
		mL2: map[string]*prometheus.CounterVec{
			layer2.EventRequest: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metrics.Namespace, Subsystem: "layer2", Name: "requests_received",
				Help: "ARP requests and Neighbor Solicitations received for announced addresses.",
			}, []string{"ip"}),
			layer2.EventResponse: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metrics.Namespace, Subsystem: "layer2", Name: "responses_sent",
				Help: "ARP replies and Neighbor Advertisements sent.",
			}, []string{"ip"}),
			layer2.EventGratuitous: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: metrics.Namespace, Subsystem: "layer2", Name: "gratuitous_sent",
				Help: "Gratuitous ARPs and unsolicited Neighbor Advertisements sent (a burst follows each takeover).",
			}, []string{"ip"}),
		},
		mConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "layer2", Name: "conflicts_total",
			Help: "Other MACs seen answering for or announcing an address we announce.",
		}, []string{"ip"}),
		mMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "speaker", Name: "members",
			Help: "Speakers this one sees alive (itself included), by memberlist.",
		}),
	}
	s.l2 = layer2.NewAnnouncer(o.Log, s)
	stub := bgp.NewStub(o.Log)
	stub.OnMaxPrefix = func(p bgp.Peer, n int) {
		node := &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: o.NodeName, UID: types.UID(o.NodeName)}
		s.recorder.Eventf(node, corev1.EventTypeWarning, ReasonMaxPrefix,
			"BGP session with %s closed for %s: the router announced %d prefixes, more than max-prefix %d (this speaker uses none: make the router export nothing to this node, or raise max-prefix)",
			p.Address, bgp.MaxPrefixRestart, n, p.MaxPrefix)
	}
	s.sessions = stub.Sessions
	s.bgp = bgp.NewManager(o.Log, stub)
	if o.ConfigMap == "" {
		o.ConfigMap = k8s.DefaultConfigMap
	}
	// The speakers run on the config the controller accepted: one judge for
	// every edit, and the same config on every node. The copy also survives
	// a broken or deleted ConfigMap across restarts. The controller raises
	// the Events about the operator's ConfigMap.
	s.watcher = k8s.NewConfigWatcher(k8s.ConfigWatcherOptions{
		Client: o.Client, Namespace: o.Namespace, Name: k8s.AcceptedName(o.ConfigMap), Log: o.Log,
		Metrics: o.Metrics, OnConfig: func(*config.Config) { s.poke() }, MirrorState: true,
		Level: o.Level, BaseLevel: o.BaseLevel,
	})
	if o.Metrics != nil {
		o.Metrics.MustRegister(s.mAnnounced, s.mConflicts, s.mMembers, stub.Collector())
		for _, c := range s.mL2 {
			o.Metrics.MustRegister(c)
		}
	}
	return s
}

func (s *Speaker) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Run runs until ctx ends, then hands its addresses over and withdraws
// everything.
func (s *Speaker) Run(ctx context.Context) error {
	// The caches hold what the speaker reads (k8s.Trim), and an update
	// that changed nothing of it (a heartbeat, a pod's address) is not
	// worth a re-plan.
	factory := k8s.NewInformerFactory(s.o.Client)
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.poke() },
		UpdateFunc: func(old, cur any) {
			if k8s.Changed(old, cur) {
				s.poke()
			}
		},
		DeleteFunc: func(any) { s.poke() },
	}
	infs := []cache.SharedIndexInformer{
		factory.Core().V1().Services().Informer(),
		factory.Discovery().V1().EndpointSlices().Informer(),
		factory.Core().V1().Nodes().Informer(),
	}
	for _, inf := range infs {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	s.svcs, s.slices, s.nodes = infs[0].GetIndexer(), infs[1].GetIndexer(), infs[2].GetIndexer()
	go s.watcher.Run(ctx)
	// The announcer outlives ctx by the hand-off: it must keep answering
	// until the addresses are released to their next owners.
	l2ctx, l2stop := context.WithCancel(context.Background())
	defer l2stop()
	go s.l2.Run(l2ctx)
	go s.renewLease(ctx)
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	synced := []cache.InformerSynced{s.watcher.HasSynced}
	for _, inf := range infs {
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	if s.o.Metrics != nil {
		s.o.Metrics.SetReady(true)
	}
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	// A speaker with no config announces nothing, and must not be counted
	// on by the others: it joins the membership only once it has one.
	if s.watcher.Current() == nil {
		s.log.Warn("no accepted configuration yet: this speaker announces nothing and takes no part in elections",
			"configmap", s.o.Namespace+"/"+k8s.AcceptedName(s.o.ConfigMap))
		for s.watcher.Current() == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-s.trigger:
			}
		}
		s.log.Info("configuration received: this speaker takes part in elections")
	}
	ml, err := s.startMembers()
	if err != nil {
		return err
	}
	s.ml.Store(ml)
	s.settle(ctx, ml)
	go s.rejoin(ctx)
	go s.watchAPI(ctx)
	s.log.Info("speaker running", "node", s.o.NodeName, "peers", ml.Peers())
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			restarting := make(chan bool, 1)
			go func() { restarting <- s.restarting() }()
			s.handOff()
			if s.gracefulPeers() && <-restarting {
				// The sessions drop with the process, without a
				// NOTIFICATION: routers keep this node's routes until it
				// is back (RFC 4724), as it runs only a rolling update.
				s.log.Info("stopping with graceful restart: routers keep this node's routes while the speaker restarts", "for at most", bgp.RestartTime)
				return nil
			}
			s.bgp.Close() // closing the sessions makes routers withdraw at once
			return nil
		case <-s.trigger:
		case <-timer.C:
		}
		next := s.reconcile()
		if next <= 0 {
			next = time.Minute
		}
		timer.Reset(next)
	}
}

// gracefulPeers reports whether a session of the last plan uses graceful
// restart.
func (s *Speaker) gracefulPeers() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.peers, func(p bgp.Peer) bool { return p.GracefulRestart })
}

// restarting tells a stop for a restart (a rolling update: the DaemonSet
// stays) from a removal (disable deletes the DaemonSet; a speaker run
// without one is never restarted): only a restart keeps the routes at the
// routers. When the API server does not answer, a restart is likelier.
func (s *Speaker) restarting() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ds, err := s.o.Client.AppsV1().DaemonSets(s.o.Namespace).Get(ctx, s.o.DaemonSet, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false
	case err != nil:
		return true
	}
	return ds.DeletionTimestamp == nil
}

// startMembers starts memberlist on the node's address.
func (s *Speaker) startMembers() (*members.List, error) {
	bind := s.o.BindAddr
	if !bind.IsValid() {
		for _, n := range s.nodeList() {
			if n.Name == s.o.NodeName && len(n.Addrs) > 0 {
				bind = n.Addrs[0]
			}
		}
	}
	if !bind.IsValid() {
		return nil, fmt.Errorf("node %q has no InternalIP to listen on for the other speakers: set --memberlist-bind (the DaemonSet sets $METALLB_HOST_IP)", s.o.NodeName)
	}
	return members.Start(members.Options{
		Name: s.o.NodeName, Bind: bind, Port: s.o.Port, Key: s.o.Key, Log: s.log.With("component", "memberlist"),
		OnChange: func(joined bool) {
			if joined {
				s.mu.Lock()
				s.resend = true
				s.mu.Unlock()
			}
			s.poke()
		},
		OnRelease: func(from string, ips []netip.Addr) {
			s.mu.Lock()
			s.core.Released(from, ips, time.Now())
			s.mu.Unlock()
			s.poke()
		},
	})
}

// settleTimeout bounds how long a starting speaker looks for the speakers
// of the other Ready nodes before its first plan.
const settleTimeout = 2 * time.Second

// settle joins the speakers of the other Ready nodes (they listen on their
// node's address: the speaker runs in each node's host network) before the
// first plan: a speaker that saw nobody would think every address its own,
// and speakers of a fresh install start together. It returns once every
// Ready node's speaker is a member, or after settleTimeout (a node without
// a speaker, or a dead one).
func (s *Speaker) settle(ctx context.Context, ml *members.List) {
	missing := func() []netip.Addr {
		var addrs []netip.Addr
		for _, n := range s.nodeList() {
			if n.Name != s.o.NodeName && n.Ready && len(n.Addrs) > 0 && !ml.Alive(n.Name) {
				addrs = append(addrs, n.Addrs[0])
			}
		}
		return addrs
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		addrs := missing()
		if len(addrs) == 0 {
			return
		}
		ml.Join(addrs)
		if addrs = missing(); len(addrs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.log.Info("starting without the speakers of some nodes", "addresses", fmt.Sprint(addrs))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rejoin contacts, now and then, the nodes whose speaker is not a member
// (it started after us, or came back after a partition), and forgets the
// peers whose node is gone.
func (s *Speaker) rejoin(ctx context.Context) {
	ml := s.ml.Load()
	t := time.NewTicker(rejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var addrs []netip.Addr
		names := map[string]bool{}
		for _, n := range s.nodeList() {
			names[n.Name] = true
			if n.Name != s.o.NodeName && len(n.Addrs) > 0 && !ml.Alive(n.Name) {
				addrs = append(addrs, n.Addrs[0])
			}
		}
		for _, k := range ml.Known() {
			if !names[k] {
				ml.Forget(k)
			}
		}
		if len(addrs) > 0 {
			ml.Join(addrs)
		}
	}
}

// watchAPI checks, while this speaker is isolated from its peers, whether
// it still reaches the API server (a read, not a write). Cut off from both,
// it cannot know that it is the one that is cut off, but the others have
// then taken its addresses: it withdraws them.
func (s *Speaker) watchAPI(ctx context.Context) {
	leases := s.o.Client.CoordinationV1().Leases(s.o.Namespace)
	for {
		s.mu.Lock()
		isolated, down := s.isolated, s.apiDown
		if !isolated {
			s.apiDown = false
		}
		s.mu.Unlock()
		if !isolated {
			// In touch with its peers: nothing to check until isolated.
			select {
			case <-ctx.Done():
				return
			case <-s.isolatedCh:
			}
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, apiCheckTimeout)
		_, err := leases.Get(rctx, leasePrefix+s.o.NodeName, metav1.GetOptions{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		if nowDown := err != nil && !apierrors.IsNotFound(err); nowDown != down {
			s.mu.Lock()
			s.apiDown = nowDown
			s.mu.Unlock()
			if nowDown {
				s.log.Warn("cut off from every other speaker and from the API server: withdrawing the layer2 addresses (the others have taken them over)", "error", err)
			} else {
				s.log.Info("the API server answers again")
			}
			s.poke()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(apiCheckInterval):
		}
	}
}

// updateReadiness makes /readyz fail while an address this node announces
// has no working responder (its interface went down or away), and says so
// once per change.
func (s *Speaker) updateReadiness() {
	if s.o.Metrics == nil {
		return
	}
	lost := s.l2.Unanswered()
	ready := len(lost) == 0
	s.mu.Lock()
	changed := ready != s.ready
	s.ready = ready
	s.mu.Unlock()
	if changed && !ready {
		s.log.Warn("not ready: announced addresses have no working responder", "ip", fmt.Sprint(lost))
	} else if changed {
		s.log.Info("ready: every announced address has a working responder")
	}
	s.o.Metrics.SetReady(ready)
}

// renewLease keeps this speaker's Lease fresh, for `metallb status`: it
// shows the speaker runs, with its BGP sessions.
func (s *Speaker) renewLease(ctx context.Context) {
	leases := s.o.Client.CoordinationV1().Leases(s.o.Namespace)
	name := leasePrefix + s.o.NodeName
	t := time.NewTicker(s.o.LeaseRenew)
	defer t.Stop()
	var cur *coordinationv1.Lease // last written: one Update per renewal
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		if cur == nil {
			cur, err = leases.Get(rctx, name, metav1.GetOptions{})
		}
		now := metav1.NewMicroTime(time.Now())
		switch {
		case apierrors.IsNotFound(err):
			l := &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/component": "speaker"}},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: ptr.To(s.o.NodeName), RenewTime: &now,
					LeaseDurationSeconds: ptr.To(int32(3 * s.o.LeaseRenew / time.Second)),
				},
			}
			s.publishSessions(l)
			cur, err = leases.Create(rctx, l, metav1.CreateOptions{})
		case err == nil:
			next := cur.DeepCopy()
			next.Spec.RenewTime = &now
			next.Spec.LeaseDurationSeconds = ptr.To(int32(3 * s.o.LeaseRenew / time.Second))
			s.publishSessions(next)
			cur, err = leases.Update(rctx, next, metav1.UpdateOptions{})
		}
		cancel()
		if err != nil {
			cur = nil // read it again next time (conflict, deleted, ...)
			if ctx.Err() == nil {
				s.log.Warn("cannot renew the speaker lease", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// input gathers what the core plans from.
func (s *Speaker) input() announce.Input {
	nodes := s.nodeList()
	in := announce.Input{Config: s.watcher.Current(), Self: s.o.NodeName, Nodes: nodes, Svcs: s.svcList(), Now: time.Now()}
	if ml := s.ml.Load(); ml != nil {
		in.Known = ml.Known()
		in.Isolated = len(in.Known) > 0 && ml.Peers() == 0
	}
	return in
}

// reconcile plans and applies the announcements; it returns when to plan
// again at the latest (0: only on a change).
func (s *Speaker) reconcile() time.Duration {
	defer s.updateReadiness()
	in := s.input()
	s.mu.Lock()
	in.Resend, s.resend = s.resend, false
	if in.Isolated && !s.isolated {
		select {
		case s.isolatedCh <- struct{}{}:
		default:
		}
	}
	s.isolated = in.Isolated
	in.Withdraw = in.Isolated && s.apiDown
	p := s.core.Plan(in)
	s.mu.Unlock()
	ml := s.ml.Load()
	if ml != nil {
		s.mMembers.Set(float64(ml.Peers() + 1))
	}

	claims := make([]layer2.Claim, 0, len(p.Claims))
	for _, c := range p.Claims {
		claims = append(claims, layer2.Claim{IP: c.IP, Interfaces: c.Interfaces})
	}
	// Stop answering first, then tell the new owners: never two at once.
	s.l2.SetClaims(claims)
	for _, r := range p.Releases {
		s.log.Debug("releasing addresses to their new owner", "to", r.To, "ips", fmt.Sprint(r.IPs))
		ml.Release(r.To, r.IPs)
	}
	for _, ip := range p.Forced {
		s.log.Warn("announcing without a release: the previous owner did not hand the address over in time", "ip", ip, "waited", announce.HandOverTimeout)
	}
	s.logWaiting(p.Waiting)

	// BGP does not depend on the memberlist: routers see the sessions
	// themselves, and an outage must not withdraw every route.
	s.mu.Lock()
	s.peers = p.Peers
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := s.bgp.Set(ctx, p.RouterID, p.Peers, p.Routes)
	cancel()
	if msg := fmt.Sprint(err); err != nil && msg != s.bgpErr {
		s.log.Error("BGP", "error", err)
		s.bgpErr = msg
	} else if err == nil {
		s.bgpErr = ""
	}

	next := map[string]announce.Announcement{}
	for _, a := range p.Announcements {
		next[string(a.Protocol)+"/"+a.IP.String()+"/"+a.Service] = a
	}
	s.mu.Lock()
	s.announced = next
	s.mu.Unlock()
	for _, a := range p.Added {
		s.mAnnounced.WithLabelValues(a.Service, s.o.NodeName, a.IP.String(), string(a.Protocol)).Set(1)
		if obj := s.service(a.Service); obj != nil {
			s.recorder.Eventf(obj, corev1.EventTypeNormal, ReasonAssigned, "announcing from node %q with protocol %q", s.o.NodeName, a.Protocol)
		}
	}
	for _, a := range p.Removed {
		s.mAnnounced.DeleteLabelValues(a.Service, s.o.NodeName, a.IP.String(), string(a.Protocol))
	}
	return p.Recheck
}

// logWaiting says which addresses wait for their previous owner, once.
func (s *Speaker) logWaiting(waiting map[netip.Addr]string) {
	for ip, from := range waiting {
		if s.waitLog[ip] != from {
			s.log.Info("waiting for the previous owner to release the address", "ip", ip, "from", from)
		}
	}
	s.waitLog = waiting
}

func (s *Speaker) service(key string) *corev1.Service {
	obj, ok, _ := s.svcs.GetByKey(key)
	if !ok {
		return nil
	}
	return obj.(*corev1.Service)
}

// SessionsAnnotation on a speaker's Lease lists its BGP sessions, for
// `metallb status`: "peer up|down prefixes" per line. It rides on the
// renewals, so it costs no write of its own.
const SessionsAnnotation = "metallb.io/bgp-sessions"

func (s *Speaker) publishSessions(l *coordinationv1.Lease) {
	if s.sessions == nil {
		return
	}
	var b strings.Builder
	for _, st := range s.sessions() {
		state := "down"
		if st.Up {
			state = "up"
		}
		fmt.Fprintf(&b, "%s %s %d\n", st.Peer, state, st.Prefixes)
	}
	if b.Len() == 0 {
		delete(l.Annotations, SessionsAnnotation)
		return
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[SessionsAnnotation] = b.String()
}

// handOff passes this node's layer2 addresses on before it stops: it stops
// answering, releases each address to its next owner (which announces it
// at once, with a gratuitous ARP / unsolicited NA), and says goodbye, so
// that the others stop counting on it without waiting to find it dead. A
// rolling update leaves no address to a second MAC, and unanswered only for
// the time a datagram takes. The Lease goes too: `metallb status` then
// shows the speaker stopped rather than late.
func (s *Speaker) handOff() {
	ml := s.ml.Load()
	if ml == nil {
		s.l2.SetClaims(nil)
		return
	}
	in := s.input()
	s.mu.Lock()
	rel := s.core.Leave(in)
	s.mu.Unlock()
	s.l2.SetClaims(nil)
	n := 0
	for _, r := range rel {
		ml.Release(r.To, r.IPs)
		n += len(r.IPs)
	}
	start := time.Now()
	ml.Leave(HandOffTimeout)
	s.log.Info("handed the addresses over and left", "addresses", n, "took", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.o.Client.CoordinationV1().Leases(s.o.Namespace).Delete(ctx, leasePrefix+s.o.NodeName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		s.log.Debug("cannot delete the speaker Lease", "error", err)
	}
}

// HandOffTimeout bounds how long a stopping speaker waits for its goodbye to
// be gossiped.
const HandOffTimeout = 300 * time.Millisecond

// nodeList returns every node with whether its speaker is alive and
// whether it may announce.
func (s *Speaker) nodeList() []announce.Node {
	ml := s.ml.Load()
	var out []announce.Node
	for _, obj := range s.nodes.List() {
		n := obj.(*corev1.Node)
		_, excluded := n.Labels[ExcludeLabel]
		ready := nodeReady(n) && !excluded
		live := ml != nil && ml.Alive(n.Name)
		node := announce.Node{Name: n.Name, Labels: n.Labels, Eligible: live && ready, Live: live, Ready: ready}
		node.Addrs = k8s.NodeAddrs(n, corev1.NodeInternalIP, corev1.NodeExternalIP)
		out = append(out, node)
	}
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// svcList returns our LoadBalancer Services that have addresses, with the
// nodes of their ready endpoints.
func (s *Speaker) svcList() []announce.Svc {
	ready := map[string]map[string]bool{}
	for _, obj := range s.slices.List() {
		es := obj.(*discoveryv1.EndpointSlice)
		name := es.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := es.Namespace + "/" + name
		for _, ep := range es.Endpoints {
			if (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && ep.NodeName != nil {
				if ready[key] == nil {
					ready[key] = map[string]bool{}
				}
				ready[key][*ep.NodeName] = true
			}
		}
	}
	var out []announce.Svc
	for _, obj := range s.svcs.List() {
		svc := obj.(*corev1.Service)
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !k8s.ServesClass(svc, s.o.LBClass) {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		v := announce.Svc{Key: key, Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal}
		v.IPs = k8s.IngressIPs(svc)
		for n := range ready[key] {
			v.ReadyNodes = append(v.ReadyNodes, n)
		}
		if len(v.IPs) > 0 {
			out = append(out, v)
		}
	}
	return out
}

// Conflict implements layer2.Events.
func (s *Speaker) Conflict(ip netip.Addr, ifname string, mac net.HardwareAddr) {
	var known []string
	if ml := s.ml.Load(); ml != nil {
		known = ml.Known()
	}
	s.mu.Lock()
	v := s.core.Conflict(ip, s.o.NodeName, s.isolated, known)
	var keys []string
	for _, a := range s.announced {
		if a.IP == ip {
			keys = append(keys, a.Service)
		}
	}
	s.mu.Unlock()
	switch v {
	case announce.Ignore:
		return
	case announce.Yield:
		s.log.Warn("cut off from the other speakers and another host announces the address: yielding it",
			"ip", ip, "interface", ifname, "mac", mac.String())
		s.poke()
		return
	}
	// The rightful owner: say so again, so that clients which believed the
	// other host come back.
	s.l2.Reassert(ip)
	s.mConflicts.WithLabelValues(ip.String()).Inc()
	for _, k := range keys {
		if obj := s.service(k); obj != nil {
			s.recorder.Eventf(obj, corev1.EventTypeWarning, ReasonConflict,
				"another host (MAC %s) answers for %s on %s of node %q: two machines claim this address; find it with arping and remove the address from it",
				mac, ip, ifname, s.o.NodeName)
		}
	}
}

// Count implements layer2.Events.
func (s *Speaker) Count(event string, ip netip.Addr) {
	if c := s.mL2[event]; c != nil {
		c.WithLabelValues(ip.String()).Inc()
	}
}
