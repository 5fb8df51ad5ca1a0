package image

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
	"strings"
	"time"
)

// ClusterAgentPort is where MicroK8s's cluster agent listens on every node.
const ClusterAgentPort = 25000

// ImportPath is the cluster agent's image import endpoint.
const ImportPath = "/cluster/api/v2.0/image/import"

// TokenHeader carries the cluster's callback token to the agent.
const TokenHeader = "x-microk8s-callback-token"

// Node is a node whose cluster agent gets the image.
type Node struct {
	Name string
	Addr netip.Addr // its InternalIP
}

// Agents sends an image to the nodes of a MicroK8s cluster the way
// "microk8s images import" does: the tarball in the body of a POST to each
// node's cluster agent, with the cluster's callback token. The agents
// present MicroK8s's self-signed node certificates, which this does not
// verify (neither does MicroK8s): the token is what authenticates.
type Agents struct {
	Port    int
	Token   string
	Timeout time.Duration // per node; 0: 5 minutes
	client  *http.Client
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
	if a.client == nil {
		a.client = &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see Agents
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
	if err != nil {
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
	return fmt.Errorf("the cluster agent answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
}
