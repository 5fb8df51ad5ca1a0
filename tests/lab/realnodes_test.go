package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/counting"
	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// TestEnableOnRealNodes runs the real enable hook from node-a against
// three real nodes (containerd, kubelet, kube-proxy in each node
// namespace): the image reaches every node through its cluster agent, the
// kubelets run controller and speakers as containers with the rendered
// securityContext and gate the rollout on their probes, the Service's
// address is answered by one MAC and served over TCP by a real pod through
// kube-proxy, a re-run with a rebuilt binary rolls the DaemonSet and the
// Deployment without moving the address, and disable removes it all.
func TestEnableOnRealNodes(t *testing.T) {
	l, env, rn := UpWithRealNodes(t)
	ctx := context.Background()
	c := env.Client
	snap, err := NewSnap(t.TempDir(), env.Kubeconfig, RecordingCtr)
	if err != nil {
		t.Fatal(err)
	}
	images, err := StartAgents(snap, t.TempDir(), rn.Ctr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(images.Stop)
	sc := &snapCluster{Lab: l, env: env, c: c, bin: testenv.Binary(t), snap: snap, images: images}
	if err := CreateHello(ctx, c); err != nil {
		t.Fatal(err)
	}

	r := sc.run(t, nil, "enable", "198.51.100.200-198.51.100.210")
	if r.code != 0 {
		t.Fatalf("enable: exit %d", r.code)
	}
	ref := speakerImage(t, c)
	for i, node := range Nodes {
		if !regexp.MustCompile(`(?m)^  ` + node + ` +198\.51\.100\.` + fmt.Sprint(11+i) + ` +imported in [0-9.]+s$`).MatchString(r.out) {
			t.Errorf("no import line for %s", node)
		}
		if ok, err := images.Has(node, ref); !ok {
			t.Errorf("%s's containerd lacks %s (%v)", node, ref, err)
		}
	}
	pods := checkPods(t, c, rn, ref)
	checkSecurity(t, c, rn, pods)

	ip := waitServiceIP(t, c, "default", "hello", 30*time.Second)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	macs, _ := Arping(t, ctx, ip, 3)
	if len(macs) != 1 || macs[l.MACs[owner]] == 0 {
		t.Errorf("arping %s: %v, want only %s's MAC %s", ip, macs, owner, l.MACs[owner])
	}
	reply, err := DialUntil("client", ip+":80", 20*time.Second)
	if err != nil || reply != "hello from node-b" {
		t.Errorf("TCP to %s:80: %q, %v", ip, reply, err)
	}
	t.Logf("%s (owner %s) answered by one MAC; TCP through kube-proxy on %s to the pod on node-b: %q", ip, owner, owner, reply)

	rolled := buildVersion(t, "rolled")
	t.Run("a re-run with a rebuilt binary rolls the DaemonSet and the Deployment; the address stays", func(t *testing.T) {
		sc.bin = rolled
		pctx, stop := context.WithCancel(ctx)
		probes := probeARP(pctx, t, netip.MustParseAddr(ip), 100*time.Millisecond)
		start := time.Now()
		r := sc.run(t, nil, "enable", "198.51.100.200-198.51.100.210")
		end := time.Now()
		time.Sleep(time.Second) // probes after the rollout, as a tail
		stop()
		rs := <-probes
		if r.code != 0 {
			t.Fatalf("enable: exit %d", r.code)
		}
		newRef := speakerImage(t, c)
		if newRef == ref {
			t.Fatalf("the image did not change: %s", ref)
		}
		checkPods(t, c, rn, newRef)
		total, unanswered, dual := countProbes(rs, start, end.Add(time.Second))
		t.Logf("rolling update %v: %d probes every 100 ms, %d unanswered, %d answered by two MACs", end.Sub(start).Round(time.Millisecond), total, unanswered, dual)
		if dual != 0 {
			t.Errorf("%d probes answered by two MACs during the rollout", dual)
		}
		if got := waitServiceIP(t, c, "default", "hello", 30*time.Second); got != ip {
			t.Errorf("the address moved: %s → %s", ip, got)
		}
		if reply, err := DialUntil("client", ip+":80", 20*time.Second); err != nil || reply != "hello from node-b" {
			t.Errorf("TCP after the rollout: %q, %v", reply, err)
		}
	})

	t.Run("disable removes everything, the containers too", func(t *testing.T) {
		if r := sc.run(t, nil, "disable"); r.code != 0 {
			t.Fatalf("disable: exit %d", r.code)
		}
		if _, err := c.CoreV1().Namespaces().Get(ctx, "metallb-system", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace metallb-system: %v", err)
		}
		// The namespace is gone from the API; the kubelets stop the
		// containers (a running task, not a record kept for garbage
		// collection, is what counts).
		for _, node := range Nodes {
			testenv.Eventually(t, 30*time.Second, node+" runs no metallb container", func() bool {
				return !slices.ContainsFunc(rn.RunningImages(node), func(img string) bool { return strings.Contains(img, "microk8s-metallb") })
			})
		}
		if macs, _ := Arping(t, ctx, ip, 1); len(macs) != 0 {
			t.Errorf("%s still answered by %v", ip, macs)
		}
	})
}

func speakerImage(t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	d, err := c.AppsV1().DaemonSets("metallb-system").Get(context.Background(), "metallb-speaker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

// checkPods: one controller and a speaker per node, each a running, ready
// container of ref that never restarted. It logs them and returns them.
func checkPods(t *testing.T, c kubernetes.Interface, rn *RealNodes, ref string) []corev1.Pod {
	t.Helper()
	list, err := c.CoreV1().Pods("metallb-system").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %-7s %-8s %-6s %-8s %-10s %s\n", "NAME", "NODE", "PHASE", "READY", "RESTARTS", "NAME", "CONTAINER")
	var pods []corev1.Pod
	speakers := map[string]bool{}
	controllers := 0
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			t.Errorf("pod %s is still terminating after the rollout", p.Name)
			continue
		}
		pods = append(pods, p)
		if len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
			t.Errorf("pod %s: %d container statuses for %d containers", p.Name, len(p.Status.ContainerStatuses), len(p.Spec.Containers))
			continue
		}
		for _, cs := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, "%-28s %-7s %-8s %-6v %-8d %-10s %.25s…\n", p.Name, p.Spec.NodeName, p.Status.Phase, cs.Ready, cs.RestartCount, cs.Name, cs.ContainerID)
			if p.Status.Phase != corev1.PodRunning || !cs.Ready || cs.RestartCount != 0 || !strings.HasPrefix(cs.ContainerID, "containerd://") {
				t.Errorf("pod %s, container %s: phase %s, ready %v, restarts %d, container %q", p.Name, cs.Name, p.Status.Phase, cs.Ready, cs.RestartCount, cs.ContainerID)
			}
		}
		for _, c := range p.Spec.Containers {
			if c.Image != ref {
				t.Errorf("pod %s, container %s runs %s, want %s", p.Name, c.Name, c.Image, ref)
			}
		}
		switch p.Spec.Containers[0].Name {
		case "speaker":
			speakers[p.Spec.NodeName] = true
		case "controller":
			controllers++
		}
	}
	t.Logf("metallb-system pods:\n%s", b.String())
	if len(speakers) != len(Nodes) || controllers != 1 {
		t.Errorf("speakers on %v, %d controllers", speakers, controllers)
	}
	return pods
}

// checkSecurity reads each container's process on its node: user, effective
// capabilities, no_new_privs and a read-only root, against what the applied
// pod spec says.
func checkSecurity(t *testing.T, c kubernetes.Interface, rn *RealNodes, pods []corev1.Pod) {
	t.Helper()
	for _, p := range pods {
		for _, ctr := range p.Spec.Containers {
			name := p.Name + "/" + ctr.Name
			sc := ctr.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil {
				t.Errorf("%s: the rendered securityContext is not the hardened one: %+v", name, sc)
				continue
			}
			uid := int64(0)
			if p.Spec.SecurityContext != nil && p.Spec.SecurityContext.RunAsUser != nil {
				uid = *p.Spec.SecurityContext.RunAsUser
			}
			var capEff uint64
			for _, cp := range sc.Capabilities.Add {
				switch cp {
				case "NET_RAW":
					capEff |= 1 << 13
				case "NET_ADMIN":
					capEff |= 1 << 12
				default:
					t.Errorf("%s: capability %s not checked", name, cp)
				}
			}
			var id string
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == ctr.Name {
					id = cs.ContainerID
				}
			}
			pid, err := rn.ContainerPID(p.Spec.NodeName, id)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			field := func(name string) string {
				m := regexp.MustCompile(`(?m)^` + name + `:\s+(.*)$`).FindSubmatch(status)
				if m == nil {
					return ""
				}
				return string(m[1])
			}
			want := map[string]string{
				"Uid":        strings.Repeat(fmt.Sprint(uid)+"\t", 3) + fmt.Sprint(uid),
				"CapEff":     fmt.Sprintf("%016x", capEff),
				"NoNewPrivs": "1",
			}
			for k, v := range want {
				if got := field(k); got != v {
					t.Errorf("%s (pid %d): %s %q, want %q", name, pid, k, got, v)
				}
			}
			mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
			ro, token := false, false
			for _, l := range strings.Split(string(mi), "\n") {
				f := strings.Fields(l)
				if len(f) > 5 && f[4] == "/" {
					ro = strings.Contains(","+f[5]+",", ",ro,")
				}
				if len(f) > 4 && f[4] == "/var/run/secrets/kubernetes.io/serviceaccount" {
					token = true
				}
			}
			if !ro {
				t.Errorf("%s (pid %d): root filesystem not mounted read-only", name, pid)
			}
			// The traffic container alone has no API token.
			if token == (ctr.Name == "traffic") {
				t.Errorf("%s (pid %d): service account token mounted: %v", name, pid, token)
			}
			t.Logf("%s on %s: pid %d, uid %d, CapEff %s, no_new_privs, read-only root, API token %v", name, p.Spec.NodeName, pid, uid, want["CapEff"], token)
		}
	}
}

// buildVersion builds this checkout's binary stamped with another version
// (another image tag): what an upgrade brings.
func buildVersion(t *testing.T, v string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "metallb")
	if err := testenv.BuildStatic("./cmd/metallb", out, "-ldflags", "-X github.com/microk8s-metallb/metallb/pkg/version.Version="+v); err != nil {
		t.Fatal(err)
	}
	return out
}

// nftCount reads ip's counter from the traffic table in node's kernel
// (`nft -j list set`); held says whether the set has it.
func nftCount(t *testing.T, node, ip string) (packets, bytes uint64, held bool) {
	t.Helper()
	set := "announced4"
	if strings.Contains(ip, ":") {
		set = "announced6"
	}
	out, err := Exec(context.Background(), node, "nft", "-j", "list", "set", "inet", counting.TableName, set).Output()
	if err != nil {
		t.Fatalf("nft list set on %s: %v", node, err)
	}
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []struct {
					Elem struct {
						Val     string `json:"val"`
						Counter struct {
							Packets uint64 `json:"packets"`
							Bytes   uint64 `json:"bytes"`
						} `json:"counter"`
					} `json:"elem"`
				} `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("nft -j on %s: %v\n%s", node, err, out)
	}
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, e := range o.Set.Elem {
			if e.Elem.Val == ip {
				return e.Elem.Counter.Packets, e.Elem.Counter.Bytes, true
			}
		}
	}
	return 0, 0, false
}

// TestTrafficOnRealNodes: enable --traffic-stats on three real nodes. Each
// speaker pod runs the traffic container beside the speaker, the only one
// with CAP_NET_ADMIN and the only one without an API token; TCP through
// kube-proxy to the Service's address is counted in the owner's kernel
// before kube-proxy's DNAT (not on the node of the pod it reaches) and
// shown by the owner speaker's metrics; disable removes the tables.
func TestTrafficOnRealNodes(t *testing.T) {
	l, env, rn := UpWithRealNodes(t)
	ctx := context.Background()
	c := env.Client
	snap, err := NewSnap(t.TempDir(), env.Kubeconfig, RecordingCtr)
	if err != nil {
		t.Fatal(err)
	}
	images, err := StartAgents(snap, t.TempDir(), rn.Ctr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(images.Stop)
	sc := &snapCluster{Lab: l, env: env, c: c, bin: testenv.Binary(t), snap: snap, images: images}
	if err := CreateHello(ctx, c); err != nil {
		t.Fatal(err)
	}
	if r := sc.run(t, nil, "enable", "198.51.100.200-198.51.100.210", "--traffic-stats"); r.code != 0 {
		t.Fatalf("enable: exit %d", r.code)
	}
	pods := checkPods(t, c, rn, speakerImage(t, c))
	checkSecurity(t, c, rn, pods)

	ip := waitServiceIP(t, c, "default", "hello", 30*time.Second)
	owner := election.Owner(netip.MustParseAddr(ip), Nodes)
	testenv.Eventually(t, 20*time.Second, owner+"'s table holds "+ip, func() bool {
		_, _, held := nftCount(t, owner, ip)
		return held
	})
	if reply, err := DialUntil("client", ip+":80", 20*time.Second); err != nil || reply != "hello from node-b" {
		t.Fatalf("TCP to %s:80: %q, %v", ip, reply, err)
	}
	before, _, _ := nftCount(t, owner, ip)
	const n = 20
	for i := range n {
		if reply, err := Dial("client", ip+":80", 3*time.Second); err != nil || reply != "hello from node-b" {
			t.Fatalf("connection %d: %q, %v", i, reply, err)
		}
	}
	packets, bytes, _ := nftCount(t, owner, ip)
	if d := packets - before; d < 3*n || d > 10*n {
		t.Errorf("%s counted %d packets for %d connections through kube-proxy (want 3 to 10 each)", owner, d, n)
	}
	for _, node := range Nodes {
		if node == owner {
			continue
		}
		if _, _, held := nftCount(t, node, ip); held {
			t.Errorf("%s's table holds %s, which %s announces", node, ip, owner)
		}
	}
	body, err := HTTPSGet("client", NodeAddr(owner)+":7473", "/metrics", env.Config.BearerToken)
	want := fmt.Sprintf(`metallb_service_received_packets_total{ip=%q,namespace="default",node=%q,service="hello"} `, ip, owner)
	if err != nil || !strings.Contains(body, want) || !strings.Contains(body, fmt.Sprintf(`metallb_traffic_counter_up{node=%q} 1`, owner)) {
		t.Errorf("%s's metrics (%v) lack %q and the counter's up:\n%s", owner, err, want, grepLines(body, "metallb_service_received", "metallb_traffic"))
	}
	t.Logf("%d connections through kube-proxy to %s (owner %s, pod on node-b): %d packets, %d bytes in %s's table; none held elsewhere",
		n, ip, owner, packets-before, bytes, owner)

	t.Run("an address owned by another node than the pod's: counted there, before the DNAT", func(t *testing.T) {
		var ip2 string
		for i := 201; i <= 210 && ip2 == ""; i++ {
			if a := fmt.Sprintf("198.51.100.%d", i); election.Owner(netip.MustParseAddr(a), Nodes) != "node-b" {
				ip2 = a
			}
		}
		owner2 := election.Owner(netip.MustParseAddr(ip2), Nodes)
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "hello2", Namespace: "default", Annotations: map[string]string{"metallb.io/loadBalancerIPs": ip2}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "hello"},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}
		if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := waitServiceIP(t, c, "default", "hello2", 30*time.Second); got != ip2 {
			t.Fatalf("hello2 got %s, asked for %s", got, ip2)
		}
		testenv.Eventually(t, 20*time.Second, owner2+"'s table holds "+ip2, func() bool {
			_, _, held := nftCount(t, owner2, ip2)
			return held
		})
		if _, err := DialUntil("client", ip2+":80", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		before, _, _ := nftCount(t, owner2, ip2)
		for i := range n {
			if reply, err := Dial("client", ip2+":80", 3*time.Second); err != nil || reply != "hello from node-b" {
				t.Fatalf("connection %d: %q, %v", i, reply, err)
			}
		}
		after, _, _ := nftCount(t, owner2, ip2)
		if d := after - before; d < 3*n || d > 10*n {
			t.Errorf("%s counted %d packets for %d connections", owner2, d, n)
		}
		if _, _, held := nftCount(t, "node-b", ip2); held {
			t.Errorf("node-b (the pod's node) holds %s", ip2)
		}
		t.Logf("%s (owner %s, forwarded by kube-proxy to the pod on node-b): %d packets for %d connections on %s only", ip2, owner2, after-before, n, owner2)
	})

	t.Run("disable removes the tables", func(t *testing.T) {
		if r := sc.run(t, nil, "disable"); r.code != 0 {
			t.Fatalf("disable: exit %d", r.code)
		}
		for _, node := range Nodes {
			testenv.Eventually(t, 30*time.Second, node+" has no traffic table", func() bool {
				out, err := Exec(ctx, node, "nft", "list", "tables").CombinedOutput()
				return err == nil && !strings.Contains(string(out), "inet "+counting.TableName)
			})
		}
	})
}
