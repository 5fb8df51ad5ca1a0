// Package status answers "what is metallb doing right now" from what the
// components publish in the API: the controller's accepted config and its
// state, the Services' addresses and Events, the speakers' Leases (with the
// BGP sessions each publishes there), pods and ConfigurationStates. It reads only; `metallb status` renders its Report.
package status

import (
	"context"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/traffic"
)

// Report is the whole picture.
type Report struct {
	Config   ConfigStatus    `json:"config" yaml:"config"`
	Pools    []PoolStatus    `json:"pools" yaml:"pools"`
	Services []ServiceStatus `json:"services" yaml:"services"`
	Speakers []SpeakerStatus `json:"speakers" yaml:"speakers"`
	Sessions []SessionStatus `json:"bgpSessions" yaml:"bgpSessions"`
	// Traffic is what the nodes counted for the Services' addresses
	// (enable --traffic-stats), as of each speaker's last Lease renewal.
	Traffic []TrafficStatus `json:"traffic,omitempty" yaml:"traffic,omitempty"`
}

// TrafficStatus is what one node received for one Service's address.
type TrafficStatus struct {
	Service string `json:"service" yaml:"service"`
	Address string `json:"address" yaml:"address"`
	Node    string `json:"node" yaml:"node"`
	Packets uint64 `json:"packets" yaml:"packets"`
	Bytes   uint64 `json:"bytes" yaml:"bytes"`
	// The rate over the last minute (Window: over how long, shorter
	// while the speaker is young; 0: not known yet).
	PacketsPerSecond float64 `json:"packetsPerSecond" yaml:"packetsPerSecond"`
	BytesPerSecond   float64 `json:"bytesPerSecond" yaml:"bytesPerSecond"`
	Window           string  `json:"window,omitempty" yaml:"window,omitempty"`
}

// ConfigStatus is the controller's verdict on the ConfigMap.
type ConfigStatus struct {
	State  string `json:"state" yaml:"state"` // accepted, stale, or none
	Since  string `json:"since,omitempty" yaml:"since,omitempty"`
	Reason string `json:"reason,omitempty" yaml:"reason,omitempty"`
	// Warnings are what the configuration in force does not do although
	// it looks as if it would (a pool nothing announces, ...).
	Warnings []string `json:"warnings,omitempty" yaml:"warnings,omitempty"`
}

// PoolStatus counts a pool's addresses. Sizes are decimal strings: an IPv6
// /64 holds 2^64.
type PoolStatus struct {
	Name     string `json:"name" yaml:"name"`
	Protocol string `json:"protocol" yaml:"protocol"`
	Size     string `json:"size" yaml:"size"`
	Used     int    `json:"used" yaml:"used"`
	Free     string `json:"free" yaml:"free"`
}

// ServiceStatus is one LoadBalancer Service.
type ServiceStatus struct {
	Service   string   `json:"service" yaml:"service"`
	Addresses []string `json:"addresses,omitempty" yaml:"addresses,omitempty"`
	Pool      string   `json:"pool,omitempty" yaml:"pool,omitempty"`
	Protocol  string   `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	// AnnouncedBy are the nodes whose speakers said they announce it
	// (nodeAssigned Events; layer2: the latest one).
	AnnouncedBy []string `json:"announcedBy,omitempty" yaml:"announcedBy,omitempty"`
	// Pending says why a Service has no address.
	Pending string `json:"pending,omitempty" yaml:"pending,omitempty"`
}

// SpeakerStatus is one node's speaker.
type SpeakerStatus struct {
	Node    string `json:"node" yaml:"node"`
	Alive   bool   `json:"alive" yaml:"alive"`
	Renewed string `json:"renewed,omitempty" yaml:"renewed,omitempty"` // how long ago its Lease was renewed
	Ready   string `json:"ready,omitempty" yaml:"ready,omitempty"`     // its pod's readiness, when there is a pod
	Version string `json:"version,omitempty" yaml:"version,omitempty"` // its pod's image tag
	// Waiting is why its container does not run (ErrImageNeverPull, ...).
	Waiting string `json:"waiting,omitempty" yaml:"waiting,omitempty"`
	Image   string `json:"image,omitempty" yaml:"image,omitempty"` // what it should run
	// Configuration is its ConfigurationState speaker-NODE (Valid or
	// Invalid, "" when none is published), Problem why it is Invalid.
	Configuration string `json:"configuration,omitempty" yaml:"configuration,omitempty"`
	Problem       string `json:"configurationProblem,omitempty" yaml:"configurationProblem,omitempty"`
}

// SessionStatus is one BGP session of one node.
type SessionStatus struct {
	Node     string `json:"node" yaml:"node"`
	Peer     string `json:"peer" yaml:"peer"`
	Up       bool   `json:"up" yaml:"up"`
	Prefixes int    `json:"prefixesSent" yaml:"prefixesSent"`
	// BFD is the state of the peer's BFD session ("": no BFD profile).
	BFD string `json:"bfd,omitempty" yaml:"bfd,omitempty"`
	// Stale: the speaker is dead; this is what it last published.
	Stale bool `json:"stale,omitempty" yaml:"stale,omitempty"`
}

// Options say where to look.
type Options struct {
	Namespace string // metallb's; default metallb-system
	ConfigMap string // default config
	Now       time.Time
	// LeaseTimeout: a speaker Lease renewed longer ago than this is dead,
	// when the Lease does not give its own duration.
	LeaseTimeout time.Duration
	// Dynamic, when set, reads the speakers' ConfigurationStates.
	Dynamic dynamic.Interface
}

// Gather reads the cluster and builds the Report.
func Gather(ctx context.Context, c kubernetes.Interface, o Options) (*Report, error) {
	if o.Namespace == "" {
		o.Namespace = k8s.DefaultNamespace
	}
	if o.ConfigMap == "" {
		o.ConfigMap = k8s.DefaultConfigMap
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.LeaseTimeout == 0 {
		o.LeaseTimeout = 30 * time.Second
	}
	r := &Report{Config: ConfigStatus{State: "none", Reason: "no accepted configuration: is the controller running?"}}
	var cfg *config.Config
	if cm, err := c.CoreV1().ConfigMaps(o.Namespace).Get(ctx, k8s.AcceptedName(o.ConfigMap), metav1.GetOptions{}); err == nil {
		r.Config = ConfigStatus{State: cm.Annotations[k8s.StateAnnotation], Since: cm.Annotations[k8s.StateSinceAnnotation], Reason: cm.Annotations[k8s.StateReasonAnnotation]}
		cfg, _ = config.Parse([]byte(cm.Data[k8s.ConfigKey]))
		if cfg != nil {
			r.Config.Warnings = cfg.Warnings
		}
	}
	svcs, err := k8s.ListServices(ctx, c)
	if err != nil {
		return nil, err
	}
	evs, err := c.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Service"})
	if err != nil {
		return nil, fmt.Errorf("list Events: %w", err)
	}
	r.Services = services(svcs, ours(evs.Items), cfg)
	r.Pools = pools(cfg, r.Services)
	leases, err := c.CoordinationV1().Leases(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
	if err != nil {
		return nil, fmt.Errorf("list speaker Leases: %w", err)
	}
	pods, err := c.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
	if err != nil {
		return nil, fmt.Errorf("list speaker pods: %w", err)
	}
	r.Speakers = speakers(leases.Items, pods.Items, o.Now, o.LeaseTimeout)
	if o.Dynamic != nil {
		// Not served (no CRDs): nothing to show.
		if list, err := o.Dynamic.Resource(k8s.ConfigurationStateGVR).Namespace(o.Namespace).List(ctx, metav1.ListOptions{}); err == nil {
			speakerStates(r.Speakers, list.Items)
		}
	}
	alive := map[string]bool{}
	for _, sp := range r.Speakers {
		alive[sp.Node] = sp.Alive
	}
	r.Sessions = sessions(leases.Items, alive)
	r.Traffic = trafficOf(leases.Items, alive, r.Services)
	return r, nil
}

// ours keeps the Events metallb's components wrote about objects of their
// own namespace (k8s.OurEvent): an Event made in dev about prod/web, or one
// claiming to come from the speaker, does not show in prod's row.
func ours(evs []corev1.Event) []corev1.Event {
	out := evs[:0:0]
	for i := range evs {
		if k8s.OurEvent(&evs[i]) {
			out = append(out, evs[i])
		}
	}
	return out
}

// announced maps a Service key to the nodes its nodeAssigned Events name.
func announced(evs []corev1.Event) map[string][]string {
	type ev struct {
		node, proto string
		at          time.Time
	}
	by := map[string][]ev{}
	for _, e := range evs {
		if e.Reason != "nodeAssigned" {
			continue
		}
		var node, proto string
		if _, err := fmt.Sscanf(e.Message, "announcing from node %q with protocol %q", &node, &proto); err != nil {
			continue
		}
		at := e.LastTimestamp.Time
		if at.IsZero() {
			at = e.EventTime.Time
		}
		k := e.InvolvedObject.Namespace + "/" + e.InvolvedObject.Name
		by[k] = append(by[k], ev{node, proto, at})
	}
	out := map[string][]string{}
	for k, es := range by {
		sort.Slice(es, func(i, j int) bool { return es[i].at.After(es[j].at) })
		if es[0].proto == string(config.Layer2) {
			out[k] = []string{es[0].node}
			continue
		}
		var nodes []string
		for _, e := range es {
			if e.proto == string(config.BGP) && !slices.Contains(nodes, e.node) {
				nodes = append(nodes, e.node)
			}
		}
		sort.Strings(nodes)
		out[k] = nodes
	}
	return out
}

// pendingReasons maps a Service key to its latest AllocationFailed message.
func pendingReasons(evs []corev1.Event) map[string]string {
	latest := map[string]time.Time{}
	out := map[string]string{}
	for _, e := range evs {
		if e.Reason != "AllocationFailed" {
			continue
		}
		k := e.InvolvedObject.Namespace + "/" + e.InvolvedObject.Name
		if at := e.LastTimestamp.Time; at.After(latest[k]) || out[k] == "" {
			latest[k], out[k] = at, e.Message
		}
	}
	return out
}

func services(svcs []*corev1.Service, evs []corev1.Event, cfg *config.Config) []ServiceStatus {
	ann, why := announced(evs), pendingReasons(evs)
	var out []ServiceStatus
	for i := range svcs {
		s := svcs[i]
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		k := s.Namespace + "/" + s.Name
		st := ServiceStatus{Service: k}
		for _, ip := range k8s.IngressIPs(s) {
			st.Addresses = append(st.Addresses, ip.String())
			if cfg == nil {
				continue
			}
			if p := cfg.PoolFor(ip); p != nil {
				st.Pool, st.Protocol = p.Name, string(p.Protocol)
			}
		}
		if len(st.Addresses) > 0 {
			st.AnnouncedBy = ann[k]
		} else {
			switch {
			case s.Spec.LoadBalancerClass != nil:
				st.Pending = fmt.Sprintf("loadBalancerClass %q: served by another load balancer", *s.Spec.LoadBalancerClass)
			case why[k] != "":
				st.Pending = why[k]
			case cfg == nil:
				st.Pending = "no configuration accepted yet"
			default:
				st.Pending = "not handled yet: is the controller running?"
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

func pools(cfg *config.Config, svcs []ServiceStatus) []PoolStatus {
	if cfg == nil {
		return nil
	}
	used := map[string]map[string]bool{}
	for _, s := range svcs {
		for _, a := range s.Addresses {
			if s.Pool != "" {
				if used[s.Pool] == nil {
					used[s.Pool] = map[string]bool{}
				}
				used[s.Pool][a] = true // shared addresses count once
			}
		}
	}
	var out []PoolStatus
	for _, p := range cfg.Pools {
		size := p.Size()
		n := len(used[p.Name])
		free := new(big.Int).Sub(size, big.NewInt(int64(n)))
		out = append(out, PoolStatus{Name: p.Name, Protocol: string(p.Protocol), Size: size.String(), Used: n, Free: free.String()})
	}
	return out
}

func speakers(leases []coordinationLease, pods []corev1.Pod, now time.Time, timeout time.Duration) []SpeakerStatus {
	by := map[string]*SpeakerStatus{}
	get := func(node string) *SpeakerStatus {
		if by[node] == nil {
			by[node] = &SpeakerStatus{Node: node}
		}
		return by[node]
	}
	for _, l := range leases {
		if l.Spec.HolderIdentity == nil || l.Spec.RenewTime == nil {
			continue
		}
		s := get(*l.Spec.HolderIdentity)
		ago := now.Sub(l.Spec.RenewTime.Time)
		limit := timeout
		if d := l.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
			limit = time.Duration(*d) * time.Second
		}
		s.Alive = ago <= limit
		s.Renewed = ago.Round(100*time.Millisecond).String() + " ago"
	}
	// The gossip's view, from the freshest live Lease that publishes it,
	// is newer than any other Lease's renewal: it decides who lives.
	var view *coordinationLease
	for i, l := range leases {
		if l.Annotations[membersAnnotation] == "" || l.Spec.HolderIdentity == nil || !by[*l.Spec.HolderIdentity].Alive {
			continue
		}
		if view == nil || l.Spec.RenewTime.After(view.Spec.RenewTime.Time) {
			view = &leases[i]
		}
	}
	if view != nil {
		alive := map[string]bool{}
		for _, n := range strings.Split(view.Annotations[membersAnnotation], ",") {
			alive[n] = true
			get(n)
		}
		for node, s := range by {
			s.Alive = alive[node]
		}
	}
	for _, p := range pods {
		if p.Spec.NodeName == "" {
			continue
		}
		s := get(p.Spec.NodeName)
		s.Ready = "false"
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				s.Ready = "true"
			}
		}
		if len(p.Spec.Containers) > 0 {
			img := p.Spec.Containers[0].Image
			s.Version = img[strings.LastIndex(img, ":")+1:]
			s.Image = img
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason != "" {
				s.Waiting = w.Reason
			}
		}
	}
	var out []SpeakerStatus
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// speakerStates fills in each speaker's ConfigurationState speaker-NODE
// (one of a node with no speaker is left out).
func speakerStates(sps []SpeakerStatus, states []unstructured.Unstructured) {
	for _, u := range states {
		node, ok := strings.CutPrefix(u.GetName(), "speaker-")
		if !ok {
			continue
		}
		i := slices.IndexFunc(sps, func(s SpeakerStatus) bool { return s.Node == node })
		if i < 0 {
			continue
		}
		sps[i].Configuration, _, _ = unstructured.NestedString(u.Object, "status", "result")
		sps[i].Problem, _, _ = unstructured.NestedString(u.Object, "status", "errorSummary")
	}
}

type coordinationLease = coordinationv1.Lease

// EnableHook is the enable hook of this addon under MicroK8s, as README
// adds the repository ("lab").
const EnableHook = "sudo /var/snap/microk8s/common/addons/lab/addons/metallb/enable"

// ImageAdvice says that the speaker of node cannot start for want of its
// image, and the command that fixes it.
func ImageAdvice(node, image, reason string) string {
	return fmt.Sprintf("the speaker of node %s cannot start: the node lacks its image %s (%s); run the enable hook again, which imports it on the nodes that lack it: %s RANGE (or enable --image with a registry every node can pull)",
		node, image, reason, EnableHook)
}

// ImageMissing reports whether a container waits for an image its node
// does not have (or cannot pull), by the reason it waits for.
func ImageMissing(reason string) bool {
	switch reason {
	case "ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff":
		return true
	}
	return false
}

// sessionsAnnotation is speaker.SessionsAnnotation (a speaker publishes
// its BGP sessions on its Lease: "peer up|down prefixes [bfd:STATE]" per
// line).
const sessionsAnnotation = "metallb.io/bgp-sessions"

// membersAnnotation is speaker.MembersAnnotation: the live speakers as the
// gossip sees them, on the Lease of the one that publishes them.
const membersAnnotation = "metallb.io/speakers-alive"

// trafficOf reads the traffic the live speakers publish on their Leases,
// by Service (an address shared by several Services shows under each).
func trafficOf(leases []coordinationLease, alive map[string]bool, svcs []ServiceStatus) []TrafficStatus {
	byAddr := map[netip.Addr][]string{}
	for _, s := range svcs {
		for _, a := range s.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				byAddr[ip] = append(byAddr[ip], s.Service)
			}
		}
	}
	var out []TrafficStatus
	for _, l := range leases {
		if l.Spec.HolderIdentity == nil || !alive[*l.Spec.HolderIdentity] {
			continue
		}
		rates, err := traffic.ParseLease(l.Annotations[traffic.LeaseAnnotation])
		if err != nil {
			continue // not ours to judge: shown as no traffic
		}
		for _, r := range rates {
			for _, svc := range byAddr[r.IP] {
				t := TrafficStatus{Service: svc, Address: r.IP.String(), Node: *l.Spec.HolderIdentity, Packets: r.Packets, Bytes: r.Bytes}
				if r.Window > 0 {
					t.PacketsPerSecond, t.BytesPerSecond, t.Window = r.PacketsPerSecond, r.BytesPerSecond, r.Window.String()
				}
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		return a.Node < b.Node
	})
	return out
}

// sessions reads the BGP sessions the speakers publish on their Leases. A
// dead speaker's sessions are shown as it last saw them, marked stale.
func sessions(leases []coordinationLease, alive map[string]bool) []SessionStatus {
	var out []SessionStatus
	for _, l := range leases {
		if l.Spec.HolderIdentity == nil {
			continue
		}
		node := *l.Spec.HolderIdentity
		out = append(out, ParseSessions(node, l.Annotations[sessionsAnnotation], !alive[node])...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Peer < out[j].Peer
	})
	return out
}

// ParseSessions reads a speaker's published sessions.
func ParseSessions(node, text string, stale bool) []SessionStatus {
	var out []SessionStatus
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		st := SessionStatus{Node: node, Peer: f[0], Up: f[1] == "up", Prefixes: n, Stale: stale}
		for _, extra := range f[3:] {
			if v, ok := strings.CutPrefix(extra, "bfd:"); ok {
				st.BFD = v
			}
		}
		out = append(out, st)
	}
	return out
}

// Attention lists what needs the operator, one line each: a configuration
// that is stale or missing, its warnings (a pool nothing announces), a
// Service without an address, a speaker not alive or not ready, a BGP
// session down. Empty: all is well.
func (r *Report) Attention() []string {
	var out []string
	switch r.Config.State {
	case "accepted":
	case "none", "":
		why := r.Config.Reason
		if why == "" {
			why = "no accepted configuration"
		}
		out = append(out, why)
	default:
		out = append(out, fmt.Sprintf("the configuration is %s: %s", r.Config.State, r.Config.Reason))
	}
	out = append(out, r.Config.Warnings...)
	for _, s := range r.Services {
		if len(s.Addresses) == 0 {
			out = append(out, fmt.Sprintf("Service %s has no address: %s", s.Service, s.Pending))
		}
	}
	for _, s := range r.Speakers {
		switch {
		case ImageMissing(s.Waiting):
			out = append(out, ImageAdvice(s.Node, s.Image, s.Waiting))
		case !s.Alive:
			out = append(out, fmt.Sprintf("the speaker of node %s is not alive (the other speakers see it dead, or its Lease, renewed %s ago, ran out)", s.Node, s.Renewed))
		case s.Ready == "false":
			out = append(out, fmt.Sprintf("the speaker of node %s is not ready", s.Node))
		}
		if s.Configuration == k8s.ResultInvalid {
			out = append(out, fmt.Sprintf("the speaker of node %s runs without part of the configuration: %s", s.Node, s.Problem))
		}
	}
	for _, s := range r.Sessions {
		if !s.Up && !s.Stale {
			out = append(out, fmt.Sprintf("the BGP session of node %s with %s is down", s.Node, s.Peer))
		}
	}
	return out
}
