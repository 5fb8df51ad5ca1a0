package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/hostnet"
	"github.com/microk8s-metallb/metallb/pkg/image"
	"github.com/microk8s-metallb/metallb/pkg/install"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/version"
)

type enableOptions struct {
	kubeconfig   string
	context      string
	namespace    string
	dhcpRange    string
	yes          bool
	noProbe      bool
	dryRun       bool
	probe        bool
	image        string
	ctr          string
	tokenFile    string
	agentPort    int
	clusterCA    string
	timeout      time.Duration
	probeMax     int
	hostRoot     string
	allowChanges bool
	saved        string
}

func newEnableCmd(g *globals) *cobra.Command {
	o := &enableOptions{}
	cmd := &cobra.Command{
		Use:   "enable [RANGE...]",
		Short: "Install metallb into the cluster (the MicroK8s enable hook)",
		Long: `Install metallb with a layer2 pool "default" holding RANGE, e.g.

  microk8s enable metallb:192.168.1.240-192.168.1.250
  microk8s enable metallb 192.168.1.240/29,192.168.1.10-192.168.1.12
  microk8s enable metallb                  (asks, suggesting a free range)

The range is checked against this host's subnets, gateway and addresses, the
nodes, MicroK8s's service and pod CIDRs, the DHCP scope, and an ARP probe for
hosts already using it. Errors stop; warnings need a yes (or --yes).
Running it again with another range changes only the pool.`,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), g, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", kubeconfigUsage)
	f.StringVar(&o.context, "context", "", contextUsage)
	f.StringVarP(&o.namespace, "namespace", "n", k8s.DefaultNamespace, "namespace to install into")
	f.StringVar(&o.dhcpRange, "dhcp-range", "", "the DHCP server's dynamic range on this network, which the pool must avoid")
	f.BoolVarP(&o.yes, "yes", "y", false, "accept warnings without asking")
	f.BoolVar(&o.noProbe, "no-probe", false, "do not ARP-probe the range for addresses in use")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the whole install's manifests on stdout (for kubectl apply -f -), the checks on stderr; apply nothing, probe nothing")
	f.BoolVar(&o.probe, "probe", false, "with --dry-run, probe the range for hosts using it all the same")
	f.StringVar(&o.image, "image", "", "image to run (default: package this binary and import it into MicroK8s's containerd)")
	f.StringVar(&o.ctr, "ctr", "", "containerd client command for the import on a single-node cluster (default: $SNAP/microk8s-ctr.wrapper)")
	f.StringVar(&o.tokenFile, "callback-token", callbackTokenPath(), "on a cluster of several nodes, the cluster agents' callback token file (the image goes to every node through its agent)")
	f.IntVar(&o.agentPort, "cluster-agent-port", image.ClusterAgentPort, "the nodes' cluster agent port")
	f.StringVar(&o.clusterCA, "cluster-ca", clusterCAPath(), "the cluster's CA certificate, that each cluster agent's certificate must verify against before the callback token is sent to it")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the controller and speakers to be ready")
	f.IntVar(&o.probeMax, "probe-max", 512, "probe at most this many addresses")
	f.StringVar(&o.hostRoot, "host-root", "/", "read the host's files (leases, DHCP server config) below this directory")
	_ = f.MarkHidden("host-root")
	f.BoolVar(&o.allowChanges, "allow-address-changes", false, "apply a range that leaves Services' current addresses out, renumbering them")
	f.StringVar(&o.saved, "saved-config", install.SavedConfigPath(os.Getenv("SNAP_COMMON")), "the configuration saved by disable, restored when the cluster has none")
	return cmd
}

func isTerminal(v any) (*os.File, bool) {
	f, ok := v.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd()))
}

func (o *enableOptions) run(ctx context.Context, g *globals, args []string) error {
	client, dyn, err := clients(k8s.Kubeconfig{Path: o.kubeconfig, Context: o.context}, "metallb-installer")
	if err != nil && !o.dryRun {
		return err
	}
	e := &install.Enable{
		Args: args, DHCPRange: o.dhcpRange, Yes: o.yes, NoProbe: o.noProbe, DryRun: o.dryRun,
		AllowAddressChanges: o.allowChanges, SavedPath: o.saved,
		Namespace: o.namespace, LogLevel: g.logLevel, Timeout: o.timeout, ProbeMax: o.probeMax,
		ProbeDryRun: o.probe,
		Stdin:       g.in, Out: g.out, Err: g.err,
		Host:  hostnet.Host{Root: o.hostRoot, SnapData: os.Getenv("SNAP_DATA")},
		Probe: install.ProbeOn,
		Image: o.imageFunc(g, client),
	}
	if client != nil {
		e.Client, e.Dyn = client, dyn
	}
	if o.dryRun { // the manifests on stdout, the rest on stderr
		_, e.TTY = isTerminal(g.err)
	} else {
		_, e.TTY = isTerminal(g.out)
	}
	if in, ok := isTerminal(g.in); ok {
		out, _ := g.out.(*os.File)
		errf, _ := g.err.(*os.File)
		if out != nil && errf != nil {
			e.Prompt = install.TerminalPrompt{In: in, Out: out, Err: errf}
		}
	}
	err = e.Run(ctx)
	switch {
	case errors.Is(err, install.ErrAborted):
		fmt.Fprintln(g.err, "metallb: "+err.Error())
		return exitError{130}
	case errors.Is(err, install.ErrUsage):
		fmt.Fprintf(g.err, "metallb: %v\n\nusage: microk8s enable metallb:RANGE[,RANGE...]  (or: metallb enable RANGE... [flags]; --help for all)\n", err)
		return exitError{2}
	}
	return err
}

// clients builds the typed and dynamic clients for the installer.
func clients(kubeconfig k8s.Kubeconfig, ua string) (kubernetes.Interface, dynamic.Interface, error) {
	client, cfg, err := k8s.ClientFor(kubeconfig, ua, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("build dynamic client: %w", err)
	}
	return client, dyn, nil
}

// imageFunc returns the image reference to deploy: --image as given, or an
// image of this very executable, imported into containerd.
func (o *enableOptions) imageFunc(g *globals, client kubernetes.Interface) install.ImageFunc {
	return func(ctx context.Context, dryRun bool) (string, error) {
		if o.image != "" {
			return o.image, nil
		}
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find this executable to package it: %w (or pass --image)", err)
		}
		v := version.Get().Version
		if v == "" {
			v = "dev"
		}
		ref, err := image.Tag(exe, v)
		if err != nil || dryRun {
			return ref, err
		}
		if nodes, err := agentNodes(ctx, client); err != nil {
			return "", err
		} else if len(nodes) > 1 {
			return ref, o.pushToNodes(ctx, g, exe, ref, nodes)
		}
		ctr := strings.Fields(o.ctr)
		if len(ctr) == 0 {
			if snap := os.Getenv("SNAP"); snap != "" {
				ctr = []string{filepath.Join(snap, "microk8s-ctr.wrapper")}
			}
		}
		if len(ctr) == 0 {
			return "", errors.New("cannot import the metallb image: no containerd client ($SNAP/microk8s-ctr.wrapper, as under \"microk8s enable\"); pass --ctr, or --image REF to use a registry image")
		}
		fmt.Fprintf(g.out, "importing image %s into containerd\n", ref)
		if err := image.Import(ctx, exe, ref, ctr); err != nil {
			return "", err
		}
		return ref, nil
	}
}

func callbackTokenPath() string {
	if d := os.Getenv("SNAP_DATA"); d != "" {
		return filepath.Join(d, "credentials", "callback-token.txt")
	}
	return ""
}

func clusterCAPath() string {
	if d := os.Getenv("SNAP_DATA"); d != "" {
		return filepath.Join(d, "certs", "ca.crt")
	}
	return ""
}

// agentNodes lists the cluster's nodes with their InternalIP, by name.
func agentNodes(ctx context.Context, client kubernetes.Interface) ([]image.Node, error) {
	if client == nil {
		return nil, nil
	}
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the nodes to import the image on each: %w", err)
	}
	var out []image.Node
	for _, n := range list.Items {
		node := image.Node{Name: n.Name}
		if ips := k8s.NodeAddrs(&n, corev1.NodeInternalIP); len(ips) > 0 {
			node.Addr = ips[0]
		}
		out = append(out, node)
	}
	slices.SortFunc(out, func(a, b image.Node) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// pushToNodes imports the image on every node of a multi-node cluster
// through the nodes' cluster agents, as "microk8s images import" does.
func (o *enableOptions) pushToNodes(ctx context.Context, g *globals, exe, ref string, nodes []image.Node) error {
	if o.tokenFile == "" {
		return fmt.Errorf("this cluster has %d nodes: the image goes to each through its cluster agent, which needs the callback token ($SNAP_DATA/credentials/callback-token.txt, as under \"microk8s enable\"); pass --callback-token FILE, or --image REF from a registry every node can pull", len(nodes))
	}
	tok, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return fmt.Errorf("this cluster has %d nodes: the image goes to each through its cluster agent, which needs the callback token: %w (run enable as root on a node of the cluster, or pass --image REF from a registry every node can pull)", len(nodes), err)
	}
	if o.clusterCA == "" {
		return fmt.Errorf("this cluster has %d nodes: the image goes to each through its cluster agent, whose certificate is verified against the cluster's CA ($SNAP_DATA/certs/ca.crt, as under \"microk8s enable\"); pass --cluster-ca FILE, or --image REF from a registry every node can pull", len(nodes))
	}
	ca, err := image.LoadCA(o.clusterCA)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.out, "importing image %s into the %d nodes through their cluster agents\n", ref, len(nodes))
	a := &image.Agents{Port: o.agentPort, Token: strings.TrimSpace(string(tok)), CA: ca}
	return a.Push(ctx, exe, ref, nodes, func(n image.Node, took time.Duration, err error) {
		if err != nil {
			fmt.Fprintf(g.out, "  %-20s %-15s failed: %v\n", n.Name, n.Addr, err)
			return
		}
		fmt.Fprintf(g.out, "  %-20s %-15s imported in %.1fs\n", n.Name, n.Addr, took.Seconds())
	})
}

type disableOptions struct {
	kubeconfig string
	context    string
	namespace  string
	timeout    time.Duration
	saved      string
	purge      bool
}

func newDisableCmd(g *globals) *cobra.Command {
	o := &disableOptions{}
	cmd := &cobra.Command{
		Use:   "disable",
		Short: "Remove everything enable installed (the MicroK8s disable hook)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := clients(k8s.Kubeconfig{Path: o.kubeconfig, Context: o.context}, "metallb-installer")
			if err != nil {
				return err
			}
			if err := o.keepOrForget(cmd.Context(), g, client); err != nil {
				return err
			}
			_, tty := isTerminal(g.out)
			if err := install.Disable(cmd.Context(), client, o.namespace, o.timeout, install.NewProgress(g.out, tty)); err != nil {
				return err
			}
			if tty {
				fmt.Fprintln(g.out)
			}
			fmt.Fprintf(g.out, "metallb is disabled: namespace %s and its cluster roles are gone.\n", o.namespace)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", kubeconfigUsage)
	f.StringVar(&o.context, "context", "", contextUsage)
	f.StringVarP(&o.namespace, "namespace", "n", k8s.DefaultNamespace, "namespace metallb was installed into")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "how long to wait for the namespace to go")
	f.StringVar(&o.saved, "saved-config", install.SavedConfigPath(os.Getenv("SNAP_COMMON")), "where to save the configuration for the next enable")
	f.BoolVar(&o.purge, "purge", false, "forget the configuration instead of saving it")
	return cmd
}

// keepOrForget saves the configuration for the next enable, or forgets it
// (--purge).
func (o *disableOptions) keepOrForget(ctx context.Context, g *globals, client kubernetes.Interface) error {
	if o.purge {
		gone, err := install.ForgetSaved(o.saved)
		if gone {
			fmt.Fprintf(g.out, "forgot the saved configuration (%s)\n", o.saved)
		}
		return err
	}
	if o.saved == "" {
		fmt.Fprintln(g.out, "note: the configuration is not saved ($SNAP_COMMON is not set; pass --saved-config PATH to keep it)")
		return nil
	}
	from, err := install.SaveConfig(ctx, client, o.namespace, o.saved)
	if err != nil {
		return fmt.Errorf("%w; nothing was removed (pass --purge to remove metallb without saving)", err)
	}
	if from != "" {
		fmt.Fprintf(g.out, "saved %s to %s: the next enable restores its pools and peers; disable --purge forgets it\n", from, o.saved)
	}
	return nil
}
