package speaker

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/bfd"
	"github.com/microk8s-metallb/metallb/pkg/bgp"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/layer2"
	"github.com/microk8s-metallb/metallb/pkg/members"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// DefaultLeaseRenew is how often the speaker that publishes the membership
// renews its Lease (the others: see LeasePerMember). The Lease is not
// liveness (the speakers find each other alive by memberlist): it tells
// `metallb status` which speakers run, and carries their BGP sessions.
const DefaultLeaseRenew = 10 * time.Second

// Labels and reasons.
const (
	ExcludeLabel   = "node.kubernetes.io/exclude-from-external-load-balancers"
	ReasonAssigned = "nodeAssigned"
	ReasonConflict = "IPConflict"
	// ReasonMaxPrefix (on the Node): a BGP session closed by max-prefix.
	ReasonMaxPrefix = "BGPMaxPrefix"
	// ReasonBFDDown (on the Node): a BFD session left Up, which closed its
	// BGP session.
	ReasonBFDDown = "BFDSessionDown"
	leasePrefix   = "metallb-speaker-"
)

// BGPAnnouncer makes the BGP sessions and routes match what this node
// should have (bgp.Manager).
type BGPAnnouncer interface {
	// Update runs exactly peers, and changes the routes by difference.
	Update(ctx context.Context, routerID netip.Addr, peers []bgp.Peer, advertise []bgp.Route, withdraw []netip.Prefix) error
	Close()
	// Detach takes BFD AdminDown and leaves the BGP sessions to drop with
	// the process (a restart with graceful restart).
	Detach()
}

// Layer2 answers ARP and NDP for the claimed addresses (layer2.Announcer).
type Layer2 interface {
	Run(ctx context.Context)
	// UpdateClaims claims set (new, or new interfaces) and drops drop.
	UpdateClaims(set []layer2.Claim, drop []netip.Addr)
	Reassert(ip netip.Addr)
	Unanswered() []netip.Addr
}

// Members is the membership of the speakers (members.List).
type Members interface {
	Alive(node string) bool
	Peers() int
	Known() []string
	Join(addrs []netip.Addr)
	Forget(node string)
	Release(node string, ips []netip.Addr)
	Leave(timeout time.Duration)
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
	// DaemonSet runs the speakers (default "metallb-speaker"): while it exists, a
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

	// The parts that touch the network, for tests to replace (nil: the
	// real ones). Layer2 reports to the speaker's Conflict and Count.
	Layer2 Layer2
	// BGP with Sessions, the state of its sessions for the Lease.
	BGP      BGPAnnouncer
	Sessions func() []bgp.SessionState
	// StartMembers joins the membership (members.Start).
	StartMembers func(members.Options) (Members, error)
	// Dynamic, when set, writes a ServiceL2Status per Service this node
	// answers for by layer2, and the ConfigurationState speaker-NODE.
	Dynamic dynamic.Interface
	// ServiceBGPStatus (with Dynamic): a ServiceBGPStatus per Service this
	// node advertises by BGP, naming the peers. Off by default: in BGP
	// mode every node advertises every Service, so the objects are
	// Services x nodes, and a bulk of N Services costs 2 x N x nodes writes.
	ServiceBGPStatus bool
	// TrafficDir, when set, is the directory shared with the counting
	// container (`metallb traffic-counter`): the speaker writes there the
	// addresses its node announces, and reads their counts from there for
	// its metrics and its Lease.
	TrafficDir string
	// Started, when set, is called once, when the caches have synced and
	// the component is ready (the binary gives back there the pages of
	// itself that only start-up touched: memtrim.ReleaseBinaryPages).
	Started func()
}

// Speaker announces this node's share of the addresses. One goroutine, the
// loop of Run, owns its state and the core; the callbacks (informers, the
// config, memberlist, the announcers, the API check) only queue events.
type Speaker struct {
	o        Options
	log      *slog.Logger
	recorder record.EventRecorder
	watcher  *k8s.ConfigWatcher
	l2       Layer2
	bgp      BGPAnnouncer
	sessions func() []bgp.SessionState // published on the Lease
	m        *speakerMetrics
	inbox    *inbox

	svcs   cache.Indexer
	slices cache.Indexer
	nodes  cache.Indexer
	// ml is set once by Run, before the goroutines that read it start;
	// mlShared holds it too, for the Lease's goroutine, started earlier.
	ml       Members
	mlShared atomic.Value

	// Owned by Run's loop.
	core      *announce.Core
	resend    bool                  // a speaker joined since the last plan
	isolated  bool                  // sees none of the peers it knew
	apiDown   bool                  // isolated, and the API server does not answer
	ready     bool                  // /readyz, last set
	waitLog   map[netip.Addr]string // addresses waiting for a release, as last logged
	peers     []bgp.Peer            // BGP sessions of the last plan
	secrets   secrets               // the BGPPeers' password Secrets
	l2status  *statusWriter         // nil: none written
	bgpstatus *statusWriter         // nil: none written
	traffic   *trafficCounts        // nil: no counting container
	state     *k8s.StatusWriter     // ConfigurationState speaker-NODE; nil: none written
	shown     string                // the verdict last given to state
	shownOnce bool
	// startSecretWatch starts the Secret informer (set by Run).
	startSecretWatch func()
	bgpErr           string      // last BGP error logged, to log each once
	episode          uint64      // the current isolation, numbered (0: none)
	episodes         uint64      // isolations so far
	isoCh            chan uint64 // the episode, to watchAPI (latest only)
}

// New builds a speaker; Run starts it.
func New(ctx context.Context, o Options) *Speaker {
	if o.LeaseRenew <= 0 {
		o.LeaseRenew = DefaultLeaseRenew
	}
	if o.DaemonSet == "" {
		o.DaemonSet = "metallb-speaker"
	}
	if o.ConfigMap == "" {
		o.ConfigMap = k8s.DefaultConfigMap
	}
	s := &Speaker{
		o: o, log: o.Log, inbox: newInbox(),
		core: announce.NewCore(), waitLog: map[netip.Addr]string{}, isoCh: make(chan uint64, 1),
		recorder: k8s.NewRecorder(ctx, o.Client, k8s.SpeakerComponent), m: newMetrics(),
		l2: o.Layer2, bgp: o.BGP, sessions: o.Sessions,
	}
	if s.l2 == nil {
		s.l2 = layer2.NewAnnouncer(o.Log, s)
	}
	if s.bgp == nil {
		node := &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: o.NodeName, UID: types.UID(o.NodeName)}
		stub := bgp.NewStub(o.Log)
		stub.OnMaxPrefix = func(p bgp.Peer, n int) {
			s.recorder.Eventf(node, corev1.EventTypeWarning, ReasonMaxPrefix,
				"BGP session with %s closed for %s: the router announced %d prefixes, more than max-prefix %d (this speaker uses none: make the router export nothing to this node, or raise max-prefix)",
				p.Address, bgp.MaxPrefixRestart, n, p.MaxPrefix)
		}
		mgr := bgp.NewManager(o.Log, stub)
		mgr.OnBFD = func(ev bfd.Event) {
			if ev.Change.WentDown() {
				s.recorder.Eventf(node, corev1.EventTypeWarning, ReasonBFDDown,
					"BFD session with %s went %s (%s): its BGP session closed at once, and the router stops sending this node traffic",
					ev.Peer, ev.Change.To, ev.Change.Diag)
			}
		}
		s.bgp = mgr
		s.sessions = func() []bgp.SessionState { return withBFD(stub.Sessions(), mgr.BFDSessions()) }
		if o.Metrics != nil {
			o.Metrics.MustRegister(stub.Collector(), mgr.BFDCollector())
		}
	}
	if o.Dynamic != nil {
		s.l2status = newStatusWriter(l2Kind, o.Dynamic, o.Namespace, o.NodeName, o.Log)
		if o.ServiceBGPStatus {
			s.bgpstatus = newStatusWriter(bgpKind, o.Dynamic, o.Namespace, o.NodeName, o.Log)
		}
		s.state = &k8s.StatusWriter{Dynamic: o.Dynamic, Namespace: o.Namespace, State: k8s.SpeakerState(o.NodeName), Log: o.Log}
	}
	if o.TrafficDir != "" {
		s.traffic = newTrafficCounts(o.TrafficDir, o.NodeName, o.Log)
		if o.Metrics != nil {
			o.Metrics.MustRegister(s.traffic)
		}
	}
	if s.o.StartMembers == nil {
		s.o.StartMembers = func(mo members.Options) (Members, error) { return members.Start(mo) }
	}
	// The speakers run on the config the controller accepted: one judge for
	// every edit, and the same config on every node. The copy also survives
	// a broken or deleted ConfigMap across restarts. The controller raises
	// the Events about the operator's ConfigMap.
	s.watcher = k8s.NewConfigWatcher(k8s.ConfigWatcherOptions{
		Client: o.Client, Namespace: o.Namespace, Name: k8s.AcceptedName(o.ConfigMap), Log: o.Log,
		Metrics: o.Metrics, OnConfig: func(*config.Config) { s.inbox.poke() }, MirrorState: true,
		OnState: func(k8s.ConfigState) { s.inbox.poke() }, // a refusal too: the ConfigurationState says it
		Level:   o.Level, BaseLevel: o.BaseLevel,
	})
	if o.Metrics != nil {
		s.m.register(o.Metrics)
	}
	return s
}

// Run runs until ctx ends, then hands its addresses over and withdraws
// everything. Every goroutine it starts has ended when it returns.
func (s *Speaker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The announcer outlives ctx by the hand-off: it must keep answering
	// until the addresses are released to their next owners.
	l2ctx, l2stop := context.WithCancel(context.Background())
	defer l2stop()
	start := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}

	// The caches hold what the speaker reads (k8s.Trim), and an update
	// that changed nothing of it (a heartbeat, a pod's address) is not
	// worth a re-plan.
	factory := k8s.NewInformerFactory(s.o.Client, &corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{})
	defer factory.Shutdown()
	// Services and EndpointSlices name the Service they change: the loop
	// re-plans its addresses only. Nodes are few: a change re-plans all.
	byKey := cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { s.inbox.services(serviceKeys(obj)) },
		UpdateFunc: func(old, cur any) {
			if k8s.Changed(old, cur) {
				s.inbox.services(append(serviceKeys(old), serviceKeys(cur)...))
			}
		},
		DeleteFunc: func(obj any) { s.inbox.services(serviceKeys(obj)) },
	}
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.inbox.poke() },
		UpdateFunc: func(old, cur any) {
			if k8s.Changed(old, cur) {
				s.inbox.poke()
			}
		},
		DeleteFunc: func(any) { s.inbox.poke() },
	}
	infs := []cache.SharedIndexInformer{
		factory.Core().V1().Services().Informer(),
		factory.Discovery().V1().EndpointSlices().Informer(),
		factory.Core().V1().Nodes().Informer(),
	}
	if err := infs[1].AddIndexers(cache.Indexers{byService: func(obj any) ([]string, error) { return sliceService(obj), nil }}); err != nil {
		return err
	}
	for i, inf := range infs {
		h := byKey
		if i == 2 {
			h = poke
		}
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	s.svcs, s.slices, s.nodes = infs[0].GetIndexer(), infs[1].GetIndexer(), infs[2].GetIndexer()
	start(func() { s.watcher.Run(ctx) })
	start(func() { s.l2.Run(l2ctx) })
	if s.l2status != nil {
		start(func() { s.l2status.run(l2ctx) }) // until the hand-off is over
	}
	if s.traffic != nil {
		start(func() { s.traffic.announced.WriteLoop(ctx, s.o.TrafficDir, trafficWriteEvery, s.log) })
	}
	if s.bgpstatus != nil {
		start(func() { s.bgpstatus.run(l2ctx) })
	}
	start(func() { s.renewLease(ctx) })
	if s.state != nil {
		start(func() { s.state.Run(ctx) })
	}
	factory.Start(ctx.Done())
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
	s.ready = true
	if s.o.Started != nil {
		s.o.Started()
	}
	// A speaker with no config announces nothing, and must not be counted
	// on by the others: it joins the membership only once it has one.
	if s.watcher.Current() == nil {
		s.log.Warn("no accepted configuration yet: this speaker announces nothing and takes no part in elections",
			"configmap", s.o.Namespace+"/"+k8s.AcceptedName(s.o.ConfigMap))
		for s.watcher.Current() == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-s.inbox.wake:
			}
		}
		s.log.Info("configuration received: this speaker takes part in elections")
	}
	ml, err := s.startMembers()
	if err != nil {
		return err
	}
	s.ml = ml
	s.mlShared.Store(ml)
	s.startSecretWatch = func() { s.startSecrets(ctx, start) }
	s.settle(ctx, ml)
	start(func() { s.rejoin(ctx, ml) })
	start(func() { s.watchAPI(ctx, s.isoCh) })
	s.log.Info("speaker running", "node", s.o.NodeName, "peers", ml.Peers())
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.stop()
			return nil
		case <-s.inbox.wake:
			s.handle(s.inbox.take())
		case <-timer.C:
		}
		next := s.reconcile()
		if next <= 0 {
			next = time.Minute
		}
		timer.Reset(next)
	}
}

// stop hands the addresses over, then closes the BGP sessions unless a
// restart keeps the routes at the routers.
func (s *Speaker) stop() {
	restarting := make(chan bool, 1)
	go func() { restarting <- s.restarting() }()
	s.handOff()
	r := <-restarting
	if !r && s.l2status != nil {
		// Stopping for good: this node answers for nothing any more. After
		// the sessions close, within the process's stop grace; what is left
		// is cleaned by the next speaker of this node.
		defer s.clearStatus()
	}
	if r && s.gracefulPeers() {
		// The sessions drop with the process, without a NOTIFICATION:
		// routers keep this node's routes until it is back (RFC 4724), as
		// it runs only a rolling update.
		s.log.Info("stopping with graceful restart: routers keep this node's routes while the speaker restarts", "for at most", bgp.RestartTime)
		s.bgp.Detach()
		return
	}
	s.bgp.Close() // closing the sessions makes routers withdraw at once
}

// clearStatus deletes what this node published about itself (a speaker
// stopping for good), all at once, within statusClearTimeout.
func (s *Speaker) clearStatus() {
	var wg sync.WaitGroup
	for _, w := range []*statusWriter{s.l2status, s.bgpstatus} {
		if w != nil {
			wg.Add(1)
			go func() { defer wg.Done(); w.clear(statusClearTimeout) }()
		}
	}
	if err := s.state.DeleteState(statusClearTimeout); err != nil {
		s.log.Warn("the ConfigurationState of this speaker is left", "error", err)
	}
	wg.Wait()
}

// The events the loop receives besides "something changed" (a poke).
type (
	// evJoined: a speaker joined: releases are sent again.
	evJoined struct{}
	// evReleased: a speaker released addresses to this one.
	evReleased struct {
		from string
		ips  []netip.Addr
		at   time.Time
	}
	// evConflict: another MAC answers for or announces an address this
	// node announces.
	evConflict struct {
		ip     netip.Addr
		ifname string
		mac    net.HardwareAddr
	}
	// evAPI: during an isolation, the API server stopped or started
	// answering.
	evAPI struct {
		episode uint64
		down    bool
		err     error
	}
)

// handle applies queued events to the loop's state, in order.
func (s *Speaker) handle(evs []any) {
	for _, ev := range evs {
		switch ev := ev.(type) {
		case evJoined:
			s.resend = true
		case evReleased:
			s.core.Released(ev.from, ev.ips, ev.at)
		case evConflict:
			s.conflict(ev)
		case evAPI:
			if ev.episode != s.episode || ev.down == s.apiDown {
				continue // the check of an isolation that ended, or said already
			}
			s.apiDown = ev.down
			if ev.down {
				s.log.Warn("cut off from every other speaker and from the API server: withdrawing the layer2 addresses (the others have taken them over)", "error", ev.err)
			} else {
				s.log.Info("the API server answers again")
			}
		}
	}
}

// Conflict implements layer2.Events.
func (s *Speaker) Conflict(ip netip.Addr, ifname string, mac net.HardwareAddr) {
	s.inbox.conflict(evConflict{ip: ip, ifname: ifname, mac: mac})
}

// Count implements layer2.Events.
func (s *Speaker) Count(event string, ip netip.Addr) {
	if c := s.m.l2[event]; c != nil {
		c.WithLabelValues(ip.String()).Inc()
	}
}

// inbox queues the events for the loop: callbacks never block, and never
// touch the loop's state. Conflicts are kept one per address (a flood of
// forged claims queues no more than the addresses announced), changed
// Services one per key.
type inbox struct {
	wake      chan struct{}
	mu        sync.Mutex
	evs       []any
	conflicts map[netip.Addr]evConflict
	svcs      map[string]bool
}

func newInbox() *inbox {
	return &inbox{wake: make(chan struct{}, 1), conflicts: map[netip.Addr]evConflict{}, svcs: map[string]bool{}}
}

// services says that these Services (or their endpoints) changed.
func (b *inbox) services(keys []string) {
	if len(keys) == 0 {
		return
	}
	b.mu.Lock()
	for _, k := range keys {
		b.svcs[k] = true
	}
	b.mu.Unlock()
	b.poke()
}

// takeServices returns the Services that changed since the last call.
func (b *inbox) takeServices() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.svcs))
	for k := range b.svcs {
		out = append(out, k)
	}
	clear(b.svcs)
	return out
}

// poke says that something changed: the loop plans again.
func (b *inbox) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *inbox) push(ev any) {
	b.mu.Lock()
	b.evs = append(b.evs, ev)
	b.mu.Unlock()
	b.poke()
}

func (b *inbox) conflict(ev evConflict) {
	b.mu.Lock()
	if _, ok := b.conflicts[ev.ip]; !ok {
		b.evs = append(b.evs, ev.ip) // its place in the order
	}
	b.conflicts[ev.ip] = ev
	b.mu.Unlock()
	b.poke()
}

// take returns the queued events, oldest first.
func (b *inbox) take() []any {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]any, 0, len(b.evs))
	for _, ev := range b.evs {
		if ip, ok := ev.(netip.Addr); ok {
			ev = b.conflicts[ip]
			delete(b.conflicts, ip)
		}
		out = append(out, ev)
	}
	b.evs = nil
	return out
}
