package allocator

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

func mustConfig(t testing.TB, s string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(s))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func ips(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

func svc(key string, opts ...func(*Service)) Service {
	ns, _, _ := strings.Cut(key, "/")
	s := Service{Key: key, Namespace: ns, Ports: []Port{{"TCP", 80}}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func inPool(p string) func(*Service) { return func(s *Service) { s.Pool = p } }
func nsLabels(kv ...string) func(*Service) {
	return func(s *Service) {
		s.NamespaceLabels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.NamespaceLabels[kv[i]] = kv[i+1]
		}
	}
}
func want(a ...string) func(*Service) { return func(s *Service) { s.Requested = ips(a...) } }
func share(k string) func(*Service)   { return func(s *Service) { s.SharingKey = k } }
func ports(p ...int32) func(*Service) {
	return func(s *Service) {
		s.Ports = nil
		for _, x := range p {
			s.Ports = append(s.Ports, Port{"TCP", x})
		}
	}
}
func local(sel string) func(*Service) { return func(s *Service) { s.Local, s.Selector = true, sel } }
func fams(p FamilyPolicy, f ...Family) func(*Service) {
	return func(s *Service) { s.Policy, s.Families = p, f }
}
func labels(kv ...string) func(*Service) {
	return func(s *Service) {
		s.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Labels[kv[i]] = kv[i+1]
		}
	}
}

// step is one operation on the allocator and what it must yield.
type step struct {
	desc    string
	config  string   // SetConfig with this YAML
	dropped []string // keys SetConfig must drop
	assign  *Service // Assign
	current []string // addresses the Service holds now (status)
	restore []string // Restore svc with these addresses
	release string   // Release this key
	want    string   // "pool ip,ip" or "" for release/config
	wantErr error    // sentinel
	errText string   // substring of the error
	usage   [3]any   // pool, want inUse (checked when pool != nil)
}

func (st step) run(t *testing.T, a *Allocator) {
	t.Helper()
	switch {
	case st.config != "":
		got := a.SetConfig(mustConfig(t, st.config))
		if diff := cmp.Diff(st.dropped, got); diff != "" {
			t.Fatalf("%s: dropped (-want +got):\n%s", st.desc, diff)
		}
	case st.release != "":
		a.Release(st.release)
	case st.assign != nil:
		var as Assignment
		var err error
		if st.restore != nil {
			as, err = a.Restore(*st.assign, ips(st.restore...))
		} else {
			as, err = a.Assign(*st.assign, ips(st.current...))
		}
		checkResult(t, st, as, err)
	}
	if st.usage[0] != nil {
		_, inUse, _ := a.Usage(st.usage[0].(string))
		if inUse != st.usage[1].(int) {
			t.Fatalf("%s: pool %s in use = %d, want %d", st.desc, st.usage[0], inUse, st.usage[1])
		}
	}
}

func checkResult(t *testing.T, st step, as Assignment, err error) {
	t.Helper()
	if st.wantErr != nil || st.errText != "" {
		if err == nil {
			t.Fatalf("%s: got %v, want error %v %q", st.desc, as, st.wantErr, st.errText)
		}
		if st.wantErr != nil && !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: error %q is not %v", st.desc, err, st.wantErr)
		}
		if !strings.Contains(err.Error(), st.errText) {
			t.Fatalf("%s: error %q does not contain %q", st.desc, err, st.errText)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", st.desc, err)
	}
	var s []string
	for _, ip := range as.IPs {
		s = append(s, ip.String())
	}
	got := as.Pool + " " + strings.Join(s, ",")
	if diff := cmp.Diff(st.want, got); diff != "" {
		t.Fatalf("%s: (-want +got):\n%s", st.desc, diff)
	}
}

func sp(s Service) *Service { return &s }

const twoPools = `address-pools:
- {name: dev, protocol: layer2, addresses: [192.0.2.1-192.0.2.3]}
- {name: db, protocol: layer2, addresses: [198.51.100.0/30], auto-assign: false}
`

func TestAllocatorSequences(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "assign, exhaust, release, reuse", steps: []step{
			{desc: "config", config: twoPools},
			{desc: "first", assign: sp(svc("a/one")), want: "dev 192.0.2.1", usage: [3]any{"dev", 1}},
			{desc: "idempotent", assign: sp(svc("a/one")), want: "dev 192.0.2.1"},
			{desc: "second", assign: sp(svc("a/two")), want: "dev 192.0.2.2"},
			{desc: "third", assign: sp(svc("a/three")), want: "dev 192.0.2.3"},
			{desc: "exhausted (db is not auto-assign)", assign: sp(svc("a/four")), wantErr: ErrPoolExhausted, errText: `no free IPv4 address in pool "dev"`},
			{desc: "release two", release: "a/two", usage: [3]any{"dev", 2}},
			{desc: "four gets the freed address", assign: sp(svc("a/four")), want: "dev 192.0.2.2"},
			{desc: "explicit pool", assign: sp(svc("a/five", inPool("db"))), want: "db 198.51.100.0"},
			{desc: "unknown pool", assign: sp(svc("a/six", inPool("nope"))), wantErr: ErrNoPool, errText: `the requested pool "nope" does not exist`},
		}},
		{name: "requested addresses", steps: []step{
			{desc: "config", config: twoPools},
			{desc: "request in dev", assign: sp(svc("a/x", want("192.0.2.3"))), want: "dev 192.0.2.3"},
			{desc: "request in non-auto pool is fine", assign: sp(svc("a/y", want("198.51.100.2"))), want: "db 198.51.100.2"},
			{desc: "taken", assign: sp(svc("a/z", want("192.0.2.3"))), wantErr: ErrIPTaken, errText: "192.0.2.3: held by a/x"},
			{desc: "outside pools", assign: sp(svc("a/z", want("203.0.113.9"))), wantErr: ErrIPNotInPool, errText: "203.0.113.9 is in no configured pool"},
			{desc: "wrong pool", assign: sp(svc("a/z", want("192.0.2.1"), inPool("db"))), wantErr: ErrIPNotInPool, errText: `192.0.2.1 is in pool "dev", not in the requested pool "db"`},
			{desc: "family mismatch", assign: sp(svc("a/z", want("2001:db8::1"))), wantErr: ErrBadRequest, errText: "requested 2001:db8::1 is IPv6 but the Service's ipFamilies are [IPv4]"},
			{desc: "a failed request keeps the old IPs", assign: sp(svc("a/x", want("192.0.2.1"))), want: "dev 192.0.2.1"},
			{desc: "old address freed", assign: sp(svc("a/w")), want: "dev 192.0.2.2"},
		}},
		{name: "current addresses are kept", steps: []step{
			{desc: "config", config: twoPools},
			{desc: "keeps status IP", assign: sp(svc("a/x")), current: []string{"192.0.2.3"}, want: "dev 192.0.2.3"},
			{desc: "status IP outside pools is replaced", assign: sp(svc("a/y")), current: []string{"203.0.113.1"}, want: "dev 192.0.2.1"},
			{desc: "status IP taken is replaced", assign: sp(svc("a/z")), current: []string{"192.0.2.3"}, want: "dev 192.0.2.2"},
		}},
		{name: "sharing", steps: []step{
			{desc: "config", config: twoPools},
			{desc: "web", assign: sp(svc("a/web", share("k"), ports(80))), want: "dev 192.0.2.1"},
			{desc: "dns shares", assign: sp(svc("a/dns", share("k"), ports(53))), want: "dev 192.0.2.1", usage: [3]any{"dev", 1}},
			{desc: "port clash", assign: sp(svc("a/web2", share("k"), ports(80), want("192.0.2.1"))), wantErr: ErrIPTaken, errText: "also uses TCP/80"},
			{desc: "other key", assign: sp(svc("a/other", share("j"), ports(81), want("192.0.2.1"))), wantErr: ErrIPTaken, errText: `with sharing key "k", not "j"`},
			{desc: "no key", assign: sp(svc("a/nokey", ports(82), want("192.0.2.1"))), wantErr: ErrIPTaken, errText: "sharing needs"},
			{desc: "local vs cluster", assign: sp(svc("a/loc", share("k"), ports(83), local("app=x"), want("192.0.2.1"))), wantErr: ErrIPTaken, errText: "Local and Cluster cannot share"},
			{desc: "port clash gets its own IP", assign: sp(svc("a/web2", share("k"), ports(80))), want: "dev 192.0.2.2"},
			{desc: "release one user", release: "a/web", usage: [3]any{"dev", 2}},
			{desc: "release the other", release: "a/dns", usage: [3]any{"dev", 1}},
		}},
		{name: "local sharing needs equal selectors", steps: []step{
			{desc: "config", config: twoPools},
			{desc: "l1", assign: sp(svc("a/l1", share("k"), local("app=x"), ports(80))), want: "dev 192.0.2.1"},
			{desc: "l2 same selector", assign: sp(svc("a/l2", share("k"), local("app=x"), ports(81))), want: "dev 192.0.2.1"},
			{desc: "l3 other selector", assign: sp(svc("a/l3", share("k"), local("app=y"), ports(82), want("192.0.2.1"))), wantErr: ErrIPTaken, errText: "selectors are equal"},
		}},
		{name: "dual-stack", steps: []step{
			{desc: "config", config: `address-pools:
- {name: v4, protocol: layer2, addresses: [192.0.2.10/31]}
- {name: both, protocol: layer2, addresses: [198.51.100.8/31, "2001:db8::/64"]}
`},
			{desc: "single v4 takes first pool", assign: sp(svc("a/s")), want: "v4 192.0.2.10"},
			{desc: "require dual skips v4-only pool", assign: sp(svc("a/d", fams(RequireDualStack, IPv4, IPv6))), want: "both 198.51.100.8,2001:db8::"},
			{desc: "v6 first order", assign: sp(svc("a/d6", fams(RequireDualStack, IPv6, IPv4))), want: "both 2001:db8::1,198.51.100.9"},
			{desc: "prefer dual settles for one family when no pool has both free", assign: sp(svc("a/p", fams(PreferDualStack, IPv4, IPv6))), want: "v4 192.0.2.11"},
			{desc: "require dual fails when v4 is gone", assign: sp(svc("a/r", fams(RequireDualStack, IPv4, IPv6))), wantErr: ErrPoolExhausted, errText: `no free IPv4+IPv6 address in pool "both"`},
			{desc: "single v6", assign: sp(svc("a/six", fams(SingleStack, IPv6))), want: "both 2001:db8::2"},
			{desc: "release frees both families", release: "a/d", usage: [3]any{"both", 3}},
			{desc: "prefer dual takes both when a pool has both", assign: sp(svc("a/p2", fams(PreferDualStack, IPv4, IPv6))), want: "both 198.51.100.8,2001:db8::"},
			{desc: "release p2", release: "a/p2", usage: [3]any{"both", 3}},
			{desc: "dual-stack request", assign: sp(svc("a/q", fams(RequireDualStack, IPv4, IPv6), want("2001:db8::ff", "198.51.100.8"))), want: "both 198.51.100.8,2001:db8::ff"},
			{desc: "dual required but one requested", assign: sp(svc("a/q2", fams(RequireDualStack, IPv4, IPv6), want("2001:db8::fe"))), wantErr: ErrBadRequest, errText: "requires dual-stack"},
		}},
		{name: "avoid buggy ips", steps: []step{
			{desc: "config", config: "address-pools:\n- {name: p, protocol: layer2, addresses: [192.0.2.255-192.0.3.1], avoid-buggy-ips: true}\n"},
			{desc: "skips .255 and .0", assign: sp(svc("a/x")), want: "p 192.0.3.1"},
			{desc: "then exhausted", assign: sp(svc("a/y")), wantErr: ErrPoolExhausted},
			{desc: "request of .0 refused", assign: sp(svc("a/y", want("192.0.3.0"))), wantErr: ErrIPNotInPool, errText: "avoid-buggy-ips"},
		}},
		{name: "namespaces, selectors and priority", steps: []step{
			{desc: "config", config: `address-pools:
- {name: general, protocol: layer2, addresses: [192.0.2.0/30]}
- {name: prod, protocol: layer2, addresses: [198.51.100.0/30], namespaces: [prod], priority: 1}
- {name: dbs, protocol: layer2, addresses: [203.0.113.0/30], priority: 2, service-selectors: [{match-labels: {tier: db}}]}
`},
			{desc: "prod namespace prefers prod pool", assign: sp(svc("prod/web")), want: "prod 198.51.100.0"},
			{desc: "db labels prefer dbs pool", assign: sp(svc("dev/pg", labels("tier", "db"))), want: "dbs 203.0.113.0"},
			{desc: "prod+db goes to priority 1", assign: sp(svc("prod/pg", labels("tier", "db"))), want: "prod 198.51.100.1"},
			{desc: "others get general", assign: sp(svc("dev/web")), want: "general 192.0.2.0"},
			{desc: "explicit pool refused by namespace", assign: sp(svc("dev/x", inPool("prod"))), wantErr: ErrNoPool, errText: `pool "prod" serves namespaces prod only, not "dev"`},
			{desc: "explicit pool refused by selector", assign: sp(svc("dev/y", inPool("dbs"))), wantErr: ErrNoPool, errText: `match none of pool "dbs"'s service-selectors`},
		}},
		{name: "namespaceSelectors", steps: []step{
			{desc: "config", config: `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: teams, namespace: metallb-system}
spec:
  addresses: [198.51.100.0/30]
  serviceAllocation:
    priority: 1
    namespaces: [legacy]
    namespaceSelectors: [{matchLabels: {team: web}}]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: general, namespace: metallb-system}
spec:
  addresses: [192.0.2.0/30]
`},
			{desc: "a namespace labelled team=web draws from teams", assign: sp(svc("shop/web", nsLabels("team", "web"))), want: "teams 198.51.100.0"},
			{desc: "a namespace named in the list too", assign: sp(svc("legacy/web")), want: "teams 198.51.100.1"},
			{desc: "others get general", assign: sp(svc("dev/web", nsLabels("team", "db"))), want: "general 192.0.2.0"},
			{desc: "asking for teams from elsewhere is refused", assign: sp(svc("dev/x", inPool("teams"), nsLabels("team", "db"))), wantErr: ErrNoPool, errText: `pool "teams" serves namespaces legacy and those matching its namespaceSelectors only, not "dev"`},
		}},
		{name: "config changes keep or drop assignments", steps: []step{
			{desc: "config", config: twoPools},
			{desc: "a", assign: sp(svc("a/a")), want: "dev 192.0.2.1"},
			{desc: "b", assign: sp(svc("a/b", inPool("db"))), want: "db 198.51.100.0"},
			{desc: "dev shrinks, db is removed", config: "address-pools:\n- {name: dev, protocol: layer2, addresses: [192.0.2.1-192.0.2.2]}\n", dropped: []string{"a/b"}},
			{desc: "a keeps its IP", assign: sp(svc("a/a")), want: "dev 192.0.2.1"},
			{desc: "b asks for a pool that is gone", assign: sp(svc("a/b", inPool("db"))), wantErr: ErrNoPool},
			{desc: "b without pool moves to dev", assign: sp(svc("a/b")), current: []string{"198.51.100.0"}, want: "dev 192.0.2.2"},
			{desc: "renamed pool with same addresses keeps IPs", config: "address-pools:\n- {name: main, protocol: layer2, addresses: [192.0.2.0/29]}\n", usage: [3]any{"main", 2}},
		}},
		{name: "restore after restart", steps: []step{
			{desc: "config", config: twoPools},
			{desc: "restore b first", assign: sp(svc("a/b")), restore: []string{"192.0.2.2"}, want: "dev 192.0.2.2"},
			{desc: "restore duplicate refused", assign: sp(svc("a/c")), restore: []string{"192.0.2.2"}, wantErr: ErrIPTaken},
			{desc: "new service never gets b's IP", assign: sp(svc("a/d")), want: "dev 192.0.2.1"},
			{desc: "next", assign: sp(svc("a/e")), want: "dev 192.0.2.3"},
		}},
		{name: "no config", steps: []step{
			{desc: "assign before config", assign: sp(svc("a/x")), wantErr: ErrNoConfig},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New()
			for _, st := range tc.steps {
				st.run(t, a)
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		specIP  string
		want    Request
		wantErr string
	}{
		{name: "nothing", ann: nil},
		{name: "old pool", ann: map[string]string{AnnotationPool: "dev"}, want: Request{Pool: "dev"}},
		{name: "new pool", ann: map[string]string{AnnotationPoolNew: "dev"}, want: Request{Pool: "dev"}},
		{name: "both spellings agree", ann: map[string]string{AnnotationPool: "dev", AnnotationPoolNew: "dev"}, want: Request{Pool: "dev"}},
		{name: "spellings disagree", ann: map[string]string{AnnotationPool: "dev", AnnotationPoolNew: "prod"},
			wantErr: `bad annotation: metallb.universe.tf/address-pool="dev" and metallb.io/address-pool="prod" disagree: keep one`},
		{name: "ips", ann: map[string]string{AnnotationIPs: "192.0.2.1, 2001:db8::1"}, want: Request{Requested: ips("192.0.2.1", "2001:db8::1")}},
		{name: "bad ip", ann: map[string]string{AnnotationIPsNew: "192.0.2.x"},
			wantErr: `bad annotation: metallb.universe.tf/loadBalancerIPs: "192.0.2.x" is not an IP address (want a comma-separated list of at most one IPv4 and one IPv6 address)`},
		{name: "two v4", ann: map[string]string{AnnotationIPs: "192.0.2.1,192.0.2.2"},
			wantErr: `bad annotation: metallb.universe.tf/loadBalancerIPs: "192.0.2.1,192.0.2.2" has two IPv4 addresses (want a comma-separated list of at most one IPv4 and one IPv6 address)`},
		{name: "spec ip", specIP: "192.0.2.7", want: Request{Requested: ips("192.0.2.7")}},
		{name: "spec and annotation", ann: map[string]string{AnnotationIPs: "192.0.2.1"}, specIP: "192.0.2.7",
			wantErr: "bad annotation: metallb.universe.tf/loadBalancerIPs and spec.loadBalancerIP are both set: keep only the annotation (spec.loadBalancerIP is deprecated)"},
		{name: "bad spec ip", specIP: "nope", wantErr: `bad annotation: spec.loadBalancerIP "nope" is not an IP address`},
		{name: "sharing", ann: map[string]string{AnnotationSharingNew: "k1"}, want: Request{SharingKey: "k1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest(tc.ann, tc.specIP)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, ErrBadRequest) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunSet(t *testing.T) {
	var s runSet
	for _, a := range []string{"10.0.0.5", "10.0.0.3", "10.0.0.4", "10.0.0.7", "10.0.0.1"} {
		s.add(netip.MustParseAddr(a))
	}
	str := func() string {
		var parts []string
		for _, r := range s.runs {
			parts = append(parts, r.first.String()+"-"+r.last.String())
		}
		return strings.Join(parts, " ")
	}
	if diff := cmp.Diff("10.0.0.1-10.0.0.1 10.0.0.3-10.0.0.5 10.0.0.7-10.0.0.7", str()); diff != "" {
		t.Fatal(diff)
	}
	if got := s.nextFree(netip.MustParseAddr("10.0.0.3")); got.String() != "10.0.0.6" {
		t.Errorf("nextFree = %s", got)
	}
	s.remove(netip.MustParseAddr("10.0.0.4"))
	s.add(netip.MustParseAddr("10.0.0.6"))
	s.remove(netip.MustParseAddr("10.0.0.1"))
	if diff := cmp.Diff("10.0.0.3-10.0.0.3 10.0.0.5-10.0.0.7", str()); diff != "" {
		t.Fatal(diff)
	}
}

// TestAvoidBuggyPoolFills: a /24 that avoids .0 and .255 is full after 254
// Services, and its size says so.
func TestAvoidBuggyPoolFills(t *testing.T) {
	a := New()
	a.SetConfig(mustConfig(t, "address-pools:\n- {name: p, protocol: layer2, avoid-buggy-ips: true, addresses: [192.0.2.0/24]}\n"))
	for i := range 254 {
		if _, err := a.Assign(svc(fmt.Sprintf("ns/s%d", i)), nil); err != nil {
			t.Fatalf("Service %d: %v", i, err)
		}
	}
	if _, err := a.Assign(svc("ns/last"), nil); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("the 255th Service: %v, want %v", err, ErrPoolExhausted)
	}
	if size, inUse, _ := a.Usage("p"); size != 254 || inUse != 254 {
		t.Errorf("Usage = %v, %d; want 254, 254", size, inUse)
	}
}

func TestUsageByFamily(t *testing.T) {
	a := New()
	a.SetConfig(mustConfig(t, "address-pools:\n- {name: p, protocol: layer2, avoid-buggy-ips: true, addresses: [192.0.2.0/24, 2001:db8::/120]}\n"))
	for _, k := range []string{"a/x", "a/y"} {
		if _, err := a.Assign(svc(k), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Assign(svc("a/z", fams(RequireDualStack, IPv4, IPv6)), nil); err != nil {
		t.Fatal(err)
	}
	got, ok := a.UsageByFamily("p")
	if !ok {
		t.Fatal("no pool p")
	}
	want := FamilyUsage{AssignedIPv4: 3, AssignedIPv6: 1, AvailableIPv4: 251, AvailableIPv6: 255}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("usage (-want +got):\n%s", d)
	}
	a.Release("a/z")
	got, _ = a.UsageByFamily("p")
	want = FamilyUsage{AssignedIPv4: 2, AvailableIPv4: 252, AvailableIPv6: 256}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("after release (-want +got):\n%s", d)
	}
	a.SetConfig(mustConfig(t, "address-pools:\n- {name: p, protocol: layer2, addresses: [2001:db8::/32]}\n"))
	if got, _ := a.UsageByFamily("p"); got.AvailableIPv6 != math.MaxInt64 {
		t.Errorf("a /32 of IPv6: available %d, want the int64 cap", got.AvailableIPv6)
	}
	if _, ok := a.UsageByFamily("none"); ok {
		t.Error("usage of a pool that does not exist")
	}
}
