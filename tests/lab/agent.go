package lab

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/microk8s-metallb/metallb/pkg/image"
	"github.com/microk8s-metallb/metallb/tests/testenv"
)

// ClusterAgent stands in for MicroK8s's cluster agent on one lab node, for
// its image import endpoint only: HTTPS (a certificate from CA for the
// node's address, as MicroK8s's server.crt) on the node's address, port
// 25000, inside the node's network namespace; it checks the callback token
// and hands each tarball to Import (e.g. ctr image import into that node's
// containerd).
type ClusterAgent struct {
	Node   string
	Addr   string
	Token  string
	CA     *CA
	Import func(ctx context.Context, path string) (string, error)

	srv *http.Server
	mu  sync.Mutex
	got int
}

// Start listens in the node's namespace and serves until Stop.
func (a *ClusterAgent) Start() error {
	cert, err := a.CA.Issue(a.Addr)
	if err != nil {
		return err
	}
	var ln net.Listener
	if err := In(a.Node, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(a.Addr, fmt.Sprint(image.ClusterAgentPort)))
		return err
	}); err != nil {
		return fmt.Errorf("cluster agent on %s: %w", a.Node, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+image.ImportPath, a.importImage)
	a.srv = &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = a.srv.ServeTLS(ln, "", "") }()
	return nil
}

func (a *ClusterAgent) importImage(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(image.TokenHeader) != a.Token {
		http.Error(w, "Invalid token", http.StatusUnauthorized)
		return
	}
	f, err := os.CreateTemp("", "agent-import-*.tar")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer os.Remove(f.Name())
	_, err = io.Copy(f, r.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out, err := a.Import(r.Context(), f.Name())
	if err != nil {
		http.Error(w, fmt.Sprintf("%v: %s", err, out), http.StatusInternalServerError)
		return
	}
	a.mu.Lock()
	a.got++
	a.mu.Unlock()
	fmt.Fprint(w, out)
}

// Imports is how many images the agent imported.
func (a *ClusterAgent) Imports() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got
}

// Stop closes the agent.
func (a *ClusterAgent) Stop() {
	if a.srv != nil {
		_ = a.srv.Close()
	}
}

// CtrImport imports with a containerd client command (ctr ... image import).
func CtrImport(ctr []string) func(ctx context.Context, path string) (string, error) {
	return func(ctx context.Context, path string) (string, error) {
		out, err := testenv.Ctr(ctx, ctr, "image", "import", path).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
}

// NodeImages gives every lab node its own containerd (a private one, as
// testenv.StartContainerd makes) behind a stand-in cluster agent, so that
// an image import reaches each node's real containerd the MicroK8s way.
// Without containerd on this machine, the agents keep each tarball as
// DIR/imported-NODE.tar instead.
type NodeImages struct {
	Agents []*ClusterAgent
	Ctr    map[string][]string // node → its containerd's client; none when recording
	Dir    string
	own    []*testenv.Containerd
}

// StartNodeImages starts an agent (and a containerd, when there is one) for
// every lab node, accepting the snap's token, with a certificate from its CA.
func StartNodeImages(snap *Snap, dir string) (*NodeImages, error) {
	ctrs := map[string][]string{}
	var own []*testenv.Containerd
	if testenv.ContainerdMissing() == "" {
		for _, node := range Nodes {
			cd, err := testenv.StartContainerd()
			if err != nil {
				for _, c := range own {
					c.Stop()
				}
				return nil, err
			}
			own = append(own, cd)
			ctrs[node] = cd.Ctr
		}
	}
	ni, err := StartAgents(snap, dir, ctrs)
	if ni != nil {
		ni.own = own
	}
	return ni, err
}

// StartAgents starts an agent on every lab node that imports into that
// node's containerd (ctrs), or records the tarball when it has none; each
// accepts the snap's token and has a certificate from the snap's CA.
func StartAgents(snap *Snap, dir string, ctrs map[string][]string) (*NodeImages, error) {
	ni := &NodeImages{Ctr: ctrs, Dir: dir}
	for i, node := range Nodes {
		imp := func(_ context.Context, path string) (string, error) {
			return "recorded", copyFile(path, filepath.Join(dir, "imported-"+node+".tar"))
		}
		if ctr, ok := ctrs[node]; ok {
			imp = CtrImport(ctr)
		}
		a := &ClusterAgent{Node: node, Addr: fmt.Sprintf("198.51.100.%d", 11+i), Token: snap.Token, CA: snap.CA, Import: imp}
		if err := a.Start(); err != nil {
			ni.Stop()
			return nil, err
		}
		ni.Agents = append(ni.Agents, a)
	}
	return ni, nil
}

// Has reports whether node's containerd holds ref (or, recording, whether
// the node got a tarball).
func (ni *NodeImages) Has(node, ref string) (bool, error) {
	ctr, ok := ni.Ctr[node]
	if !ok {
		fi, err := os.Stat(filepath.Join(ni.Dir, "imported-"+node+".tar"))
		return err == nil && fi.Size() > 1<<20, nil
	}
	out, err := testenv.Ctr(context.Background(), ctr, "image", "ls", "-q").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("%v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == ref {
			return true, nil
		}
	}
	return false, nil
}

// Stop stops the agents and containerds and removes their files.
func (ni *NodeImages) Stop() {
	for _, a := range ni.Agents {
		a.Stop()
	}
	for _, cd := range ni.own {
		cd.Stop()
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
