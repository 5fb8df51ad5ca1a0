package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/allocator"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/image"
	"github.com/microk8s-metallb/metallb/pkg/iprange"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/netcheck"
)

// ErrAborted is returned when the user aborts the prompt (Ctrl-C, or "no"
// to the final confirmation). Nothing has been applied.
var ErrAborted = errors.New("aborted: nothing was applied")

// ErrUsage is returned when there is no range and no way to ask for one.
var ErrUsage = errors.New("no address range given")

// Prompter asks the user questions on a terminal.
type Prompter interface {
	// Input asks for a line, offering def; validate runs as the user
	// confirms, and a non-nil error is shown and the question asked again.
	Input(message, def, help string, validate func(string) error) (string, error)
	Confirm(message string, def bool) (bool, error)
}

// Host is what the installer needs to know about the machine.
type Host interface {
	Subnets() ([]netcheck.Subnet, error)
	Gateways() ([]netip.Addr, string, error)
	Leases() []netcheck.Lease
	DHCPScopes() []netcheck.Sourced
	ClusterCIDRs() (svc, pod []netcheck.Sourced, err error)
}

// ProbeFunc finds the hosts that answer for targets on ifname.
type ProbeFunc func(ctx context.Context, ifname string, targets []netip.Addr, progress func(sent, total int)) ([]netcheck.Host, error)

// Imager makes the workloads' image available on nodes and returns its
// reference (dryRun: the reference only), telling log what it does.
// image.Delivery is the real one.
type Imager interface {
	Deliver(ctx context.Context, nodes []image.Node, dryRun bool, log image.Log) (string, error)
}

// ImageFunc adapts a function to Imager.
type ImageFunc func(ctx context.Context, nodes []image.Node, dryRun bool) (string, error)

// Deliver implements Imager.
func (f ImageFunc) Deliver(ctx context.Context, nodes []image.Node, dryRun bool, _ image.Log) (string, error) {
	return f(ctx, nodes, dryRun)
}

// Enable holds everything "metallb enable" needs.
type Enable struct {
	Args      []string // positional arguments of the hook
	DHCPRange string   // --dhcp-range
	Yes       bool     // --yes: accept warnings
	NoProbe   bool     // --no-probe
	DryRun    bool     // --dry-run: print the manifests, apply nothing
	// SavedPath is where disable saved the configuration (SavedConfigPath);
	// when the cluster has none, enable restores it. "": nothing saved.
	SavedPath string
	// AllowAddressChanges (--allow-address-changes): a range that leaves
	// Services' addresses out is applied, and those Services renumbered.
	AllowAddressChanges bool
	// AsResources (--as-resources): the range goes into the metallb.io
	// resources IPAddressPool default-addresspool and L2Advertisement
	// default-advertise-all-pools, as MicroK8s's core addon writes them,
	// instead of the ConfigMap's pool "default". Implied when the cluster
	// has that IPAddressPool and the ConfigMap no pool "default".
	AsResources bool
	// ServiceBGPStatus (--service-bgp-status): the speakers write a
	// ServiceBGPStatus per Service they advertise by BGP.
	ServiceBGPStatus bool
	// TrafficStats (--traffic-stats): each speaker pod gets the counting
	// container, and the speakers publish the traffic per Service.
	TrafficStats bool
	// BGP (--bgp-peer, --peer-asn, --my-asn), when set: the pool "default"
	// is announced by BGP to that router instead of by layer2, and the
	// router is added to peers (or its entry gets these AS numbers).
	BGP       *config.QuickPeer
	Namespace string
	LogLevel  string
	Timeout   time.Duration // how long to wait for the workloads
	ProbeMax  int           // addresses probed at most (default 512)
	// Addon is how MicroK8s names this addon ("lab/metallb"), for the
	// commands enable shows; "": AddonName.
	Addon string

	// ProbeDryRun (--probe): probe for hosts even with --dry-run, which
	// otherwise sends nothing on the network.
	ProbeDryRun bool

	Prompt Prompter  // nil without a terminal; with Args, only asked about warnings
	Stdin  io.Reader // read for a range when there is no argument and no terminal
	Out    io.Writer // what enable does; with --dry-run, the manifests alone
	Err    io.Writer // what enable finds: checks, notes (nil: Out)
	TTY    bool      // the progress stream is a terminal: progress lines rewrite themselves

	Host   Host
	Client kubernetes.Interface // nil: no cluster reachable (only --dry-run works)
	Dyn    dynamic.Interface
	Probe  ProbeFunc
	Image  Imager

	report reporter
	// resources are the metallb.io objects judged with the config: those
	// disable saved (restore: enable applies them) or the cluster's.
	resources [][]byte
	restore   bool
	// secrets are the Secrets disable saved for the BGPPeers'
	// passwordSecret, applied with the resources they key.
	secrets [][]byte
	// changed are the resources the range set (AsResources), applied
	// with the manifests.
	changed [][]byte
	// takeover is another MetalLB's objects, removed before the apply.
	takeover []foreignObject
}

// AddonName is how the docs name this addon beside MicroK8s's core one.
const AddonName = manifests.DefaultAddon

func (e *Enable) addon() string {
	if e.Addon != "" {
		return e.Addon
	}
	return AddonName
}

// Run carries out the whole enable: facts, ranges and their checks, the
// configuration and its impact, the image, then the manifests printed
// (--dry-run) or applied and waited for.
func (e *Enable) Run(ctx context.Context) error {
	if err := e.defaults(); err != nil {
		return err
	}
	if err := e.announceTakeover(ctx); err != nil {
		return err
	}
	w, err := e.facts(ctx)
	if err != nil {
		return err
	}
	cur, saved, restored, err := e.current(ctx)
	if err != nil {
		return err
	}
	ranges, err := e.ranges(ctx, e.source(&w.Facts, w.main, w.dynamic, saved), &w.Facts)
	if err != nil {
		return err
	}
	cfgText, moved, err := e.config(ctx, cur, ranges, restored)
	if err != nil {
		return err
	}
	renumber, err := e.allowMoves(moved, restored)
	if err != nil {
		return err
	}
	if err := e.confirm(ranges); err != nil {
		return err
	}
	ref, err := e.Image.Deliver(ctx, w.nodes, e.DryRun, e.report.step)
	if err != nil {
		return err
	}
	stream, err := e.render(ref, cfgText, renumber)
	if err != nil {
		return err
	}
	apply := e.changed
	if e.restore {
		apply = append(append([][]byte(nil), e.resources...), e.secrets...)
	}
	if stream, err = e.withResources(stream, apply); err != nil {
		return err
	}
	accepted := string(cfgText)
	switch {
	case restored != nil:
		accepted = restored.Accepted // the configuration in force at disable
	case len(e.resources) > 0:
		if accepted, err = config.Combine(accepted, e.resources); err != nil {
			return err
		}
	}
	if err := e.takeOver(ctx); err != nil {
		return err
	}
	if err := e.retireRenamed(ctx); err != nil {
		return err
	}
	if e.DryRun {
		return e.print(ctx, stream, accepted)
	}
	if err := e.install(ctx, stream, accepted); err != nil {
		return err
	}
	if e.BGP != nil {
		e.report.step("metallb is enabled: LoadBalancer Services get addresses from %s, announced by BGP to %s (AS%d) from every node (AS%d); the router must accept the sessions (docs/configuration.md, BGP mode).",
			iprange.Join(ranges), e.BGP.Address, e.BGP.PeerASN, e.BGP.MyASN)
		return nil
	}
	e.report.step("metallb is enabled: LoadBalancer Services get addresses from %s.", iprange.Join(ranges))
	return nil
}

// defaults fills what the caller left out and sets up the reporter.
func (e *Enable) defaults() error {
	if e.Namespace == "" {
		e.Namespace = k8s.DefaultNamespace
	}
	if e.ProbeMax <= 0 {
		e.ProbeMax = 512
	}
	if e.Client == nil && !e.DryRun {
		return errors.New("no Kubernetes API to install into: is MicroK8s running (microk8s status --wait-ready)? Use --dry-run to only print the manifests")
	}
	e.report = reporter{out: e.Out, err: e.Err, tty: e.TTY}
	if e.report.err == nil {
		e.report.err = e.Out
	}
	if e.DryRun { // stdout holds the manifests alone (for kubectl apply -f -)
		e.report.out = e.report.err
	}
	return nil
}

// allowMoves decides about the Services whose addresses the new config
// would take or change: renumbered with --allow-address-changes, kept when
// the restored edit will be refused again, else a refusal. It says whether
// the controller may renumber.
func (e *Enable) allowMoves(moved []allocator.Affected, restored *Saved) (bool, error) {
	switch {
	case len(moved) == 0:
		return false, nil
	case e.AllowAddressChanges:
		for _, u := range moved {
			e.report.note("%s: it will be renumbered (--allow-address-changes)", u)
		}
		return true, nil
	case restored != nil && restored.Edit != "":
		// The edit the controller refused before disable comes back as it
		// was: refused again, and the addresses stay.
		e.report.note("the edit restored would take or change the addresses of %d Service(s): the controller will refuse it again and keep running on the configuration in force (metallb status says why; fix the edit with kubectl -n %s edit configmap %s)",
			len(moved), e.Namespace, k8s.DefaultConfigMap)
		return false, nil
	default:
		return false, &k8s.AddressChangeError{Affected: moved, Fix: "choose a range that keeps them, or pass --allow-address-changes to renumber them"}
	}
}

// confirm asks once more before installing, when the range was asked for.
func (e *Enable) confirm(ranges []iprange.Range) error {
	if e.Prompt == nil || len(e.Args) > 0 {
		return nil
	}
	pool := `the layer2 pool "default"`
	if len(e.changed) > 0 {
		pool = "IPAddressPool " + config.DefaultResourcePool
	}
	e.report.step("\nmetallb will be installed in namespace %s with %s: %s (%s addresses).",
		e.Namespace, pool, iprange.Join(ranges), iprange.Total(ranges))
	ok, err := e.Prompt.Confirm("Install now?", true)
	if err != nil {
		return err
	}
	if !ok {
		return ErrAborted
	}
	return nil
}

// render writes the manifests, with the monitoring objects when the
// cluster has the Prometheus Operator.
func (e *Enable) render(ref string, cfgText []byte, renumber bool) ([]byte, error) {
	monitoring := e.Client != nil && HasMonitoringCRDs(e.Client.Discovery())
	if !e.DryRun {
		if monitoring {
			e.report.step("Prometheus Operator found: applying PodMonitors, the alert rules and the Grafana dashboard")
		} else {
			e.report.note("no Prometheus Operator CRDs (PodMonitor, PrometheusRule): skipping monitoring objects (microk8s enable observability, then enable again, to get them)")
		}
	}
	return manifests.Render(manifests.Values{Namespace: e.Namespace, Image: ref, LogLevel: e.LogLevel, Config: string(cfgText),
		AllowAddressChanges: renumber, WithMonitoring: monitoring, Addon: e.addon(), ServiceBGPStatus: e.ServiceBGPStatus, TrafficStats: e.TrafficStats})
}

// install applies the manifests, creates the memberlist Secret and the
// accepted copy unless they exist, and waits for the workloads.
func (e *Enable) install(ctx context.Context, stream []byte, accepted string) error {
	objs, err := Decode(stream)
	if err != nil {
		return err
	}
	// The namespace and the CRDs first, then the metallb.io resources once
	// they are served, then the rest: the controller starts with its whole
	// configuration there.
	var first, resources, rest []*unstructured.Unstructured
	for _, o := range objs {
		switch {
		case o.GetKind() == "Namespace" || o.GetKind() == "CustomResourceDefinition":
			first = append(first, o)
		case strings.HasPrefix(o.GetAPIVersion(), config.Group+"/"):
			resources = append(resources, o)
		default:
			rest = append(rest, o)
		}
	}
	for i, phase := range [][]*unstructured.Unstructured{first, resources, rest} {
		if i == 1 && len(phase) > 0 {
			if err := e.waitServed(ctx); err != nil {
				return err
			}
		}
		changes, err := Apply(ctx, e.Dyn, phase)
		for _, c := range changes {
			e.report.step("%s %s", c.Object, c.Action)
		}
		if err != nil {
			return err
		}
	}
	created, err := EnsureMemberlistSecret(ctx, e.Client, e.Namespace)
	if err != nil {
		return err
	}
	e.report.step("Secret %s/%s %s", e.Namespace, MemberlistSecret, createdOrKept(created))
	// The controller keeps its last accepted config there and may only
	// update it: create it once; an existing one is the controller's.
	created, err = k8s.EnsureAccepted(ctx, e.Client, e.Namespace, k8s.DefaultConfigMap, accepted)
	if err != nil {
		return err
	}
	e.report.step("ConfigMap %s/%s %s", e.Namespace, k8s.AcceptedName(k8s.DefaultConfigMap), createdOrKept(created))
	return Wait(ctx, e.Client, e.Namespace, e.Timeout, e.report.waiting())
}

// withResources adds metallb.io resources (restored, or set by the
// range), in the namespace, to the stream of manifests.
func (e *Enable) withResources(stream []byte, docs [][]byte) ([]byte, error) {
	out := bytes.NewBuffer(stream)
	for _, r := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(r, &u.Object); err != nil {
			return nil, fmt.Errorf("a resource saved by disable: %w", err)
		}
		u.SetNamespace(e.Namespace)
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes(), nil
}

// waitServed waits until the API server serves the metallb.io kinds (their
// CRDs established).
func (e *Enable) waitServed(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for !k8s.ServesResources(ctx, e.Dyn, e.Namespace) {
		if time.Now().After(deadline) {
			return errors.New("the metallb.io CRDs are not served a minute after they were applied: see microk8s kubectl get crd ipaddresspools.metallb.io -o yaml")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// world is what the checks and the image delivery need to know.
type world struct {
	netcheck.Facts
	main    netcheck.Subnet // the subnet to suggest a range on
	dynamic bool            // the host's addresses came from DHCP
	nodes   []image.Node
}

// facts gathers what the checks need from the host and the cluster.
func (e *Enable) facts(ctx context.Context) (world, error) {
	var w world
	subs, err := e.Host.Subnets()
	if err != nil {
		return w, err
	}
	w.Subnets = subs
	gws, mainIf, err := e.Host.Gateways()
	if err != nil {
		return w, err
	}
	w.Gateways = gws
	w.Leases = e.Host.Leases()
	w.Routed = e.BGP != nil
	w.DHCPScopes = e.Host.DHCPScopes()
	if e.DHCPRange != "" {
		rs, err := iprange.ParseList(e.DHCPRange)
		if err != nil {
			return w, fmt.Errorf("--dhcp-range: %w", err)
		}
		for _, r := range rs {
			w.DHCPScopes = append(w.DHCPScopes, netcheck.Sourced{Range: r, Source: "--dhcp-range"})
		}
	}
	if w.ServiceCIDRs, w.PodCIDRs, err = e.Host.ClusterCIDRs(); err != nil {
		return w, err
	}
	if e.Client != nil {
		nodes, err := e.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return w, fmt.Errorf("list nodes: %w (is the Kubernetes API reachable? microk8s status --wait-ready)", err)
		}
		for _, n := range nodes.Items {
			ips := k8s.NodeAddrs(&n, corev1.NodeInternalIP)
			for _, ip := range ips {
				w.Nodes = append(w.Nodes, netcheck.Node{Name: n.Name, IP: ip})
			}
			in := image.Node{Name: n.Name}
			if len(ips) > 0 {
				in.Addr = ips[0]
			}
			for _, img := range n.Status.Images {
				in.Images = append(in.Images, img.Names...)
			}
			w.nodes = append(w.nodes, in)
		}
		slices.SortFunc(w.nodes, func(a, b image.Node) int { return strings.Compare(a.Name, b.Name) })
	}
	// The subnet to suggest on: the main interface's first IPv4 address,
	// else any IPv4 address.
	for _, s := range subs {
		if s.Dynamic || slices.ContainsFunc(w.Leases, func(l netcheck.Lease) bool { return l.Addr == s.Prefix.Addr() }) {
			w.dynamic = true
		}
		if s.Prefix.Addr().Is4() && (!w.main.Prefix.IsValid() || (s.Interface == mainIf && w.main.Interface != mainIf)) {
			w.main = s
		}
	}
	return w, nil
}

func createdOrKept(created bool) string {
	if created {
		return "created"
	}
	return "kept"
}

// current returns the config text to start from: the cluster's ConfigMap,
// or, when the cluster has none, what disable saved (and then the saved
// "default" pool's ranges, to offer again, and what was saved). A saved
// edit that was not in force comes back as the ConfigMap, to be judged
// against the configuration that was (unless it does not parse: then it
// stays aside, in its file).
func (e *Enable) current(ctx context.Context) (string, []iprange.Range, *Saved, error) {
	if e.Client != nil {
		cm, err := e.Client.CoreV1().ConfigMaps(e.Namespace).Get(ctx, k8s.DefaultConfigMap, metav1.GetOptions{})
		switch {
		case err == nil:
			e.resources, err = k8s.ResourceDocuments(ctx, e.Client.Discovery(), e.Dyn, e.Namespace)
			return cm.Data[k8s.ConfigKey], nil, nil, err
		case !apierrors.IsNotFound(err):
			return "", nil, nil, fmt.Errorf("read the current config: %w", err)
		}
		// No ConfigMap, but metallb.io resources: another MetalLB's (the
		// core addon's), in force; they stay, and are the configuration.
		if e.resources, err = k8s.ResourceDocuments(ctx, e.Client.Discovery(), e.Dyn, e.Namespace); err != nil {
			return "", nil, nil, err
		}
		if len(e.resources) > 0 {
			if e.SavedPath != "" {
				if s, _ := LoadSaved(e.SavedPath); s != nil {
					e.report.note("the cluster has metallb.io resources in force, so the configuration saved by disable is not restored (it stays in %s)", e.SavedPath)
				}
			}
			e.report.step("keeping the %d metallb.io resource(s) in %s", len(e.resources), e.Namespace)
			return "", e.resourcePoolRanges(), nil, nil
		}
	}
	s, err := LoadSaved(e.SavedPath)
	if err != nil || s == nil {
		return "", nil, nil, err
	}
	cfg, _ := config.Parse([]byte(s.Accepted)) // LoadSaved checked it
	e.report.step("restoring the configuration saved by disable (%s): %d pool(s), %d BGP peer(s)", e.SavedPath, len(cfg.Pools), len(cfg.Peers))
	var def []iprange.Range
	if p := cfg.Pool("default"); p != nil {
		def = p.Ranges
	} else if p := cfg.Pool(config.DefaultResourcePool); p != nil {
		def = p.Ranges
	}
	// The accepted copy holds the ConfigMap's config and the resources:
	// the one goes back in the ConfigMap, the others as objects.
	text, res, err := config.SplitCombined(s.Accepted)
	if err != nil {
		return "", nil, nil, fmt.Errorf("the configuration saved by disable (%s): %w", e.SavedPath, err)
	}
	for _, r := range res {
		e.resources = append(e.resources, []byte(r))
	}
	e.restore = len(res) > 0
	if e.restore {
		e.report.step("restoring %d metallb.io resource(s) saved by disable", len(res))
		if e.secrets = s.Secrets; len(e.secrets) > 0 {
			e.report.step("restoring %d Secret(s) saved by disable for the BGPPeers' passwordSecret", len(e.secrets))
		}
	}
	if s.Edit != "" {
		if _, err := config.Parse([]byte(s.Edit)); err != nil {
			e.report.note("the edit the ConfigMap held at disable does not parse, so it is not restored (it stays in %s; fix it and apply it with kubectl): %v", editPath(e.SavedPath), err)
			s.Edit, s.Reason = "", ""
		} else {
			why := "not yet judged by the controller"
			if s.Reason != "" {
				why = "refused by the controller: " + s.Reason
			}
			e.report.step("restoring the ConfigMap's edit that was not in force at disable (%s): the controller judges it again against the configuration that was", why)
			text = s.Edit
		}
	}
	return text, def, s, nil
}

// config returns the new config text: cur with the "default" pool set to rs
// (or a new one), and the Services whose addresses it would take or change
// (the controller's verdict), judged against the configuration in force:
// the cluster's accepted copy, or the one disable saved.
func (e *Enable) config(ctx context.Context, cur string, rs []iprange.Range, restored *Saved) ([]byte, []allocator.Affected, error) {
	var text []byte
	var err error
	if e.resourceMode(cur) {
		if e.BGP != nil {
			return nil, nil, fmt.Errorf("--bgp-peer writes the ConfigMap's pool %q, but this cluster's pools are metallb.io resources (IPAddressPool %s): announce it by BGP with a BGPPeer and a BGPAdvertisement (docs/configuration.md), or run enable without --bgp-peer", "default", config.DefaultResourcePool)
		}
		text = []byte(cur)
		if strings.TrimSpace(cur) == "" {
			text = []byte(resourceModeConfig)
		}
		if e.resources, e.changed, err = config.SetResourcePool(e.resources, config.DefaultResourcePool, rs); err != nil {
			return nil, nil, err
		}
		combined, err := config.Combine(cur, e.resources)
		if err != nil {
			return nil, nil, err
		}
		if _, err := config.Parse([]byte(combined)); err != nil {
			return nil, nil, fmt.Errorf("with IPAddressPool %s set to %s the configuration is invalid:\n%w", config.DefaultResourcePool, iprange.Join(rs), config.WithoutResourceLines(err))
		}
	} else if e.BGP != nil {
		if text, err = config.SetBGPPool([]byte(cur), "default", rs, *e.BGP); err != nil {
			return nil, nil, err
		}
	} else if text, err = config.SetPool([]byte(cur), "default", rs); err != nil {
		return nil, nil, err
	}
	var moved []allocator.Affected
	if (cur != "" || len(e.resources) > 0) && e.Client != nil {
		combined, err := config.Combine(string(text), e.resources)
		if err != nil {
			return nil, nil, err
		}
		cfg, err := config.Parse([]byte(combined))
		if err != nil {
			return nil, nil, err
		}
		if restored != nil {
			old, _ := config.Parse([]byte(restored.Accepted)) // LoadSaved checked it
			moved, err = k8s.AddressImpactAgainst(ctx, e.Client, old, "", cfg)
		} else {
			moved, err = k8s.AddressImpact(ctx, e.Client, e.Namespace, k8s.DefaultConfigMap, "", cfg)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return text, moved, nil
}

// resourceModeConfig is the ConfigMap's config when the pools are
// metallb.io resources only.
const resourceModeConfig = "# The pools are the metallb.io resources in metallb-system:\n" +
	"#   microk8s kubectl -n metallb-system get ipaddresspools,l2advertisements,bgpadvertisements,bgppeers\n" +
	"# Pools and peers in MetalLB v0.12's format may be added here too (docs/configuration.md).\n"

// resourceMode says whether the range goes into IPAddressPool
// default-addresspool: asked for, or that pool exists and the ConfigMap's
// config cur has no pool "default".
func (e *Enable) resourceMode(cur string) bool {
	if e.AsResources {
		return true
	}
	if cfg, err := config.Parse([]byte(cur)); err != nil || cfg.Pool("default") != nil {
		return false
	}
	return e.resourcePoolRanges() != nil
}

// resourcePoolRanges are the addresses of IPAddressPool default-addresspool
// among the resources (nil when there is none, or they do not parse).
func (e *Enable) resourcePoolRanges() []iprange.Range {
	if len(e.resources) == 0 {
		return nil
	}
	text, err := config.Combine("", e.resources)
	if err != nil {
		return nil
	}
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		return nil
	}
	if p := cfg.Pool(config.DefaultResourcePool); p != nil {
		return p.Ranges
	}
	return nil
}

// print writes the whole install on Out (--dry-run): the manifests, then
// the objects enable creates besides them, the memberlist Secret (a new
// key) and the accepted copy of the config. One the cluster already has is
// left out, and said: applying a new key over a running install would
// split the speakers, and the accepted copy is the controller's.
func (e *Enable) print(ctx context.Context, stream []byte, accepted string) error {
	extras := []struct {
		kind, name, why string
		get             func() error
		obj             func() (schemaObject, error)
	}{
		{"Secret", MemberlistSecret, "so that applying this keeps the speakers' key",
			func() error {
				_, err := e.Client.CoreV1().Secrets(e.Namespace).Get(ctx, MemberlistSecret, metav1.GetOptions{})
				return err
			},
			func() (schemaObject, error) { return NewMemberlistSecret(e.Namespace) }},
		{"ConfigMap", k8s.AcceptedName(k8s.DefaultConfigMap), "it is the controller's",
			func() error {
				_, err := e.Client.CoreV1().ConfigMaps(e.Namespace).Get(ctx, k8s.AcceptedName(k8s.DefaultConfigMap), metav1.GetOptions{})
				return err
			},
			func() (schemaObject, error) {
				return k8s.AcceptedObject(e.Namespace, k8s.DefaultConfigMap, accepted), nil
			}},
	}
	for _, x := range extras {
		if e.Client != nil {
			err := x.get()
			if err == nil {
				e.report.note("%s %s/%s exists: left out (%s)", x.kind, e.Namespace, x.name, x.why)
				continue
			}
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("read %s %s/%s: %w", x.kind, e.Namespace, x.name, err)
			}
		}
		obj, err := x.obj()
		if err != nil {
			return err
		}
		b, err := manifestYAML(obj, x.kind)
		if err != nil {
			return err
		}
		stream = append(stream, b...)
	}
	_, err := e.Out.Write(stream)
	return err
}
