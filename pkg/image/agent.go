package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/terminal"
)

// ClusterAgentPort is where MicroK8s's cluster agent listens on every node.
const ClusterAgentPort = 25000

// ImportPath is the cluster agent's image import endpoint.
const ImportPath = "/cluster/api/v2.0/image/import"

// TokenHeader carries the cluster's callback token to the agent.
const TokenHeader = "x-microk8s-callback-token"

// Node is a node whose cluster agent gets the image.
type Node struct {
	Name   string
	Addr   netip.Addr // its InternalIP
	Images []string   // the image names its kubelet reports (Node status)
}

// Agents sends an image to the nodes of a MicroK8s cluster the way
// "microk8s images import" does: the tarball in the body of a POST to each
// node's cluster agent, with the cluster's callback token. Each agent
// presents its node's server certificate (server.crt, signed by the
// cluster's CA, naming the node's addresses); the token goes only to an
// agent whose certificate verifies against CA for the address dialled,
// since a Node's InternalIP is written by its kubelet and a compromised
// one could point the token elsewhere.
type Agents struct {
	Port    int
	Token   string
	CA      *x509.CertPool // the cluster's CA ($SNAP_DATA/certs/ca.crt): LoadCA
	Timeout time.Duration  // per node; 0: 5 minutes
	client  *http.Client
}

// LoadCA reads the PEM certificates of the cluster's CA.
func LoadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the cluster CA, to verify the cluster agents: %w (run enable as root on a node of the cluster, or pass --cluster-ca FILE)", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("the cluster CA %s holds no PEM certificate: pass --cluster-ca with MicroK8s's certs/ca.crt", path)
	}
	return pool, nil
}

// Report is told how the import went on one node.
type Report func(n Node, took time.Duration, err error)

// Push builds the image of exe, tagged ref, and imports it on every node
// (even when one fails, so that the report is complete). The error names
// each node that did not get it, with the fix.
func (a *Agents) Push(ctx context.Context, exe, ref string, nodes []Node, report Report) error {
	f, err := buildTemp(exe, ref)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	var failed []string
	for _, n := range nodes {
		start := time.Now()
		err := a.push(ctx, f.Name(), n)
		if report != nil {
			report(n, time.Since(start), err)
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s (%s): %v", n.Name, a.endpoint(n), err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("the image did not reach %d of %d nodes:\n  %s\nCheck that each of them is up (microk8s kubectl get nodes) and that its cluster agent answers on port %d/tcp from this node (microk8s status on that node; a firewall between nodes must allow it), then run enable again; or pass --image REF from a registry every node can pull",
			len(failed), len(nodes), strings.Join(failed, "\n  "), a.port())
	}
	return nil
}

func (a *Agents) port() int {
	if a.Port == 0 {
		return ClusterAgentPort
	}
	return a.Port
}

func (a *Agents) endpoint(n Node) string {
	return netip.AddrPortFrom(n.Addr, uint16(a.port())).String()
}

func (a *Agents) push(ctx context.Context, path string, n Node) error {
	if !n.Addr.IsValid() {
		return errors.New("the node has no InternalIP")
	}
	if a.CA == nil {
		return errors.New("no cluster CA to verify its agent with: the token is not sent")
	}
	if a.client == nil {
		// Go checks the certificate against the address dialled (an IP
		// SAN), as the URL names the node by its InternalIP.
		a.client = &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: a.CA, MinVersion: tls.VersionTLS12},
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	timeout := a.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := os.Open(path)
	if err != nil {
		return err
	}
	defer body.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+a.endpoint(n)+ImportPath, body)
	if err != nil {
		return err
	}
	req.Header.Set(TokenHeader, a.Token)
	resp, err := a.client.Do(req)
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown), errors.As(err, &invalid):
		return fmt.Errorf("the cluster agent's certificate does not verify against the cluster CA (%v), so the callback token was not sent: this address may not be the node's agent; check the Node's InternalIP (microk8s kubectl get node %s -o wide), and on that node run microk8s refresh-certs --cert server.crt if its certificate is from another cluster or expired", err, n.Name)
	case errors.As(err, &host):
		return fmt.Errorf("the cluster agent's certificate does not name %s (%v), so the callback token was not sent: if the node's address changed, run microk8s refresh-certs --cert server.crt on that node", n.Addr, err)
	case err != nil:
		return fmt.Errorf("cluster agent unreachable: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("the cluster agent refused the callback token (HTTP %d): the token file is not this cluster's", resp.StatusCode)
	}
	return fmt.Errorf("the cluster agent answered HTTP %d: %s", resp.StatusCode, terminal.Safe(strings.TrimSpace(string(msg))))
}
