// Package testenv starts a real Kubernetes control plane for tests: etcd,
// kube-apiserver and kube-controller-manager, built by
// scripts/build-controlplane.sh and cached outside the clone. Everything binds
// to one address (loopback by default, or an address of a lab bridge) on free
// ports, and Stop removes every process and file it started.
//
// There is no kubelet: tests create Nodes themselves and set Pod spec.nodeName
// and status through the API.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoBinaries means the control-plane binaries are not built yet.
var ErrNoBinaries = errors.New("control-plane binaries not built: run scripts/build-controlplane.sh")

// Options configure a control plane. The zero value binds to 127.0.0.1.
type Options struct {
	// BinDir holds etcd, kube-apiserver and kube-controller-manager. Empty: the
	// directory scripts/build-controlplane.sh prints (METALLB_CP_BIN overrides).
	BinDir string
	// Address to bind every component to. Empty: 127.0.0.1.
	Address string
	// Dir for data, certificates and logs. Empty: a new temporary directory,
	// removed by Stop.
	Dir string
	// ServiceCIDRs for --service-cluster-ip-range. Empty: an IPv4 /16 and an
	// IPv6 /108, room for thousands of dual-stack Services.
	ServiceCIDRs string
	// Stderr receives component logs when set (they always go to files in Dir).
	Stderr *os.File
	// HA runs the datastore the way a MicroK8s HA cluster does (k8s-dqlite):
	// two kube-apiservers, each on its own kine over one shared SQLite file.
	// A write through one API server reaches the other's watchers only at
	// kine's next poll of the database (1 s). Kubeconfig2 and Client2 reach
	// the second one.
	HA bool
	// Workloads readies the control plane for real kubelets: the
	// controllers of Deployments, ReplicaSets and DaemonSets, the root CA
	// publisher, the node lifecycle controller (it lifts the not-ready
	// taint a kubelet registers with), and the ServiceAccount admission
	// (pods get their token). Admission webhooks are off: this API server
	// runs in the host's network namespace, where no ClusterIP or pod
	// address is routed, so a webhook call would leave through the host's
	// default route (the webhook is tested on loopback, without Workloads).
	Workloads bool
}

// Env is a running control plane.
type Env struct {
	// Kubeconfig is the path of an admin kubeconfig for this control plane.
	Kubeconfig string
	// Config is a rest.Config with admin rights.
	Config *rest.Config
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	// Dir holds data, certificates and logs (<component>.log).
	Dir string
	// APIServerURL is https://ADDRESS:PORT.
	APIServerURL string
	// Kubeconfig2 and Client2: the second API server (Options.HA), else
	// the same as Kubeconfig and Client.
	Kubeconfig2 string
	Client2     kubernetes.Interface

	removeDir bool
	mu        sync.Mutex
	procs     []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start builds nothing: it starts the cached binaries and returns when the API
// server is ready and kube-controller-manager runs. On error it has already
// cleaned up what it started.
func Start(ctx context.Context, opts Options) (env *Env, err error) {
	bin, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	addr := opts.Address
	if addr == "" {
		addr = "127.0.0.1"
	}
	env = &Env{Dir: opts.Dir}
	if env.Dir == "" {
		env.Dir, err = os.MkdirTemp("", "metallb-testenv-")
		if err != nil {
			return nil, fmt.Errorf("create work directory: %w", err)
		}
		env.removeDir = true
	}
	defer func() {
		if err != nil {
			env.Stop()
			env = nil
		}
	}()
	logOut := opts.Stderr

	ports, err := freePorts(addr, 5)
	if err != nil {
		return env, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]

	hostPort := func(p int) string { return net.JoinHostPort(addr, strconv.Itoa(p)) }
	etcdURL := "http://" + hostPort(etcdClient)
	etcdURL2 := etcdURL
	if opts.HA {
		if _, err := os.Stat(filepath.Join(bin, "kine")); err != nil {
			return env, fmt.Errorf("%w (kine missing in %s)", ErrNoBinaries, bin)
		}
		// Two kines on one database: each its own listener (and no metrics
		// listener: both would take :8080).
		db := "sqlite://" + filepath.Join(env.Dir, "state.db") + "?_journal=WAL&cache=shared&_busy_timeout=30000"
		etcdURL2 = "http://" + hostPort(etcdPeer)
		for i, u := range []string{etcdURL, etcdURL2} {
			if err := env.start(ctx, fmt.Sprintf("kine%d", i+1), filepath.Join(bin, "kine"), logOut,
				"--endpoint="+db, "--listen-address="+strings.TrimPrefix(u, "http://"), "--metrics-bind-address=0",
			); err != nil {
				return env, err
			}
		}
	} else if err := env.start(ctx, "etcd", filepath.Join(bin, "etcd"), logOut,
		"--data-dir="+filepath.Join(env.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls=http://"+hostPort(etcdPeer),
		"--initial-advertise-peer-urls=http://"+hostPort(etcdPeer),
		"--initial-cluster=default=http://"+hostPort(etcdPeer),
		"--unsafe-no-fsync", // test data: durability is not the point, speed is
		"--log-level=warn",
	); err != nil {
		return env, err
	}

	token, err := randomHex(16)
	if err != nil {
		return env, err
	}
	tokens := filepath.Join(env.Dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return env, fmt.Errorf("write token file: %w", err)
	}
	saKey := filepath.Join(env.Dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return env, err
	}
	certDir := filepath.Join(env.Dir, "certs")
	cidrs := opts.ServiceCIDRs
	if cidrs == "" {
		cidrs = "10.96.0.0/16,fd00:10:96::/108"
	}
	env.APIServerURL = "https://" + hostPort(apiPort)
	disableAdmission := "--disable-admission-plugins=ServiceAccount"
	if opts.Workloads {
		disableAdmission = "--disable-admission-plugins=ValidatingAdmissionWebhook,MutatingAdmissionWebhook"
	}
	apiserver := func(name, etcd string, port int, certDir string) error {
		return env.start(ctx, name, filepath.Join(bin, "kube-apiserver"), logOut,
			"--etcd-servers="+etcd,
			"--bind-address="+addr,
			"--advertise-address="+addr,
			"--secure-port="+strconv.Itoa(port),
			"--cert-dir="+certDir,
			"--token-auth-file="+tokens,
			"--authorization-mode=RBAC",
			"--service-account-key-file="+saKey,
			"--service-account-signing-key-file="+saKey,
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-cluster-ip-range="+cidrs,
			"--allow-privileged=true",
			// Without a kubelet nothing mounts tokens; tests create Pods right after
			// their namespace, before the default ServiceAccount exists.
			disableAdmission,
			"--max-requests-inflight=2000",
			"--max-mutating-requests-inflight=1000",
			"--v=0",
		)
	}
	if err := apiserver("kube-apiserver", etcdURL, apiPort, certDir); err != nil {
		return env, err
	}

	env.Config = &rest.Config{
		Host:        env.APIServerURL,
		BearerToken: token,
		QPS:         1000,
		Burst:       2000,
	}
	if err := env.waitReady(ctx, token); err != nil {
		return env, err
	}
	// The serving certificate is self-signed and written once the server is up.
	ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		return env, fmt.Errorf("read serving certificate: %w", err)
	}
	env.Config.TLSClientConfig = rest.TLSClientConfig{CAData: ca}
	env.Kubeconfig = filepath.Join(env.Dir, "kubeconfig")
	if err := writeKubeconfig(env.Kubeconfig, env.APIServerURL, ca, token); err != nil {
		return env, err
	}
	env.Client, err = kubernetes.NewForConfig(env.Config)
	if err != nil {
		return env, fmt.Errorf("build clientset: %w", err)
	}
	env.Kubeconfig2, env.Client2 = env.Kubeconfig, env.Client
	if opts.HA {
		certDir2 := filepath.Join(env.Dir, "certs2")
		url2 := "https://" + hostPort(ports[3])
		if err := apiserver("kube-apiserver2", etcdURL2, ports[3], certDir2); err != nil {
			return env, err
		}
		cfg2 := rest.CopyConfig(env.Config)
		cfg2.Host = url2
		if err := env.waitReadyAt(ctx, url2, token); err != nil {
			return env, err
		}
		ca2, err := os.ReadFile(filepath.Join(certDir2, "apiserver.crt"))
		if err != nil {
			return env, fmt.Errorf("read serving certificate: %w", err)
		}
		cfg2.TLSClientConfig = rest.TLSClientConfig{CAData: ca2}
		env.Kubeconfig2 = filepath.Join(env.Dir, "kubeconfig2")
		if err := writeKubeconfig(env.Kubeconfig2, url2, ca2, token); err != nil {
			return env, err
		}
		if env.Client2, err = kubernetes.NewForConfig(cfg2); err != nil {
			return env, fmt.Errorf("build clientset: %w", err)
		}
	}

	controllers := "namespace-controller,serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller,endpointslice-controller,resourcequota-controller"
	var kcmExtra []string
	if opts.Workloads {
		controllers += ",deployment-controller,replicaset-controller,daemonset-controller,root-ca-certificate-publisher-controller,node-lifecycle-controller"
		kcmExtra = append(kcmExtra, "--root-ca-file="+filepath.Join(certDir, "apiserver.crt"))
	}
	if err := env.start(ctx, "kube-controller-manager", filepath.Join(bin, "kube-controller-manager"), logOut, append([]string{
		"--kubeconfig=" + env.Kubeconfig,
		"--authentication-kubeconfig=" + env.Kubeconfig,
		"--authorization-kubeconfig=" + env.Kubeconfig,
		"--controllers=" + controllers,
		"--service-account-private-key-file=" + saKey,
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--bind-address=" + addr,
		"--secure-port=0",
		// The defaults (20 QPS) make the endpointslice controller the bottleneck
		// of any benchmark with hundreds of Services.
		"--kube-api-qps=1000",
		"--kube-api-burst=2000",
		"--concurrent-service-endpoint-syncs=10",
		"--v=0",
	}, kcmExtra...)...); err != nil {
		return env, err
	}
	return env, nil
}

// Stop kills every component (SIGTERM, then SIGKILL after 10 s) and removes the
// work directory if Start created it. It is safe to call more than once.
func (e *Env) Stop() {
	if e == nil {
		return
	}
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		StopGroup(procs[i].cmd.Process.Pid, procs[i].done, 10*time.Second)
	}
	if e.removeDir && e.Dir != "" {
		_ = os.RemoveAll(e.Dir)
	}
}

// Logs returns the tail of a component's log, for failure messages.
func (e *Env) Logs(component string, maxBytes int) string {
	b, err := os.ReadFile(filepath.Join(e.Dir, component+".log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	return string(b)
}

func (e *Env) start(ctx context.Context, name, path string, extra *os.File, args ...string) error {
	logf, err := os.Create(filepath.Join(e.Dir, name+".log"))
	if err != nil {
		return fmt.Errorf("create %s log: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	if extra != nil {
		cmd.Stdout = io.MultiWriter(logf, extra)
		cmd.Stderr = cmd.Stdout
	} else {
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	// Own process group, and killed with us if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	// Catch components that die at once (bad flag, port taken).
	select {
	case <-p.done:
		return fmt.Errorf("%s exited at start (%v); its log:\n%s", name, p.err, e.Logs(name, 4000))
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (e *Env) waitReady(ctx context.Context, token string) error {
	return e.waitReadyAt(ctx, e.APIServerURL, token)
}

func (e *Env) waitReadyAt(ctx context.Context, url, token string) error {
	client := &http.Client{
		Timeout: 2 * time.Second,
		// Only the readiness poll skips verification: the certificate does not
		// exist until the server has started.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec
	}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		for _, p := range e.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited (%v); its log:\n%s", p.name, p.err, e.Logs(p.name, 4000))
			default:
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, body[:n])
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-apiserver %s not ready after 90 s (last: %s); its log:\n%s", url, last, e.Logs("kube-apiserver", 4000))
}

// resolveBinDir finds the cached binaries: an explicit dir, METALLB_CP_BIN, or
// the directory the build script reports.
func resolveBinDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("METALLB_CP_BIN")
	}
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		out, err := exec.Command(filepath.Join(root, "scripts", "build-controlplane.sh"), "--print-bin-dir").Output()
		if err != nil {
			return "", fmt.Errorf("ask scripts/build-controlplane.sh for the bin dir: %w", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(dir, c)); err != nil {
			return "", fmt.Errorf("%w (%s missing in %s)", ErrNoBinaries, c, dir)
		}
	}
	return dir, nil
}

// RepoRoot returns the checkout's root directory, found upwards from the
// working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "build-controlplane.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (scripts/build-controlplane.sh) above the working directory")
		}
		dir = parent
	}
}

func freePorts(addr string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err != nil {
			return nil, fmt.Errorf("find a free port on %s: %w", addr, err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service-account key: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write service-account key: %w", err)
	}
	return nil
}

func writeKubeconfig(path, server string, ca []byte, token string) error {
	cfg := clientcmdConfig(server, ca, token)
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// PID returns the process ID of a component ("etcd", "kube-apiserver", ...),
// or 0.
func (e *Env) PID(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.procs {
		if p.name == name {
			return p.cmd.Process.Pid
		}
	}
	return 0
}

// BinDir returns the directory of the cached control-plane binaries (see
// Options.BinDir).
func BinDir() (string, error) { return resolveBinDir("") }
