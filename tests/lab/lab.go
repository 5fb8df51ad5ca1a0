// Package lab runs the project against real network namespaces: a bridge,
// three node namespaces and a client namespace (scripts/lab.sh), a real
// control plane bound to the bridge, the controller, and one speaker process
// per node namespace. Tests need root and arping; without them they skip,
// except under CI=true, where they fail.
package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/election"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// Prefix of every lab name (scripts/lab.sh LAB_PREFIX); the demo uses its
// own so that it never touches a test's lab.
var Prefix = "mlbt"

// Nodes of the lab.
var Nodes = []string{"node-a", "node-b", "node-c"}

// LateNode joins a running cluster: scripts/lab.sh makes its namespace
// only on demand (Lab.AddLateNode), so every other test sees three nodes.
const LateNode = "node-d"

// nodeIndex numbers the lab's nodes from 0: Nodes, then LateNode.
func nodeIndex(node string) int {
	if node == LateNode {
		return len(Nodes)
	}
	i := slices.Index(Nodes, node)
	if i < 0 {
		panic("no lab node " + node)
	}
	return i
}

// NodeAddr is a node's address on the bridge, and every test's one source
// of it (scripts/lab.sh numbers node-a .11, node-b .12, node-c .13, the
// late node-d .14).
func NodeAddr(node string) string { return fmt.Sprintf("198.51.100.%d", 11+nodeIndex(node)) }

// Lab is a running lab.
type Lab struct {
	Root string
	MACs map[string]string // namespace short name → eth0 MAC
}

// NS returns the namespace name of a lab host.
func NS(host string) string { return Prefix + "-" + host }

// Require skips (or fails under CI) when the lab cannot run here.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"ip", "arping"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("the network lab needs %s (run scripts/test.sh as root: it installs iputils-arping)", strings.Join(missing, ", "))
	if testenv.InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Up creates the lab and deletes it when the test ends, even on failure.
func Up(t testing.TB) *Lab {
	t.Helper()
	t.Cleanup(func() {
		if err := Down(); err != nil {
			t.Error(err)
		}
	})
	l, err := Create()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func labScript(args ...string) (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "lab.sh"), args...)
	cmd.Env = append(os.Environ(), "LAB_PREFIX="+Prefix)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("lab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// AddLateNode makes LateNode's namespace on the bridge (Down deletes it
// with the rest) and records its MAC.
func (l *Lab) AddLateNode() error {
	if _, err := labScript("add", LateNode); err != nil {
		return err
	}
	return l.readMACs()
}

// AddSegment makes the second segment (scripts/lab.sh segment): eth1 on
// each node at 203.0.113.NUMBER/24 (MAC 02:00:00:00:01:NUMBER) and the
// host client2 at .100; Down deletes it with the rest.
func (l *Lab) AddSegment() error {
	_, err := labScript("segment")
	return err
}

// Eth1MAC is a node's MAC on the second segment.
func Eth1MAC(node string) string { return fmt.Sprintf("02:00:00:00:01:%02x", 11+nodeIndex(node)) }

// readMACs fills l.MACs from scripts/lab.sh macs.
func (l *Lab) readMACs() error {
	out, err := labScript("macs")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			l.MACs[f[0]] = strings.ToLower(f[1])
		}
	}
	return nil
}

// Create makes the lab (scripts/lab.sh up); call Down when done.
func Create() (*Lab, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	if _, err := labScript("up"); err != nil {
		return nil, err
	}
	l := &Lab{Root: root, MACs: map[string]string{}}
	return l, l.readMACs()
}

// Down deletes everything the lab created.
func Down() error {
	_, err := labScript("down")
	return err
}

// CreateNodes creates the lab's nodes in the API, Ready, each with its lab
// address as InternalIP: there is no kubelet to do it.
func CreateNodes(ctx context.Context, c kubernetes.Interface) error {
	for i, n := range Nodes {
		node, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n,
			Labels: map[string]string{"kubernetes.io/hostname": n, "kubernetes.io/os": "linux"}}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("198.51.100.%d", 11+i)}}
		node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
		if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// UpWithControlPlane creates the lab, a control plane listening on the
// bridge (198.51.100.1) and the lab's Nodes; all go when the test ends.
func UpWithControlPlane(t testing.TB) (*Lab, *testenv.Env) {
	t.Helper()
	return UpWithControlPlaneOpts(t, false)
}

// UpWithControlPlaneOpts is UpWithControlPlane, with the MicroK8s-HA-like
// datastore when ha (testenv.Options.HA).
func UpWithControlPlaneOpts(t testing.TB, ha bool) (*Lab, *testenv.Env) {
	t.Helper()
	Require(t)
	l := Up(t)
	env, err := testenv.Start(context.Background(), testenv.Options{Address: "198.51.100.1", HA: ha})
	if err != nil {
		if !testenv.InCI() && strings.Contains(err.Error(), "not built") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	if err := CreateNodes(context.Background(), env.Client); err != nil {
		t.Fatal(err)
	}
	return l, env
}

// DeliverVIP stands in for kube-proxy: every node holds ip on lo and answers
// TCP on port 8080 with its name.
func DeliverVIP(t testing.TB, ip string) {
	t.Helper()
	bits := "/32"
	if strings.Contains(ip, ":") {
		bits = "/128"
	}
	for _, n := range Nodes {
		Serve(t, n, 8080)
		if out, err := Exec(context.Background(), n, "ip", "addr", "add", ip+bits, "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", n, err, out)
		}
	}
}

// Exec runs a command in a lab namespace.
func Exec(ctx context.Context, host string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", NS(host)}, args...)...)
}

// In runs fn with the calling goroutine's thread in a lab namespace: sockets
// made inside stay in that namespace.
func In(host string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + NS(host))
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter %s: %w", NS(host), err)
	}
	defer func() { _ = unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) }()
	return fn()
}

// Serve answers every TCP connection to port in a node namespace with the
// node's name: a stand-in for kube-proxy delivering VIP:port to a pod.
func Serve(t testing.TB, host string, port int) {
	t.Helper()
	l, err := Listen(host, port, host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

// Listen serves reply on every TCP connection to port in a lab host until
// the returned listener is closed.
func Listen(host string, port int, reply string) (net.Listener, error) {
	var l net.Listener
	if err := In(host, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(reply + "\n"))
			c.Close()
		}
	}()
	return l, nil
}

// waitServiceIP waits for a Service's first load-balancer address.
func waitServiceIP(t testing.TB, c kubernetes.Interface, ns, name string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
			return s.Status.LoadBalancer.Ingress[0].IP
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s/%s got no IP: %v", ns, name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DialUntil retries a TCP request from a lab host until it gets an answer.
func DialUntil(host, addr string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		reply, err := Dial(host, addr, 2*time.Second)
		if err == nil {
			return strings.TrimSpace(reply), nil
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Dial connects from a lab host and returns what the server said.
func Dial(host, addr string, timeout time.Duration) (string, error) {
	var reply string
	err := In(host, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		reply = strings.TrimSpace(string(buf[:n]))
		return err
	})
	return reply, err
}

// Arping sends count broadcast ARP requests (-b: never switch to unicast, so
// a new owner is noticed) from the client and fails the test if arping
// cannot run (ArpingErr).
func Arping(tb testing.TB, ctx context.Context, ip string, count int) (map[string]int, string) {
	tb.Helper()
	macs, out, err := ArpingErr(ctx, ip, count)
	if err != nil {
		tb.Errorf("%v\n%s", err, out)
	}
	return macs, out
}

// ArpingErr is Arping that returns the MACs that replied, arping's output,
// and an error when arping failed otherwise than by getting no reply: it
// exits 0 with replies and 1 without; anything else (it could not run, no
// such interface, no permission) must not read as "no reply", which
// negative checks accept.
func ArpingErr(ctx context.Context, ip string, count int) (map[string]int, string, error) {
	return ArpingFrom(ctx, "client", ip, count)
}

// ArpingFrom is ArpingErr from another lab host's eth0 (client2, on the
// second segment).
func ArpingFrom(ctx context.Context, host, ip string, count int) (map[string]int, string, error) {
	b, err := Exec(ctx, host, "arping", "-b", "-c", fmt.Sprint(count), "-w", fmt.Sprint(count+1), "-I", "eth0", ip).CombinedOutput()
	out := string(b)
	var exit *exec.ExitError
	if err != nil && ctx.Err() == nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		err = fmt.Errorf("arping %s: %w", ip, err)
	} else {
		err = nil
	}
	macs := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if i, j := strings.Index(line, "["), strings.Index(line, "]"); strings.Contains(line, "reply from") && i >= 0 && j > i {
			macs[strings.ToLower(line[i+1:j])]++
		}
	}
	return macs, out, err
}

// StartProcess runs a command in a lab namespace, logging to a file; it is
// killed when the test ends.
func StartProcess(t testing.TB, host, logName string, args ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := StartProcessLog(t, host, logName, args...)
	return cmd
}

// StartProcessLog is StartProcess that also returns the log's path.
func StartProcessLog(t testing.TB, host, logName string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", NS(host)}, args...)...)
	logPath := filepath.Join(t.TempDir(), logName)
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("%s log:\n%s", logName, b)
		}
	})
	return cmd, logPath
}

// HTTPSGet is HTTPGet over TLS (any certificate), with a bearer token when
// token is not empty.
func HTTPSGet(host, addr, path, token string) (string, error) {
	var body string
	err := In(host, func() error {
		raw, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a self-signed endpoint
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		auth := ""
		if token != "" {
			auth = "Authorization: Bearer " + token + "\r\n"
		}
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n%s\r\n", path, addr, auth); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		body = string(b)
		return err
	})
	return body, err
}

// HTTPGet fetches http://addr/path from inside a lab host (HTTP/1.0, so the
// socket is made and read on the namespaced thread).
func HTTPGet(host, addr, path string) (string, error) {
	var body string
	err := In(host, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		body = string(b)
		return err
	})
	return body, err
}

// saveProfile fetches path from the pprof handlers of node's speaker (run
// with --pprof --metrics-secure=false on :7473), from the client host, and
// writes the body to file.
func saveProfile(node, path, file string) error {
	return In("client", func() error {
		resp, err := (&http.Client{Timeout: time.Minute}).Get("http://" + NodeAddr(node) + ":7473" + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		body, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(file, body, 0o644)
		}
		return err
	})
}

// nextOwner is the node that owns ip once its owner among Nodes is gone
// (the runner-up of the election).
func nextOwner(ip netip.Addr) string { return election.Order(ip, Nodes)[1] }

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
