package lab

// The lab cluster every lab test starts from: the control plane on the
// bridge, the controller in the test process, a speaker process per node
// namespace, and the helpers that act on it.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/install"

	"github.com/microk8s-metallb/metallb/pkg/controller"
	"github.com/microk8s-metallb/metallb/pkg/status"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// cluster is a lab with a control plane on the bridge, the controller, and a
// speaker in each node namespace.
type cluster struct {
	*Lab
	env         *testenv.Env
	c           kubernetes.Interface
	speakers    map[string]*exec.Cmd
	logs        map[string]string // node → its speaker's log
	bin         string
	dyn         dynamic.Interface // withResources only
	ctl         *exec.Cmd         // controllerProcess only
	speakerArgs []string          // withSpeakerArgs
	trafficDirs map[string]string // withTraffic: node → the directory its speaker and counter share
}

// clusterOpts say how startCluster builds the cluster.
type clusterOpts struct {
	config      string   // the ConfigMap's config; default labConfig
	noSpeakers  bool     // the test starts the speakers itself
	ha          bool     // two API servers on kine, as MicroK8s HA
	resources   string   // metallb.io objects (YAML documents) created with the CRDs
	ctlProc     bool     // the controller runs as a process, with the shipped flags
	speakerArgs []string // more flags for every speaker
	crds        bool     // the metallb.io CRDs, with no objects
	traffic     bool     // a traffic counter beside each speaker
}

type clusterOpt func(*clusterOpts)

// withConfig puts config in the ConfigMap instead of labConfig.
func withConfig(config string) clusterOpt { return func(o *clusterOpts) { o.config = config } }

// noSpeakers leaves the speakers to the test.
func noSpeakers() clusterOpt { return func(o *clusterOpts) { o.noSpeakers = true } }

// withResources installs the CRDs as enable does and creates the
// metallb.io objects of docs (YAML documents) in metallb-system, which the
// controller then reads beside the ConfigMap.
func withResources(docs string) clusterOpt { return func(o *clusterOpts) { o.resources = docs } }

// controllerProcess runs the controller as its own process (in node-a's
// namespace) with the flags the shipped manifest gives it, so that its CPU
// can be measured; cl.ctl is that process.
func controllerProcess() clusterOpt { return func(o *clusterOpts) { o.ctlProc = true } }

// withSpeakerArgs gives every speaker these flags too.
func withSpeakerArgs(args ...string) clusterOpt {
	return func(o *clusterOpts) { o.speakerArgs = append(o.speakerArgs, args...) }
}

// withCRDs installs the metallb.io CRDs as enable does (which serves the
// status kinds the components write), with no objects.
func withCRDs() clusterOpt { return func(o *clusterOpts) { o.crds = true } }

// withTraffic runs a traffic counter (metallb traffic-counter) in each
// node namespace, sharing a directory with its speaker, as the speaker pod
// does with --traffic-stats.
func withTraffic() clusterOpt { return func(o *clusterOpts) { o.traffic = true } }

// withHA runs the control plane as MicroK8s HA does when ha is true.
func withHA(ha bool) clusterOpt { return func(o *clusterOpts) { o.ha = ha } }

// startCluster starts the lab with a control plane on the bridge, the
// config in the ConfigMap, the controller, and a speaker on each node.
func startCluster(t testing.TB, opts ...clusterOpt) *cluster {
	t.Helper()
	o := clusterOpts{config: labConfig}
	for _, f := range opts {
		f(&o)
	}
	config, speakers, ha := o.config, !o.noSpeakers, o.ha
	l, env := UpWithControlPlaneOpts(t, ha)
	ctx := context.Background()
	cl := &cluster{Lab: l, env: env, c: env.Client, logs: map[string]string{}, bin: testenv.Binary(t), speakerArgs: o.speakerArgs}
	if speakers {
		cl.speakers = map[string]*exec.Cmd{}
	}
	if o.traffic {
		cl.trafficDirs = map[string]string{}
		for _, n := range Nodes {
			cl.trafficDirs[n] = t.TempDir()
			StartProcess(t, n, "traffic-"+n+".log", cl.bin, "traffic-counter", "--log-level=debug", "--dir", cl.trafficDirs[n])
		}
	}
	c := env.Client
	for _, ns := range []string{"metallb-system", "demo"} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CoreV1().ConfigMaps("metallb-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "config"}, Data: map[string]string{"config": config},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if o.resources != "" || o.crds {
		cl.dyn = installResources(t, env, o.resources)
	}
	if o.ctlProc {
		cl.ctl, _ = StartProcessLog(t, "node-a", "controller.log", cl.bin, "controller", "--log-level=info",
			"--metrics-addr=:7472", "--health-addr=:7471", "--kubeconfig", env.Kubeconfig)
		for _, n := range Nodes {
			if cl.speakers != nil {
				cl.startSpeaker(t, n)
			}
		}
		return cl
	}
	cctx, cancel := context.WithCancel(ctx)
	ctl := controller.New(cctx, controller.Options{Client: c, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Namespace: "metallb-system", Dynamic: cl.dyn})
	done := make(chan struct{})
	go func() { defer close(done); _ = ctl.Run(cctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, n := range Nodes {
		if cl.speakers != nil {
			cl.startSpeaker(t, n)
		}
	}
	return cl
}

func (cl *cluster) startSpeaker(t testing.TB, node string) {
	kubeconfig := cl.env.Kubeconfig
	if node != "node-a" {
		kubeconfig = cl.env.Kubeconfig2 // the same one unless HA
	}
	args := append([]string{cl.bin, "speaker", "--node-name", node, "--kubeconfig", kubeconfig, "--metrics-addr", ":7473",
		"--metrics-secure=false", "--log-level", "debug", "--lease-interval", "2s"}, cl.speakerArgs...)
	if dir := cl.trafficDirs[node]; dir != "" {
		args = append(args, "--traffic-dir", dir)
	}
	cl.speakers[node], cl.logs[node] = StartProcessLog(t, node, "speaker-"+node+".log", args...)
}

// addBackend creates a ready Pod of app on node, and puts ip on lo of every
// node with a TCP server on port (the kube-proxy stand-in).
func (cl *cluster) addBackend(t testing.TB, name, app, node string) {
	t.Helper()
	ctx := context.Background()
	pod, err := cl.c.CoreV1().Pods("demo").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "example.invalid/none"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.5", PodIPs: []corev1.PodIP{{IP: "10.1.0.5"}, {IP: "fd00:10:1::5"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := cl.c.CoreV1().Pods("demo").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (cl *cluster) createService(t testing.TB, name, app string, local bool, families ...corev1.IPFamily) string {
	t.Helper()
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": app},
			Ports: []corev1.ServicePort{{Port: 8080}}, IPFamilies: families,
		},
	}
	if local {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	if _, err := cl.c.CoreV1().Services("demo").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return waitServiceIP(t, cl.c, "demo", name, 20*time.Second)
}

// waitOneMAC polls arping until exactly want answers (or "" for none).
func waitOneMAC(t testing.TB, ip, want string, timeout time.Duration) {
	t.Helper()
	waitOneMACFrom(t, "client", ip, want, timeout)
}

// waitOneMACFrom is waitOneMAC from another lab host.
func waitOneMACFrom(t testing.TB, host, ip, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var macs map[string]int
	var out string
	for time.Now().Before(deadline) {
		var err error
		if macs, out, err = ArpingFrom(context.Background(), host, ip, 2); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if want == "" && len(macs) == 0 {
			return
		}
		if _, ok := macs[want]; ok && len(macs) == 1 {
			return
		}
	}
	t.Fatalf("arping %s: replies from %v, want only %q\n%s", ip, macs, want, out)
}

func (cl *cluster) setConfig(t testing.TB, cfg string) {
	t.Helper()
	ctx := context.Background()
	cm, err := cl.c.CoreV1().ConfigMaps("metallb-system").Get(ctx, "config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["config"] = cfg
	if _, err := cl.c.CoreV1().ConfigMaps("metallb-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// speakerLog returns what a node's speaker has logged so far.
func (cl *cluster) speakerLog(t testing.TB, node string) string {
	t.Helper()
	b, err := os.ReadFile(cl.logs[node])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (cl *cluster) status(t testing.TB) status.Report {
	t.Helper()
	// Exit 1 says something needs the operator: the report is whole.
	out, err := exec.Command(cl.bin, "status", "-o", "json", "--kubeconfig", cl.env.Kubeconfig).Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("metallb status: %v", err)
	}
	var r status.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return r
}

// installResources applies the CRDs enable installs, waits until they
// serve, and creates the objects of docs in metallb-system as kubectl
// apply would (unknown fields refused).
func installResources(t testing.TB, env *testenv.Env, docs string) dynamic.Interface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	b, err := manifests.Render(manifests.Values{Namespace: "metallb-system", Image: "x", Config: "address-pools: []\n"})
	if err != nil {
		t.Fatal(err)
	}
	all, err := install.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var crds []*unstructured.Unstructured
	for _, o := range all {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		}
	}
	ctx := context.Background()
	if _, err := install.Apply(ctx, dyn, crds); err != nil {
		t.Fatal(err)
	}
	objs, err := install.Decode([]byte(docs))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		r := metallbResource(dyn, o.GetAPIVersion(), o.GetKind())
		testenv.Eventually(t, 30*time.Second, "the CRD of "+o.GetKind()+" serving", func() bool {
			_, err := r.List(ctx, metav1.ListOptions{})
			return err == nil
		})
		if _, err := r.Create(ctx, o, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("create %s/%s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	return dyn
}

// metallbResource is the client of a metallb.io kind in metallb-system.
func metallbResource(dyn dynamic.Interface, apiVersion, kind string) dynamic.ResourceInterface {
	gv, _ := schema.ParseGroupVersion(apiVersion)
	plural := strings.ToLower(kind) + "s"
	if kind == "Community" {
		plural = "communities"
	}
	return dyn.Resource(gv.WithResource(plural)).Namespace("metallb-system")
}
