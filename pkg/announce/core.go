package announce

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/pkg/routes"
)

// HandOverTimeout is how long a new owner waits for the release of the node
// that may still answer for an address before it announces it anyway (the
// release was lost, or that node is wedged).
const HandOverTimeout = 2 * time.Second

// releaseTTL is how long a release received ahead of its use is kept.
const releaseTTL = 10 * time.Second

// Env is what a speaker knows at the moment it plans, besides the world
// (the config, the nodes and the Services, which the core keeps).
type Env struct {
	Self string
	Now  time.Time
	// Resend: the membership changed (a speaker joined or restarted). Each
	// runner-up tells the owners it does not answer for their addresses,
	// so that a speaker that just started takes them without waiting.
	Resend bool
	// Isolated: this speaker sees none of the peers it knew. Withdraw:
	// isolated and cut off from the API server as well; it announces
	// nothing in layer2 (the others have taken its addresses over).
	Isolated, Withdraw bool
}

// Claim is one address to answer for in layer2.
type Claim struct {
	IP netip.Addr
	// Interfaces, when not empty, are the only ones to answer on (the pool's
	// interfaces); otherwise every eligible interface whose subnet holds IP.
	Interfaces []string
}

// Release tells a node that this one does not answer (any more) for these
// addresses, which that node owns.
type Release struct {
	To  string
	IPs []netip.Addr
}

// Plan is what the speaker must do: the changes since the previous plan.
type Plan struct {
	// Claim are addresses to answer for from now on, or whose interfaces
	// changed; Unclaim, addresses to stop answering for.
	Claim    []Claim
	Unclaim  []netip.Addr
	Releases []Release
	// Waiting are addresses this node owns but does not announce yet: the
	// node given may still answer for them, and has not released them.
	Waiting map[netip.Addr]string
	// Forced were taken without a release, after HandOverTimeout.
	Forced []netip.Addr
	// Added and Removed are the changes in the announcements (layer2
	// claims and BGP advertisements, per Service): Events and metrics.
	Added, Removed []Announcement
	// Layer2Changed are the Services whose layer2 announcements changed
	// (see Core.Layer2Of), sorted. BGPChanged are the Services whose BGP
	// announcements may have changed (see Core.BGPPeersOf), sorted.
	Layer2Changed, BGPChanged []string
	// Peers and RouterID: the sessions this node runs (all of them).
	Peers    []routes.Peer
	RouterID netip.Addr
	// Advertise are routes new or with changed attributes; Withdraw, the
	// prefixes no longer advertised.
	Advertise []routes.Route
	Withdraw  []netip.Prefix
	// Recheck: plan again after this long even if nothing changes (a wait
	// runs out); zero for never.
	Recheck time.Duration
}

// Verdict is what to do when another host answers for a claimed address.
type Verdict int

const (
	// Ignore: not ours (any more).
	Ignore Verdict = iota
	// Reassert: ours; announce again so that clients come back (and raise
	// the Event).
	Reassert
	// Yield: an isolated speaker lets the other host have it.
	Yield
)

type wait struct {
	from  string
	since time.Time
}

type release struct {
	from string
	at   time.Time
}

// Core holds what a speaker plans from (the config, the nodes, the
// Services, set by difference) and its layer2 ownership state between
// plans: which addresses it answers for, which it waits to be handed, which
// it was handed. A plan re-decides only the addresses a change touched (a
// Service's, a release's, a wait's), or all of them when the config, the
// nodes or the speaker's situation changed, so a bulk of N Services costs
// O(N), not O(N²). It does no I/O and reads no clock: the same calls give
// the same plans. It is not safe for concurrent use.
type Core struct {
	// The world.
	cfg    *config.Config
	nodes  map[string]Node
	sorted []Node // nodes, by name
	live   map[string]bool
	svcs   map[string]Svc
	byIP   map[netip.Addr][]string // the Services using each address, sorted
	self   string
	// What the next plan re-decides.
	dirty map[netip.Addr]bool
	all   bool

	// Layer2.
	ranked   map[netip.Addr]*Ranked
	owner    map[netip.Addr]string // owner in the last plan
	claimed  map[netip.Addr]bool
	waiting  map[netip.Addr]wait
	released map[netip.Addr]release
	yielded  map[netip.Addr]bool
	told     map[netip.Addr]Claim // the claims the last plans gave out

	// BGP.
	peers      []routes.Peer
	routerID   netip.Addr
	ipRoutes   map[netip.Addr][]routes.Route      // each address's routes, unmerged
	byRoute    map[string]map[string]*sharedRoute // route key → its routes by signature
	advertised map[string]routes.Route            // merged, by key

	anns      map[netip.Addr][]Announcement // by address, sorted
	started   bool
	withdrawn bool
}

// NewCore returns the state of a speaker that has just started: it takes
// an address only once the node that may be answering for it releases it.
func NewCore() *Core {
	return &Core{nodes: map[string]Node{}, live: map[string]bool{}, svcs: map[string]Svc{}, byIP: map[netip.Addr][]string{},
		dirty: map[netip.Addr]bool{}, ranked: map[netip.Addr]*Ranked{},
		owner: map[netip.Addr]string{}, claimed: map[netip.Addr]bool{}, waiting: map[netip.Addr]wait{},
		released: map[netip.Addr]release{}, yielded: map[netip.Addr]bool{}, told: map[netip.Addr]Claim{},
		ipRoutes: map[netip.Addr][]routes.Route{}, byRoute: map[string]map[string]*sharedRoute{}, advertised: map[string]routes.Route{},
		anns: map[netip.Addr][]Announcement{}}
}

// SetConfig sets the config (nil: none yet). A new config re-decides every
// address.
func (c *Core) SetConfig(cfg *config.Config) {
	if cfg != c.cfg {
		c.cfg, c.all = cfg, true
	}
}

// SetNodes sets the nodes. A change in any of them re-decides every
// address (nodes change seldom; Services often).
func (c *Core) SetNodes(nodes []Node) {
	same := len(nodes) == len(c.nodes)
	for _, n := range nodes {
		if cur, ok := c.nodes[n.Name]; !ok || !sameNode(cur, n) {
			same = false
		}
	}
	if same {
		return
	}
	c.nodes, c.live, c.all = map[string]Node{}, map[string]bool{}, true
	for _, n := range nodes {
		c.nodes[n.Name] = n
		if n.Live {
			c.live[n.Name] = true
		}
	}
	c.sorted = slices.SortedFunc(maps.Values(c.nodes), func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
}

func sameNode(a, b Node) bool {
	return a.Name == b.Name && a.Eligible == b.Eligible && a.Live == b.Live && a.Ready == b.Ready &&
		maps.Equal(a.Labels, b.Labels) && slices.Equal(a.Addrs, b.Addrs)
}

// SetService adds or replaces a Service; only its addresses (before and
// after) are re-decided.
func (c *Core) SetService(s Svc) {
	if cur, ok := c.svcs[s.Key]; ok && sameSvc(cur, s) {
		return
	}
	c.DeleteService(s.Key)
	s.IPs, s.ReadyNodes = slices.Clone(s.IPs), slices.Clone(s.ReadyNodes)
	slices.Sort(s.ReadyNodes)
	c.svcs[s.Key] = s
	for _, ip := range s.IPs {
		keys := c.byIP[ip]
		if i, found := slices.BinarySearch(keys, s.Key); !found {
			c.byIP[ip] = slices.Insert(keys, i, s.Key)
		}
		c.dirty[ip] = true
	}
}

// DeleteService removes a Service.
func (c *Core) DeleteService(key string) {
	cur, ok := c.svcs[key]
	if !ok {
		return
	}
	delete(c.svcs, key)
	for _, ip := range cur.IPs {
		keys := c.byIP[ip]
		if i, found := slices.BinarySearch(keys, key); found {
			keys = slices.Delete(keys, i, i+1)
		}
		if len(keys) == 0 {
			delete(c.byIP, ip)
		} else {
			c.byIP[ip] = keys
		}
		c.dirty[ip] = true
	}
}

func sameSvc(a, b Svc) bool {
	if a.Local != b.Local || !slices.Equal(a.IPs, b.IPs) || len(a.ReadyNodes) != len(b.ReadyNodes) {
		return false
	}
	for _, n := range b.ReadyNodes {
		if !slices.Contains(a.ReadyNodes, n) {
			return false
		}
	}
	return true
}

// Sync replaces the whole world by difference: the config, the nodes, and
// the Services (those not in svcs are deleted). Tools and tests use it;
// the speaker sets what changed.
func (c *Core) Sync(cfg *config.Config, nodes []Node, svcs []Svc) {
	c.SetConfig(cfg)
	c.SetNodes(nodes)
	keep := map[string]bool{}
	for _, s := range svcs {
		keep[s.Key] = true
		c.SetService(s)
	}
	for key := range c.svcs {
		if !keep[key] {
			c.DeleteService(key)
		}
	}
}

// Released records that node from does not answer for ips.
func (c *Core) Released(from string, ips []netip.Addr, now time.Time) {
	for _, ip := range ips {
		c.released[ip] = release{from: from, at: now}
		c.dirty[ip] = true
	}
}

// Claimed reports whether the last plan answers for ip.
func (c *Core) Claimed(ip netip.Addr) bool { return c.claimed[ip] }

// Conflict judges another host answering for ip. An isolated speaker yields
// the addresses it does not own among every peer it knows (the others,
// together, own them); otherwise the rightful owner re-asserts. A yield
// takes effect in the next plan.
func (c *Core) Conflict(ip netip.Addr, self string, isolated bool, known []string) Verdict {
	if !c.claimed[ip] {
		return Ignore
	}
	if isolated && election.Owner(ip, append(slices.Clone(known), self)) != self {
		c.yielded[ip] = true
		delete(c.claimed, ip)
		c.dirty[ip] = true
		return Yield
	}
	return Reassert
}

// Leave stops answering for every address and releases each to its next
// owner (the first candidate after this node): a stopping speaker hands
// over before it exits.
func (c *Core) Leave(self string) []Release {
	to := map[string][]netip.Addr{}
	for ip := range c.claimed {
		r := c.ranked[ip]
		if c.dirty[ip] || c.all {
			r = c.rank(ip)
		}
		if r != nil {
			if next := r.After(self); next != "" {
				to[next] = append(to[next], ip)
			}
		}
	}
	clear(c.claimed)
	clear(c.waiting)
	clear(c.told)
	return releases(to)
}

// rank ranks ip in the current world.
func (c *Core) rank(ip netip.Addr) *Ranked {
	if c.cfg == nil || len(c.byIP[ip]) == 0 {
		return nil
	}
	return rank(c.cfg, c.sorted, ip, c.svcsAt(ip))
}

// svcsAt returns the Services that use ip, by key.
func (c *Core) svcsAt(ip netip.Addr) []Svc {
	keys := c.byIP[ip]
	out := make([]Svc, 0, len(keys))
	for _, k := range keys {
		out = append(out, c.svcs[k])
	}
	return out
}

// Plan decides what to announce, and returns what changed. Layer2: an
// address this node owns is announced at once unless another live speaker
// may still be answering for it (its owner in the previous plan, or, right
// after start, the runner-up): then only once that speaker releases it, or
// after HandOverTimeout. An address this node no longer owns is dropped at
// once and released to its new owner. So two nodes never answer together:
// the old owner stops before the new one starts. BGP: every qualifying
// node advertises (DesiredBGP).
func (c *Core) Plan(env Env) Plan {
	p := Plan{Waiting: map[netip.Addr]string{}}
	if env.Self != c.self {
		c.self, c.all = env.Self, true
	}
	if env.Resend {
		c.all = true // every runner-up tells its owner
	}
	if !env.Isolated {
		for ip := range c.yielded {
			c.dirty[ip] = true
		}
		clear(c.yielded)
	}
	if env.Withdraw != c.withdrawn {
		c.withdrawn, c.all = env.Withdraw, true
		if !env.Withdraw {
			// Back in touch: others took the addresses over meanwhile.
			// Start again as a speaker that has just started.
			c.started = false
			clear(c.owner)
		}
	}
	for ip, r := range c.released {
		if env.Now.Sub(r.at) > releaseTTL {
			delete(c.released, ip)
		}
	}
	for ip := range c.waiting {
		c.dirty[ip] = true // its wait may be over
	}
	all := c.all
	if all {
		// Every address the core knows anything of.
		mark(c.dirty, c.claimed)
		mark(c.dirty, c.byIP)
		mark(c.dirty, c.ranked)
		mark(c.dirty, c.ipRoutes)
		mark(c.dirty, c.anns)
		mark(c.dirty, c.told)
	}
	dirty := slices.SortedFunc(maps.Keys(c.dirty), netip.Addr.Compare)
	clear(c.dirty)
	c.all = false

	self := c.nodes[env.Self]
	if all {
		c.peers, c.routerID = PeersFor(c.cfg, self)
	}
	p.Peers, p.RouterID = c.peers, c.routerID

	notify := map[string][]netip.Addr{}
	touched := map[string]bool{} // route keys
	l2changed, bgpChanged := map[string]bool{}, map[string]bool{}
	for _, ip := range dirty {
		c.layer2(env, ip, &p, notify)
		c.announce(ip, c.bgp(self, ip, touched), &p, l2changed, bgpChanged)
	}
	c.started = true
	p.Releases = releases(notify)
	slices.SortFunc(p.Forced, netip.Addr.Compare)
	p.Layer2Changed = slices.Sorted(maps.Keys(l2changed))
	p.BGPChanged = slices.Sorted(maps.Keys(bgpChanged))

	for _, key := range slices.Sorted(maps.Keys(touched)) {
		by := c.byRoute[key]
		if len(by) == 0 {
			if old, ok := c.advertised[key]; ok {
				p.Withdraw = append(p.Withdraw, old.Prefix)
				delete(c.advertised, key)
			}
			continue
		}
		var rs []routes.Route
		for _, sig := range slices.Sorted(maps.Keys(by)) {
			rs = append(rs, by[sig].route)
		}
		m := routes.Merge(rs)[0]
		if old, ok := c.advertised[key]; !ok || !old.Equal(m) {
			p.Advertise = append(p.Advertise, m)
			c.advertised[key] = m
		}
	}
	return p
}

// mark adds the addresses of m to dirty.
func mark[V any](dirty map[netip.Addr]bool, m map[netip.Addr]V) {
	for ip := range m {
		dirty[ip] = true
	}
}

// layer2 re-decides one address: its ranking, and whether this node
// answers for it.
func (c *Core) layer2(env Env, ip netip.Addr, p *Plan, notify map[string][]netip.Addr) {
	r := c.rank(ip)
	if r == nil {
		delete(c.ranked, ip)
		delete(c.owner, ip)
		delete(c.waiting, ip)
		delete(c.claimed, ip)
		c.tell(ip, p)
		return
	}
	c.ranked[ip] = r
	defer c.tell(ip, p)
	owner := r.Owner()
	prev, known := c.owner[ip]
	c.owner[ip] = owner
	if owner != env.Self {
		delete(c.waiting, ip)
		switch {
		case c.claimed[ip]:
			delete(c.claimed, ip)
			if owner != "" {
				notify[owner] = append(notify[owner], ip)
			}
		case owner == "":
		case known && prev == env.Self, // it was to be ours: we never answered
			(!known || env.Resend) && r.After(owner) == env.Self: // the owner may be waiting for us
			notify[owner] = append(notify[owner], ip)
		}
		return
	}
	if env.Withdraw || c.yielded[ip] {
		delete(c.waiting, ip)
		delete(c.claimed, ip)
		return
	}
	if c.claimed[ip] {
		return
	}
	from := ""
	if w, ok := c.waiting[ip]; ok {
		from = w.from
	} else if known && prev != env.Self {
		from = prev
	} else if !known && !c.started {
		from = r.After(env.Self)
	}
	// Released: claim at once. A request the old owner answered just
	// before it let go may still sit unread in this node's socket; the
	// responders leave alone every request that arrived before the
	// claim (pkg/layer2), so it gets no second answer.
	if rel, ok := c.released[ip]; ok && rel.from == from && c.live[from] {
		from = ""
	}
	if !c.live[from] {
		from = "" // gone: nobody else answers
	}
	if from != "" {
		w, ok := c.waiting[ip]
		if !ok || w.from != from {
			w = wait{from: from, since: env.Now}
			c.waiting[ip] = w
		}
		if left := w.since.Add(HandOverTimeout).Sub(env.Now); left > 0 {
			p.Waiting[ip] = from
			if p.Recheck == 0 || left < p.Recheck {
				p.Recheck = left
			}
			return
		}
		p.Forced = append(p.Forced, ip)
	}
	delete(c.waiting, ip)
	delete(c.released, ip)
	c.claimed[ip] = true
}

// tell records the claim of ip that the plan gives out, if it changed.
func (c *Core) tell(ip netip.Addr, p *Plan) {
	old, had := c.told[ip]
	if !c.claimed[ip] {
		if had {
			p.Unclaim = append(p.Unclaim, ip)
			delete(c.told, ip)
		}
		return
	}
	cl := Claim{IP: ip, Interfaces: c.ranked[ip].Interfaces}
	if !had || !slices.Equal(old.Interfaces, cl.Interfaces) {
		p.Claim = append(p.Claim, cl)
		c.told[ip] = cl
	}
}

// bgp re-decides the routes of one address, notes the route keys it
// touches and returns its BGP announcements.
func (c *Core) bgp(self Node, ip netip.Addr, touched map[string]bool) []Announcement {
	for _, r := range c.ipRoutes[ip] {
		k := r.Key()
		touched[k] = true
		by, sig := c.byRoute[k], signature(r)
		if by[sig].n--; by[sig].n == 0 {
			delete(by, sig)
		}
		if len(by) == 0 {
			delete(c.byRoute, k)
		}
	}
	delete(c.ipRoutes, ip)
	if c.cfg == nil || !self.Ready || len(c.peers) == 0 {
		return nil
	}
	rs, anns := bgpFor(c.cfg, self, c.peers, ip, c.svcsAt(ip))
	if len(rs) == 0 {
		return nil
	}
	c.ipRoutes[ip] = rs
	for _, r := range rs {
		k := r.Key()
		touched[k] = true
		if c.byRoute[k] == nil {
			c.byRoute[k] = map[string]*sharedRoute{}
		}
		sig := signature(r)
		if c.byRoute[k][sig] == nil {
			c.byRoute[k][sig] = &sharedRoute{route: r}
		}
		c.byRoute[k][sig].n++
	}
	return anns
}

// sharedRoute is one route that n addresses give (an aggregate carries as
// many as its pool has Services: they are counted, not listed, so that a
// Service more costs the same in a /16 as in a /32).
type sharedRoute struct {
	route routes.Route
	n     int
}

// signature tells apart the routes of one prefix by their attributes.
func signature(r routes.Route) string {
	return fmt.Sprint(r.Communities, r.LocalPref, r.HasLocalPref, r.Peers)
}

// announce recomputes the announcements of one address and notes what
// changed.
func (c *Core) announce(ip netip.Addr, bgpAnns []Announcement, p *Plan, l2changed, bgpChanged map[string]bool) {
	var anns []Announcement
	if c.claimed[ip] {
		r := c.ranked[ip]
		for _, key := range r.Services {
			anns = append(anns, Announcement{Protocol: config.Layer2, IP: ip, Service: key, Pool: r.Pool, Interfaces: r.Interfaces})
		}
	}
	anns = append(anns, bgpAnns...)
	slices.SortFunc(anns, compareAnn)
	old := c.anns[ip]
	if len(anns) == 0 {
		delete(c.anns, ip)
	} else {
		c.anns[ip] = anns
	}
	key := func(a Announcement) string { return string(a.Protocol) + "/" + a.Service }
	was := map[string]Announcement{}
	for _, a := range old {
		was[key(a)] = a
	}
	// A BGP announcement re-decided may go to other peers now.
	for _, as := range [][]Announcement{old, anns} {
		for _, a := range as {
			if a.Protocol == config.BGP {
				bgpChanged[a.Service] = true
			}
		}
	}
	for _, a := range anns {
		o, had := was[key(a)]
		delete(was, key(a))
		if !had {
			p.Added = append(p.Added, a)
		}
		if a.Protocol == config.Layer2 && (!had || !slices.Equal(o.Interfaces, a.Interfaces)) {
			l2changed[a.Service] = true
		}
	}
	for _, a := range old {
		if _, gone := was[key(a)]; gone {
			p.Removed = append(p.Removed, a)
			if a.Protocol == config.Layer2 {
				l2changed[a.Service] = true
			}
		}
	}
}

func compareAnn(a, b Announcement) int {
	if d := a.IP.Compare(b.IP); d != 0 {
		return d
	}
	if a.Service != b.Service {
		return cmp.Compare(a.Service, b.Service)
	}
	return cmp.Compare(string(a.Protocol), string(b.Protocol))
}

// Claims returns the addresses this node answers for, sorted.
func (c *Core) Claims() []Claim {
	out := make([]Claim, 0, len(c.told))
	for _, cl := range c.told {
		out = append(out, cl)
	}
	slices.SortFunc(out, func(a, b Claim) int { return a.IP.Compare(b.IP) })
	return out
}

// Announcements returns everything this node announces, sorted.
func (c *Core) Announcements() []Announcement {
	var out []Announcement
	for _, as := range c.anns {
		out = append(out, as...)
	}
	slices.SortFunc(out, compareAnn)
	return out
}

// AnnouncedAt returns what this node announces at ip.
func (c *Core) AnnouncedAt(ip netip.Addr) []Announcement { return slices.Clone(c.anns[ip]) }

// Layer2Of returns the layer2 announcements of one Service.
func (c *Core) Layer2Of(key string) []Announcement {
	var out []Announcement
	for _, ip := range c.svcs[key].IPs {
		for _, a := range c.anns[ip] {
			if a.Protocol == config.Layer2 && a.Service == key {
				out = append(out, a)
			}
		}
	}
	return out
}

// BGPPeersOf returns the peers this node advertises the Service key's
// addresses to, by name (a BGPPeer's; a ConfigMap peer's address), sorted;
// none when it advertises none of them.
func (c *Core) BGPPeersOf(key string) []string {
	seen := map[string]bool{}
	for _, ip := range c.svcs[key].IPs {
		if !slices.ContainsFunc(c.anns[ip], func(a Announcement) bool { return a.Protocol == config.BGP && a.Service == key }) {
			continue
		}
		for _, r := range c.ipRoutes[ip] {
			for _, peer := range c.peers {
				// A session carries the routes of its own address family.
				if r.For(peer) && peer.Address.Is4() == r.Prefix.Addr().Is4() {
					name := peer.Name
					if name == "" {
						name = peer.Key()
					}
					seen[name] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// Routes returns the routes this node advertises, sorted by prefix.
func (c *Core) Routes() []routes.Route {
	out := make([]routes.Route, 0, len(c.advertised))
	for _, k := range slices.Sorted(maps.Keys(c.advertised)) {
		out = append(out, c.advertised[k])
	}
	return out
}

func releases(to map[string][]netip.Addr) []Release {
	out := make([]Release, 0, len(to))
	for node, ips := range to {
		slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
		out = append(out, Release{To: node, IPs: ips})
	}
	slices.SortFunc(out, func(a, b Release) int { return cmp.Compare(a.To, b.To) })
	return out
}
