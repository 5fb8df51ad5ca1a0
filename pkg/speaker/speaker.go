package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/microk8s-metallb/metallb/pkg/bgp"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/layer2"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// Default liveness timing of speakers.
const (
	DefaultLeaseRenew    = 250 * time.Millisecond
	DefaultLeaseDuration = 900 * time.Millisecond
)

// Labels and reasons.
const (
	ExcludeLabel     = "node.kubernetes.io/exclude-from-external-load-balancers"
	ReasonAssigned   = "nodeAssigned"
	ReasonConflict   = "IPConflict"
	leasePrefix      = "metallb-speaker-"
	speakerComponent = "metallb-speaker"
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
	// LeaseRenew is how often this speaker renews its Lease; LeaseDuration
	// how long without a renewal a speaker counts as dead (and how long this
	// one keeps announcing when it cannot renew). Zero: the defaults.
	LeaseRenew, LeaseDuration time.Duration
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

	mu        sync.Mutex
	announced map[string]Announcement // ip/service → what
	claims    []layer2.Claim          // the layer2 claims last computed with the API reachable
	yielded   map[netip.Addr]bool     // taken over by another host while cut off
	selfOK    time.Time               // last successful renewal of our Lease
	ready     bool                    // /readyz, last set
	handing   map[netip.Addr]bool     // stopping: addresses not yet taken by their next owner
	handed    chan struct{}
	// seen is when, by this node's clock, each speaker's Lease was last seen
	// renewed: comparing with the renewer's own timestamps would make
	// liveness depend on clock skew between nodes.
	seen map[string]time.Time

	mAnnounced *prometheus.GaugeVec
	mL2        map[string]*prometheus.CounterVec
	mConflicts *prometheus.CounterVec
}

// New builds a speaker; Run starts it.
func New(ctx context.Context, o Options) *Speaker {
	if o.LeaseRenew <= 0 {
		o.LeaseRenew = DefaultLeaseRenew
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	s := &Speaker{
		o: o, log: o.Log, trigger: make(chan struct{}, 1), announced: map[string]Announcement{}, seen: map[string]time.Time{},
		recorder: k8s.NewRecorder(ctx, o.Client, speakerComponent),
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
	}
	s.l2 = layer2.NewAnnouncer(o.Log, s)
	gobgp := bgp.NewGoBGP(o.Log)
	s.sessions = gobgp.Sessions
	s.bgp = bgp.NewManager(o.Log, gobgp)
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
		o.Metrics.MustRegister(s.mAnnounced, s.mConflicts, gobgp.Collector())
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

// Run runs until ctx ends, then withdraws everything.
func (s *Speaker) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(s.o.Client, 0,
		informers.WithTransform(func(obj any) (any, error) {
			if m, ok := obj.(metav1.Object); ok {
				m.SetManagedFields(nil)
			}
			return obj, nil
		}))
	nsFactory := informers.NewSharedInformerFactoryWithOptions(s.o.Client, 0, informers.WithNamespace(s.o.Namespace))
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.poke() }, UpdateFunc: func(_, _ any) { s.poke() }, DeleteFunc: func(any) { s.poke() },
	}
	infs := []cache.SharedIndexInformer{
		factory.Core().V1().Services().Informer(),
		factory.Discovery().V1().EndpointSlices().Informer(),
		factory.Core().V1().Nodes().Informer(),
		nsFactory.Coordination().V1().Leases().Informer(),
	}
	for _, inf := range infs[:3] {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	if _, err := infs[3].AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			// A Lease found at start may be long dead: trust it only if its
			// own renew time is recent.
			if l, ok := obj.(*coordinationv1.Lease); ok && l.Spec.RenewTime != nil && time.Since(l.Spec.RenewTime.Time) <= s.o.LeaseDuration {
				s.leaseSeen(obj)
			}
		},
		UpdateFunc: func(_, obj any) { s.leaseSeen(obj) },
		// A speaker deletes its Lease when it stops (SIGTERM): it is gone at
		// once, not after the liveness timeout.
		DeleteFunc: s.leaseGone,
	}); err != nil {
		return err
	}
	s.svcs, s.slices, s.nodes = infs[0].GetIndexer(), infs[1].GetIndexer(), infs[2].GetIndexer()
	go s.watcher.Run(ctx)
	// The announcer outlives ctx by the hand-off: it must keep answering
	// until the next owners announce.
	l2ctx, l2stop := context.WithCancel(context.Background())
	defer l2stop()
	go s.l2.Run(l2ctx)
	go s.renewLease(ctx)
	factory.Start(ctx.Done())
	nsFactory.Start(ctx.Done())
	defer factory.Shutdown()
	defer nsFactory.Shutdown()
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
	s.log.Info("speaker running", "node", s.o.NodeName)
	// Leases expire without any event: re-evaluate right when the next one
	// would expire, and at least every renewal interval.
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.handOff()
			s.l2.SetClaims(nil)
			s.bgp.Close() // closing the sessions makes routers withdraw at once
			return nil
		case <-s.trigger:
		case <-timer.C:
		}
		s.reconcile()
		timer.Reset(s.untilNextExpiry())
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

// untilNextExpiry is the time until the first live speaker would count as
// dead, capped at the renewal interval.
func (s *Speaker) untilNextExpiry() time.Duration {
	next := s.o.LeaseRenew
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, at := range s.seen {
		if d := time.Until(at.Add(s.o.LeaseDuration)) + time.Millisecond; d > 0 && d < next {
			next = d
		}
	}
	return next
}

// renewLease keeps this speaker's Lease fresh.
func (s *Speaker) renewLease(ctx context.Context) {
	leases := s.o.Client.CoordinationV1().Leases(s.o.Namespace)
	name := leasePrefix + s.o.NodeName
	t := time.NewTicker(s.o.LeaseRenew)
	defer t.Stop()
	var cur *coordinationv1.Lease // last written: one Update per renewal
	waiting := false
	for {
		// A speaker with no config announces nothing: it must not be
		// elected for an address, so it stays out of the live set.
		if s.watcher.Current() == nil {
			if !waiting {
				s.log.Warn("no accepted configuration yet: this speaker announces nothing and takes no part in elections",
					"configmap", s.o.Namespace+"/"+k8s.AcceptedName(s.o.ConfigMap))
				waiting = true
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			continue
		}
		if waiting {
			s.log.Info("configuration received: this speaker takes part in elections")
			waiting = false
		}
		rctx, cancel := context.WithTimeout(ctx, s.o.LeaseDuration)
		var err error
		if cur == nil {
			cur, err = leases.Get(rctx, name, metav1.GetOptions{})
		}
		now := metav1.NewMicroTime(time.Now())
		switch {
		case apierrors.IsNotFound(err):
			cur, err = leases.Create(rctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/component": "speaker"}},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: ptr.To(s.o.NodeName), RenewTime: &now,
					LeaseDurationSeconds: ptr.To(int32(max(1, s.o.LeaseDuration/time.Second))),
				},
			}, metav1.CreateOptions{})
		case err == nil:
			next := cur.DeepCopy()
			next.Spec.RenewTime = &now
			s.publishSessions(next)
			cur, err = leases.Update(rctx, next, metav1.UpdateOptions{})
		}
		cancel()
		if err == nil {
			s.mu.Lock()
			s.selfOK = time.Now()
			s.mu.Unlock()
		} else {
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

// reconcile recomputes and applies the announcements.
func (s *Speaker) reconcile() {
	defer s.updateReadiness()
	s.mu.Lock()
	cutOff := time.Since(s.selfOK) > s.o.LeaseDuration
	if !cutOff {
		s.yielded = nil
	}
	s.mu.Unlock()
	if cutOff {
		// Cut off from the API server, this speaker cannot know whether the
		// others can still see it. If they cannot, they elect new owners,
		// which announce themselves (gratuitous ARP / unsolicited NA):
		// Conflict then yields those addresses. If the API server is down
		// for everyone, nobody takes over and the addresses keep working.
		s.mu.Lock()
		keep := make([]layer2.Claim, 0, len(s.claims))
		for _, c := range s.claims {
			if !s.yielded[c.IP] {
				keep = append(keep, c)
			}
		}
		s.mu.Unlock()
		s.l2.SetClaims(keep)
		return
	}
	cfg := s.watcher.Current()
	nodes, svcs := s.nodeList(), s.svcList()
	want := Desired(cfg, s.o.NodeName, nodes, svcs)
	claims := make([]layer2.Claim, 0, len(want))
	seen := map[netip.Addr]bool{}
	for _, a := range want {
		if !seen[a.IP] {
			seen[a.IP] = true
			claims = append(claims, layer2.Claim{IP: a.IP, Interfaces: a.Interfaces})
		}
	}
	s.l2.SetClaims(claims)
	s.mu.Lock()
	s.claims = claims
	s.mu.Unlock()

	// BGP does not depend on this speaker's Lease: routers see the sessions
	// themselves, and an API server outage must not withdraw every route.
	var self Node
	for _, n := range nodes {
		if n.Name == s.o.NodeName {
			self = n
		}
	}
	peers, routerID := PeersFor(cfg, self)
	routes, bgpAnns := DesiredBGP(cfg, self, svcs)
	if len(peers) == 0 {
		bgpAnns = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := s.bgp.Set(ctx, routerID, peers, routes)
	cancel()
	if msg := fmt.Sprint(err); err != nil && msg != s.bgpErr {
		s.log.Error("BGP", "error", err)
		s.bgpErr = msg
	} else if err == nil {
		s.bgpErr = ""
	}
	want = append(want, bgpAnns...)

	next := map[string]Announcement{}
	for _, a := range want {
		next[string(a.Protocol)+"/"+a.IP.String()+"/"+a.Service] = a
	}
	s.mu.Lock()
	prev := s.announced
	s.announced = next
	s.mu.Unlock()
	for k, a := range next {
		if _, had := prev[k]; !had {
			s.mAnnounced.WithLabelValues(a.Service, s.o.NodeName, a.IP.String(), string(a.Protocol)).Set(1)
			if obj := s.service(a.Service); obj != nil {
				s.recorder.Eventf(obj, corev1.EventTypeNormal, ReasonAssigned, "announcing from node %q with protocol %q", s.o.NodeName, a.Protocol)
			}
		}
	}
	for k, a := range prev {
		if _, keep := next[k]; !keep {
			s.mAnnounced.DeleteLabelValues(a.Service, s.o.NodeName, a.IP.String(), string(a.Protocol))
		}
	}
}

func (s *Speaker) service(key string) *corev1.Service {
	obj, ok, _ := s.svcs.GetByKey(key)
	if !ok {
		return nil
	}
	return obj.(*corev1.Service)
}

// leaseSeen records that a speaker's Lease was renewed, by our clock.
func (s *Speaker) leaseSeen(obj any) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok || l.Spec.HolderIdentity == nil {
		return
	}
	s.mu.Lock()
	_, known := s.seen[*l.Spec.HolderIdentity]
	s.seen[*l.Spec.HolderIdentity] = time.Now()
	s.mu.Unlock()
	if !known {
		s.poke()
	}
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

// leaseGone forgets a speaker whose Lease was deleted.
func (s *Speaker) leaseGone(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if l, ok := obj.(*coordinationv1.Lease); ok && l.Spec.HolderIdentity != nil {
		s.mu.Lock()
		delete(s.seen, *l.Spec.HolderIdentity)
		s.mu.Unlock()
	}
	s.poke()
}

// HandOffTimeout bounds how long a stopping speaker waits for the next
// owners to announce its layer2 addresses.
const HandOffTimeout = 500 * time.Millisecond

// handOff passes this node's layer2 addresses on before it stops: it
// deletes its Lease, so the other speakers elect the next owners at once,
// and keeps answering each address until the next owner announces it (its
// gratuitous ARP / unsolicited NA, seen as a conflict), then lets go of
// it. So a rolling update leaves no address unanswered, and two MACs answer
// only for the moment of the announcement. A speaker cut off from the API
// server cannot hand off (nobody would see its Lease go).
func (s *Speaker) handOff() {
	s.mu.Lock()
	pending := map[netip.Addr]bool{}
	for _, c := range s.claims {
		pending[c.IP] = true
	}
	cutOff := time.Since(s.selfOK) > s.o.LeaseDuration
	if len(pending) > 0 && !cutOff {
		s.handing = pending
		s.handed = make(chan struct{}, 1)
	}
	handed := s.handed
	s.mu.Unlock()
	if handed == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), HandOffTimeout)
	defer cancel()
	start := time.Now()
	if err := s.o.Client.CoordinationV1().Leases(s.o.Namespace).Delete(ctx, leasePrefix+s.o.NodeName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		s.log.Warn("cannot hand off: the Lease could not be deleted; the addresses move when it expires", "error", err)
		return
	}
	for {
		s.mu.Lock()
		left := len(s.handing)
		s.mu.Unlock()
		if left == 0 {
			s.log.Info("handed every address to its next owner", "took", time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-handed:
		case <-ctx.Done():
			s.log.Warn("hand-off incomplete: no other speaker announced these addresses in time", "addresses", left)
			return
		}
	}
}

// nodeList returns every node with whether it may announce.
func (s *Speaker) nodeList() []Node {
	live := map[string]bool{}
	s.mu.Lock()
	// Only a speaker in touch with the API server can tell that another
	// stopped renewing: if this one's last renewal is older than half the
	// timeout, a Lease that expired after that renewal is not evidence (the
	// API server may be down for everyone, and nobody should take over).
	blind := time.Since(s.selfOK) > s.o.LeaseDuration/2
	for holder, at := range s.seen {
		if time.Since(at) <= s.o.LeaseDuration || (blind && !at.Add(s.o.LeaseDuration).Before(s.selfOK)) {
			live[holder] = true
		}
	}
	s.mu.Unlock()
	var out []Node
	for _, obj := range s.nodes.List() {
		n := obj.(*corev1.Node)
		_, excluded := n.Labels[ExcludeLabel]
		ready := nodeReady(n) && !excluded
		node := Node{Name: n.Name, Labels: n.Labels, Eligible: live[n.Name] && ready, Ready: ready}
		for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
			for _, a := range n.Status.Addresses {
				if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == t {
					node.Addrs = append(node.Addrs, ip)
				}
			}
		}
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
func (s *Speaker) svcList() []Svc {
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
	var out []Svc
	for _, obj := range s.svcs.List() {
		svc := obj.(*corev1.Service)
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !k8s.ServesClass(svc, s.o.LBClass) {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		v := Svc{Key: key, Local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal}
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
	s.mu.Lock()
	if s.handing[ip] {
		// Stopping: the next owner has taken the address. Let go of it.
		delete(s.handing, ip)
		keep := make([]layer2.Claim, 0, len(s.handing))
		for _, c := range s.claims {
			if s.handing[c.IP] {
				keep = append(keep, c)
			}
		}
		select {
		case s.handed <- struct{}{}:
		default:
		}
		s.mu.Unlock()
		s.l2.SetClaims(keep)
		return
	}
	if time.Since(s.selfOK) > s.o.LeaseDuration {
		// Cut off from the API server: another speaker has taken the
		// address over (it saw this one's Lease expire). Yield at once.
		first := !s.yielded[ip]
		if s.yielded == nil {
			s.yielded = map[netip.Addr]bool{}
		}
		s.yielded[ip] = true
		s.mu.Unlock()
		if first {
			s.log.Warn("cut off from the API server and another host announces the address: yielding it",
				"ip", ip, "interface", ifname, "mac", mac.String())
			s.poke()
		}
		return
	}
	s.mu.Unlock()
	// In touch with the API server, this node is the rightful owner: say so
	// again, so that clients which believed the other host come back.
	s.l2.Reassert(ip)
	s.mConflicts.WithLabelValues(ip.String()).Inc()
	s.mu.Lock()
	var keys []string
	for _, a := range s.announced {
		if a.IP == ip {
			keys = append(keys, a.Service)
		}
	}
	s.mu.Unlock()
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
