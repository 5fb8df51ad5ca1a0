package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/config"
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
	registry     string
	ctr          string
	tokenFile    string
	agentPort    int
	clusterCA    string
	timeout      time.Duration
	probeMax     int
	hostRoot     string
	allowChanges bool
	asResources  bool
	bgpStatus    bool
	trafficStats bool
	saved        string
	bgpPeer      string
	peerASN      uint32
	myASN        uint32
}

func newEnableCmd(g *globals) *cobra.Command {
	o := &enableOptions{}
	snap := install.FindSnap(nil, nil)
	cmd := &cobra.Command{
		Use:   "enable [RANGE...]",
		Short: "Install metallb into the cluster (the MicroK8s enable hook)",
		Long: `Install metallb with a layer2 pool "default" holding RANGE. MicroK8s's core
repository has a metallb of its own, so name this one with its repository
(README adds it as "lab"):

  microk8s enable lab/metallb:192.168.1.240-192.168.1.250
  microk8s enable lab/metallb 192.168.1.240/29 --dhcp-range 192.168.1.100-192.168.1.199
  microk8s enable lab/metallb                  (asks, suggesting a free range)
  microk8s enable lab/metallb 203.0.113.0/28 --bgp-peer 192.168.1.1 --peer-asn 64501 --my-asn 64500

Flags follow the range in the second form; the colon form takes none.
With --bgp-peer, the pool "default" is announced by BGP from every node to
that router (peers gets it, with --peer-asn and --my-asn) instead of by
layer2; the range then need not be on this host's subnet.
The range is checked against this host's subnets, gateway and addresses, the
nodes, MicroK8s's service and pod CIDRs, the DHCP scope, and an ARP/NDP probe
for hosts already using it. Errors stop; warnings need a yes (or --yes).

MicroK8s does not run enable again while the addon is enabled. To change
the range of a running install, run the hook itself:

  sudo /var/snap/microk8s/common/addons/lab/addons/metallb/enable 192.168.1.240-192.168.1.250

It runs every check and the probe again, changes only the pool "default",
refuses a range that would take or change Services' addresses
(--allow-address-changes renumbers them), and imports the image only on
nodes that lack it.

Where MicroK8s's core metallb (or another MetalLB v0.13+) runs, enable takes
it over: its workloads, webhook and RBAC are removed, its metallb.io
resources stay in force, and the range goes into its IPAddressPool
default-addresspool instead of the pool "default" (--as-resources does that
on any cluster).`,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), g, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", kubeconfigUsage)
	f.StringVar(&o.context, "context", "", contextUsage)
	f.StringVarP(&o.namespace, "namespace", "n", k8s.DefaultNamespace, "namespace to install into")
	f.StringVar(&o.dhcpRange, "dhcp-range", "", "the DHCP server's dynamic range on this network, which the pool must avoid")
	f.BoolVarP(&o.yes, "yes", "y", false, "accept warnings without asking")
	f.BoolVar(&o.noProbe, "no-probe", false, "do not probe the range (ARP, NDP for IPv6) for addresses in use")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the whole install's manifests on stdout (for kubectl apply -f -), the checks on stderr; apply nothing, probe nothing")
	f.BoolVar(&o.probe, "probe", false, "with --dry-run, probe the range for hosts using it all the same")
	f.StringVar(&o.image, "image", "", "image to run (default: package this binary and import it into MicroK8s's containerd)")
	f.StringVar(&o.registry, "registry", "auto", "push the image to this registry (host:port) and run it from there, so that nodes joining later pull it; auto: MicroK8s's registry addon when it is enabled (localhost:32000); none: import it into each node instead")
	f.StringVar(&o.ctr, "ctr", strings.Join(snap.Ctr(), " "), "containerd client command for the import on a single-node cluster (MicroK8s's microk8s-ctr.wrapper)")
	f.StringVar(&o.tokenFile, "callback-token", snap.CallbackToken(), "on a cluster of several nodes, the cluster agents' callback token file (the image goes to every node through its agent)")
	f.IntVar(&o.agentPort, "cluster-agent-port", image.ClusterAgentPort, "the nodes' cluster agent port")
	f.StringVar(&o.clusterCA, "cluster-ca", snap.ClusterCA(), "the cluster's CA certificate, that each cluster agent's certificate must verify against before the callback token is sent to it")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the controller and speakers to be ready")
	f.IntVar(&o.probeMax, "probe-max", 512, "probe at most this many addresses")
	f.StringVar(&o.hostRoot, "host-root", "/", "read the host's files (leases, DHCP server config) below this directory")
	_ = f.MarkHidden("host-root")
	f.BoolVar(&o.allowChanges, "allow-address-changes", false, "apply a range that leaves Services' current addresses out, renumbering them")
	f.BoolVar(&o.asResources, "as-resources", false, "write the range as the metallb.io resources IPAddressPool default-addresspool and L2Advertisement default-advertise-all-pools, as MicroK8s's core addon does, instead of the ConfigMap's pool \"default\" (implied when that IPAddressPool exists)")
	f.BoolVar(&o.bgpStatus, "service-bgp-status", false, "the speakers keep a ServiceBGPStatus per Service and node they advertise by BGP, as MetalLB v0.14+ does (off: Services x nodes objects and 2 writes each per new Service; give it on every enable to keep it)")
	f.BoolVar(&o.trafficStats, "traffic-stats", false, "count the traffic to each Service's address on the nodes announcing it, in the kernel (nftables; a container of its own in each speaker pod, the only one with CAP_NET_ADMIN): metrics, dashboard and metallb status show it (give it on every enable to keep it)")
	f.StringVar(&o.bgpPeer, "bgp-peer", "", "announce the pool by BGP to the router at this address (with --peer-asn and --my-asn) instead of by layer2")
	f.Uint32Var(&o.peerASN, "peer-asn", 0, "with --bgp-peer: the router's AS number")
	f.Uint32Var(&o.myASN, "my-asn", 0, "with --bgp-peer: the nodes' AS number (the router's for iBGP)")
	f.StringVar(&o.saved, "saved-config", snap.SavedConfig(), "the configuration saved by disable, restored when the cluster has none")
	return cmd
}

// quickPeer reads --bgp-peer, --peer-asn and --my-asn: all three or none.
func (o *enableOptions) quickPeer() (*config.QuickPeer, error) {
	if o.bgpPeer == "" && o.peerASN == 0 && o.myASN == 0 {
		return nil, nil
	}
	if o.bgpPeer == "" || o.peerASN == 0 || o.myASN == 0 {
		return nil, errors.New("--bgp-peer, --peer-asn and --my-asn go together: give the router's address, its AS number and the nodes' (equal for iBGP), e.g. --bgp-peer 192.168.1.1 --peer-asn 64501 --my-asn 64500")
	}
	addr, err := netip.ParseAddr(o.bgpPeer)
	if err != nil || addr.Zone() != "" {
		return nil, fmt.Errorf("--bgp-peer %q: want the router's IP address, e.g. 192.168.1.1 or 2001:db8::1", o.bgpPeer)
	}
	return &config.QuickPeer{Address: addr.Unmap(), PeerASN: o.peerASN, MyASN: o.myASN}, nil
}

func isTerminal(v any) (*os.File, bool) {
	f, ok := v.(*os.File)
	return f, ok && term.IsTerminal(int(f.Fd()))
}

func (o *enableOptions) run(ctx context.Context, g *globals, args []string) error {
	snap := install.FindSnap(nil, nil)
	client, dyn, err := clients(k8s.Kubeconfig{Path: o.kubeconfig, Context: o.context}, "metallb-installer")
	if err != nil && !o.dryRun {
		return err
	}
	bgp, err := o.quickPeer()
	if err != nil {
		return err
	}
	e := &install.Enable{
		BGP:  bgp,
		Args: args, DHCPRange: o.dhcpRange, Yes: o.yes, NoProbe: o.noProbe, DryRun: o.dryRun,
		AllowAddressChanges: o.allowChanges, AsResources: o.asResources, SavedPath: o.saved, ServiceBGPStatus: o.bgpStatus, TrafficStats: o.trafficStats,
		Namespace: o.namespace, LogLevel: g.logLevel, Timeout: o.timeout, ProbeMax: o.probeMax,
		ProbeDryRun: o.probe,
		Stdin:       g.in, Out: g.out, Err: g.err,
		Host:  hostnet.Host{Root: o.hostRoot, SnapData: snap.Data},
		Probe: install.ProbeOn,
		Addon: addonName(),
	}
	exe, err := os.Executable()
	if err != nil && o.image == "" {
		return fmt.Errorf("find this executable to package it: %w (or pass --image)", err)
	}
	registry := o.registry
	switch registry {
	case "none":
		registry = ""
	case "auto":
		if registry, err = install.RegistryAddon(ctx, client); err != nil && !o.dryRun {
			return err
		}
	}
	e.Image = image.Delivery{Image: o.image, Registry: registry, Exe: exe, Version: version.Get().Version,
		Ctr: strings.Fields(o.ctr), TokenFile: o.tokenFile, CAFile: o.clusterCA, AgentPort: o.agentPort}
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
		fmt.Fprintf(g.err, "metallb: %v\n\nusage: microk8s enable lab/metallb:RANGE[,RANGE...]  (or: metallb enable RANGE... [flags]; --help for all)\n", err)
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
	snap := install.FindSnap(nil, nil)
	cmd := &cobra.Command{
		Use:   "disable",
		Short: "Remove everything enable installed (the MicroK8s disable hook)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			client, dyn, err := clients(k8s.Kubeconfig{Path: o.kubeconfig, Context: o.context}, "metallb-installer")
			if err != nil {
				return err
			}
			if err := o.keepOrForget(cmd.Context(), g, client); err != nil {
				return err
			}
			_, tty := isTerminal(g.out)
			if err := install.Disable(cmd.Context(), client, dyn, o.namespace, o.timeout, install.NewProgress(g.out, tty)); err != nil {
				return err
			}
			if tty {
				fmt.Fprintln(g.out)
			}
			fmt.Fprintf(g.out, "metallb is disabled: namespace %s, its cluster roles and the metallb.io CustomResourceDefinitions are gone.\n", o.namespace)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", kubeconfigUsage)
	f.StringVar(&o.context, "context", "", contextUsage)
	f.StringVarP(&o.namespace, "namespace", "n", k8s.DefaultNamespace, "namespace metallb was installed into")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "how long to wait for the namespace to go")
	f.StringVar(&o.saved, "saved-config", snap.SavedConfig(), "where to save the configuration for the next enable")
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
		fmt.Fprintln(g.out, "note: the configuration is not saved (no MicroK8s found: $SNAP_COMMON is not set and /var/snap/microk8s/common does not exist; pass --saved-config PATH to keep it)")
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

// addonName is how MicroK8s names this addon: the hook says so in
// $METALLB_ADDON ("REPO/metallb", from the repository it runs from).
func addonName() string {
	if a := os.Getenv("METALLB_ADDON"); a != "" {
		return a
	}
	return install.AddonName
}
