package announce

import (
	"cmp"
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

// Input is what a speaker knows when it plans.
type Input struct {
	Config *config.Config
	Self   string
	Nodes  []Node
	Svcs   []Svc
	Now    time.Time
	// Resend: the membership changed (a speaker joined or restarted). Each
	// runner-up tells the owners it does not answer for their addresses,
	// so that a speaker that just started takes them without waiting.
	Resend bool
	// Isolated: this speaker sees none of the peers it knew. Withdraw:
	// isolated and cut off from the API server as well; it announces
	// nothing in layer2 (the others have taken its addresses over).
	Isolated, Withdraw bool
	// Known are the peers this speaker has seen, alive or dead, but not
	// those that left: an isolated speaker yields an address another host
	// announces unless it owns it among all of them.
	Known []string
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

// Plan is what the speaker must do.
type Plan struct {
	Claims   []Claim
	Releases []Release
	// Waiting are addresses this node owns but does not announce yet: the
	// node given may still answer for them, and has not released them.
	Waiting map[netip.Addr]string
	// Forced were taken without a release, after HandOverTimeout.
	Forced []netip.Addr
	// Added and Removed are the changes in Announcements (layer2 claims
	// and BGP advertisements, per Service): Events and metrics.
	Added, Removed []Announcement
	Announcements  []Announcement
	Peers          []routes.Peer
	RouterID       netip.Addr
	Routes         []routes.Route
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

// Core holds a speaker's layer2 ownership state between plans: which
// addresses it answers for, which it waits to be handed, which it was
// handed. It does no I/O and reads no clock: the same calls give the same
// plans. It is not safe for concurrent use.
type Core struct {
	owner     map[netip.Addr]string // owner in the last plan
	claimed   map[netip.Addr]bool
	waiting   map[netip.Addr]wait
	released  map[netip.Addr]release
	yielded   map[netip.Addr]bool
	announced map[string]Announcement
	started   bool
	withdrawn bool
}

// NewCore returns the state of a speaker that has just started: it takes
// an address only once the node that may be answering for it releases it.
func NewCore() *Core {
	return &Core{owner: map[netip.Addr]string{}, claimed: map[netip.Addr]bool{}, waiting: map[netip.Addr]wait{},
		released: map[netip.Addr]release{}, yielded: map[netip.Addr]bool{}, announced: map[string]Announcement{}}
}

// Released records that node from does not answer for ips.
func (c *Core) Released(from string, ips []netip.Addr, now time.Time) {
	for _, ip := range ips {
		c.released[ip] = release{from: from, at: now}
	}
}

// Claimed reports whether the last plan answers for ip.
func (c *Core) Claimed(ip netip.Addr) bool { return c.claimed[ip] }

// Conflict judges another host answering for ip. An isolated speaker yields
// the addresses it does not own among every peer it knows (the others,
// together, own them); otherwise the rightful owner re-asserts.
func (c *Core) Conflict(ip netip.Addr, self string, isolated bool, known []string) Verdict {
	if !c.claimed[ip] {
		return Ignore
	}
	if isolated && election.Owner(ip, append(slices.Clone(known), self)) != self {
		c.yielded[ip] = true
		delete(c.claimed, ip)
		return Yield
	}
	return Reassert
}

// Leave stops answering for every address and releases each to its next
// owner (the first candidate after this node): a stopping speaker hands
// over before it exits.
func (c *Core) Leave(in Input) []Release {
	ranked := Layer2(in.Config, in.Nodes, in.Svcs)
	to := map[string][]netip.Addr{}
	for ip := range c.claimed {
		if r := ranked[ip]; r != nil {
			if next := r.After(in.Self); next != "" {
				to[next] = append(to[next], ip)
			}
		}
	}
	clear(c.claimed)
	clear(c.waiting)
	return releases(to)
}

// Plan computes what to announce. Layer2: an address this node owns is
// announced at once unless another live speaker may still be answering for
// it (its owner in the previous plan, or, right after start, the
// runner-up): then only once that speaker releases it, or after
// HandOverTimeout. An address this node no longer owns is dropped at once
// and released to its new owner. So two nodes never answer together: the
// old owner stops before the new one starts. BGP: every qualifying node
// advertises (DesiredBGP).
func (c *Core) Plan(in Input) Plan {
	p := Plan{Waiting: map[netip.Addr]string{}}
	if !in.Isolated {
		clear(c.yielded)
	}
	if in.Withdraw != c.withdrawn {
		c.withdrawn = in.Withdraw
		if !in.Withdraw {
			// Back in touch: others took the addresses over meanwhile.
			// Start again as a speaker that has just started.
			c.started = false
			clear(c.owner)
		}
	}
	for ip, r := range c.released {
		if in.Now.Sub(r.at) > releaseTTL {
			delete(c.released, ip)
		}
	}
	live := map[string]bool{}
	for _, n := range in.Nodes {
		if n.Live {
			live[n.Name] = true
		}
	}
	ranked := Layer2(in.Config, in.Nodes, in.Svcs)
	for ip := range c.owner {
		if ranked[ip] == nil {
			delete(c.owner, ip)
			delete(c.waiting, ip)
			delete(c.claimed, ip)
		}
	}
	notify := map[string][]netip.Addr{}
	// hold keeps ip unannounced, waiting for from, for left more.
	hold := func(ip netip.Addr, from string, left time.Duration) {
		p.Waiting[ip] = from
		if p.Recheck == 0 || left < p.Recheck {
			p.Recheck = left
		}
	}
	for ip, r := range ranked {
		owner := r.Owner()
		prev, known := c.owner[ip]
		c.owner[ip] = owner
		if owner != in.Self {
			delete(c.waiting, ip)
			switch {
			case c.claimed[ip]:
				delete(c.claimed, ip)
				if owner != "" {
					notify[owner] = append(notify[owner], ip)
				}
			case owner == "":
			case known && prev == in.Self, // it was to be ours: we never answered
				(!known || in.Resend) && r.After(owner) == in.Self: // the owner may be waiting for us
				notify[owner] = append(notify[owner], ip)
			}
			continue
		}
		if c.claimed[ip] {
			continue
		}
		if in.Withdraw || c.yielded[ip] {
			delete(c.waiting, ip)
			continue
		}
		from := ""
		if w, ok := c.waiting[ip]; ok {
			from = w.from
		} else if known && prev != in.Self {
			from = prev
		} else if !known && !c.started {
			from = r.After(in.Self)
		}
		// Released: claim at once. A request the old owner answered just
		// before it let go may still sit unread in this node's socket; the
		// responders leave alone every request that arrived before the
		// claim (pkg/layer2), so it gets no second answer.
		if rel, ok := c.released[ip]; ok && rel.from == from && live[from] {
			from = ""
		}
		if !live[from] {
			from = "" // gone: nobody else answers
		}
		if from != "" {
			w, ok := c.waiting[ip]
			if !ok || w.from != from {
				w = wait{from: from, since: in.Now}
				c.waiting[ip] = w
			}
			if left := w.since.Add(HandOverTimeout).Sub(in.Now); left > 0 {
				hold(ip, from, left)
				continue
			}
			p.Forced = append(p.Forced, ip)
		}
		delete(c.waiting, ip)
		delete(c.released, ip)
		c.claimed[ip] = true
	}
	if in.Withdraw {
		clear(c.claimed)
	}
	c.started = true
	p.Releases = releases(notify)

	var anns []Announcement
	for ip := range c.claimed {
		r := ranked[ip]
		p.Claims = append(p.Claims, Claim{IP: ip, Interfaces: r.Interfaces})
		for _, key := range r.Services {
			anns = append(anns, Announcement{Protocol: config.Layer2, IP: ip, Service: key, Pool: r.Pool, Interfaces: r.Interfaces})
		}
	}
	slices.SortFunc(p.Claims, func(a, b Claim) int { return a.IP.Compare(b.IP) })
	slices.SortFunc(p.Forced, func(a, b netip.Addr) int { return a.Compare(b) })

	var self Node
	for _, n := range in.Nodes {
		if n.Name == in.Self {
			self = n
		}
	}
	p.Peers, p.RouterID = PeersFor(in.Config, self)
	var bgpAnns []Announcement
	p.Routes, bgpAnns = DesiredBGP(in.Config, self, in.Svcs)
	if len(p.Peers) > 0 {
		anns = append(anns, bgpAnns...)
	}
	slices.SortFunc(anns, func(a, b Announcement) int {
		if d := a.IP.Compare(b.IP); d != 0 {
			return d
		}
		if a.Service != b.Service {
			return cmp.Compare(a.Service, b.Service)
		}
		return cmp.Compare(string(a.Protocol), string(b.Protocol))
	})
	p.Announcements = anns
	next := map[string]Announcement{}
	for _, a := range anns {
		k := string(a.Protocol) + "/" + a.IP.String() + "/" + a.Service
		next[k] = a
		if _, had := c.announced[k]; !had {
			p.Added = append(p.Added, a)
		}
	}
	for k, a := range c.announced {
		if _, keep := next[k]; !keep {
			p.Removed = append(p.Removed, a)
		}
	}
	c.announced = next
	return p
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
