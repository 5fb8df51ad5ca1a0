package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/image"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// Images the real nodes hold without pulling: the CRI sandbox (the lab's
// pause program) and a TCP server that answers with its node's name (the
// same program, "serve" argument).
const (
	PauseImage = "registry.k8s.io/pause:3.10"
	HelloImage = "localhost/lab-hello:1"
)

// PodCIDR is node i's pod network (the lab's cluster CIDR is 10.1.0.0/16,
// MicroK8s's default; the addresses never leave the node namespaces: pods
// reach other networks masqueraded behind their node's address).
func PodCIDR(i int) string { return fmt.Sprintf("10.1.%d.0/24", i+1) }

// RealNodes runs the lab's nodes the way a cluster does. On each node, in
// its network namespace (entered with nsenter --net: "ip netns exec" would
// remount /sys and hide the cgroup mounts): Debian's containerd with the
// CRI plugin (its own root, state and socket; the CNI bridge plugin for
// pods, with a static route to every other node's pod network), a kubelet
// v1.34 and kube-proxy (iptables) from the cached build; kube-scheduler runs
// beside the control plane. Nothing is pulled: the pause and hello images
// are imported into every node at start, the metallb image by enable.
type RealNodes struct {
	Dir string
	// Ctr is each node's containerd client, in the kubelet's namespace.
	Ctr  map[string][]string
	env  *testenv.Env
	bin  string
	logf func(string, ...any)

	procs    []*rnProc
	netnsPre map[string]bool // /var/run/netns entries before start
	dirs     []string
	tars     []string // the images every node holds from the start
	nodes    []string // the nodes started, in order
}

type rnProc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
}

// RealNodesMissing says what real nodes need that is not here ("" if
// nothing).
func RealNodesMissing() string {
	var missing []string
	for _, tool := range []string{"containerd", "ctr", "runc", "nsenter", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			missing = append(missing, "/usr/lib/cni/"+p)
		}
	}
	if bin, err := testenv.BinDir(); err != nil {
		missing = append(missing, err.Error())
	} else {
		for _, c := range []string{"kubelet", "kube-proxy", "kube-scheduler"} {
			if _, err := os.Stat(filepath.Join(bin, c)); err != nil {
				missing = append(missing, c+" (scripts/build-controlplane.sh)")
			}
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "real nodes need " + strings.Join(missing, ", ") + " (scripts/setup.sh installs them)"
}

// UpWithRealNodes creates the lab, a control plane ready for workloads and
// real nodes; all go when the test ends.
func UpWithRealNodes(t *testing.T) (*Lab, *testenv.Env, *RealNodes) {
	t.Helper()
	Require(t)
	if m := RealNodesMissing(); m != "" {
		if testenv.InCI() {
			t.Fatal(m)
		}
		t.Skip(m)
	}
	l := Up(t)
	env, err := testenv.Start(context.Background(), testenv.Options{Address: "198.51.100.1", Workloads: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	rn, err := StartRealNodes(env, t.Logf)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pods and warnings:\n%s", rn.Describe())
			for _, p := range rn.procs {
				if strings.HasPrefix(p.name, "kubelet") || strings.HasPrefix(p.name, "containerd") {
					t.Logf("%s log (errors, tail):\n%s", p.name, tail(grepErrors(readFile(p.log)), 3000))
				}
			}
		}
		rn.Stop()
	})
	if err != nil {
		t.Fatal(err)
	}
	return l, env, rn
}

// grepErrors keeps a component log's error lines, without the kubelet's
// complaints about filesystem stats (the lab's disks are not its to
// measure).
func grepErrors(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if (strings.HasPrefix(l, "E") || strings.Contains(l, "level=error")) && !strings.Contains(l, "filesystem info") && !strings.Contains(l, "HasDedicatedImageFs") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Describe lists every pod with its node, phase and container states, and
// the Warning events: what to read when a workload does not come up.
func (rn *RealNodes) Describe() string {
	var b strings.Builder
	ctx := context.Background()
	pods, err := rn.env.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "%s/%s node=%s phase=%s", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase)
		for _, c := range p.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				fmt.Fprintf(&b, " %s=%s(%s)", c.Type, c.Status, c.Message)
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, " [%s ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
			if w := cs.State.Waiting; w != nil {
				fmt.Fprintf(&b, " waiting %s: %s", w.Reason, w.Message)
			}
			if x := cs.LastTerminationState.Terminated; x != nil {
				fmt.Fprintf(&b, " last exit %d %s: %s", x.ExitCode, x.Reason, x.Message)
			}
			b.WriteString("]")
		}
		b.WriteString("\n")
	}
	evs, err := rn.env.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	if err == nil {
		for _, e := range evs.Items {
			fmt.Fprintf(&b, "event %s %s/%s %s: %s\n", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Source.Component, e.Message)
		}
	}
	return b.String()
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// StartRealNodes starts the nodes and waits until each is Ready. On error
// Stop still cleans up what was started.
func StartRealNodes(env *testenv.Env, logf func(string, ...any)) (*RealNodes, error) {
	rn := &RealNodes{Ctr: map[string][]string{}, env: env, logf: logf, netnsPre: map[string]bool{}}
	if ents, err := os.ReadDir("/var/run/netns"); err == nil {
		for _, e := range ents {
			rn.netnsPre[e.Name()] = true
		}
	}
	var err error
	if rn.bin, err = testenv.BinDir(); err != nil {
		return rn, err
	}
	if rn.Dir, err = os.MkdirTemp("", "mlb-nodes-"); err != nil {
		return rn, err
	}
	start := time.Now()
	if rn.tars, err = rn.buildImages(); err != nil {
		return rn, err
	}
	if err := rn.run("kube-scheduler", "", filepath.Join(rn.bin, "kube-scheduler"),
		"--kubeconfig="+env.Kubeconfig, "--authentication-kubeconfig="+env.Kubeconfig,
		"--authorization-kubeconfig="+env.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--v=1"); err != nil {
		return rn, err
	}
	for _, node := range Nodes {
		if err := rn.startNode(node); err != nil {
			return rn, fmt.Errorf("%s: %w", node, err)
		}
	}
	if err := rn.waitReady(2 * time.Minute); err != nil {
		return rn, err
	}
	rn.logf("real nodes ready in %v: containerd, kubelet and kube-proxy on %s", time.Since(start).Round(100*time.Millisecond), strings.Join(Nodes, ", "))
	return rn, nil
}

// buildImages builds the lab's pause/hello program and its two images.
func (rn *RealNodes) buildImages() ([]string, error) {
	exe := filepath.Join(rn.Dir, "pause")
	if err := testenv.BuildStatic("./tests/lab/pause", exe); err != nil {
		return nil, err
	}
	var tars []string
	for _, ref := range []string{PauseImage, HelloImage} {
		p := filepath.Join(rn.Dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
		f, err := os.Create(p)
		if err != nil {
			return nil, err
		}
		err = image.Build(exe, ref, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		tars = append(tars, p)
	}
	return tars, nil
}

// run starts a process, in a node's network namespace unless node is "".
func (rn *RealNodes) run(name, node, path string, args ...string) error {
	log := filepath.Join(rn.Dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	var cmd *exec.Cmd
	if node == "" {
		cmd = exec.Command(path, args...)
	} else {
		cmd = exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + NS(node), path}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &rnProc{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	rn.procs = append(rn.procs, p)
	return nil
}

// Join starts node (LateNode, its namespace made by Lab.AddLateNode) as a
// node joining the running cluster: the same containerd, kubelet and
// kube-proxy, the pause and hello images and nothing else, pod routes both
// ways; it returns once the node is Ready.
func (rn *RealNodes) Join(node string) error {
	if err := rn.startNode(node); err != nil {
		return fmt.Errorf("%s: %w", node, err)
	}
	return rn.waitReady(time.Minute)
}

// startNode starts node's containerd, kubelet and kube-proxy. Its
// containerd, like MicroK8s's, pulls from localhost:32000 (the registry
// addon's NodePort) over plain HTTP.
func (rn *RealNodes) startNode(node string) error {
	i, addr := nodeIndex(node), NodeAddr(node)
	// Short paths: a unix socket path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "mlb-"+node+"-")
	if err != nil {
		return err
	}
	rn.dirs = append(rn.dirs, dir)
	sock := filepath.Join(dir, "containerd.sock")
	files := map[string]string{
		"containerd.toml": fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, PauseImage, filepath.Join(dir, "cni"), filepath.Join(dir, "certs.d")),
		"certs.d/localhost:32000/hosts.toml": `server = "http://localhost:32000"

[host."http://localhost:32000"]
  capabilities = ["pull", "resolve"]
`,
		"cni/10-lab.conflist": fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "lab", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
`, PodCIDR(i), filepath.Join(dir, "ipam")),
		"kubelet.yaml": fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: unix://%s
address: %s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
authorization: {mode: Webhook}
resolvConf: ""
podLogsDir: %s
evictionHard: {memory.available: 1Mi}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
serializeImagePulls: false
`, sock, addr, filepath.Join(dir, "pod-logs")),
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	// Routes between this node's pods and those of the nodes already
	// started (host-gw style).
	for _, other := range rn.nodes {
		for _, r := range [][2]string{{node, other}, {other, node}} {
			from, to := r[0], r[1]
			if out, err := Exec(context.Background(), from, "ip", "route", "replace", PodCIDR(nodeIndex(to)), "via", NodeAddr(to)).CombinedOutput(); err != nil {
				return fmt.Errorf("route on %s to %s: %v: %s", from, PodCIDR(nodeIndex(to)), err, out)
			}
		}
	}
	rn.nodes = append(rn.nodes, node)
	// A node forwards (MicroK8s's CNI turns it on); the bridge plugin would
	// only once a pod of the pod network lands on the node, so a node that
	// runs nothing but its speaker could not carry a Service's traffic.
	if out, err := Exec(context.Background(), node, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		return fmt.Errorf("forwarding on: %v: %s", err, out)
	}
	if err := rn.run("containerd-"+node, node, "containerd", "--config", filepath.Join(dir, "containerd.toml")); err != nil {
		return err
	}
	ctr := []string{"ctr", "--address", sock, "--namespace", "k8s.io"}
	rn.Ctr[node] = ctr
	deadline := time.Now().Add(20 * time.Second)
	for testenv.Ctr(context.Background(), ctr, "version").Run() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not answer within 20s:\n%s", tail(readFile(filepath.Join(rn.Dir, "containerd-"+node+".log")), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, tar := range rn.tars {
		if out, err := testenv.Ctr(context.Background(), ctr, "image", "import", tar).CombinedOutput(); err != nil {
			return fmt.Errorf("import %s: %v: %s", filepath.Base(tar), err, out)
		}
	}
	if err := rn.run("kubelet-"+node, node, filepath.Join(rn.bin, "kubelet"),
		"--config="+filepath.Join(dir, "kubelet.yaml"), "--kubeconfig="+rn.env.Kubeconfig,
		"--root-dir="+filepath.Join(dir, "kubelet"), "--cert-dir="+filepath.Join(dir, "pki"),
		"--hostname-override="+node, "--node-ip="+addr, "--v=1"); err != nil {
		return err
	}
	return rn.run("kube-proxy-"+node, node, filepath.Join(rn.bin, "kube-proxy"),
		"--kubeconfig="+rn.env.Kubeconfig, "--hostname-override="+node, "--proxy-mode=iptables",
		"--cluster-cidr=10.1.0.0/16", "--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
		"--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256", "--v=1")
}

// waitReady waits until every node is registered and Ready.
func (rn *RealNodes) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ready := 0
		list, err := rn.env.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err == nil {
			for _, n := range list.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
		}
		if ready == len(rn.nodes) {
			return nil
		}
		for _, p := range rn.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited:\n%s", p.name, tail(readFile(p.log), 3000))
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d nodes Ready after %v", ready, len(rn.nodes), timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Log returns a component's log ("kubelet-node-a", "kube-scheduler", ...).
func (rn *RealNodes) Log(name string) string { return readFile(filepath.Join(rn.Dir, name+".log")) }

// running returns the containers running on node, by ID, with their host
// PIDs (ctr task ls).
func (rn *RealNodes) running(node string) (map[string]int, error) {
	out, err := testenv.Ctr(context.Background(), rn.Ctr[node], "task", "ls").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	tasks := map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		var pid int
		if f := strings.Fields(l); len(f) >= 3 && f[2] == "RUNNING" {
			if _, err := fmt.Sscan(f[1], &pid); err == nil && pid > 0 {
				tasks[f[0]] = pid
			}
		}
	}
	return tasks, nil
}

// ContainerPID returns the host PID of a running container
// ("containerd://ID") on node.
func (rn *RealNodes) ContainerPID(node, containerID string) (int, error) {
	tasks, err := rn.running(node)
	if err != nil {
		return 0, err
	}
	pid, ok := tasks[strings.TrimPrefix(containerID, "containerd://")]
	if !ok {
		return 0, fmt.Errorf("no task %s on %s", containerID, node)
	}
	return pid, nil
}

// Stop deletes every pod (so the kubelets tear their sandboxes down), then
// stops the nodes and removes what they left: mounts, pod network
// namespaces, files.
func (rn *RealNodes) Stop() {
	if rn.env != nil && rn.env.Client != nil && len(rn.procs) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		c := rn.env.Client
		if nss, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err == nil {
			zero := int64(0)
			del := metav1.DeleteOptions{GracePeriodSeconds: &zero}
			for _, ns := range nss.Items {
				// The workloads first, or their controllers make new pods.
				_ = c.AppsV1().Deployments(ns.Name).DeleteCollection(ctx, del, metav1.ListOptions{})
				_ = c.AppsV1().DaemonSets(ns.Name).DeleteCollection(ctx, del, metav1.ListOptions{})
				_ = c.AppsV1().ReplicaSets(ns.Name).DeleteCollection(ctx, del, metav1.ListOptions{})
				_ = c.CoreV1().Pods(ns.Name).DeleteCollection(ctx, del, metav1.ListOptions{})
			}
		}
		for ctx.Err() == nil && len(rn.tasks()) > 0 {
			time.Sleep(250 * time.Millisecond)
		}
		cancel()
	}
	// What the kubelets did not stop dies here: a container's processes
	// outlive containerd and its shim.
	for _, pid := range rn.tasks() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, p := range slices.Backward(rn.procs) {
		testenv.StopGroup(p.cmd.Process.Pid, p.done, 5*time.Second)
	}
	// Shims and containers outlive containerd: kill what runs from our dirs.
	for _, dir := range rn.dirs {
		killMatching(dir)
	}
	testenv.UnmountUnder(append(slices.Clone(rn.dirs), rn.Dir)...)
	if ents, err := os.ReadDir("/var/run/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "cni-") && !rn.netnsPre[e.Name()] {
				_ = exec.Command("ip", "netns", "delete", e.Name()).Run()
			}
		}
	}
	for _, dir := range rn.dirs {
		_ = os.RemoveAll(dir)
	}
	if rn.Dir != "" {
		_ = os.RemoveAll(rn.Dir)
	}
}

// RunningImages returns the images of the containers running on node.
func (rn *RealNodes) RunningImages(node string) []string {
	images := map[string]string{}
	out, _ := testenv.Ctr(context.Background(), rn.Ctr[node], "container", "ls").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			images[f[0]] = f[1]
		}
	}
	tasks, _ := rn.running(node)
	var imgs []string
	for id := range tasks {
		imgs = append(imgs, images[id])
	}
	slices.Sort(imgs)
	return imgs
}

// tasks returns the host PIDs of the containers running on the nodes.
func (rn *RealNodes) tasks() []int {
	var pids []int
	for node := range rn.Ctr {
		tasks, _ := rn.running(node)
		for _, pid := range tasks {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killMatching kills every process whose command line mentions dir.
func killMatching(dir string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// CreateHello makes the Service default/hello (LoadBalancer, port 80) and
// its pod on node-b, from the lab's hello image.
func CreateHello(ctx context.Context, c kubernetes.Interface) error {
	labels := map[string]string{"app": "hello"}
	one := int32(1)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"kubernetes.io/hostname": "node-b"},
				Containers: []corev1.Container{{Name: "hello", Image: HelloImage, ImagePullPolicy: corev1.PullNever, Args: []string{"serve"},
					Env:            []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
					Ports:          []corev1.ContainerPort{{ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
				}},
			}}},
	}
	if _, err := c.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: labels,
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}}
	_, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	return err
}
