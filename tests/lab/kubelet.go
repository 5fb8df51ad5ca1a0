package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubelet stands in for the kubelets of the lab's nodes, for the metallb
// workloads only: it runs the controller Deployment's and the speaker
// DaemonSet's pods as processes in the node namespaces, exactly as their pod
// templates say (command, args, env resolved from the downward API and
// Secrets; the container's "/metallb" is this checkout's binary; KUBECONFIG
// holds a token of the pod's ServiceAccount, so RBAC applies as in the
// cluster), waits for their readiness
// probe, and reports the workloads' status as the real controllers would.
//
// With Run false it starts nothing and only reports the workloads ready.
type Kubelet struct {
	Client         kubernetes.Interface
	Namespace      string
	Binary         string
	Kubeconfig     string
	Nodes          []string // speaker nodes (lab host names)
	ControllerNode string   // lab host the controller pod runs on
	Run            bool
	LogDir         string
	Logf           func(format string, args ...any)

	mu    sync.Mutex
	procs map[string]*proc // "controller" or "speaker/<node>"
}

type proc struct {
	cmd        *exec.Cmd
	generation int64
	log        *os.File
	exited     chan struct{}
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Start runs the stand-in until ctx ends; the returned func stops every
// process it started and waits for the loop to end.
func (k *Kubelet) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	k.procs = map[string]*proc{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			k.sync(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return func() {
		cancel()
		<-done
		k.mu.Lock()
		defer k.mu.Unlock()
		for key := range k.procs {
			k.kill(key)
		}
	}
}

func (k *Kubelet) logf(format string, args ...any) {
	if k.Logf != nil {
		k.Logf(format, args...)
	}
}

func (k *Kubelet) sync(ctx context.Context) {
	apps := k.Client.AppsV1()
	d, err := apps.Deployments(k.Namespace).Get(ctx, "metallb-controller", metav1.GetOptions{})
	switch {
	case err == nil:
		if k.ensure(ctx, "controller", k.ControllerNode, d.Generation, d.Spec.Template.Spec) {
			k.deploymentReady(ctx, d)
		}
	case apierrors.IsNotFound(err):
		k.stop("controller")
	}
	ds, err := apps.DaemonSets(k.Namespace).Get(ctx, "metallb-speaker", metav1.GetOptions{})
	switch {
	case err == nil:
		ready := 0
		for _, n := range k.Nodes {
			if k.ensure(ctx, "speaker/"+n, n, ds.Generation, ds.Spec.Template.Spec) {
				ready++
			}
		}
		k.daemonSetStatus(ctx, ds, ready)
	case apierrors.IsNotFound(err):
		for _, n := range k.Nodes {
			k.stop("speaker/" + n)
		}
	}
}

// ensure runs the pod of generation gen on node (restarting an older one)
// and says whether it is ready.
func (k *Kubelet) ensure(ctx context.Context, key, node string, gen int64, spec corev1.PodSpec) bool {
	if !k.Run {
		return true
	}
	k.mu.Lock()
	p := k.procs[key]
	if p != nil && (p.generation != gen || p.done()) {
		k.logf("kubelet: restarting %s (generation %d)", key, gen)
		k.kill(key)
		p = nil
	}
	k.mu.Unlock()
	if p == nil {
		if err := k.start(ctx, key, node, gen, spec); err != nil {
			k.logf("kubelet: %s: %v", key, err)
			return false
		}
		return false
	}
	c := spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		return true
	}
	port := c.ReadinessProbe.HTTPGet.Port.IntValue()
	for _, cp := range c.Ports {
		if cp.Name == c.ReadinessProbe.HTTPGet.Port.String() {
			port = int(cp.ContainerPort)
		}
	}
	// A real kubelet probes the pod's IP, which for these host-network
	// pods is the node's address (the speaker binds its ports there).
	ip, err := k.nodeIP(ctx, node)
	if err != nil {
		k.logf("kubelet: %s: %v", key, err)
		return false
	}
	body, err := HTTPGet(node, net.JoinHostPort(ip, strconv.Itoa(port)), c.ReadinessProbe.HTTPGet.Path)
	return err == nil && strings.Contains(body, " 200 ")
}

// nodeIP is the node's first InternalIP, what the downward API's
// status.hostIP gives its pods.
func (k *Kubelet) nodeIP(ctx context.Context, node string) (string, error) {
	n, err := k.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address, nil
		}
	}
	return "", fmt.Errorf("node %s has no InternalIP", node)
}

func (k *Kubelet) start(ctx context.Context, key, node string, gen int64, spec corev1.PodSpec) error {
	c := spec.Containers[0]
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 || argv[0] != "/metallb" {
		return fmt.Errorf("container runs %q, not /metallb", argv)
	}
	argv[0] = k.Binary
	kubeconfig, err := k.podKubeconfig(ctx, key, spec.ServiceAccountName)
	if err != nil {
		return err
	}
	env := []string{"KUBECONFIG=" + kubeconfig, "PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		v := e.Value
		if f := e.ValueFrom; f != nil {
			switch {
			case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.namespace":
				v = k.Namespace
			case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.name":
				// One name per workload and node: this kubelet kills a
				// pod's process before it starts the next, as a real one
				// does for a container it restarts.
				v = strings.ReplaceAll(key, "/", "-")
			case f.FieldRef != nil && f.FieldRef.FieldPath == "spec.nodeName":
				v = node
			case f.FieldRef != nil && f.FieldRef.FieldPath == "status.hostIP":
				ip, err := k.nodeIP(ctx, node)
				if err != nil {
					return fmt.Errorf("env %s: %w", e.Name, err)
				}
				v = ip
			case f.SecretKeyRef != nil:
				s, err := k.Client.CoreV1().Secrets(k.Namespace).Get(ctx, f.SecretKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("env %s: %w", e.Name, err) // the Secret may come later: retried
				}
				v = string(s.Data[f.SecretKeyRef.Key])
			default:
				return fmt.Errorf("env %s: unsupported valueFrom", e.Name)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", NS(node)}, argv...)...)
	cmd.Env = env
	logName := strings.ReplaceAll(key, "/", "-") + ".log"
	f, err := os.OpenFile(filepath.Join(k.LogDir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	k.logf("kubelet: started %s on %s: %s", key, node, strings.Join(c.Args, " "))
	k.mu.Lock()
	k.procs[key] = &proc{cmd: cmd, generation: gen, log: f, exited: exited}
	k.mu.Unlock()
	return nil
}

// podKubeconfig stands in for the in-cluster service account: a kubeconfig
// with a token of the pod's ServiceAccount (TokenRequest), so the process has
// exactly the permissions the manifests' RBAC grants it.
func (k *Kubelet) podKubeconfig(ctx context.Context, key, sa string) (string, error) {
	if sa == "" {
		return "", fmt.Errorf("the pod template names no serviceAccountName")
	}
	exp := int64(3600)
	tok, err := k.Client.CoreV1().ServiceAccounts(k.Namespace).CreateToken(ctx, sa,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s: %w", sa, err) // retried: the account may come later
	}
	cfg, err := clientcmd.LoadFromFile(k.Kubeconfig)
	if err != nil {
		return "", err
	}
	for name := range cfg.AuthInfos {
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	}
	path := filepath.Join(k.LogDir, strings.ReplaceAll(key, "/", "-")+".kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

func (k *Kubelet) stop(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.procs[key]; ok {
		k.logf("kubelet: stopping %s (its workload is gone)", key)
		k.kill(key)
	}
}

// kill ends a process; k.mu must be held.
func (k *Kubelet) kill(key string) {
	p := k.procs[key]
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(2 * time.Second):
	}
	p.log.Close()
	delete(k.procs, key)
}

func (k *Kubelet) deploymentReady(ctx context.Context, d *appsv1.Deployment) {
	if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == 1 {
		return
	}
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
			Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
	}
	if _, err := k.Client.AppsV1().Deployments(k.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
		k.logf("kubelet: deployment status: %v", err)
	}
}

func (k *Kubelet) daemonSetStatus(ctx context.Context, ds *appsv1.DaemonSet, ready int) {
	n := int32(len(k.Nodes))
	want := appsv1.DaemonSetStatus{
		ObservedGeneration: ds.Generation, DesiredNumberScheduled: n, CurrentNumberScheduled: n,
		UpdatedNumberScheduled: n, NumberReady: int32(ready), NumberAvailable: int32(ready),
	}
	if ds.Status.ObservedGeneration == want.ObservedGeneration && ds.Status.NumberAvailable == want.NumberAvailable &&
		ds.Status.DesiredNumberScheduled == n {
		return
	}
	ds.Status = want
	if _, err := k.Client.AppsV1().DaemonSets(k.Namespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
		k.logf("kubelet: daemonset status: %v", err)
	}
}
