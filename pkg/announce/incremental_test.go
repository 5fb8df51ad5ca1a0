package announce

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/routes"
)

// mirror applies a plan's changes to what an announcer and a BGP session
// hold, as the speaker does.
type mirror struct {
	claims map[netip.Addr]Claim
	routes map[string]routes.Route
	anns   map[string]Announcement
}

func newMirror() *mirror {
	return &mirror{claims: map[netip.Addr]Claim{}, routes: map[string]routes.Route{}, anns: map[string]Announcement{}}
}

func (m *mirror) apply(t *testing.T, p Plan) {
	t.Helper()
	for _, ip := range p.Unclaim {
		if _, ok := m.claims[ip]; !ok {
			t.Fatalf("unclaims %s, never claimed", ip)
		}
		delete(m.claims, ip)
	}
	for _, cl := range p.Claim {
		m.claims[cl.IP] = cl
	}
	for _, pfx := range p.Withdraw {
		delete(m.routes, pfx.String())
	}
	for _, r := range p.Advertise {
		m.routes[r.Key()] = r
	}
	key := func(a Announcement) string { return string(a.Protocol) + "/" + a.IP.String() + "/" + a.Service }
	for _, a := range p.Removed {
		if _, ok := m.anns[key(a)]; !ok {
			t.Fatalf("removes %v, never added", a)
		}
		delete(m.anns, key(a))
	}
	for _, a := range p.Added {
		if _, ok := m.anns[key(a)]; ok {
			t.Fatalf("adds %v twice", a)
		}
		m.anns[key(a)] = a
	}
}

func (m *mirror) state() (claims []Claim, rs []routes.Route, anns []Announcement) {
	for _, c := range m.claims {
		claims = append(claims, c)
	}
	slices.SortFunc(claims, func(a, b Claim) int { return a.IP.Compare(b.IP) })
	for _, r := range m.routes {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b routes.Route) int { return strings.Compare(a.Key(), b.Key()) })
	for _, a := range m.anns {
		anns = append(anns, a)
	}
	slices.SortFunc(anns, compareAnn)
	return claims, rs, anns
}

// TestCoreIncremental changes Services, nodes and the config at random and
// plans after each change twice over: with the core re-deciding only what
// the change touched, and with a twin re-deciding everything. Both leave
// the same claims, routes and announcements; the changes each plan
// returns, applied in order, give exactly the core's state; and
// DesiredBGP, from scratch, advertises what the core does.
func TestCoreIncremental(t *testing.T) {
	cfgs := []string{`peers:
- {peer-address: 198.51.100.254, peer-asn: 64500, my-asn: 64501}
address-pools:
- {name: l2, protocol: layer2, addresses: [198.51.100.0/28]}
- {name: edge, protocol: layer2, addresses: [198.51.100.16/28], node-selectors: [{match-labels: {edge: "true"}}], interfaces: [eth1]}
- name: routed
  protocol: bgp
  addresses: [203.0.113.0/28]
  bgp-advertisements:
  - {communities: ["65535:65281"]}
  - {aggregation-length: 29, localpref: 50}
`, `peers:
- {peer-address: 198.51.100.254, peer-asn: 64500, my-asn: 64501}
address-pools:
- {name: l2, protocol: layer2, addresses: [198.51.100.0/28]}
- {name: edge, protocol: layer2, addresses: [198.51.100.16/28]}
- {name: routed, protocol: bgp, addresses: [203.0.113.0/28], bgp-advertisements: [{aggregation-length: 28}]}
`}
	var parsed []*config.Config
	for _, c := range cfgs {
		cfg, err := config.Parse([]byte(c))
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, cfg)
	}
	var addrs []netip.Addr
	for _, base := range []string{"198.51.100.0", "198.51.100.16", "203.0.113.0"} {
		ip := netip.MustParseAddr(base)
		for range 6 {
			addrs = append(addrs, ip)
			ip = ip.Next()
		}
	}
	names := []string{"a", "b", "c"}
	withPeers := 0 // plans that gave a Service BGP peers: the check above ran on something
	defer func() {
		if withPeers == 0 {
			t.Error("no Service was ever advertised to a peer")
		}
	}()
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		inc, full := NewCore(), NewCore()
		mi, mf := newMirror(), newMirror()
		cfg := parsed[0]
		svcs := map[string]Svc{}
		nodes := map[string]Node{}
		for _, n := range names {
			nodes[n] = Node{Name: n, Eligible: true, Live: true, Ready: true}
		}
		now := time.Unix(1000, 0)
		for step := range 200 {
			now = now.Add(time.Duration(rng.IntN(500)) * time.Millisecond)
			switch rng.IntN(10) {
			case 0:
				cfg = parsed[rng.IntN(len(parsed))]
			case 1:
				n := nodes[names[rng.IntN(3)]]
				n.Eligible, n.Live, n.Ready = rng.IntN(4) > 0, rng.IntN(4) > 0, rng.IntN(4) > 0
				if rng.IntN(2) == 0 {
					n.Labels = map[string]string{"edge": "true"}
				} else {
					n.Labels = nil
				}
				nodes[n.Name] = n
			case 2:
				delete(svcs, fmt.Sprintf("ns/s%d", rng.IntN(20)))
			default:
				s := Svc{Key: fmt.Sprintf("ns/s%d", rng.IntN(20)), Local: rng.IntN(3) == 0}
				for range 1 + rng.IntN(2) {
					s.IPs = append(s.IPs, addrs[rng.IntN(len(addrs))])
				}
				for _, n := range names {
					if rng.IntN(2) == 0 {
						s.ReadyNodes = append(s.ReadyNodes, n)
					}
				}
				svcs[s.Key] = s
			}
			var ns []Node
			for _, n := range names {
				ns = append(ns, nodes[n])
			}
			var ss []Svc
			for _, s := range svcs {
				ss = append(ss, s)
			}
			env := Env{Self: "a", Now: now, Resend: rng.IntN(8) == 0}
			inc.Sync(cfg, ns, ss)
			full.Sync(cfg, ns, ss)
			full.all = true
			before := map[string][]Announcement{}
			peersBefore := map[string][]string{}
			for k := range 20 {
				key := fmt.Sprintf("ns/s%d", k)
				before[key] = inc.Layer2Of(key)
				peersBefore[key] = inc.BGPPeersOf(key)
			}
			pi, pf := inc.Plan(env), full.Plan(env)
			for key, was := range before {
				if !cmp.Equal(was, inc.Layer2Of(key), cmpopts.EquateComparable(netip.Addr{})) && !slices.Contains(pi.Layer2Changed, key) {
					t.Fatalf("seed %d step %d: the layer2 announcements of %s changed, not in Layer2Changed %v", seed, step, key, pi.Layer2Changed)
				}
				now := inc.BGPPeersOf(key)
				if len(now) > 0 {
					withPeers++
				}
				if !slices.Equal(peersBefore[key], now) && !slices.Contains(pi.BGPChanged, key) {
					t.Fatalf("seed %d step %d: the BGP peers of %s changed %v -> %v, not in BGPChanged %v", seed, step, key, peersBefore[key], now, pi.BGPChanged)
				}
				if f := full.BGPPeersOf(key); !slices.Equal(now, f) {
					t.Fatalf("seed %d step %d: BGP peers of %s: incremental %v, from scratch %v", seed, step, key, now, f)
				}
			}
			mi.apply(t, pi)
			mf.apply(t, pf)
			if rng.IntN(3) == 0 {
				for _, r := range pi.Releases {
					for _, ip := range r.IPs {
						inc.Released(r.To, []netip.Addr{ip}, now)
						full.Released(r.To, []netip.Addr{ip}, now)
					}
				}
			}
			type state struct {
				Claims  []Claim
				Routes  []routes.Route
				Anns    []Announcement
				Waiting map[netip.Addr]string
			}
			gi := state{inc.Claims(), inc.Routes(), inc.Announcements(), pi.Waiting}
			gf := state{full.Claims(), full.Routes(), full.Announcements(), pf.Waiting}
			if diff := cmp.Diff(gf, gi, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
				t.Fatalf("seed %d step %d: incremental differs from full (-full +incremental):\n%s", seed, step, diff)
			}
			c, r, a := mi.state()
			for i := range min(len(a), len(gi.Anns)) {
				a[i].Interfaces = gi.Anns[i].Interfaces // those changes are Layer2Changed's
			}
			if diff := cmp.Diff(state{gi.Claims, gi.Routes, gi.Anns, gi.Waiting}, state{c, r, a, gi.Waiting}, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
				t.Fatalf("seed %d step %d: the changes applied differ from the state (-state +applied):\n%s", seed, step, diff)
			}
			if ws, _ := DesiredBGP(cfg, nodes["a"], ss); len(inc.peers) > 0 && !cmp.Equal(ws, gi.Routes, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmp.Comparer(func(x, y routes.Route) bool { return x.Equal(y) })) {
				t.Fatalf("seed %d step %d: routes %v, DesiredBGP %v", seed, step, gi.Routes, ws)
			}
		}
	}
}

// BenchmarkBulk measures a bulk of Services arriving one by one, a plan
// after each (as a speaker sees a controller's status writes): the cost
// per Service stays flat as the cluster grows.
func BenchmarkBulk(b *testing.B) {
	cfg, err := config.Parse([]byte(`peers:
- {peer-address: 198.51.100.254, peer-asn: 64500, my-asn: 64501}
address-pools:
- {name: l2, protocol: layer2, addresses: [198.51.0.0/16]}
- {name: routed, protocol: bgp, addresses: [203.0.0.0/16], bgp-advertisements: [{}, {aggregation-length: 16}]}
`))
	if err != nil {
		b.Fatal(err)
	}
	nodes := []Node{{Name: "a", Eligible: true, Live: true, Ready: true}, {Name: "b", Eligible: true, Live: true, Ready: true}, {Name: "c", Eligible: true, Live: true, Ready: true}}
	for _, n := range []int{1000, 3000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				c := NewCore()
				c.Sync(cfg, nodes, nil)
				now := time.Unix(1000, 0)
				c.Plan(Env{Self: "a", Now: now})
				for i := range n {
					first := byte(51)
					if i%2 == 1 {
						first = 0 // every other one routed: 203.0.x.y
					}
					ip := netip.AddrFrom4([4]byte{198, first, byte(i >> 8), byte(i)})
					if first == 0 {
						ip = netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})
					}
					c.SetService(Svc{Key: fmt.Sprintf("ns/s%d", i), IPs: []netip.Addr{ip}, ReadyNodes: []string{"b"}})
					c.Plan(Env{Self: "a", Now: now})
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/service")
		})
	}
}
