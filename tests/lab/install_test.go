package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/microk8s-metallb/metallb/pkg/install"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// snapCluster is a lab with a control plane and a stand-in MicroK8s: a
// cluster agent and a containerd on every node (the image goes there, as
// the cluster has three nodes), and a local containerd client that only
// records (for a single-node import).
type snapCluster struct {
	*Lab
	env    *testenv.Env
	c      kubernetes.Interface
	bin    string
	snap   *Snap
	images *NodeImages
}

func startSnapCluster(t *testing.T) *snapCluster {
	t.Helper()
	l, env := UpWithControlPlane(t)
	snap, err := NewSnap(t.TempDir(), env.Kubeconfig, RecordingCtr)
	if err != nil {
		t.Fatal(err)
	}
	images, err := StartNodeImages(snap, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(images.Stop)
	return &snapCluster{Lab: l, env: env, c: env.Client, bin: testenv.Binary(t), snap: snap, images: images}
}

// hook runs the repository's hook as MicroK8s would, with this checkout's
// binary.
func (sc *snapCluster) hook(ctx context.Context, name string, args ...string) *exec.Cmd {
	return sc.snap.Hook(ctx, sc.Root, name, []string{"METALLB_BIN=" + sc.bin}, args...)
}

type hookResult struct {
	out    string // stdout and stderr
	stdout string
	code   int
	took   time.Duration
}

// expect checks the hook's exit code and that its output holds each line.
func (r hookResult) expect(t *testing.T, code int, lines ...string) {
	t.Helper()
	for _, want := range lines {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if r.code != code {
		t.Errorf("exit %d", r.code)
	}
}

func (sc *snapCluster) run(t *testing.T, stdin io.Reader, name string, args ...string) hookResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := sc.hook(ctx, name, args...)
	cmd.Stdin = stdin
	// Both streams in order into one buffer, stdout also alone: two
	// copying goroutines, so the shared buffer takes a lock.
	var buf lockedBuffer
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&buf, &stdout), &buf
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	res := hookResult{out: buf.String(), stdout: stdout.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v\n%s", name, args, err, res.out)
	}
	t.Logf("$ microk8s %s metallb %s  (exit %d, %v)\n%s", name, strings.Join(args, " "), res.code, res.took.Round(time.Millisecond), res.out)
	return res
}

// lockedBuffer is a bytes.Buffer that several goroutines write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// kubelet starts the stand-in kubelet that reports the workloads ready.
func (sc *snapCluster) kubelet(t *testing.T, run bool) func() {
	k := &Kubelet{Client: sc.c, Namespace: "metallb-system", Binary: sc.bin, Kubeconfig: sc.env.Kubeconfig,
		Nodes: Nodes, ControllerNode: "node-a", Run: run, LogDir: t.TempDir(), Logf: t.Logf}
	return k.Start(context.Background())
}

// objects lists everything of ours with its resourceVersion.
func (sc *snapCluster) objects(t *testing.T) map[string]string {
	t.Helper()
	dyn, err := dynamic.NewForConfig(sc.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	out, err := install.Installed(context.Background(), dyn, "metallb-system")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// resource is the client of a metallb.io kind in metallb-system.
func (sc *snapCluster) resource(t *testing.T, plural string) dynamic.ResourceInterface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(sc.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return dyn.Resource(schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: plural}).Namespace("metallb-system")
}

// createResource creates the object text describes, as kubectl apply
// would (unknown fields refused), and returns what the API server stored.
func (sc *snapCluster) createResource(t *testing.T, r dynamic.ResourceInterface, text string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := sigsyaml.Unmarshal([]byte(text), &u.Object); err != nil {
		t.Fatal(err)
	}
	out, err := r.Create(context.Background(), u, metav1.CreateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Fatalf("create %s/%s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestInstallerHooks runs the enable and disable hooks the way MicroK8s
// does, against the real API server, from inside a lab node.
func TestInstallerHooks(t *testing.T) {
	sc := startSnapCluster(t)
	ctx := context.Background()
	ns := "metallb-system"

	t.Run("no range and no terminal fails at once with usage", func(t *testing.T) {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer devnull.Close()
		r := sc.run(t, devnull, "enable")
		if r.code != 2 || !strings.Contains(r.out, "no address range given") || !strings.Contains(r.out, "usage: microk8s enable lab/metallb:RANGE") {
			t.Errorf("exit %d, output:\n%s", r.code, r.out)
		}
		pr, pw, err := os.Pipe() // stdin inherited from a caller that never writes
		if err != nil {
			t.Fatal(err)
		}
		defer pw.Close()
		defer pr.Close()
		r2 := sc.run(t, pr, "enable")
		if r2.code != 2 {
			t.Errorf("idle stdin: exit %d", r2.code)
		}
		// The binary itself answers in well under a second; the hook adds
		// "ip netns exec" and a shell.
		t.Logf("no-range failure took %v (/dev/null) and %v (idle pipe)", r.took.Round(time.Millisecond), r2.took.Round(time.Millisecond))
		if r.took > 2*time.Second || r2.took > 2*time.Second {
			t.Errorf("took %v and %v: the hook must fail fast", r.took, r2.took)
		}
	})

	t.Run("risky ranges are refused with what to do", func(t *testing.T) {
		// The client namespace holds 198.51.100.100: the ARP probe finds it.
		r := sc.run(t, nil, "enable", "198.51.100.95-198.51.100.105,198.51.100.250-198.51.100.254,198.51.100.12,2001:db8::f0-2001:db8::10f")
		var findings []string
		for _, line := range strings.Split(r.out, "\n") {
			if strings.HasPrefix(line, "error: ") || strings.HasPrefix(line, "warning: ") {
				findings = append(findings, line)
			}
		}
		want := []string{
			"error: 198.51.100.100 in 198.51.100.95-198.51.100.105 is in use: it answered an ARP probe from " + sc.MACs["client"] +
				"; leave it out",
			"error: 198.51.100.254 in 198.51.100.250-198.51.100.254 is the default gateway; leave it out",
			"error: 198.51.100.12 in 198.51.100.12 is the InternalIP of node node-b; choose another address",
			// The client also holds 2001:db8::100: the NDP probe finds it.
			"error: 2001:db8::100 in 2001:db8::f0-2001:db8::10f is in use: it answered an NDP probe (neighbor solicitation) from " + sc.MACs["client"] +
				"; leave it out",
		}
		if diff := cmp.Diff(want, findings); diff != "" {
			t.Errorf("findings (-want +got):\n%s", diff)
		}
		// One suggestion for all four errors, not one per error.
		if n := strings.Count(r.out, "suggestion: "); n != 1 || !strings.Contains(r.out, " passes every check\n") {
			t.Errorf("%d suggestions, want one range that passes every check", n)
		}
		if r.code != 1 || !strings.Contains(r.out, "cannot be used: 4 error(s) above") {
			t.Errorf("exit %d", r.code)
		}
		if got := sc.objects(t); len(got) != 0 {
			t.Errorf("a refused enable applied %v", keys(got))
		}
	})

	t.Run("a range outside the node's subnet needs --yes", func(t *testing.T) {
		r := sc.run(t, nil, "enable", "--dry-run", "203.0.113.10-203.0.113.20")
		if r.code != 1 || !strings.Contains(r.out, "warning: 203.0.113.10-203.0.113.20 is not inside any subnet of this node (this host's subnets are eth0 198.51.100.0/24)") ||
			!strings.Contains(r.out, "re-run with --yes") {
			t.Errorf("exit %d", r.code)
		}
	})

	t.Run("a range piped on stdin works", func(t *testing.T) {
		r := sc.run(t, strings.NewReader("198.51.100.240/29\n"), "enable", "--dry-run")
		if r.code != 0 || !strings.Contains(r.out, "      - 198.51.100.240/29\n") || !strings.Contains(r.out, "kind: DaemonSet") {
			t.Errorf("exit %d", r.code)
		}
		if got := sc.objects(t); len(got) != 0 {
			t.Errorf("--dry-run applied %v", keys(got))
		}
	})

	t.Run("a node whose cluster agent does not answer: enable stops with the fix", func(t *testing.T) {
		sc.images.Agents[2].Stop()
		defer func() {
			if err := sc.images.Agents[2].Start(); err != nil {
				t.Fatal(err)
			}
		}()
		r := sc.run(t, nil, "enable", "198.51.100.200-198.51.100.210")
		r.expect(t, 1,
			"  node-c               198.51.100.13   failed: cluster agent unreachable",
			"the image did not reach 1 of 3 nodes:\n  node-c (198.51.100.13:25000): cluster agent unreachable",
			"answers on port 25000/tcp from this node",
		)
		if got := sc.objects(t); len(got) != 0 {
			t.Errorf("a failed import applied %v", keys(got))
		}
	})

	// The workloads run: the controller judges every edit and keeps the
	// accepted copy, which disable saves.
	stopKubelet := sc.kubelet(t, true)
	var first map[string]string
	t.Run("enable installs every object", func(t *testing.T) {
		r := sc.run(t, nil, "enable", "198.51.100.200-198.51.100.210")
		if r.code != 0 || !strings.Contains(r.out, "metallb is enabled: LoadBalancer Services get addresses from 198.51.100.200-198.51.100.210.") {
			t.Fatalf("exit %d", r.code)
		}
		first = sc.objects(t)
		want := []string{
			"ClusterRole/metallb-system:controller", "ClusterRole/metallb-system:speaker",
			"ClusterRoleBinding/metallb-system:controller", "ClusterRoleBinding/metallb-system:speaker",
			"ConfigMap/config", "ConfigMap/config-accepted", "DaemonSet/metallb-speaker", "Deployment/metallb-controller", "Namespace/metallb-system",
			"Role/controller", "Role/speaker", "RoleBinding/controller", "RoleBinding/speaker",
			"Secret/memberlist", "ServiceAccount/controller", "ServiceAccount/speaker",
			"ServiceAccount/metrics-reader", "ClusterRole/metallb-system:metrics-reader", "ClusterRoleBinding/metallb-system:metrics-reader",
			"ValidatingAdmissionPolicy/metallb-system-leases", "ValidatingAdmissionPolicyBinding/metallb-system-leases",
			"ValidatingAdmissionPolicy/metallb-system-guard", "ValidatingAdmissionPolicyBinding/metallb-system-guard",
			"ValidatingAdmissionPolicy/metallb-system-pools", "ValidatingAdmissionPolicyBinding/metallb-system-pools",
			"ValidatingAdmissionPolicy/metallb-system-l2status", "ValidatingAdmissionPolicyBinding/metallb-system-l2status",
			"ValidatingAdmissionPolicy/metallb-system-states", "ValidatingAdmissionPolicyBinding/metallb-system-states",
			"Service/metallb-webhook", "ValidatingWebhookConfiguration/metallb-system-validation",
		}
		for _, plural := range []string{"ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers", "communities",
			"bfdprofiles", "servicel2statuses", "servicebgpstatuses", "configurationstates"} {
			want = append(want, "CustomResourceDefinition/"+plural+".metallb.io")
		}
		got := keys(first)
		if diff := cmp.Diff(want, got, cmpSorted); diff != "" {
			t.Errorf("objects (-want +got):\n%s", diff)
		}
		cm, err := sc.c.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff("address-pools:\n  - name: default\n    protocol: layer2\n    addresses:\n      - 198.51.100.200-198.51.100.210\n", cm.Data["config"]); diff != "" {
			t.Errorf("config (-want +got):\n%s", diff)
		}
		d, err := sc.c.AppsV1().Deployments(ns).Get(ctx, "metallb-controller", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		img := d.Spec.Template.Spec.Containers[0].Image
		if !regexp.MustCompile(`^localhost/microk8s-metallb:.+-[0-9a-f]{12}$`).MatchString(img) {
			t.Errorf("controller image %q", img)
		}
		if !strings.Contains(r.out, "importing image "+img+" into the 3 nodes through their cluster agents") {
			t.Errorf("the image was not imported")
		}
		for i, node := range Nodes {
			if !regexp.MustCompile(`(?m)^  ` + node + ` +198\.51\.100\.` + fmt.Sprint(11+i) + ` +imported in [0-9.]+s$`).MatchString(r.out) {
				t.Errorf("no import line for %s", node)
			}
			if ok, err := sc.images.Has(node, img); !ok || err != nil {
				t.Errorf("%s's containerd does not have %s (%v)", node, img, err)
			}
		}
		n, err := sc.c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil || n.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
			t.Errorf("namespace labels %v (%v)", n.Labels, err)
		}
	})

	t.Run("enable again with a new range changes only the ConfigMap", func(t *testing.T) {
		sec1, err := sc.c.CoreV1().Secrets(ns).Get(ctx, "memberlist", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// "microk8s enable metallb:198.51.100.220-198.51.100.230,2001:db8::300-2001:db8::3ff --yes",
		// split on every colon as MicroK8s does.
		r := sc.run(t, nil, "enable", "198.51.100.220-198.51.100.230,2001", "db8", "", "300-2001", "db8", "", "3ff", "--yes")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		if strings.Contains(r.out, "was not probed") {
			t.Error("the IPv6 range was not probed")
		}
		second := sc.objects(t)
		var changed []string
		for k, v := range second {
			// The accepted copy is the controller's to write.
			if first[k] != v && k != "ConfigMap/config-accepted" {
				changed = append(changed, k)
			}
		}
		if diff := cmp.Diff([]string{"ConfigMap/config"}, changed); diff != "" {
			t.Errorf("changed objects (-want +got):\n%s", diff)
		}
		sec2, err := sc.c.CoreV1().Secrets(ns).Get(ctx, "memberlist", metav1.GetOptions{})
		if err != nil || !bytes.Equal(sec1.Data["secretkey"], sec2.Data["secretkey"]) {
			t.Errorf("the memberlist key changed (%v)", err)
		}
		cm, _ := sc.c.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{})
		if !strings.Contains(cm.Data["config"], "- 198.51.100.220-198.51.100.230\n      - 2001:db8::300/120\n") {
			t.Errorf("config:\n%s", cm.Data["config"])
		}
	})

	t.Run("custom pools and BGP peers survive disable and enable", func(t *testing.T) {
		cm, err := sc.c.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["config"] = "# ours\naddress-pools:\n- {name: default, protocol: layer2, addresses: [198.51.100.220-198.51.100.230]}\n" +
			"- {name: routed, protocol: bgp, addresses: [203.0.113.0/28]}\n" +
			"peers:\n- {peer-address: 198.51.100.254, peer-asn: 64500, my-asn: 64500, password: s3cret}\n"
		if _, err := sc.c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// MetalLB's own layer2 example, as the operator of the core addon
		// writes it: an IPAddressPool and the L2Advertisement announcing it.
		pools := sc.resource(t, "ipaddresspools")
		l2 := sc.resource(t, "l2advertisements")
		pool := sc.createResource(t, pools, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: extra, namespace: metallb-system}\n"+
			"spec: {addresses: [203.0.113.64/28], autoAssign: false}\n")
		sc.createResource(t, l2, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: extra, namespace: metallb-system}\n"+
			"spec: {ipAddressPools: [extra]}\n")
		waitAccepted(t, sc, func(text, _ string) bool {
			return strings.HasPrefix(text, cm.Data["config"]) && strings.Contains(text, "kind: IPAddressPool") && strings.Contains(text, "kind: L2Advertisement")
		})
		saved := filepath.Join(sc.snap.Common, "metallb", "config.yaml")
		r := sc.run(t, nil, "disable")
		if r.code != 0 || !strings.Contains(r.out, "saved the configuration in force (ConfigMap metallb-system/config-accepted) to "+saved+": the next enable restores its pools and peers; disable --purge forgets it") {
			t.Fatalf("exit %d", r.code)
		}
		if fi, err := os.Stat(saved); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("saved file: %v %v", fi, err)
		}
		r = sc.run(t, nil, "enable", "198.51.100.240-198.51.100.245")
		r.expect(t, 0, "restoring the configuration saved by disable ("+saved+"): 3 pool(s), 1 BGP peer(s)",
			"restoring 2 metallb.io resource(s) saved by disable", "IPAddressPool metallb-system/extra created", "L2Advertisement metallb-system/extra created")
		got, err := pools.Get(ctx, "extra", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the IPAddressPool is not restored: %v", err)
		}
		if diff := cmp.Diff(pool.Object["spec"], got.Object["spec"]); diff != "" {
			t.Errorf("restored IPAddressPool spec (-saved +restored):\n%s", diff)
		}
		if _, err := l2.Get(ctx, "extra", metav1.GetOptions{}); err != nil {
			t.Fatalf("the L2Advertisement is not restored: %v", err)
		}
		// Back to the ConfigMap alone for the tests that follow.
		for _, r := range []dynamic.ResourceInterface{l2, pools} {
			if err := r.Delete(ctx, "extra", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		cm, err = sc.c.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"- {name: default, protocol: layer2, addresses: [198.51.100.240-198.51.100.245]}",
			"- {name: routed, protocol: bgp, addresses: [203.0.113.0/28]}",
			"- {peer-address: 198.51.100.254, peer-asn: 64500, my-asn: 64500, password: s3cret}",
		} {
			if !strings.Contains(cm.Data["config"], want) {
				t.Errorf("restored config lacks %q:\n%s", want, cm.Data["config"])
			}
		}
	})

	t.Run("a refused edit stays refused across disable and enable", func(t *testing.T) {
		if _, err := sc.c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		held := lbAddress(t, sc, "held")
		cm, err := sc.c.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		inForce := cm.Data["config"]
		// The default pool from layer2 to BGP: held's address would change
		// protocol, so the controller refuses the edit.
		cm.Data["config"] = strings.Replace(inForce, "{name: default, protocol: layer2", "{name: default, protocol: bgp", 1)
		if _, err := sc.c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		refused := func(text, state string) bool { return text == inForce && state == "stale" }
		waitAccepted(t, sc, refused)
		saved := filepath.Join(sc.snap.Common, "metallb", "config.yaml")
		r := sc.run(t, nil, "disable")
		r.expect(t, 0, "saved the configuration in force (ConfigMap metallb-system/config-accepted) and the edit of ConfigMap metallb-system/config not in force, with the controller's reason for refusing it to "+saved)
		r = sc.run(t, nil, "enable")
		r.expect(t, 0,
			"restoring the ConfigMap's edit that was not in force at disable (refused by the controller: ",
			"the controller will refuse it again and keep running on the configuration in force")
		waitAccepted(t, sc, refused)
		svc, err := sc.c.CoreV1().Services("demo").Get(ctx, "held", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := ingress(svc); got != held {
			t.Errorf("held has %q after disable and enable, want %s", got, held)
		}
		// Fix the edit back: in force again.
		cm, err = sc.c.CoreV1().ConfigMaps(ns).Get(ctx, "config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["config"] = inForce
		if _, err := sc.c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitAccepted(t, sc, func(text, state string) bool { return text == inForce && state == "accepted" })
	})

	t.Run("disable --purge removes everything and forgets the configuration", func(t *testing.T) {
		saved := filepath.Join(sc.snap.Common, "metallb", "config.yaml")
		r := sc.run(t, nil, "disable", "--purge")
		if r.code != 0 || !strings.Contains(r.out, "forgot the saved configuration ("+saved+")") {
			t.Fatalf("exit %d", r.code)
		}
		if _, err := os.Stat(saved); !os.IsNotExist(err) {
			t.Errorf("still saved: %v", err)
		}
		if got := sc.objects(t); len(got) != 0 {
			t.Errorf("left behind: %v", keys(got))
		}
		if _, err := sc.c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace still there: %v", err)
		}
	})
	t.Run("enable takes MicroK8s's core metallb over, its pool and Services' addresses kept", func(t *testing.T) {
		defer func() { sc.run(t, nil, "disable", "--purge").expect(t, 0) }()
		testTakeover(t, sc)
	})
	stopKubelet()

	t.Run("a stuck install names the pod, and disable cleans up after it", func(t *testing.T) {
		// No kubelet: nothing becomes ready. A speaker pod that cannot be
		// scheduled, with its Event, appears while enable waits.
		done := make(chan struct{})
		defer func() { <-done }() // its t.Errorf must come before the test ends
		go func() {
			defer close(done)
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := sc.c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			p, err := sc.c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "speaker-stuck", Labels: map[string]string{"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "speaker"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "speaker", Image: "example.invalid/none"}}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Errorf("create stuck pod: %v", err)
				return
			}
			_, err = sc.c.CoreV1().Events(ns).Create(ctx, &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: "speaker-stuck.1"},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: ns, UID: p.UID},
				Type:           "Warning", Reason: "FailedScheduling", Message: "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports.",
				LastTimestamp: metav1.Now(), Source: corev1.EventSource{Component: "default-scheduler"},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Errorf("create event: %v", err)
			}
		}()
		r := sc.run(t, nil, "enable", "198.51.100.200-198.51.100.210", "--timeout", "4s")
		r.expect(t, 1,
			"metallb did not become ready within 4s",
			"pod speaker-stuck is Pending; last events:",
			"Warning FailedScheduling: 0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports.",
			"see: microk8s kubectl -n metallb-system describe pod speaker-stuck",
			"no metallb-controller pod exists yet",
		)
		if r2 := sc.run(t, nil, "disable"); r2.code != 0 {
			t.Fatalf("disable after a failed enable: exit %d", r2.code)
		}
		if got := sc.objects(t); len(got) != 0 {
			t.Errorf("left behind: %v", keys(got))
		}
		// Disabling what is not there is fine too.
		if r3 := sc.run(t, nil, "disable"); r3.code != 0 {
			t.Errorf("second disable: exit %d", r3.code)
		}
	})

	t.Run("--dry-run's stdout, applied, is the whole install", func(t *testing.T) {
		testenv.Eventually(t, 60*time.Second, "namespace metallb-system gone", func() bool {
			_, err := sc.c.CoreV1().Namespaces().Get(ctx, "metallb-system", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		r := sc.run(t, nil, "enable", "--dry-run", "198.51.100.240/29")
		if r.code != 0 || strings.Contains(r.stdout, "note:") || !strings.Contains(r.out, "note: addresses in use were not probed (--dry-run") {
			t.Fatalf("exit %d; stdout must hold the manifests alone, stderr the note on the probe", r.code)
		}
		objs, err := install.Decode([]byte(r.stdout))
		if err != nil {
			t.Fatalf("stdout is not manifests: %v", err)
		}
		dyn, err := dynamic.NewForConfig(sc.env.Config)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := install.Apply(ctx, dyn, objs); err != nil {
			t.Fatalf("apply: %v", err)
		}
		got := sc.objects(t)
		for _, want := range []string{"Deployment/metallb-controller", "DaemonSet/metallb-speaker", "ConfigMap/config"} {
			if _, ok := got[want]; !ok {
				t.Errorf("applied install lacks %s (has %v)", want, keys(got))
			}
		}
		if _, err := sc.c.CoreV1().Secrets("metallb-system").Get(ctx, install.MemberlistSecret, metav1.GetOptions{}); err != nil {
			t.Errorf("the memberlist Secret the speakers need: %v", err)
		}
		// The accepted copy is the configuration in force at the last
		// disable (restored), against which the controller judges the new
		// ConfigMap, as a real enable does.
		if _, err := sc.c.CoreV1().ConfigMaps("metallb-system").Get(ctx, "config-accepted", metav1.GetOptions{}); err != nil {
			t.Errorf("the accepted copy: %v", err)
		}
		if cm, err := sc.c.CoreV1().ConfigMaps("metallb-system").Get(ctx, "config", metav1.GetOptions{}); err != nil || !strings.Contains(cm.Data["config"], "198.51.100.240/29") {
			t.Errorf("the ConfigMap lacks the new range: %v", err)
		}
		// Once installed, another dry run leaves the Secret and the copy out.
		r = sc.run(t, nil, "enable", "--dry-run", "198.51.100.240/29")
		if r.code != 0 || strings.Contains(r.stdout, "kind: Secret") || !strings.Contains(r.out, "note: Secret metallb-system/memberlist exists: left out") {
			t.Errorf("second dry run: exit %d", r.code)
		}
		if r := sc.run(t, nil, "disable"); r.code != 0 {
			t.Errorf("disable: exit %d", r.code)
		}
	})
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// term drives a process on a pseudo-terminal.
type term struct {
	t    *testing.T
	pty  *os.File
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func startTerm(t *testing.T, cmd *exec.Cmd) *term {
	t.Helper()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	tm := &term{t: t, pty: f, done: make(chan struct{})}
	go func() {
		defer close(tm.done)
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			// Answer cursor-position queries (survey asks), as a terminal does.
			for range bytes.Count(b[:n], []byte("\x1b[6n")) {
				_, _ = f.Write([]byte("\x1b[1;1R"))
			}
			tm.mu.Lock()
			tm.buf.Write(b[:n])
			tm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { f.Close() })
	return tm
}

// screen is everything printed so far, without terminal escapes.
func (tm *term) screen() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return ansi.ReplaceAllString(tm.buf.String(), "")
}

// expect waits until the output after from holds s, and returns where s ends.
func (tm *term) expect(from int, s string) int {
	tm.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		scr := tm.screen()
		if i := strings.Index(scr[min(from, len(scr)):], s); i >= 0 {
			return min(from, len(scr)) + i + len(s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tm.t.Fatalf("the terminal never showed %q; it shows:\n%s", s, tm.screen()[min(from, len(tm.screen())):])
	return 0
}

// send types s once the program has been quiet for a moment: survey asks
// the terminal for the cursor position after drawing a prompt, and keys
// typed before the answer would be read as part of it.
func (tm *term) send(s string) {
	tm.t.Helper()
	last, quiet := tm.screen(), time.Now()
	for time.Since(quiet) < 300*time.Millisecond {
		time.Sleep(20 * time.Millisecond)
		if cur := tm.screen(); cur != last {
			last, quiet = cur, time.Now()
		}
	}
	if _, err := tm.pty.Write([]byte(s)); err != nil {
		tm.t.Fatal(err)
	}
}

// TestEnablePrompt drives the interactive prompt on a pseudo-terminal.
func TestEnablePrompt(t *testing.T) {
	sc := startSnapCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("Ctrl-C aborts with nothing applied", func(t *testing.T) {
		cmd := sc.hook(ctx, "enable")
		tm := startTerm(t, cmd)
		tm.expect(tm.expect(0, "Address range(s) for LoadBalancer Services"), "(198.51.100.243-198.51.100.253)")
		tm.send("\x03")
		err := cmd.Wait()
		<-tm.done
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("exit: %v", err)
		}
		tm.expect(0, "aborted: nothing was applied")
		if got := sc.objects(t); len(got) != 0 {
			t.Errorf("applied after Ctrl-C: %v", keys(got))
		}
	})

	t.Run("bad input is explained and asked again; a good range is confirmed and installed", func(t *testing.T) {
		stop := sc.kubelet(t, false)
		defer stop()
		cmd := sc.hook(ctx, "enable")
		tm := startTerm(t, cmd)
		at := tm.expect(0, "(198.51.100.243-198.51.100.253)")
		tm.send("198.51.100.300\r")
		at = tm.expect(at, "198.51.100.300: not an IP address")
		tm.send(strings.Repeat("\x7f", 20) + "198.51.100.250-198.51.100.254\r")
		at = tm.expect(at, "198.51.100.254 in 198.51.100.250-198.51.100.254 is the default gateway")
		tm.send(strings.Repeat("\x7f", 40) + "198.51.100.240-198.51.100.242\r")
		at = tm.expect(at, "probing 3 address(es) on eth0")
		at = tm.expect(at, `layer2 pool "default": 198.51.100.240-198.51.100.242 (3 addresses)`)
		at = tm.expect(at, "Install now?")
		tm.send("y\r")
		tm.expect(at, "metallb is enabled: LoadBalancer Services get addresses from 198.51.100.240-198.51.100.242.")
		if err := cmd.Wait(); err != nil {
			t.Errorf("exit: %v\n%s", err, tm.screen())
		}
		<-tm.done
		t.Logf("terminal:\n%s", tm.screen())
		cm, err := sc.c.CoreV1().ConfigMaps("metallb-system").Get(ctx, "config", metav1.GetOptions{})
		if err != nil || !strings.Contains(cm.Data["config"], "- 198.51.100.240-198.51.100.242\n") {
			t.Errorf("config after the prompt: %v\n%v", err, cm)
		}
	})
}

// waitAccepted waits until the controller's accepted copy and its state
// satisfy ok.
func waitAccepted(t *testing.T, sc *snapCluster, ok func(text, state string) bool) {
	t.Helper()
	var text, state string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		cm, err := sc.c.CoreV1().ConfigMaps("metallb-system").Get(context.Background(), "config-accepted", metav1.GetOptions{})
		if err == nil {
			text, state = cm.Data["config"], cm.Annotations["metallb.io/config-state"]
			if ok(text, state) {
				return
			}
		}
	}
	t.Fatalf("the accepted copy is %s:\n%s", state, text)
}
