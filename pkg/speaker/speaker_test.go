package speaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/microk8s-metallb/metallb/pkg/bgp"
	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/pkg/layer2"
	"github.com/microk8s-metallb/metallb/pkg/members"
)

// These tests drive the speaker's loop with client-go's fake clientset and
// fakes for the announcers and the membership: the paths that decide, in
// one process. The lab tests prove the same against real sockets.

var nodeNames = []string{"node-a", "node-b", "node-c"}

const vip = "192.0.2.200"

// journal records, in order, what the fakes were asked.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(format string, a ...any) {
	j.mu.Lock()
	j.lines = append(j.lines, fmt.Sprintf(format, a...))
	j.mu.Unlock()
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

func (j *journal) has(line string) bool { return slices.Contains(j.all(), line) }

// fakeL2 journals the whole set of claims after each change.
type fakeL2 struct {
	j      *journal
	claims map[netip.Addr]bool
}

func (f *fakeL2) Run(ctx context.Context) { <-ctx.Done() }
func (f *fakeL2) UpdateClaims(set []layer2.Claim, drop []netip.Addr) {
	if f.claims == nil {
		f.claims = map[netip.Addr]bool{}
	}
	for _, ip := range drop {
		delete(f.claims, ip)
	}
	for _, c := range set {
		f.claims[c.IP] = true
	}
	var ips []string
	for _, ip := range slices.SortedFunc(maps.Keys(f.claims), netip.Addr.Compare) {
		ips = append(ips, ip.String())
	}
	f.j.add("claims %v", ips)
}
func (f *fakeL2) Reassert(ip netip.Addr)   { f.j.add("reassert %s", ip) }
func (f *fakeL2) Unanswered() []netip.Addr { return nil }

type fakeBGP struct{ j *journal }

func (f *fakeBGP) Update(_ context.Context, _ netip.Addr, peers []bgp.Peer, _ []bgp.Route, _ []netip.Prefix) error {
	for _, p := range peers {
		f.j.add("bgp peer %s", p.Address)
	}
	return nil
}
func (f *fakeBGP) Close()  { f.j.add("bgp closed") }
func (f *fakeBGP) Detach() { f.j.add("bfd detached") }

// fakeMembers is a membership in which the test says who is alive.
type fakeMembers struct {
	j     *journal
	self  string
	mu    sync.Mutex
	alive map[string]bool
	known []string
	o     members.Options
}

func (f *fakeMembers) Alive(n string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return n == f.self || f.alive[n]
}
func (f *fakeMembers) Peers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.alive {
		if a {
			n++
		}
	}
	return n
}
func (f *fakeMembers) Known() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.known)
}
func (f *fakeMembers) Join([]netip.Addr) {}
func (f *fakeMembers) Forget(string)     {}
func (f *fakeMembers) Release(to string, ips []netip.Addr) {
	f.j.add("release to %s %v", to, ips)
}
func (f *fakeMembers) Leave(time.Duration) { f.j.add("leave") }

// set makes these peers alive and the others dead, and tells the speaker.
func (f *fakeMembers) set(alive ...string) {
	f.mu.Lock()
	f.alive = map[string]bool{}
	for _, n := range alive {
		f.alive[n] = true
	}
	f.mu.Unlock()
	f.o.OnChange(false)
}

// fixture is a speaker on self among three Ready nodes, one LoadBalancer
// Service at vip with a ready endpoint, the accepted config a layer2 pool.
type fixture struct {
	j       *journal
	client  *fake.Clientset
	members *fakeMembers
	s       *Speaker
	cancel  context.CancelFunc
	done    chan error
	apiDown atomic.Bool
}

const layer2Config = "address-pools:\n- {name: lan, protocol: layer2, addresses: [192.0.2.200/32]}\n"

func start(t *testing.T, self string, alive []string, extra ...kruntime.Object) *fixture {
	return startWith(t, layer2Config, self, alive, extra...)
}

func startWith(t *testing.T, config, self string, alive []string, extra ...kruntime.Object) *fixture {
	t.Helper()
	objs := extra
	for i, n := range nodeNames {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("192.0.2.%d", 11+i)}}}})
	}
	objs = append(objs,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "config-accepted"},
			Data: map[string]string{"config": config}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web"},
			Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: vip}}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.1.0.5"}, NodeName: ptr.To("node-a"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}},
	)
	f := &fixture{j: &journal{}, client: fake.NewClientset(objs...), done: make(chan error, 1)}
	f.client.PrependReactor("get", "leases", func(k8stesting.Action) (bool, kruntime.Object, error) {
		if f.apiDown.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	f.members = &fakeMembers{j: f.j, self: self, known: slices.DeleteFunc(slices.Clone(nodeNames), func(n string) bool { return n == self })}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.s = New(ctx, Options{Client: f.client, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), NodeName: self,
		Namespace: "metallb-system", Layer2: &fakeL2{j: f.j}, BGP: &fakeBGP{f.j},
		StartMembers: func(o members.Options) (Members, error) {
			f.members.o = o
			f.members.mu.Lock()
			f.members.alive = map[string]bool{}
			for _, n := range alive {
				f.members.alive[n] = true
			}
			f.members.mu.Unlock()
			return f.members, nil
		}})
	go func() { f.done <- f.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	return f
}

// stop ends Run and waits for it.
func (f *fixture) stop(t *testing.T) {
	t.Helper()
	f.cancel()
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatal(err)
		}
		f.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var owner = election.Owner(netip.MustParseAddr(vip), nodeNames)

func others(of string) []string {
	return slices.DeleteFunc(slices.Clone(nodeNames), func(n string) bool { return n == of })
}

// On SIGTERM the owner stops answering, then releases the address to its
// next owner, then says goodbye; without graceful restart the BGP sessions
// close. Every goroutine Run started has ended when it returns.
func TestStopHandsOver(t *testing.T) {
	before := runtime.NumGoroutine()
	f := start(t, owner, others(owner))
	want := fmt.Sprintf("claims [%s]", vip)
	eventually(t, "the owner to claim "+vip, func() bool { return f.j.has(want) })
	f.stop(t)
	lines := f.j.all()
	last := slices.Index(lines, want)
	rest := lines[last+1:]
	next := election.Order(netip.MustParseAddr(vip), nodeNames)[1]
	wantRest := []string{"claims []", fmt.Sprintf("release to %s [%s]", next, vip), "leave", "bgp closed"}
	if !slices.Equal(rest, wantRest) {
		t.Errorf("after the last claim: %q, want %q", rest, wantRest)
	}
	// The fake clientset's watchers end a little after their informers.
	eventually(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
}

// A speaker that sees none of the peers it knew keeps its addresses while
// the API server answers, withdraws them when it does not (the others have
// taken them), and takes them back when it answers again.
func TestIsolatedWithdrawsOnlyWithoutTheAPI(t *testing.T) {
	f := start(t, owner, nil)
	claim := fmt.Sprintf("claims [%s]", vip)
	eventually(t, "the claim", func() bool { return f.j.has(claim) })
	n := len(f.j.all())
	f.apiDown.Store(true)
	eventually(t, "the withdrawal", func() bool { return slices.Contains(f.j.all()[n:], "claims []") })
	n = len(f.j.all())
	f.apiDown.Store(false)
	eventually(t, "the claim again", func() bool { return slices.Contains(f.j.all()[n:], claim) })
	// In touch with a peer again: the API server no longer matters.
	f.members.set(others(owner)[0])
	n = len(f.j.all())
	f.apiDown.Store(true)
	time.Sleep(4 * apiCheckInterval) // watchAPI is idle: no check can withdraw
	f.members.set(others(owner)...)
	eventually(t, "a plan after the change", func() bool { return len(f.j.all()) > n })
	if slices.Contains(f.j.all()[n:], "claims []") {
		t.Errorf("withdrew while in touch with its peers: %q", f.j.all()[n:])
	}
}

// Another MAC answering for the address: the owner says so again and
// raises an Event on the Service; a conflict about an address it does not
// announce changes nothing.
func TestConflictReasserts(t *testing.T) {
	f := start(t, owner, others(owner))
	eventually(t, "the claim", func() bool { return f.j.has(fmt.Sprintf("claims [%s]", vip)) })
	mac, _ := net.ParseMAC("02:00:00:00:00:ad")
	f.s.Conflict(netip.MustParseAddr("192.0.2.201"), "eth0", mac)
	f.s.Conflict(netip.MustParseAddr(vip), "eth0", mac)
	eventually(t, "the reassertion", func() bool { return f.j.has("reassert " + vip) })
	if f.j.has("reassert 192.0.2.201") {
		t.Error("reasserted an address it does not announce")
	}
	eventually(t, "the IPConflict Event", func() bool {
		evs, _ := f.client.CoreV1().Events("demo").List(context.Background(), metav1.ListOptions{})
		for _, e := range evs.Items {
			if e.Reason == ReasonConflict && strings.Contains(e.Message, "02:00:00:00:00:ad") {
				return true
			}
		}
		return false
	})
}

// A flood of conflicts queues one event per address.
func TestInboxKeepsOneConflictPerAddress(t *testing.T) {
	b := newInbox()
	ip := netip.MustParseAddr(vip)
	b.push(evJoined{})
	for i := range 1000 {
		b.conflict(evConflict{ip: ip, mac: net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}})
	}
	b.push(evJoined{})
	got := b.take()
	if len(got) != 3 {
		t.Fatalf("%d events queued, want 3: %v", len(got), got)
	}
	if c := got[1].(evConflict); c.mac.String() != "02:00:00:00:03:e7" {
		t.Errorf("kept the conflict from %s, want the latest", c.mac)
	}
	if len(b.take()) != 0 {
		t.Error("events left after take")
	}
}

// A stop for a restart (the DaemonSet stays) leaves graceful-restart
// sessions to drop with the process, so routers keep the routes; a stop
// for good (the DaemonSet is gone) closes them, so routers withdraw.
func TestStopClosesBGPUnlessRestarting(t *testing.T) {
	const cfg = "peers:\n- {peer-address: 192.0.2.254, peer-asn: 64500, my-asn: 64500, graceful-restart: true}\n" +
		"address-pools:\n- {name: r, protocol: bgp, addresses: [203.0.113.0/28]}\n"
	for _, tc := range []struct {
		name      string
		daemonSet bool
		closed    bool
	}{
		{"restarting", true, false},
		{"removed", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var extra []kruntime.Object
			if tc.daemonSet {
				extra = append(extra, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "metallb-speaker"}})
			}
			f := startWith(t, cfg, owner, others(owner), extra...)
			eventually(t, "the BGP peer", func() bool { return f.j.has("bgp peer 192.0.2.254") })
			f.stop(t)
			if got := f.j.has("bgp closed"); got != tc.closed {
				t.Errorf("BGP closed %v, want %v: %q", got, tc.closed, f.j.all())
			}
		})
	}
}

// The speaker with the lowest name among the live ones publishes the
// membership on its Lease, renewed every LeaseRenew, and writes a change
// within a second; the others publish none, and renew seldom.
func TestLeasePublishesMembership(t *testing.T) {
	lease := func(f *fixture, node string) *coordinationv1.Lease {
		l, err := f.client.CoordinationV1().Leases("metallb-system").Get(context.Background(), leasePrefix+node, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return l
	}
	f := start(t, "node-a", []string{"node-b", "node-c"})
	eventually(t, "the membership on node-a's Lease", func() bool {
		l := lease(f, "node-a")
		return l != nil && l.Annotations[MembersAnnotation] == "node-a,node-b,node-c"
	})
	if d := *lease(f, "node-a").Spec.LeaseDurationSeconds; d != int32(3*DefaultLeaseRenew/time.Second) {
		t.Errorf("publisher's Lease lasts %d s", d)
	}
	f.members.set("node-b")
	eventually(t, "node-c's death on the Lease", func() bool {
		return lease(f, "node-a").Annotations[MembersAnnotation] == "node-a,node-b"
	})

	g := start(t, "node-b", []string{"node-a", "node-c"})
	eventually(t, "node-b's Lease", func() bool { return lease(g, "node-b") != nil })
	l := lease(g, "node-b")
	if _, ok := l.Annotations[MembersAnnotation]; ok {
		t.Errorf("node-b publishes the membership: %v", l.Annotations)
	}
	if d := *l.Spec.LeaseDurationSeconds; d != int32(3*max(DefaultLeaseRenew, 3*LeasePerMember)/time.Second) {
		t.Errorf("node-b's Lease lasts %d s", d)
	}
}
