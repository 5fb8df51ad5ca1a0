package allocator

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strings"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// Assignment is what a Service holds: addresses from one pool, in the order
// of its families.
type Assignment struct {
	Pool string
	IPs  []netip.Addr
}

// Allocator tracks every assignment. It is not safe for concurrent use: one
// goroutine (the controller's worker) owns it.
type Allocator struct {
	pools []*pool          // config order
	byKey map[string]*pool // by name
	svcs  map[string]*held // by Service key
	ips   map[netip.Addr]*ipUse
	// shared indexes the addresses held under each sharing key, so finding
	// one to share does not scan every address in use.
	shared map[string]map[netip.Addr]bool
}

type pool struct {
	cfg    *config.Pool
	used   []runSet // parallel to cfg.Ranges
	inUse  int      // distinct addresses in use
	inUse6 int      // of which IPv6
	size   float64
}

// held is one Service's assignment and the request it was made for.
type held struct {
	svc Service
	Assignment
}

// ipUse is who holds one address: one Service, or several that share it.
type ipUse struct {
	pool  *pool
	key   string // sharing key of its users ("" for a sole, unshared user)
	users map[string]*held
}

// New returns an allocator with no pools: every Assign fails with ErrNoConfig
// until SetConfig.
func New() *Allocator {
	return &Allocator{byKey: map[string]*pool{}, svcs: map[string]*held{}, ips: map[netip.Addr]*ipUse{}, shared: map[string]map[netip.Addr]bool{}}
}

// SetConfig replaces the pools. Assignments whose addresses are still in a
// pool move to it; the others are dropped and their keys returned, so the
// caller can reassign those Services.
func (a *Allocator) SetConfig(cfg *config.Config) (dropped []string) {
	a.pools = nil
	a.byKey = map[string]*pool{}
	for _, pc := range cfg.Pools {
		p := &pool{cfg: pc, used: make([]runSet, len(pc.Ranges)), size: floatSize(pc)}
		a.pools = append(a.pools, p)
		a.byKey[pc.Name] = p
	}
	old := a.svcs
	a.svcs = map[string]*held{}
	a.ips = map[netip.Addr]*ipUse{}
	a.shared = map[string]map[netip.Addr]bool{}
	keys := make([]string, 0, len(old))
	for k := range old {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic when two old holders now conflict
	for _, k := range keys {
		h := old[k]
		if _, err := a.take(h.svc, h.IPs); err != nil {
			dropped = append(dropped, k)
		}
	}
	return dropped
}

func floatSize(p *config.Pool) float64 {
	f, _ := new(big.Float).SetInt(p.Size()).Float64()
	return f
}

// Assigned returns the current assignment of a Service.
func (a *Allocator) Assigned(key string) (Assignment, bool) {
	h, ok := a.svcs[key]
	if !ok {
		return Assignment{}, false
	}
	return h.Assignment, true
}

// Release frees a Service's addresses (shared addresses stay with the other
// Services).
func (a *Allocator) Release(key string) {
	h, ok := a.svcs[key]
	if !ok {
		return
	}
	delete(a.svcs, key)
	for _, ip := range h.IPs {
		u := a.ips[ip]
		if u == nil {
			continue
		}
		delete(u.users, key)
		if len(u.users) == 0 {
			delete(a.ips, ip)
			u.pool.markFree(ip)
			if u.key != "" {
				delete(a.shared[u.key], ip)
				if len(a.shared[u.key]) == 0 {
					delete(a.shared, u.key)
				}
			}
		}
	}
}

// Restore re-learns an assignment found in a Service's status (after a
// restart). It takes exactly those addresses or fails; it never picks others.
func (a *Allocator) Restore(svc Service, ips []netip.Addr) (Assignment, error) {
	if len(a.pools) == 0 {
		return Assignment{}, ErrNoConfig
	}
	a.Release(svc.Key)
	return a.take(svc, ips)
}

// Assign gives svc addresses. current are the addresses the Service holds now
// (from its status): they are kept when they still satisfy the request, so
// that reconciling never moves a Service without a reason. Assign is
// idempotent.
func (a *Allocator) Assign(svc Service, current []netip.Addr) (Assignment, error) {
	if len(a.pools) == 0 {
		return Assignment{}, ErrNoConfig
	}
	svc.Requested = slices.Clone(svc.Requested)
	if err := checkRequestFamilies(&svc); err != nil {
		return Assignment{}, err
	}
	prev, hadPrev := a.svcs[svc.Key]
	a.Release(svc.Key)
	restore := func() {
		if hadPrev {
			_, _ = a.take(prev.svc, prev.IPs)
		}
	}

	if len(svc.Requested) > 0 {
		as, err := a.take(svc, svc.Requested)
		if err != nil {
			restore()
		}
		return as, err
	}
	// Keep what the Service has, if it still fits.
	for _, keep := range [][]netip.Addr{heldIPs(prev, hadPrev), current} {
		if len(keep) > 0 {
			if as, err := a.keep(svc, keep); err == nil {
				return as, nil
			}
		}
	}
	as, err := a.allocate(svc)
	if err != nil {
		restore()
	}
	return as, err
}

func heldIPs(h *held, ok bool) []netip.Addr {
	if !ok {
		return nil
	}
	return h.IPs
}

// keep takes again the addresses a Service holds, those of the families it
// still wants (so kept addresses follow spec changes: a family added or
// dropped), in the order of its families. A family it wants and lacks is
// added from the same pool when there is room; without room it keeps what
// it has if that is enough (PreferDualStack), so it never moves for lack of
// a second family.
func (a *Allocator) keep(svc Service, ips []netip.Addr) (Assignment, error) {
	fams, required := svc.wantFamilies()
	byFam := map[Family]netip.Addr{}
	for _, ip := range ips {
		f := familyOf(ip)
		if _, dup := byFam[f]; dup || !slices.Contains(fams, f) {
			continue
		}
		byFam[f] = ip
	}
	if len(byFam) == 0 {
		return Assignment{}, ErrNoPool
	}
	var kept []netip.Addr
	for _, f := range fams {
		if ip, ok := byFam[f]; ok {
			kept = append(kept, ip)
		}
	}
	as, err := a.take(svc, kept)
	if err != nil || len(kept) == len(fams) {
		return as, err
	}
	p := a.byKey[as.Pool]
	var grown []netip.Addr
	for _, f := range fams {
		ip, ok := byFam[f]
		if !ok {
			if ip, ok = a.shareable(p, svc, f); !ok {
				ip, ok = p.lowestFree(f)
			}
		}
		if ok {
			grown = append(grown, ip)
		}
	}
	if len(grown) > len(kept) {
		a.Release(svc.Key)
		if as, err := a.takeIn(p, svc, grown); err == nil {
			return as, nil
		}
		if as, err = a.take(svc, kept); err != nil {
			return as, err
		}
	}
	if len(kept) < required {
		a.Release(svc.Key)
		return Assignment{}, ErrPoolExhausted
	}
	return as, nil
}

func checkRequestFamilies(svc *Service) error {
	if len(svc.Requested) == 0 {
		return nil
	}
	fams, required := svc.wantFamilies()
	for _, ip := range svc.Requested {
		if !slices.Contains(fams, familyOf(ip)) {
			return fmt.Errorf("%w: requested %s is %s but the Service's ipFamilies are %v", ErrBadRequest, ip, familyOf(ip), fams)
		}
	}
	if len(svc.Requested) < required {
		return fmt.Errorf("%w: the Service requires dual-stack but requests only %v: request one IPv4 and one IPv6 address", ErrBadRequest, svc.Requested)
	}
	// Order requested addresses like the families.
	slices.SortStableFunc(svc.Requested, func(x, y netip.Addr) int {
		return cmp.Compare(slices.Index(fams, familyOf(x)), slices.Index(fams, familyOf(y)))
	})
	return nil
}

// take records exactly ips for svc if they are in one pool the Service may
// use and free or shareable. auto-assign is not checked here: it governs only
// the choice of new addresses (candidates), so requested and already held
// addresses of an auto-assign: false pool are fine.
func (a *Allocator) take(svc Service, ips []netip.Addr) (Assignment, error) {
	return a.takeIn(nil, svc, ips)
}

// takeIn is take with the pool already known (nil: look it up).
func (a *Allocator) takeIn(p *pool, svc Service, ips []netip.Addr) (Assignment, error) {
	for _, ip := range ips {
		q := p
		if q == nil || q.index(ip) < 0 {
			q = a.poolOf(ip)
		}
		if q == nil {
			return Assignment{}, fmt.Errorf("%w: %s is in no configured pool", ErrIPNotInPool, ip)
		}
		if p != nil && q != p {
			return Assignment{}, fmt.Errorf("%w: %s and %s are in different pools (%s, %s): request addresses of one pool", ErrBadRequest, ips[0], ip, p.cfg.Name, q.cfg.Name)
		}
		p = q
	}
	if svc.Pool != "" && p.cfg.Name != svc.Pool {
		return Assignment{}, fmt.Errorf("%w: %s is in pool %q, not in the requested pool %q", ErrIPNotInPool, ips[0], p.cfg.Name, svc.Pool)
	}
	if err := p.allows(svc); err != nil {
		return Assignment{}, err
	}
	for _, ip := range ips {
		if p.cfg.AvoidBuggyIPs && buggy(ip) {
			return Assignment{}, fmt.Errorf("%w: %s ends in .0 or .255 and pool %q has avoid-buggy-ips", ErrIPNotInPool, ip, p.cfg.Name)
		}
		if u := a.ips[ip]; u != nil {
			if err := u.canShare(svc); err != nil {
				return Assignment{}, fmt.Errorf("%w: %s: %v", ErrIPTaken, ip, err)
			}
		}
	}
	h := &held{svc: svc, Assignment: Assignment{Pool: p.cfg.Name, IPs: slices.Clone(ips)}}
	a.svcs[svc.Key] = h
	for _, ip := range ips {
		u := a.ips[ip]
		if u == nil {
			u = &ipUse{pool: p, key: svc.SharingKey, users: map[string]*held{}}
			a.ips[ip] = u
			p.markUsed(ip)
			if u.key != "" {
				if a.shared[u.key] == nil {
					a.shared[u.key] = map[netip.Addr]bool{}
				}
				a.shared[u.key][ip] = true
			}
		}
		u.users[svc.Key] = h
	}
	return h.Assignment, nil
}

// allocate picks new addresses: from the requested pool, or from the pools the
// Service may use in priority order; in each, an address it may share first,
// else the lowest free one.
func (a *Allocator) allocate(svc Service) (Assignment, error) {
	candidates, err := a.candidates(svc)
	if err != nil {
		return Assignment{}, err
	}
	fams, required := svc.wantFamilies()
	// First look for a pool that gives every family wanted, then settle for
	// the required ones (PreferDualStack).
	passes := []int{len(fams)}
	if required < len(fams) {
		passes = append(passes, required)
	}
	var full []string
	for _, need := range passes {
		full = full[:0]
		for _, p := range candidates {
			if ips := a.pick(p, svc, fams, need); ips != nil {
				return a.takeIn(p, svc, ips)
			}
			full = append(full, p.cfg.Name)
		}
	}
	return Assignment{}, fmt.Errorf("%w: no free %s address in %s", ErrPoolExhausted, famWords(fams[:required]), quoteList(full))
}

// pick chooses addresses of p for the first need families of fams (and the
// rest when available), or nil.
func (a *Allocator) pick(p *pool, svc Service, fams []Family, need int) []netip.Addr {
	var ips []netip.Addr
	for i, f := range fams {
		ip, ok := a.shareable(p, svc, f)
		if !ok {
			ip, ok = p.lowestFree(f)
		}
		if !ok {
			if i < need {
				return nil
			}
			continue
		}
		ips = append(ips, ip)
	}
	if len(ips) == 0 {
		return nil
	}
	return ips
}

func famWords(fams []Family) string {
	s := make([]string, len(fams))
	for i, f := range fams {
		s[i] = f.String()
	}
	return strings.Join(s, "+")
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return "pool " + q[0]
	}
	return "pools " + strings.Join(q, ", ")
}

// candidates lists the pools svc may draw from, best first.
func (a *Allocator) candidates(svc Service) ([]*pool, error) {
	fams, required := svc.wantFamilies()
	hasFams := func(p *pool) bool {
		n := 0
		for _, f := range fams {
			if p.hasFamily(f) {
				n++
			}
		}
		return n >= required
	}
	if svc.Pool != "" {
		p := a.byKey[svc.Pool]
		if p == nil {
			return nil, fmt.Errorf("%w: the requested pool %q does not exist", ErrNoPool, svc.Pool)
		}
		if err := p.allows(svc); err != nil {
			return nil, err
		}
		if !hasFams(p) {
			return nil, fmt.Errorf("%w: the requested pool %q has no %s addresses", ErrNoPool, svc.Pool, famWords(fams[:required]))
		}
		return []*pool{p}, nil
	}
	var out []*pool
	for _, p := range a.pools {
		if p.cfg.AutoAssign && p.allows(svc) == nil && hasFams(p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no auto-assign pool with %s addresses accepts Service %s", ErrNoPool, famWords(fams[:required]), svc.Key)
	}
	slices.SortStableFunc(out, func(x, y *pool) int {
		px, py := x.cfg.Priority, y.cfg.Priority
		switch {
		case px == py:
			return 0
		case px == 0:
			return 1
		case py == 0:
			return -1
		}
		return cmp.Compare(px, py)
	})
	return out, nil
}

// shareable finds an address of family f in p already held by Services svc
// may share with (same sharing key, no port clash).
func (a *Allocator) shareable(p *pool, svc Service, f Family) (netip.Addr, bool) {
	if svc.SharingKey == "" {
		return netip.Addr{}, false
	}
	var best netip.Addr
	for ip := range a.shared[svc.SharingKey] {
		u := a.ips[ip]
		if u.pool != p || familyOf(ip) != f || u.canShare(svc) != nil {
			continue
		}
		if !best.IsValid() || ip.Less(best) {
			best = ip
		}
	}
	return best, best.IsValid()
}

func (a *Allocator) poolOf(ip netip.Addr) *pool {
	for _, p := range a.pools {
		if p.index(ip) >= 0 {
			return p
		}
	}
	return nil
}

// Usage reports a pool's size and how many of its addresses are in use.
func (a *Allocator) Usage(name string) (size float64, inUse int, ok bool) {
	p := a.byKey[name]
	if p == nil {
		return 0, 0, false
	}
	return p.size, p.inUse, true
}

// FamilyUsage is a pool's use per address family, as MetalLB shows it in
// an IPAddressPool's status.
type FamilyUsage struct {
	AssignedIPv4, AssignedIPv6   int64
	AvailableIPv4, AvailableIPv6 int64 // at most math.MaxInt64 (an IPv6 pool can hold more)
}

// UsageByFamily reports a pool's use per family.
func (a *Allocator) UsageByFamily(name string) (FamilyUsage, bool) {
	p := a.byKey[name]
	if p == nil {
		return FamilyUsage{}, false
	}
	avail := func(v4 bool, used int) int64 {
		n := p.cfg.FamilySize(v4)
		n.Sub(n, big.NewInt(int64(used)))
		if !n.IsInt64() {
			return math.MaxInt64
		}
		return max(n.Int64(), 0)
	}
	return FamilyUsage{
		AssignedIPv4: int64(p.inUse - p.inUse6), AssignedIPv6: int64(p.inUse6),
		AvailableIPv4: avail(true, p.inUse-p.inUse6), AvailableIPv6: avail(false, p.inUse6),
	}, true
}

// Pools lists the pool names in config order.
func (a *Allocator) Pools() []string {
	out := make([]string, len(a.pools))
	for i, p := range a.pools {
		out[i] = p.cfg.Name
	}
	return out
}

func (p *pool) allows(svc Service) error {
	named := slices.Contains(p.cfg.Namespaces, svc.Namespace)
	selected := len(p.cfg.NamespaceSelectors) > 0 && config.MatchesAny(p.cfg.NamespaceSelectors, svc.NamespaceLabels)
	switch {
	case named || selected:
	case len(p.cfg.Namespaces) > 0 && len(p.cfg.NamespaceSelectors) > 0:
		return fmt.Errorf("%w: pool %q serves namespaces %s and those matching its namespaceSelectors only, not %q", ErrNoPool, p.cfg.Name, strings.Join(p.cfg.Namespaces, ","), svc.Namespace)
	case len(p.cfg.Namespaces) > 0:
		return fmt.Errorf("%w: pool %q serves namespaces %s only, not %q", ErrNoPool, p.cfg.Name, strings.Join(p.cfg.Namespaces, ","), svc.Namespace)
	case len(p.cfg.NamespaceSelectors) > 0:
		return fmt.Errorf("%w: the labels of namespace %q match none of pool %q's namespaceSelectors", ErrNoPool, svc.Namespace, p.cfg.Name)
	}
	if !config.MatchesAny(p.cfg.ServiceSelectors, svc.Labels) {
		return fmt.Errorf("%w: Service labels match none of pool %q's service-selectors", ErrNoPool, p.cfg.Name)
	}
	return nil
}

func (p *pool) hasFamily(f Family) bool {
	return slices.ContainsFunc(p.cfg.Ranges, func(r iprange.Range) bool { return r.Is4() == (f == IPv4) })
}

func (p *pool) index(ip netip.Addr) int {
	for i, r := range p.cfg.Ranges {
		if r.Contains(ip) {
			return i
		}
	}
	return -1
}

func (p *pool) markUsed(ip netip.Addr) {
	if i := p.index(ip); i >= 0 {
		p.used[i].add(ip)
		p.inUse++
		if !ip.Is4() {
			p.inUse6++
		}
	}
}

func (p *pool) markFree(ip netip.Addr) {
	if i := p.index(ip); i >= 0 {
		p.used[i].remove(ip)
		p.inUse--
		if !ip.Is4() {
			p.inUse6--
		}
	}
}

// lowestFree returns the lowest free address of family f, skipping .0/.255
// when the pool avoids them.
func (p *pool) lowestFree(f Family) (netip.Addr, bool) {
	var best netip.Addr
	for i, r := range p.cfg.Ranges {
		if r.Is4() != (f == IPv4) {
			continue
		}
		ip := p.used[i].nextFree(r.First())
		for ip.IsValid() && r.Contains(ip) && p.cfg.AvoidBuggyIPs && buggy(ip) {
			ip = p.used[i].nextFree(ip.Next())
		}
		if ip.IsValid() && r.Contains(ip) && (!best.IsValid() || ip.Less(best)) {
			best = ip
		}
	}
	return best, best.IsValid()
}

func buggy(ip netip.Addr) bool {
	if !ip.Is4() {
		return false
	}
	b := ip.As4()
	return b[3] == 0 || b[3] == 255
}

// canShare says why svc may not share an address with its current users.
func (u *ipUse) canShare(svc Service) error {
	for key, h := range u.users {
		o := h.svc
		switch {
		case key == svc.Key:
			continue
		case svc.SharingKey == "" || o.SharingKey == "":
			return fmt.Errorf("held by %s, and sharing needs the %s annotation with the same value on both", key, AnnotationSharing)
		case svc.SharingKey != o.SharingKey:
			return fmt.Errorf("held by %s with sharing key %q, not %q", key, o.SharingKey, svc.SharingKey)
		case svc.Local != o.Local:
			return fmt.Errorf("held by %s: Services with externalTrafficPolicy Local and Cluster cannot share an IP", key)
		case svc.Local && svc.Selector != o.Selector:
			return fmt.Errorf("held by %s: Local Services share an IP only when their selectors are equal", key)
		}
		for _, p := range svc.Ports {
			if slices.Contains(o.Ports, p) {
				return fmt.Errorf("held by %s, which also uses %s/%d", key, p.Protocol, p.Port)
			}
		}
	}
	return nil
}
