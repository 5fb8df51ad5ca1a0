package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// Holding is an assignment to judge a new config against: a Service and the
// addresses it holds.
type Holding struct {
	Service Service
	IPs     []netip.Addr
}

// Affected is a Service whose addresses a new config would take away or
// change.
type Affected struct {
	Service string // namespace/name
	IPs     []netip.Addr
	Reason  string
}

func (a Affected) String() string {
	return fmt.Sprintf("%s [%s]: %s", a.Service, joinIPs(a.IPs), a.Reason)
}

// Holdings returns every current assignment, ordered by Service key.
func (a *Allocator) Holdings() []Holding {
	out := make([]Holding, 0, len(a.svcs))
	for _, h := range a.svcs {
		out = append(out, Holding{Service: h.svc, IPs: slices.Clone(h.IPs)})
	}
	slices.SortFunc(out, func(x, y Holding) int { return strings.Compare(x.Service.Key, y.Service.Key) })
	return out
}

// Impact lists the holdings that cfg would not let keep their addresses: an
// address in no pool of cfg, or in a pool the Service may not use (its
// namespaces, service-selectors, a pool the Service asks for by name), or
// announced by another protocol than under old (when old is not nil). The
// holdings are taken in order, so when two of them clash under cfg the
// earlier keeps its address. A config that passes keeps every address where
// it is: SetConfig would drop none.
func Impact(old, cfg *config.Config, hs []Holding) []Affected {
	scratch := New()
	scratch.SetConfig(cfg)
	var out []Affected
	for _, h := range hs {
		if len(h.IPs) == 0 {
			continue
		}
		if reason := scratch.keeps(old, cfg, h); reason != "" {
			out = append(out, Affected{Service: h.Service.Key, IPs: slices.Clone(h.IPs), Reason: reason})
		}
	}
	return out
}

// keeps takes h's addresses under cfg and says why it cannot ("" when it
// can).
func (a *Allocator) keeps(old, cfg *config.Config, h Holding) string {
	if len(a.pools) == 0 {
		return "the new config has no address pools"
	}
	for _, ip := range h.IPs {
		if a.poolOf(ip) == nil {
			return fmt.Sprintf("%s is in no pool of the new config", ip)
		}
	}
	if _, err := a.take(h.Service, h.IPs); err != nil {
		if errors.Is(err, ErrIPTaken) {
			// Two Services claiming one address clash under any config:
			// not this config's doing (the older keeps it, as on restore).
			return ""
		}
		return strings.TrimPrefix(strings.TrimPrefix(err.Error(), sentinelPrefix(err)), ": ")
	}
	if old == nil {
		return ""
	}
	for _, ip := range h.IPs {
		op, np := old.PoolFor(ip), cfg.PoolFor(ip)
		if op != nil && np != nil && op.Protocol != np.Protocol {
			return fmt.Sprintf("%s would be announced by %s (pool %q) instead of %s (pool %q)", ip, np.Protocol, np.Name, op.Protocol, op.Name)
		}
	}
	return ""
}

// sentinelPrefix is the sentinel's own text at the start of err's message,
// which says nothing to someone reading why an edit was refused.
func sentinelPrefix(err error) string {
	for _, s := range []error{ErrNoPool, ErrIPTaken, ErrIPNotInPool, ErrBadRequest} {
		if errors.Is(err, s) && strings.HasPrefix(err.Error(), s.Error()) {
			return s.Error()
		}
	}
	return ""
}

func joinIPs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}
