package layer2

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/ndp"

	"github.com/microk8s-metallb/metallb/pkg/announce"
	"github.com/microk8s-metallb/metallb/pkg/logging"
)

// Interfaces whose names start with these are never used: they belong to
// container networking, not to the LAN the addresses live on.
var skippedPrefixes = []string{"veth", "cali", "flannel", "cni", "lxc", "docker", "vxlan", "kube-ipvs", "cilium", "tunl"}

// GratuitousSchedule is when gratuitous ARP / unsolicited NA go out after a
// takeover: at once, then a few more over about 5 s, for hosts that missed
// the first or cached late.
var GratuitousSchedule = []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}

const protoARP = 0x0806

// Claim is one address this node must answer for: the speaker's decision
// (announce.Claim) as it is, so nothing is copied between the two.
type Claim = announce.Claim

// Events receives what the announcer sees; all methods must be quick.
type Events interface {
	Conflict(ip netip.Addr, ifname string, mac net.HardwareAddr)
	Count(event string, ip netip.Addr)
}

// Announcer answers ARP and NDP for the claimed addresses.
type Announcer struct {
	log       *slog.Logger
	events    Events
	conflicts *logging.Throttle // one line per address and 10 s, however many frames

	// sendMu is held while gratuitous packets go out, and while claims are
	// dropped: an address is never announced after SetClaims dropped it.
	// mu (taken after sendMu, never the other way) guards the state and is
	// never held while a packet is sent: the receive path (Owns, for every
	// frame) takes it.
	sendMu sync.Mutex
	mu     sync.Mutex
	claims map[netip.Addr]Claim
	since  map[netip.Addr]time.Time // when each claim began
	ifs    map[string]*iface
	ctx    context.Context
	stopGA map[netip.Addr]context.CancelFunc
	// lost are interfaces whose responder failed (link down, interface
	// deleted), by name, with the prefixes they had: until they answer
	// again, the addresses they served have no working responder.
	lost      map[string][]netip.Prefix
	wake      chan struct{}
	reasserts map[netip.Addr]time.Time // last re-assertion against a conflict
}

type iface struct {
	name     string
	mac      net.HardwareAddr
	prefixes []netip.Prefix
	arp      *arpResponder
	ndp      *ndpResponder
	closers  []func() error
}

// NewAnnouncer returns an announcer; Run opens the interfaces.
func NewAnnouncer(log *slog.Logger, events Events) *Announcer {
	return &Announcer{log: log, events: events, conflicts: logging.NewThrottle(10*time.Second, nil), claims: map[netip.Addr]Claim{}, since: map[netip.Addr]time.Time{}, ifs: map[string]*iface{}, stopGA: map[netip.Addr]context.CancelFunc{},
		lost: map[string][]netip.Prefix{}, wake: make(chan struct{}, 1), reasserts: map[netip.Addr]time.Time{}}
}

// Rescan intervals: every 2 s normally, every 100 ms while a responder that
// was answering is lost, so that a link coming back (a replugged cable, a
// Wi-Fi reconnect, a recreated interface) is answered on again at once.
const (
	scanInterval      = 2 * time.Second
	lostScanInterval  = 100 * time.Millisecond
	reassertMinPeriod = time.Second
	reassertDelay     = 250 * time.Millisecond
)

// Run opens responders on eligible interfaces, re-scans them, and closes
// everything when ctx ends.
func (a *Announcer) Run(ctx context.Context) {
	a.mu.Lock()
	a.ctx = ctx
	a.mu.Unlock()
	a.scan()
	t := time.NewTimer(scanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.mu.Lock()
			for _, i := range a.ifs {
				i.close()
			}
			a.ifs = map[string]*iface{}
			a.mu.Unlock()
			return
		case <-t.C:
		case <-a.wake:
		}
		a.scan()
		a.mu.Lock()
		next := scanInterval
		if len(a.lost) > 0 {
			next = lostScanInterval
		}
		a.mu.Unlock()
		t.Reset(next)
	}
}

// Unanswered lists the claimed addresses that a lost responder served:
// while it is not empty this node does not answer for all it should.
func (a *Announcer) Unanswered() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []netip.Addr
	for ip, c := range a.claims {
		for name, prefixes := range a.lost {
			if (len(c.Interfaces) > 0 && slices.Contains(c.Interfaces, name)) ||
				(len(c.Interfaces) == 0 && slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(ip) })) {
				out = append(out, ip)
				break
			}
		}
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return out
}

// Reassert announces ip again (a gratuitous ARP / unsolicited NA), at most
// once a second: another host claimed it, and clients that believed it must
// learn the rightful MAC again. It waits reassertDelay and announces only
// if the address is still claimed then, so that a hand-over seen a moment
// late here (the new owner's announcement before this node's view moved on)
// does not start an ARP war.
func (a *Announcer) Reassert(ip netip.Addr) {
	a.mu.Lock()
	if time.Since(a.reasserts[ip]) < reassertMinPeriod || a.ctx == nil {
		a.mu.Unlock()
		return
	}
	a.reasserts[ip] = time.Now()
	ctx := a.ctx
	a.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(reassertDelay):
		}
		a.mu.Lock()
		_, still := a.claims[ip]
		a.mu.Unlock()
		if still {
			a.gratuitous(ip)
		}
	}()
}

// SetClaims replaces the claimed addresses. New ones get gratuitous
// announcements; dropped ones stop being answered at once.
func (a *Announcer) SetClaims(claims []Claim) {
	a.mu.Lock()
	next := map[netip.Addr]bool{}
	for _, c := range claims {
		next[c.IP] = true
	}
	var drop []netip.Addr
	for ip := range a.claims {
		if !next[ip] {
			drop = append(drop, ip)
		}
	}
	a.mu.Unlock()
	a.UpdateClaims(claims, drop)
}

// UpdateClaims claims the addresses of set (new ones, or new interfaces
// for claimed ones) and stops answering for those of drop, at once. New
// addresses get gratuitous announcements. It costs what changes, not what
// is claimed.
func (a *Announcer) UpdateClaims(set []Claim, drop []netip.Addr) {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ip := range drop {
		if _, ok := a.claims[ip]; !ok {
			continue
		}
		delete(a.claims, ip)
		if stop := a.stopGA[ip]; stop != nil {
			stop()
			delete(a.stopGA, ip)
		}
		delete(a.reasserts, ip)
		delete(a.since, ip)
		for _, i := range a.ifs {
			if i.ndp != nil && ip.Is6() {
				_ = i.ndp.unwatch(ip)
			}
		}
		a.log.Info("stopped announcing", "ip", ip.String())
	}
	now := time.Now()
	for _, c := range set {
		ip := c.IP
		_, had := a.claims[ip]
		a.claims[ip] = c
		if had {
			continue
		}
		a.since[ip] = now
		for _, i := range a.ifs {
			if i.ndp != nil && ip.Is6() && a.ownsLocked(i.name, ip) {
				if err := i.ndp.watch(ip); err != nil {
					a.log.Warn("cannot join the solicited-node group", "ip", ip.String(), "interface", i.name, "error", err)
				}
			}
		}
		a.startGratuitous(ip)
		a.log.Info("announcing", "ip", ip.String())
	}
}

func (a *Announcer) startGratuitous(ip netip.Addr) {
	if a.ctx == nil {
		return
	}
	ctx, cancel := context.WithCancel(a.ctx)
	a.stopGA[ip] = cancel
	go func() {
		start := time.Now()
		for _, at := range GratuitousSchedule {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(at))):
			}
			a.gratuitous(ip)
		}
	}()
}

func (a *Announcer) gratuitous(ip netip.Addr) {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	type target struct {
		name string
		send func(netip.Addr) error
	}
	var to []target
	a.mu.Lock()
	for _, i := range a.ifs {
		if !a.ownsLocked(i.name, ip) {
			continue
		}
		switch {
		case ip.Is4() && i.arp != nil:
			to = append(to, target{i.name, i.arp.gratuitous})
		case ip.Is6() && i.ndp != nil:
			to = append(to, target{i.name, i.ndp.gratuitous})
		}
	}
	a.mu.Unlock()
	for _, t := range to {
		if err := t.send(ip); err != nil && !errors.Is(err, net.ErrClosed) {
			a.log.Warn("gratuitous announcement failed", "ip", ip.String(), "interface", t.name, "error", err)
		}
	}
}

// staleRequestWindow is how long after a claim begins the responders
// check when each request arrived. Past it every request is answered, so a
// wall clock stepped back can never silence an address for longer.
const staleRequestWindow = time.Second

// Owns implements Handler.
func (a *Announcer) Owns(ifname string, ip netip.Addr, at time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ownsLocked(ifname, ip) {
		return false
	}
	since := a.since[ip]
	// The kernel's stamp is wall-clock time: compare it with the claim's
	// wall clock, and only while the claim is young (monotonic).
	return at.IsZero() || time.Since(since) >= staleRequestWindow || !at.Before(since.Round(0))
}

func (a *Announcer) ownsLocked(ifname string, ip netip.Addr) bool {
	c, ok := a.claims[ip]
	if !ok {
		return false
	}
	if len(c.Interfaces) > 0 {
		return slices.Contains(c.Interfaces, ifname)
	}
	i := a.ifs[ifname]
	return i != nil && slices.ContainsFunc(i.prefixes, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// Conflict implements Handler.
func (a *Announcer) Conflict(ifname string, ip netip.Addr, mac net.HardwareAddr) {
	// Only addresses this node announces get here: the throttle's keys
	// stay as few as they are.
	if ok, n := a.conflicts.Allow(ip.String()); ok {
		a.log.Warn("another host claims an address we announce", "ip", ip.String(), "interface", ifname, "mac", mac.String(),
			"frames since the last line", n)
	}
	a.events.Conflict(ip, ifname, mac)
}

// Count implements Handler.
func (a *Announcer) Count(event string, ip netip.Addr) { a.events.Count(event, ip) }

// eligible says why an interface is skipped ("" when it is usable).
func eligible(ifi net.Interface, hasMaster bool) string {
	switch {
	case ifi.Flags&net.FlagUp == 0:
		return "down"
	case ifi.Flags&net.FlagLoopback != 0:
		return "loopback"
	case ifi.Flags&net.FlagPointToPoint != 0:
		return "point-to-point"
	case len(ifi.HardwareAddr) != 6:
		return "no Ethernet address"
	case hasMaster:
		return "member of a bridge or bond"
	}
	for _, p := range skippedPrefixes {
		if strings.HasPrefix(ifi.Name, p) {
			return "container interface (" + p + "*)"
		}
	}
	return ""
}

// scan opens responders on new eligible interfaces and closes those gone.
func (a *Announcer) scan() {
	ifis, err := net.Interfaces()
	if err != nil {
		a.log.Error("list interfaces", "error", err)
		return
	}
	seen := map[string]bool{}
	for _, ifi := range ifis {
		if why := eligible(ifi, hasMaster(ifi.Name) || noARP(ifi.Name)); why != "" {
			continue
		}
		seen[ifi.Name] = true
		prefixes := ifacePrefixes(ifi)
		a.mu.Lock()
		cur := a.ifs[ifi.Name]
		if cur != nil {
			cur.prefixes = prefixes
			if cur.ndp == nil && hasV6(prefixes) {
				// The link-local address may have been tentative (DAD) at
				// the first try.
				a.openNDP(ifi, cur)
				a.watchAll(cur)
			}
			a.mu.Unlock()
			continue
		}
		a.mu.Unlock()
		i, err := a.open(ifi, prefixes)
		if err != nil {
			a.log.Warn("cannot answer on interface", "interface", ifi.Name, "error", err)
			continue
		}
		a.mu.Lock()
		a.ifs[ifi.Name] = i
		a.watchAll(i)
		_, wasLost := a.lost[ifi.Name]
		delete(a.lost, ifi.Name)
		var reclaim []netip.Addr
		if wasLost {
			for ip := range a.claims {
				if a.ownsLocked(ifi.Name, ip) {
					reclaim = append(reclaim, ip)
				}
			}
		}
		a.mu.Unlock()
		a.log.Info("answering ARP/NDP", "interface", ifi.Name, "mac", ifi.HardwareAddr.String())
		if wasLost {
			// Hosts may have aged us out, or learnt another MAC meanwhile.
			for _, ip := range reclaim {
				a.gratuitous(ip)
			}
			a.log.Info("interface back: announcing its addresses again", "interface", ifi.Name, "addresses", len(reclaim))
		}
	}
	a.mu.Lock()
	for name, i := range a.ifs {
		if !seen[name] {
			i.close()
			delete(a.ifs, name)
			a.lose(name, i)
		}
	}
	a.mu.Unlock()
}

// lose records that an interface which was answering no longer does. Caller
// holds a.mu.
func (a *Announcer) lose(name string, i *iface) {
	for ip := range a.claims {
		if a.ownsPrefixes(i, ip) {
			a.lost[name] = i.prefixes
			return
		}
	}
}

func (a *Announcer) ownsPrefixes(i *iface, ip netip.Addr) bool {
	c := a.claims[ip]
	if len(c.Interfaces) > 0 {
		return slices.Contains(c.Interfaces, i.name)
	}
	return slices.ContainsFunc(i.prefixes, func(p netip.Prefix) bool { return p.Contains(ip) })
}

func (a *Announcer) open(ifi net.Interface, prefixes []netip.Prefix) (*iface, error) {
	i := &iface{name: ifi.Name, mac: ifi.HardwareAddr, prefixes: prefixes}
	pc, err := listenARP(&ifi)
	if err != nil {
		return nil, err
	}
	i.arp = newARPResponder(ifi.Name, ifi.HardwareAddr, pc, a)
	i.closers = append(i.closers, pc.Close)
	go a.serve(i, "ARP", i.arp.run)
	if hasV6(prefixes) {
		a.openNDP(ifi, i)
	}
	return i, nil
}

func hasV6(prefixes []netip.Prefix) bool {
	return slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Addr().Is6() })
}

// openNDP starts the NDP responder of an interface.
func (a *Announcer) openNDP(ifi net.Interface, i *iface) {
	nc, err := listenNDP(&ifi)
	if err != nil {
		a.log.Warn("no NDP on interface yet", "interface", ifi.Name, "error", err)
		return
	}
	i.ndp = newNDPResponder(ifi.Name, ifi.HardwareAddr, nc, a)
	i.ndp.debug = func(m ndp.Message, src netip.Addr) {
		if ns, ok := m.(*ndp.NeighborSolicitation); ok {
			a.log.Debug("NDP solicitation", "interface", ifi.Name, "from", src.String(), "target", ns.TargetAddress.String(), "owned", a.Owns(ifi.Name, ns.TargetAddress, time.Time{}))
		}
	}
	i.closers = append(i.closers, nc.Close)
	go a.serve(i, "NDP", i.ndp.run)
}

// watchAll joins the solicited-node groups of the IPv6 addresses claimed on
// an interface. Caller holds a.mu.
func (a *Announcer) watchAll(i *iface) {
	for ip := range a.claims {
		if ip.Is6() && i.ndp != nil && a.ownsLocked(i.name, ip) {
			if err := i.ndp.watch(ip); err != nil {
				a.log.Warn("cannot join the solicited-node group", "ip", ip.String(), "interface", i.name, "error", err)
			}
		}
	}
}

// serve runs a responder. One that fails (the link went down, the
// interface was deleted) takes its interface out; the next scans, fast
// while it is lost, open it again when it can.
func (a *Announcer) serve(i *iface, proto string, run func() error) {
	err := run()
	if err == nil || errors.Is(err, net.ErrClosed) {
		return
	}
	a.log.Warn("responder stopped: reopening the interface when it is back", "interface", i.name, "protocol", proto, "error", err)
	a.mu.Lock()
	if a.ifs[i.name] == i {
		i.close()
		delete(a.ifs, i.name)
		a.lose(i.name, i)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (i *iface) close() {
	for _, c := range i.closers {
		_ = c()
	}
}

func ifacePrefixes(ifi net.Interface) []netip.Prefix {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Eligible says why the speaker would not answer on ifi ("" when it would):
// the installer uses it to find the subnets layer2 can reach.
func Eligible(ifi net.Interface) string { return eligible(ifi, hasMaster(ifi.Name)) }
