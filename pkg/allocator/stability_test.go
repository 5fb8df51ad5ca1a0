package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// The configs the random edits pick from: growing, shrinking, re-protocolling
// and removing pools, IPv6 sides that run out, and nothing at all.
var stabilityConfigs = []string{
	`address-pools:
- {name: dual, protocol: layer2, addresses: [192.0.2.0/30, "2001:db8::/127"]}
- {name: four, protocol: layer2, addresses: [198.51.100.0/30]}
`,
	`address-pools:
- {name: dual, protocol: layer2, addresses: [192.0.2.0/29, "2001:db8::/126"]}
- {name: four, protocol: layer2, addresses: [198.51.100.0/30]}
`,
	`address-pools:
- {name: dual, protocol: layer2, addresses: [192.0.2.0/31, "2001:db8::/127"]}
- {name: four, protocol: layer2, addresses: [198.51.100.0/30]}
`,
	`address-pools:
- {name: dual, protocol: layer2, addresses: [192.0.2.0/30]}
- {name: four, protocol: layer2, addresses: [198.51.100.0/30]}
`,
	`address-pools:
- {name: dual, protocol: layer2, addresses: [192.0.2.0/30, "2001:db8::/127"]}
`,
	`address-pools:
- {name: dual, protocol: layer2, addresses: [192.0.2.0/30, "2001:db8::/127"]}
- {name: four, protocol: bgp, addresses: [198.51.100.0/30]}
`,
	`address-pools:
- {name: dual, protocol: layer2, addresses: [192.0.2.0/30, "2001:db8::/127"]}
- {name: four, protocol: layer2, addresses: [198.51.100.0/30]}
- {name: more, protocol: layer2, addresses: [203.0.113.0/30], namespaces: [b]}
`,
	"# empty\n",
}

// world is the controller as the allocator sees it: the config in force,
// the Services (as their specs), and their status.
type world struct {
	t       *testing.T
	rng     *rand.Rand
	cfgs    []*config.Config
	inForce *config.Config
	alloc   *Allocator
	specs   map[string]Service
	order   []string // creation order, oldest first
	status  map[string][]netip.Addr
	next    int
}

func randomService(rng *rand.Rand, key string) Service {
	s := Service{Key: key, Namespace: key[:1], Ports: []Port{{"TCP", 80}}}
	switch rng.IntN(5) {
	case 0:
		s.Families, s.Policy = []Family{IPv6}, SingleStack
	case 1:
		s.Families, s.Policy = []Family{IPv4, IPv6}, PreferDualStack
	case 2:
		s.Families, s.Policy = []Family{IPv6, IPv4}, PreferDualStack
	case 3:
		s.Families, s.Policy = []Family{IPv4, IPv6}, RequireDualStack
	}
	if rng.IntN(4) == 0 {
		s.Pool = "four"
	}
	return s
}

// sync is the controller's reconcile of one Service: Assign with its status.
func (w *world) sync(key string) {
	as, err := w.alloc.Assign(w.specs[key], w.status[key])
	if err != nil {
		if _, held := w.alloc.Assigned(key); !held {
			w.status[key] = nil
		}
		return
	}
	w.status[key] = as.IPs
}

// valid reports whether ip may stay with the Service under the config in
// force: in a pool it may use, of a family it wants.
func (w *world) valid(key string, ip netip.Addr) bool {
	s := w.specs[key]
	p := w.inForce.PoolFor(ip)
	if p == nil || (s.Pool != "" && p.Name != s.Pool) || (len(p.Namespaces) > 0 && !slices.Contains(p.Namespaces, s.Namespace)) {
		return false
	}
	fams, required := s.wantFamilies()
	if !slices.Contains(fams, familyOf(ip)) {
		return false
	}
	// Both families are required from one pool: a pool without the other
	// cannot keep it.
	for _, f := range fams[:required] {
		if !slices.ContainsFunc(p.Ranges, func(r iprange.Range) bool { return r.Is4() == (f == IPv4) }) {
			return false
		}
	}
	return true
}

func (w *world) step(i int) {
	before := map[string][]netip.Addr{}
	for k, v := range w.status {
		before[k] = slices.Clone(v)
	}
	renumbered := map[string]bool{}
	op := w.rng.IntN(10)
	switch {
	case op < 3: // create
		key := fmt.Sprintf("%c/s%d", "ab"[w.rng.IntN(2)], w.next)
		w.next++
		w.specs[key] = randomService(w.rng, key)
		w.order = append(w.order, key)
		w.sync(key)
	case op < 5 && len(w.order) > 0: // delete
		j := w.rng.IntN(len(w.order))
		key := w.order[j]
		w.order = slices.Delete(w.order, j, j+1)
		delete(w.specs, key)
		delete(w.status, key)
		w.alloc.Release(key)
		for _, k := range w.order {
			w.sync(k) // waiting Services are retried
		}
	case op == 5: // controller restart: re-learn from status, oldest first
		w.alloc = New()
		w.alloc.SetConfig(w.inForce)
		for _, k := range w.order {
			if ips := w.status[k]; len(ips) > 0 {
				_, _ = w.alloc.Restore(w.specs[k], ips)
			}
		}
		for _, k := range w.order {
			w.sync(k)
		}
	case op == 6: // config edit: judged, refused if it takes an address, unless allowed
		cfg := w.cfgs[w.rng.IntN(len(w.cfgs))]
		affected := Impact(w.inForce, cfg, w.alloc.Holdings())
		allowed := w.rng.IntN(4) == 0
		if len(affected) > 0 && !allowed {
			break
		}
		dropped := w.alloc.SetConfig(cfg)
		if len(affected) == 0 && len(dropped) > 0 {
			w.t.Fatalf("step %d: Impact found nothing but SetConfig dropped %v", i, dropped)
		}
		for _, a := range affected {
			renumbered[a.Service] = true
		}
		w.inForce = cfg
		for _, k := range w.order {
			w.sync(k)
		}
	case op == 7 && len(w.order) > 0: // family change
		key := w.order[w.rng.IntN(len(w.order))]
		s := randomService(w.rng, key)
		s.Pool = w.specs[key].Pool
		w.specs[key] = s
		w.sync(key)
	default: // resync everything
		for _, k := range w.order {
			w.sync(k)
		}
	}
	w.check(i, before, renumbered)
}

// check: no address held twice; an address still valid never changed hands
// or went away, unless the operator allowed a renumbering of that Service.
func (w *world) check(i int, before map[string][]netip.Addr, renumbered map[string]bool) {
	owner := map[netip.Addr]string{}
	for _, k := range w.order {
		for _, ip := range w.status[k] {
			if o, dup := owner[ip]; dup {
				w.t.Fatalf("step %d: %s handed to %s and %s", i, ip, o, k)
			}
			owner[ip] = k
		}
	}
	for k, ips := range before {
		if _, alive := w.specs[k]; !alive || renumbered[k] {
			continue
		}
		for _, ip := range ips {
			if w.valid(k, ip) && !slices.Contains(w.status[k], ip) {
				w.t.Fatalf("step %d: %s lost %s, still valid (had %v, now %v; spec %+v)", i, k, ip, ips, w.status[k], w.specs[k])
			}
		}
	}
}

// TestStability runs long random sequences of creates, deletes, controller
// restarts, config edits (refused when they would take an address, or
// explicitly allowed) and family changes: an address that is still valid
// never changes, and none is handed out twice.
func TestStability(t *testing.T) {
	var cfgs []*config.Config
	for _, s := range stabilityConfigs {
		cfgs = append(cfgs, mustConfig(t, s))
	}
	sequences, steps := 60, 300
	if testing.Short() {
		sequences = 15
	}
	for seq := range sequences {
		w := &world{t: t, rng: rand.New(rand.NewPCG(uint64(seq), 1)), cfgs: cfgs, inForce: cfgs[0], alloc: New(),
			specs: map[string]Service{}, status: map[string][]netip.Addr{}}
		w.alloc.SetConfig(cfgs[0])
		for i := range steps {
			w.step(i)
			if t.Failed() {
				t.Fatalf("sequence %d", seq)
			}
		}
	}
}
