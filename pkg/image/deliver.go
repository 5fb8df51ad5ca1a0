package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Delivery is how the workloads get their image: a reference the operator
// gives (nothing to deliver), or an image of this very executable, imported
// into containerd on a single node, or into every node through its cluster
// agent, skipped when every node already has it.
type Delivery struct {
	Image string // a reference to run as is (--image); "" packages Exe
	// Registry (host:port), when set, receives the image and every node
	// pulls it from there, nodes that join later too (MicroK8s's registry
	// addon: localhost:32000, on every node).
	Registry string
	Exe      string // the executable to package
	Version  string // its version, for the tag

	Ctr       []string // containerd client for a single node ($SNAP/microk8s-ctr.wrapper)
	TokenFile string   // the cluster agents' callback token, for several nodes
	CAFile    string   // the cluster's CA, that each agent's certificate must verify against
	AgentPort int      // 0: ClusterAgentPort
}

// Log is told each step of a delivery and each node's result.
type Log func(format string, args ...any)

// Deliver returns the reference the workloads run, once every node in nodes
// has it (dryRun: the reference only, nothing imported), telling log what
// it does (nil: nothing).
func (d Delivery) Deliver(ctx context.Context, nodes []Node, dryRun bool, log Log) (string, error) {
	if log == nil {
		log = func(string, ...any) {}
	}
	if d.Image != "" {
		return d.Image, nil
	}
	if d.Exe == "" {
		return "", errors.New("no executable to package into the image (or pass --image)")
	}
	v := d.Version
	if v == "" {
		v = "dev"
	}
	ref, err := Tag(d.Exe, v)
	if err != nil {
		return "", err
	}
	if d.Registry != "" {
		ref = RegistryRef(d.Registry, ref)
	}
	if dryRun {
		return ref, nil
	}
	if len(nodes) > 0 && !slices.ContainsFunc(nodes, func(n Node) bool { return !slices.Contains(n.Images, ref) }) {
		log("image %s is already on every node (%d): not imported again", ref, len(nodes))
		return ref, nil
	}
	if d.Registry != "" {
		log("pushing image %s to the registry %s (every node pulls it from there, nodes that join later too)", ref, d.Registry)
		return ref, Push(ctx, d.Exe, ref)
	}
	if len(nodes) > 1 {
		return ref, d.toAgents(ctx, ref, nodes, log)
	}
	if len(d.Ctr) == 0 {
		return "", errors.New("cannot import the metallb image: no containerd client (MicroK8s's microk8s-ctr.wrapper was not found in $SNAP or /snap/microk8s/current); pass --ctr, or --image REF to use a registry image")
	}
	log("importing image %s into containerd", ref)
	return ref, Import(ctx, d.Exe, ref, d.Ctr)
}

// toAgents imports the image on every node through the nodes' cluster
// agents, as "microk8s images import" does.
func (d Delivery) toAgents(ctx context.Context, ref string, nodes []Node, log Log) error {
	if d.TokenFile == "" {
		return fmt.Errorf("this cluster has %d nodes: the image goes to each through its cluster agent, which needs the callback token (MicroK8s's credentials/callback-token.txt); pass --callback-token FILE, or --image REF from a registry every node can pull", len(nodes))
	}
	tok, err := os.ReadFile(d.TokenFile)
	if err != nil {
		return fmt.Errorf("this cluster has %d nodes: the image goes to each through its cluster agent, which needs the callback token: %w (run enable as root on a node of the cluster, or pass --image REF from a registry every node can pull)", len(nodes), err)
	}
	if d.CAFile == "" {
		return fmt.Errorf("this cluster has %d nodes: the image goes to each through its cluster agent, whose certificate is verified against the cluster's CA (MicroK8s's certs/ca.crt); pass --cluster-ca FILE, or --image REF from a registry every node can pull", len(nodes))
	}
	ca, err := LoadCA(d.CAFile)
	if err != nil {
		return err
	}
	log("importing image %s into the %d nodes through their cluster agents", ref, len(nodes))
	a := &Agents{Port: d.AgentPort, Token: strings.TrimSpace(string(tok)), CA: ca}
	return a.Push(ctx, d.Exe, ref, nodes, func(n Node, took time.Duration, err error) {
		if err != nil {
			log("  %-20s %-15s failed: %v", n.Name, n.Addr, err)
			return
		}
		log("  %-20s %-15s imported in %.1fs", n.Name, n.Addr, took.Seconds())
	})
}
