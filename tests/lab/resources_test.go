package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/pkg/speaker"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// labResources: one pool announced by layer2 from every node and by BGP
// to the BGPPeer bird4 only, whose MD5 key is in a Secret (bird6 gets
// nothing); another announced by layer2 from node-c only.
const labResources = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: both}
spec:
  addresses: [198.51.100.200-198.51.100.210, "2001:db8::200-2001:db8::210"]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pinned}
spec:
  addresses: [198.51.100.220-198.51.100.225]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
spec:
  ipAddressPools: [both]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: pinned}
spec:
  ipAddressPools: [pinned]
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: node-c}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: upstream}
spec:
  ipAddressPools: [both]
  peers: [bird4]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: bird4}
spec:
  myASN: 64500
  peerASN: 64500
  peerAddress: 198.51.100.254
  holdTime: 3s
  passwordSecret: {name: bird-md5, namespace: metallb-system}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: bird6}
spec: {myASN: 64500, peerASN: 64500, peerAddress: "2001:db8::254", holdTime: 3s}
`

// TestResourcesLayer2AndBGP runs the metallb.io resources on three nodes
// against a real BIRD: the pool answered by one MAC and routed at once;
// the MD5 key read from the Secret the BGPPeer names (and the peer's
// Warning Event until that Secret exists); the BGPAdvertisement's peers
// deciding which sessions get the routes.
func TestResourcesLayer2AndBGP(t *testing.T) {
	RequireBird(t)
	cl := startCluster(t, withConfig("# the pools are metallb.io resources\n"), withResources(labResources), withSpeakerArgs("--service-bgp-status"))
	bird := StartBird(t, BirdConfig(birdPassword))
	ctx := context.Background()
	secrets := cl.c.CoreV1().Secrets("metallb-system")

	t.Run("no Secret yet: no IPv4 session, a Warning Event on the BGPPeer says what to create", func(t *testing.T) {
		e, err := findEvent(cl, "metallb-system", "involvedObject.kind=BGPPeer,involvedObject.name=bird4", 20*time.Second, func(e corev1.Event) bool {
			return e.Reason == "BGPPasswordSecret" && e.Type == corev1.EventTypeWarning
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Event: %s", e.Message)
		if !strings.Contains(e.Message, "create secret generic bird-md5 --type=kubernetes.io/basic-auth") {
			t.Errorf("the Event does not say how to create the Secret: %s", e.Message)
		}
		waitEstablished(t, bird, 3, 20*time.Second) // the IPv6 sessions only
		waitSpeakerStates(t, cl, "Invalid", "bird-md5")
	})

	t.Run("the Secret created: the IPv4 sessions come up with its key", func(t *testing.T) {
		start := time.Now()
		if _, err := secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "bird-md5"}, Type: corev1.SecretTypeBasicAuth,
			Data: map[string][]byte{corev1.BasicAuthPasswordKey: []byte(birdPassword)},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitEstablished(t, bird, 6, 20*time.Second)
		t.Logf("6 sessions established %v after the Secret was created", time.Since(start).Round(time.Millisecond))
		waitSpeakerStates(t, cl, "Valid", "")
	})

	var v4 string
	t.Run("one pool by layer2 and BGP at once: one MAC answers, every node is a next hop", func(t *testing.T) {
		cl.addBackend(t, "web-1", "web", "node-b")
		v4 = cl.createService(t, "web", "web", false)
		owner := election.Owner(netip.MustParseAddr(v4), Nodes)
		waitOneMAC(t, v4, cl.MACs[owner], 20*time.Second)
		WaitNextHops(t, v4+"/32", allNodes, 20*time.Second)
		t.Logf("%s answered by %s (%s) and routed via %v", v4, owner, cl.MACs[owner], allNodes)
		waitL2Status(t, cl, "web", owner)
		waitBGPStatus(t, cl, "web", "bird4")
	})

	t.Run("an advertisement naming bird4 only: no IPv6 route until it names bird6 too", func(t *testing.T) {
		cl.addBackend(t, "v6-1", "v6", "node-a")
		v6 := cl.createService(t, "v6", "v6", false, corev1.IPv6Protocol)
		prefix := v6 + "/128"
		// Its owner announces it by layer2: the speakers have planned it,
		// so a route not at the router 3 s later is not coming.
		owner := election.Owner(netip.MustParseAddr(v6), Nodes)
		if _, err := findEvent(cl, "demo", "involvedObject.name=v6", 20*time.Second, func(e corev1.Event) bool {
			return e.Reason == "nodeAssigned" && e.Message == fmt.Sprintf("announcing from node %q with protocol %q", owner, "layer2")
		}); err != nil {
			t.Fatal(err)
		}
		// Advertised to no peer: no ServiceBGPStatus (bird4 is an IPv4
		// session, and carries no IPv6 route).
		waitBGPStatus(t, cl, "v6", "")
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			if out, _ := bird.Ctl("show route for", prefix); strings.Contains(out, "via") {
				t.Fatalf("%s reached bird6, which the advertisement does not name:\n%s", prefix, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
		adv := metallbResource(cl.dyn, "metallb.io/v1beta1", "BGPAdvertisement")
		if _, err := adv.Patch(ctx, "upstream", types.MergePatchType, []byte(`{"spec":{"peers":["bird4","bird6"]}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		WaitNextHops(t, prefix, []string{"2001:db8::11", "2001:db8::12", "2001:db8::13"}, 20*time.Second)
		t.Logf("%s at the router %v after the advertisement named bird6", prefix, time.Since(start).Round(time.Millisecond))
		waitBGPStatus(t, cl, "v6", "bird6")
		if out, _ := bird.Ctl("show route for", v4+"/32"); !strings.Contains(out, "via") {
			t.Errorf("%s/32 left the router:\n%s", v4, out)
		}
	})

	t.Run("an L2Advertisement's nodeSelectors: only the nodes it selects answer, and it moves when they change", func(t *testing.T) {
		cl.addBackend(t, "pinned-1", "pinned", "node-a")
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "pinned", Annotations: map[string]string{"metallb.io/address-pool": "pinned"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "pinned"},
				Ports: []corev1.ServicePort{{Port: 8080}}},
		}
		if _, err := cl.c.CoreV1().Services("demo").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ip := waitServiceIP(t, cl.c, "demo", "pinned", 20*time.Second)
		waitOneMAC(t, ip, cl.MACs["node-c"], 20*time.Second)
		waitL2Status(t, cl, "pinned", "node-c")
		t.Logf("%s answered by node-c only (the election over every node would pick %s)", ip, election.Owner(netip.MustParseAddr(ip), Nodes))
		l2 := metallbResource(cl.dyn, "metallb.io/v1beta1", "L2Advertisement")
		patch := `{"spec":{"nodeSelectors":[{"matchLabels":{"kubernetes.io/hostname":"node-a"}}]}}`
		if _, err := l2.Patch(ctx, "pinned", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitOneMAC(t, ip, cl.MACs["node-a"], 20*time.Second)
		t.Logf("%s answered by node-a only in the arping round (2 probes, 1 s apart) ending %v after the advertisement selected it", ip, time.Since(start).Round(time.Millisecond))
		waitL2Status(t, cl, "pinned", "node-a")
	})

	t.Run("the key rotated in the Secret: the sessions follow it", func(t *testing.T) {
		sec, err := secrets.Get(ctx, "bird-md5", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sec.Data[corev1.BasicAuthPasswordKey] = []byte("not-the-routers")
		if sec, err = secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for n := 6; n > 3; {
			if time.Now().After(deadline) {
				out, _ := bird.Ctl("show protocols")
				t.Fatalf("%d sessions still up with a key the router does not have:\n%s", n, out)
			}
			time.Sleep(200 * time.Millisecond)
			n = 0
			for _, st := range bird.Protocols() {
				if strings.HasSuffix(st, "Established") {
					n++
				}
			}
		}
		sec.Data[corev1.BasicAuthPasswordKey] = []byte(birdPassword)
		if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitEstablished(t, bird, 6, 30*time.Second)
		WaitNextHops(t, v4+"/32", allNodes, 20*time.Second)
	})

	if t.Failed() {
		for _, n := range Nodes {
			t.Logf("speaker %s:\n%s", n, tail(cl.speakerLog(t, n), 4000))
		}
	}
}

// TestL2AdvertisementInterfaces: an L2Advertisement's interfaces decide
// where the owner answers, on a second segment (eth1 on every node, client2
// beside them): named [eth1], the address is answered there by the owner's
// eth1 alone and not on the first segment; patched to [eth0], it moves to
// the first segment and leaves the second. ServiceL2Status names the
// interface.
func TestL2AdvertisementInterfaces(t *testing.T) {
	cl := startCluster(t, withConfig("# the pools are metallb.io resources\n"), noSpeakers(), withResources(`
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: seg}
spec:
  addresses: [203.0.113.200-203.0.113.205]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: seg}
spec:
  ipAddressPools: [seg]
  interfaces: [eth1]
`))
	if err := cl.AddSegment(); err != nil {
		t.Fatal(err)
	}
	cl.speakers = map[string]*exec.Cmd{}
	for _, n := range Nodes {
		cl.startSpeaker(t, n)
	}
	ctx := context.Background()
	cl.addBackend(t, "seg-1", "seg", "node-b")
	ip := cl.createService(t, "seg", "seg", false)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)

	waitOneMACFrom(t, "client2", ip, Eth1MAC(owner), 20*time.Second)
	t.Logf("%s answered on the second segment by %s's eth1 (%s)", ip, owner, Eth1MAC(owner))
	waitL2StatusInterfaces(t, cl, "seg", owner, "eth1")
	// Answered on eth1: the first segment, where eth0 is, gets no answer,
	// over two rounds of arping after the barrier above.
	for range 2 {
		if macs, out, err := ArpingFrom(ctx, "client", ip, 2); err != nil || len(macs) > 0 {
			t.Fatalf("on the first segment %s is answered by %v (err %v), want nothing: the advertisement names eth1 only\n%s", ip, macs, err, out)
		}
	}

	l2 := metallbResource(cl.dyn, "metallb.io/v1beta1", "L2Advertisement")
	if _, err := l2.Patch(ctx, "seg", types.MergePatchType, []byte(`{"spec":{"interfaces":["eth0"]}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitOneMAC(t, ip, cl.MACs[owner], 20*time.Second)
	t.Logf("%s answered on the first segment by %s's eth0 in the arping round ending %v after the patch", ip, owner, time.Since(start).Round(time.Millisecond))
	waitL2StatusInterfaces(t, cl, "seg", owner, "eth0")
	for range 2 {
		if macs, out, err := ArpingFrom(ctx, "client2", ip, 2); err != nil || len(macs) > 0 {
			t.Fatalf("on the second segment %s is still answered by %v (err %v), want nothing\n%s", ip, macs, err, out)
		}
	}
}

// waitL2StatusInterfaces waits until the ServiceL2Status of demo/name
// names node and exactly this interface.
func waitL2StatusInterfaces(t *testing.T, cl *cluster, name, node, ifname string) {
	t.Helper()
	waitServiceStatus(t, cl, "servicel2statuses", name, func(o unstructured.Unstructured) string {
		n, _, _ := unstructured.NestedString(o.Object, "status", "node")
		ifs, _, _ := unstructured.NestedSlice(o.Object, "status", "interfaces")
		return fmt.Sprint(n, " ", ifs)
	}, fmt.Sprint(node, " ", []any{map[string]any{"name": ifname}}))
}

// TestSteadyStateWrites: with the metallb.io resources in force (pool
// status, finalizer, ConfigurationStates, ServiceL2Status), the shipped
// Lease interval, three speakers and Services holding addresses, nothing
// is written at steady state but Leases: the status objects are written on
// change only. It prints the writes per second by resource.
func TestSteadyStateWrites(t *testing.T) {
	cl := startCluster(t, withConfig("# the pools are metallb.io resources\n"), withResources(`
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: [198.51.100.200-198.51.100.210]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
`), withSpeakerArgs("--lease-interval", speaker.DefaultLeaseRenew.String()))
	names := []string{"web", "db", "cache"}
	for i, name := range names {
		cl.addBackend(t, name+"-1", name, Nodes[i])
		ip := cl.createService(t, name, name, false)
		waitL2Status(t, cl, name, election.Owner(netip.MustParseAddr(ip), Nodes))
	}
	waitSpeakerStates(t, cl, "Valid", "")
	pools := metallbResource(cl.dyn, "metallb.io/v1beta1", "IPAddressPool")
	testenv.Eventually(t, 20*time.Second, "the pool's status shows the 3 addresses, and its finalizer", func() bool {
		u, err := pools.Get(context.Background(), "lan", metav1.GetOptions{})
		n, _, _ := unstructured.NestedInt64(u.Object, "status", "assignedIPv4")
		return err == nil && n == 3 && len(u.GetFinalizers()) == 1
	})
	time.Sleep(3 * time.Second) // the status writers' last round (a second apart) is over

	const window = 20 * time.Second
	before := apiWrites(t, cl)
	time.Sleep(window)
	after := apiWrites(t, cl)
	var lines []string
	for res, n := range after {
		if d := n - before[res]; d > 0 {
			lines = append(lines, fmt.Sprintf("%s %.2f/s", res, d/window.Seconds()))
			if res != "leases" {
				t.Errorf("%.0f writes of %s in %v at steady state, want none (status objects are written on change)", d, res, window)
			}
		}
	}
	slices.Sort(lines)
	t.Logf("writes at steady state over %v (3 speakers, shipped --lease-interval %v; this controller runs without leader election): %s", window, speaker.DefaultLeaseRenew, strings.Join(lines, ", "))
}

// apiWrites returns the API server's write requests so far (create,
// update, patch, delete), by resource.
func apiWrites(t testing.TB, cl *cluster) map[string]float64 {
	t.Helper()
	b, err := cl.c.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	label := func(line, name string) string {
		i := strings.Index(line, name+`="`)
		if i < 0 {
			return ""
		}
		v := line[i+len(name)+2:]
		return v[:strings.IndexByte(v, '"')]
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		switch label(line, "verb") {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY":
		default:
			continue
		}
		res := label(line, "resource")
		if sub := label(line, "subresource"); sub != "" {
			res += "/" + sub
		}
		v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		out[res] += v
	}
	return out
}

// waitBGPStatus waits until the Service demo/name has one ServiceBGPStatus
// per node, each naming these peers ("": none at all).
func waitBGPStatus(t *testing.T, cl *cluster, name, peers string) {
	t.Helper()
	var want []string
	if peers != "" {
		for _, n := range Nodes {
			want = append(want, n+" "+peers)
		}
	}
	waitServiceStatus(t, cl, "servicebgpstatuses", name, func(o unstructured.Unstructured) string {
		n, _, _ := unstructured.NestedString(o.Object, "status", "node")
		ps, _, _ := unstructured.NestedStringSlice(o.Object, "status", "peers")
		return n + " " + strings.Join(ps, ",")
	}, want...)
}

// waitSpeakerStates waits until each node's ConfigurationState
// speaker-NODE says result, its errorSummary containing text.
func waitSpeakerStates(t *testing.T, cl *cluster, result, text string) {
	t.Helper()
	res := cl.dyn.Resource(schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "configurationstates"}).Namespace("metallb-system")
	start := time.Now()
	var got map[string]string
	for time.Since(start) < 20*time.Second {
		got = map[string]string{}
		for _, node := range Nodes {
			o, err := res.Get(context.Background(), "speaker-"+node, metav1.GetOptions{})
			if err != nil {
				got[node] = err.Error()
				continue
			}
			r, _, _ := unstructured.NestedString(o.Object, "status", "result")
			sum, _, _ := unstructured.NestedString(o.Object, "status", "errorSummary")
			if r == result && strings.Contains(sum, text) {
				continue
			}
			got[node] = r + ": " + sum
		}
		if len(got) == 0 {
			t.Logf("every speaker's ConfigurationState says %s (%q) %v after the check began", result, text, time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ConfigurationStates not %s with %q: %v", result, text, got)
}

// waitL2Status waits until the Service demo/name has exactly one
// ServiceL2Status in metallb-system, and it names node.
func waitL2Status(t *testing.T, cl *cluster, name, node string) {
	t.Helper()
	waitServiceStatus(t, cl, "servicel2statuses", name, func(o unstructured.Unstructured) string {
		n, _, _ := unstructured.NestedString(o.Object, "status", "node")
		svc, _, _ := unstructured.NestedString(o.Object, "status", "serviceName")
		return n + " " + svc
	}, node+" "+name)
}

// waitServiceStatus waits until the objects of kind (plural) in
// metallb-system that are about the Service demo/name, each rendered by
// show, are exactly want (any order; none for no objects).
func waitServiceStatus(t *testing.T, cl *cluster, plural, name string, show func(unstructured.Unstructured) string, want ...string) {
	t.Helper()
	res := cl.dyn.Resource(schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: plural}).Namespace("metallb-system")
	slices.Sort(want)
	start := time.Now()
	var got []string
	for time.Since(start) < 20*time.Second {
		list, err := res.List(context.Background(), metav1.ListOptions{LabelSelector: "metallb.io/service-namespace=demo,metallb.io/service-name=" + name})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, o := range list.Items {
			got = append(got, show(o))
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			t.Logf("%s of demo/%s: %q, %v after the check began", plural, name, got, time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s of demo/%s: %q, want %q", plural, name, got, want)
}
