package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/pkg/install"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// TestLateNodePullsFromTheRegistry: with MicroK8s's registry addon (a real
// registry, Debian's docker-registry, behind the addon's Service at
// NodePort 32000, which each node reaches on localhost through its
// kube-proxy), enable pushes the image there instead of importing it. A
// fourth real node that joins afterwards, holding no metallb image, pulls
// it through its kubelet and containerd; its speaker becomes ready, joins
// the others and answers alone for an address the election now gives it,
// and TCP to that address reaches the pod through the new node.
func TestLateNodePullsFromTheRegistry(t *testing.T) {
	l, env, rn := UpWithRealNodes(t)
	ctx := context.Background()
	c := env.Client
	regLog := startRegistryAddon(t, c, rn)
	snap, err := NewSnap(t.TempDir(), env.Kubeconfig, RecordingCtr)
	if err != nil {
		t.Fatal(err)
	}
	sc := &snapCluster{Lab: l, env: env, c: c, bin: testenv.Binary(t), snap: snap}
	if err := CreateHello(ctx, c); err != nil {
		t.Fatal(err)
	}

	r := sc.run(t, nil, "enable", "198.51.100.200-198.51.100.210")
	r.expect(t, 0, "pushing image localhost:32000/", "nodes that join later too")
	ref := speakerImage(t, c)
	if !strings.HasPrefix(ref, "localhost:32000/") {
		t.Fatalf("the workloads run %s, not the registry's image", ref)
	}
	if _, err := os.Stat(filepath.Join(snap.Dir, "imported.tar")); err == nil {
		t.Errorf("the image was also imported through the containerd client")
	}
	checkPods(t, c, rn, ref)

	// The late node: nothing but the pause and hello images.
	if err := l.AddLateNode(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := rn.Join(LateNode); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	var pod *corev1.Pod
	testenv.Eventually(t, 2*time.Minute, "a running, ready speaker on "+LateNode, func() bool {
		pod = speakerOn(ctx, c, LateNode)
		return pod != nil && pod.Status.Phase == corev1.PodRunning && len(pod.Status.ContainerStatuses) == 1 && pod.Status.ContainerStatuses[0].Ready
	})
	cs := pod.Status.ContainerStatuses[0]
	t.Logf("%s Ready %v after its kubelet started; its speaker %s ready %v after that (image %s, restarts %d)",
		LateNode, ready.Round(100*time.Millisecond), pod.Name, time.Since(start).Round(100*time.Millisecond)-ready.Round(100*time.Millisecond), cs.ImageID, cs.RestartCount)
	if pod.Spec.Containers[0].Image != ref || cs.RestartCount != 0 {
		t.Errorf("speaker on %s runs %s with %d restarts, want %s and none", LateNode, pod.Spec.Containers[0].Image, cs.RestartCount, ref)
	}
	if out, err := testenv.Ctr(ctx, rn.Ctr[LateNode], "images", "ls", "-q").Output(); err != nil || !strings.Contains(string(out), ref) {
		t.Errorf("%s's containerd lacks %s (%v):\n%s", LateNode, ref, err, out)
	}
	if log := readFile(regLog); !strings.Contains(log, "GET /v2/"+strings.SplitN(strings.TrimPrefix(ref, "localhost:32000/"), ":", 2)[0]+"/manifests/") {
		t.Errorf("the registry saw no manifest pull; its log:\n%s", tail(log, 3000))
	}

	// Its speaker takes part: an address the election over four nodes gives
	// the late node is answered by its MAC alone, and carries TCP.
	all := append(slices.Clone(Nodes), LateNode)
	var ip string
	for i := 200; i <= 210 && ip == ""; i++ {
		a := fmt.Sprintf("198.51.100.%d", i)
		if election.Owner(netip.MustParseAddr(a), all) == LateNode && a != waitServiceIP(t, c, "default", "hello", 30*time.Second) {
			ip = a
		}
	}
	if ip == "" {
		t.Fatal("no address of the range elects " + LateNode)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "hello-late", Namespace: "default",
		Annotations: map[string]string{"metallb.universe.tf/loadBalancerIPs": ip}}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "hello"},
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}}
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := waitServiceIP(t, c, "default", "hello-late", 30*time.Second); got != ip {
		t.Fatalf("hello-late got %s, asked for %s", got, ip)
	}
	mac := l.MACs[LateNode]
	var last map[string]int
	testenv.Eventually(t, 30*time.Second, ip+" answered by "+LateNode+"'s MAC alone", func() bool {
		last, _ = Arping(t, ctx, ip, 1)
		return len(last) == 1 && last[mac] > 0
	})
	reply, err := DialUntil("client", ip+":80", 20*time.Second)
	if err != nil || reply != "hello from node-b" {
		t.Errorf("TCP to %s:80: %q, %v", ip, reply, err)
	}
	t.Logf("%s (elected %s among four) answered by %s alone; TCP through kube-proxy on %s to the pod on node-b: %q", ip, LateNode, mac, LateNode, reply)
}

// speakerOn returns the speaker pod on node, or nil.
func speakerOn(ctx context.Context, c kubernetes.Interface, node string) *corev1.Pod {
	list, err := c.CoreV1().Pods("metallb-system").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil
	}
	for i, p := range list.Items {
		if p.DeletionTimestamp == nil && len(p.Spec.Containers) > 0 && p.Spec.Containers[0].Name == "speaker" {
			return &list.Items[i]
		}
	}
	return nil
}

// startRegistryAddon stands in for MicroK8s's registry addon: Debian's
// docker-registry on node-a (the addon's pod runs on one node), behind
// the Service container-registry/registry with NodePort 32000 and an
// EndpointSlice naming it, so that every node's kube-proxy takes
// localhost:32000 there. It returns the registry's log file.
func startRegistryAddon(t *testing.T, c kubernetes.Interface, rn *RealNodes) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("docker-registry is not installed: scripts/setup.sh installs it")
	}
	const port = 5000
	addr := fmt.Sprintf("%s:%d", NodeAddr("node-a"), port)
	dir := t.TempDir()
	conf := filepath.Join(dir, "config.yml")
	body := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rn.run("registry", "node-a", bin, "serve", conf); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: install.RegistryNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	name := "registry"
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: install.RegistryService, Namespace: install.RegistryNamespace},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
			Ports: []corev1.ServicePort{{Name: name, Port: port, TargetPort: intstr.FromInt32(port), NodePort: 32000}}}}
	if _, err := c.CoreV1().Services(install.RegistryNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes, tcp, p, registryNode := true, corev1.ProtocolTCP, int32(port), "node-a"
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "registry-node-a", Namespace: install.RegistryNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: install.RegistryService}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{NodeAddr("node-a")},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes}, NodeName: &registryNode}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &p, Protocol: &tcp}},
	}
	if _, err := c.DiscoveryV1().EndpointSlices(install.RegistryNamespace).Create(ctx, eps, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, node := range Nodes {
		testenv.Eventually(t, 30*time.Second, "the registry at localhost:32000 on "+node, func() bool {
			got, err := HTTPGet(node, "127.0.0.1:32000", "/v2/")
			return err == nil && strings.HasPrefix(got, "HTTP/1.0 200")
		})
	}
	return filepath.Join(rn.Dir, "registry.log")
}
