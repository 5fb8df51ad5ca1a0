package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/manifests"
	"github.com/microk8s-metallb/metallb/pkg/allocator"
	"github.com/microk8s-metallb/metallb/pkg/arpprobe"
	"github.com/microk8s-metallb/metallb/pkg/config"
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

// ImageFunc makes the image available to the cluster and returns its
// reference (dryRun: only the reference).
type ImageFunc func(ctx context.Context, dryRun bool) (string, error)

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
	Namespace           string
	LogLevel            string
	Timeout             time.Duration // how long to wait for the workloads
	ProbeMax            int           // addresses probed at most (default 512)

	// ProbeDryRun (--probe): probe for hosts even with --dry-run, which
	// otherwise sends nothing on the network.
	ProbeDryRun bool

	Prompt Prompter  // nil without a terminal; with Args, only asked about warnings
	Stdin  io.Reader // read for a range when there is no argument and no terminal
	Out    io.Writer // progress and findings; with --dry-run, the manifests alone
	Err    io.Writer // with --dry-run, progress and findings (nil: Out)
	TTY    bool      // Out is a terminal: progress lines rewrite themselves

	Host   Host
	Client kubernetes.Interface // nil: no cluster reachable (only --dry-run works)
	Dyn    dynamic.Interface
	Probe  ProbeFunc
	Image  ImageFunc
}

// Run carries out the whole enable: ranges, checks, manifests, apply, wait.
func (e *Enable) Run(ctx context.Context) error {
	if e.Namespace == "" {
		e.Namespace = k8s.DefaultNamespace
	}
	if e.ProbeMax <= 0 {
		e.ProbeMax = 512
	}
	if e.Client == nil && !e.DryRun {
		return errors.New("no Kubernetes API to install into: is MicroK8s running (microk8s status --wait-ready)? Use --dry-run to only print the manifests")
	}
	// With --dry-run the manifests are the output (for kubectl apply -f -):
	// every other line goes to Err.
	manifestsOut := e.Out
	if e.DryRun && e.Err != nil {
		e.Out = e.Err
		defer func() { e.Out = manifestsOut }()
	}
	f, mainSubnet, dynamic, err := e.facts(ctx)
	if err != nil {
		return err
	}
	cur, saved, restored, err := e.current(ctx)
	if err != nil {
		return err
	}
	ranges, err := e.ranges(ctx, &f, mainSubnet, dynamic, saved)
	if err != nil {
		return err
	}
	cfgText, moved, err := e.config(ctx, cur, ranges, restored)
	if err != nil {
		return err
	}
	if len(moved) > 0 {
		switch {
		case e.AllowAddressChanges:
			for _, u := range moved {
				fmt.Fprintf(e.Out, "note: %s: it will be renumbered (--allow-address-changes)\n", u)
			}
		case restored != nil && restored.Edit != "":
			// The edit the controller refused before disable comes back
			// as it was: refused again, and the addresses stay.
			fmt.Fprintf(e.Out, "note: the edit restored would take or change the addresses of %d Service(s): the controller will refuse it again and keep running on the configuration in force (metallb status says why; fix the edit with kubectl -n %s edit configmap %s)\n",
				len(moved), e.Namespace, k8s.DefaultConfigMap)
			moved = nil
		default:
			return &k8s.AddressChangeError{Affected: moved, Fix: "choose a range that keeps them, or pass --allow-address-changes to renumber them"}
		}
	}
	if e.Prompt != nil && len(e.Args) == 0 {
		fmt.Fprintf(e.Out, "\nmetallb will be installed in namespace %s with the layer2 pool \"default\": %s (%s addresses).\n",
			e.Namespace, iprange.Join(ranges), iprange.Total(ranges))
		ok, err := e.Prompt.Confirm("Install now?", true)
		if err != nil {
			return err
		}
		if !ok {
			return ErrAborted
		}
	}
	ref, err := e.Image(ctx, e.DryRun)
	if err != nil {
		return err
	}
	monitoring := e.Client != nil && HasMonitoringCRDs(e.Client.Discovery())
	if !e.DryRun {
		if monitoring {
			fmt.Fprintln(e.Out, "Prometheus Operator found: applying PodMonitors, the alert rules and the Grafana dashboard")
		} else {
			fmt.Fprintln(e.Out, "no Prometheus Operator CRDs (PodMonitor, PrometheusRule): skipping monitoring objects (microk8s enable observability, then enable again, to get them)")
		}
	}
	stream, err := manifests.Render(manifests.Values{Namespace: e.Namespace, Image: ref, LogLevel: e.LogLevel, Config: string(cfgText),
		AllowAddressChanges: len(moved) > 0, WithMonitoring: monitoring})
	if err != nil {
		return err
	}
	if e.DryRun {
		extra, err := e.dryRunExtras(ctx, string(cfgText), restored)
		if err != nil {
			return err
		}
		_, err = manifestsOut.Write(append(stream, extra...))
		return err
	}
	objs, err := Decode(stream)
	if err != nil {
		return err
	}
	changes, err := Apply(ctx, e.Dyn, objs)
	for _, c := range changes {
		fmt.Fprintf(e.Out, "%s %s\n", c.Object, c.Action)
	}
	if err != nil {
		return err
	}
	created, err := EnsureMemberlistSecret(ctx, e.Client, e.Namespace)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Out, "Secret %s/%s %s\n", e.Namespace, MemberlistSecret, createdOrKept(created))
	// The controller keeps its last accepted config there and may only
	// update it: create it once; an existing one is the controller's.
	// Restored, it is the configuration in force at disable: the
	// controller judges the ConfigMap against it, as before.
	accepted := string(cfgText)
	if restored != nil {
		accepted = restored.Accepted
	}
	created, err = k8s.EnsureAccepted(ctx, e.Client, e.Namespace, k8s.DefaultConfigMap, accepted)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Out, "ConfigMap %s/%s %s\n", e.Namespace, k8s.AcceptedName(k8s.DefaultConfigMap), createdOrKept(created))
	if err := Wait(ctx, e.Client, e.Namespace, e.Timeout, NewProgress(e.Out, e.TTY)); err != nil {
		return err
	}
	fmt.Fprintf(e.Out, "metallb is enabled: LoadBalancer Services get addresses from %s.\n", iprange.Join(ranges))
	return nil
}

// facts gathers what the checks need from the host and the cluster. It
// returns the subnet to suggest a default on and whether the host's
// addresses came from DHCP.
func (e *Enable) facts(ctx context.Context) (netcheck.Facts, netcheck.Subnet, bool, error) {
	var f netcheck.Facts
	var main netcheck.Subnet
	subs, err := e.Host.Subnets()
	if err != nil {
		return f, main, false, err
	}
	f.Subnets = subs
	gws, mainIf, err := e.Host.Gateways()
	if err != nil {
		return f, main, false, err
	}
	f.Gateways = gws
	f.Leases = e.Host.Leases()
	f.DHCPScopes = e.Host.DHCPScopes()
	if e.DHCPRange != "" {
		rs, err := iprange.ParseList(e.DHCPRange)
		if err != nil {
			return f, main, false, fmt.Errorf("--dhcp-range: %w", err)
		}
		for _, r := range rs {
			f.DHCPScopes = append(f.DHCPScopes, netcheck.Sourced{Range: r, Source: "--dhcp-range"})
		}
	}
	if f.ServiceCIDRs, f.PodCIDRs, err = e.Host.ClusterCIDRs(); err != nil {
		return f, main, false, err
	}
	if e.Client != nil {
		nodes, err := e.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return f, main, false, fmt.Errorf("list nodes: %w (is the Kubernetes API reachable? microk8s status --wait-ready)", err)
		}
		for _, n := range nodes.Items {
			for _, ip := range k8s.NodeAddrs(&n, corev1.NodeInternalIP) {
				f.Nodes = append(f.Nodes, netcheck.Node{Name: n.Name, IP: ip})
			}
		}
	}
	// The subnet to suggest on: the main interface's first IPv4 address,
	// else any IPv4 address.
	dynamic := false
	for _, s := range subs {
		if s.Dynamic || slices.ContainsFunc(f.Leases, func(l netcheck.Lease) bool { return l.Addr == s.Prefix.Addr() }) {
			dynamic = true
		}
		if s.Prefix.Addr().Is4() && (!main.Prefix.IsValid() || (s.Interface == mainIf && main.Interface != mainIf)) {
			main = s
		}
	}
	return f, main, dynamic, nil
}

// ranges gets the ranges from the arguments, a prompt or stdin, and checks
// them (probing for live hosts) until they pass or the user gives up.
func (e *Enable) ranges(ctx context.Context, f *netcheck.Facts, main netcheck.Subnet, dynamic bool, saved []iprange.Range) ([]iprange.Range, error) {
	if len(e.Args) > 0 {
		rs, err := ParseRangeArgs(e.Args)
		if err != nil {
			return nil, fmt.Errorf("%w\nexample: microk8s enable metallb:192.168.1.240-192.168.1.250 (ranges, CIDRs, comma-separated lists)", err)
		}
		return rs, e.checkAll(ctx, rs, f)
	}
	if e.Prompt == nil {
		text, err := readPiped(e.Stdin, 500*time.Millisecond)
		if errors.Is(err, ErrUsage) && len(saved) > 0 {
			fmt.Fprintf(e.Out, "using the saved pool \"default\": %s\n", iprange.Join(saved))
			return saved, e.checkAll(ctx, saved, f)
		}
		if err != nil {
			return nil, err
		}
		rs, err := iprange.ParseList(text)
		if err != nil {
			return nil, fmt.Errorf("range read from stdin: %w", err)
		}
		return rs, e.checkAll(ctx, rs, f)
	}
	if dynamic && len(f.DHCPScopes) == 0 {
		fmt.Fprintln(e.Out, "This host got its address by DHCP, and the DHCP server's scope is unknown.")
		scope, err := e.Prompt.Input("DHCP scope of this network (its dynamic range, e.g. 192.168.1.100-192.168.1.199; empty if unknown)", "",
			"Service addresses must not be handed out by the DHCP server too. Look for the \"DHCP range\" or \"address pool\" on your router.",
			func(s string) error {
				if strings.TrimSpace(s) == "" {
					return nil
				}
				_, err := iprange.ParseList(s)
				return err
			})
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(scope) != "" {
			rs, _ := iprange.ParseList(scope)
			for _, r := range rs {
				f.DHCPScopes = append(f.DHCPScopes, netcheck.Sourced{Range: r, Source: "the DHCP scope you entered"})
			}
		}
	}
	for {
		def := ""
		if r, ok := netcheck.Suggest(main, *f); ok {
			def = r.String()
		}
		if len(saved) > 0 {
			def = iprange.Join(saved)
		}
		text, err := e.Prompt.Input("Address range(s) for LoadBalancer Services", def,
			"A range (192.168.1.240-192.168.1.250), a CIDR (192.168.1.240/29), or a comma-separated list. Use free addresses of this host's subnet, outside the DHCP scope.",
			func(s string) error {
				rs, err := iprange.ParseList(s)
				if err != nil {
					return err
				}
				if msgs := errorsOf(netcheck.Check(rs, *f)); len(msgs) > 0 {
					return errors.New(strings.Join(msgs, "\n"))
				}
				return nil
			})
		if err != nil {
			return nil, err
		}
		rs, _ := iprange.ParseList(text)
		err = e.checkAll(ctx, rs, f)
		if err == nil {
			return rs, nil
		}
		if errors.Is(err, errDeclined) {
			continue
		}
		fmt.Fprintf(e.Out, "%v\nChoose another range.\n", err)
	}
}

var errDeclined = errors.New("warnings declined")

// checkAll probes rs for live hosts, then runs every check: errors stop,
// warnings need --yes or a yes at the prompt.
func (e *Enable) checkAll(ctx context.Context, rs []iprange.Range, f *netcheck.Facts) error {
	warnings, notes, err := e.probe(ctx, rs, f)
	if err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(e.Out, "note: "+n)
	}
	findings := netcheck.Check(rs, *f)
	for _, w := range warnings {
		findings = append(findings, netcheck.Finding{Severity: netcheck.Warning, Message: w})
	}
	var nerr, nwarn int
	for _, x := range findings {
		fmt.Fprintln(e.Out, x)
		if x.Severity == netcheck.Error {
			nerr++
		} else {
			nwarn++
		}
	}
	if nerr > 0 {
		return fmt.Errorf("%s cannot be used: %d error(s) above", iprange.Join(rs), nerr)
	}
	if nwarn == 0 || e.Yes {
		return nil
	}
	if e.Prompt == nil {
		return fmt.Errorf("%d warning(s) above: re-run with --yes to install anyway, or choose another range", nwarn)
	}
	ok, err := e.Prompt.Confirm("Use this range despite the warning(s)?", false)
	if err != nil {
		return err
	}
	if !ok {
		return errDeclined
	}
	return nil
}

// probe asks who has the addresses of rs that lie on this host's subnets
// (ARP for IPv4, NDP for IPv6), at most ProbeMax of them, recording live
// hosts in f.InUse.
// Addresses our own Services hold already answer (from the speakers) and
// are not reported. It returns warnings about what it could not probe.
// It returns warnings (findings that need --yes) and notes (said, not
// asked about: a probe the user chose to skip).
func (e *Enable) probe(ctx context.Context, rs []iprange.Range, f *netcheck.Facts) (warnings, notes []string, err error) {
	switch {
	case e.NoProbe || e.Probe == nil:
		return nil, []string{"addresses in use were not probed (--no-probe): make sure no host uses " + iprange.Join(rs)}, nil
	case e.DryRun && !e.ProbeDryRun:
		return nil, []string{"addresses in use were not probed (--dry-run sends nothing; add --probe to probe): make sure no host uses " + iprange.Join(rs)}, nil
	}
	ours := map[netip.Addr]bool{} // our Services' addresses: the speakers answer for them
	if e.Client != nil {
		svcs, err := k8s.ListServices(ctx, e.Client)
		if err != nil {
			return nil, nil, err
		}
		for _, svc := range svcs {
			for _, ip := range k8s.IngressIPs(svc) {
				ours[ip] = true
			}
		}
	}
	plan, warnings := netcheck.Probes(rs, *f, ours, e.ProbeMax)
	for _, t := range plan {
		ifname, targets := t.Interface, t.Addrs
		fmt.Fprintf(e.Out, "probing %d address(es) on %s for hosts already using them", len(targets), ifname)
		progress := func(sent, total int) {
			if e.TTY && (sent%16 == 0 || sent == total) {
				fmt.Fprintf(e.Out, "\rprobing %d address(es) on %s for hosts already using them: %d/%d", len(targets), ifname, sent, total)
			}
		}
		hosts, err := e.Probe(ctx, ifname, targets, progress)
		fmt.Fprintln(e.Out)
		if errors.Is(err, arpprobe.ErrPermission) {
			warnings = append(warnings, fmt.Sprintf("addresses in use were not probed: %v, or pass --no-probe", err))
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		f.InUse = append(f.InUse, hosts...)
	}
	return warnings, notes, nil
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
			return cm.Data[k8s.ConfigKey], nil, nil, nil
		case !apierrors.IsNotFound(err):
			return "", nil, nil, fmt.Errorf("read the current config: %w", err)
		}
	}
	s, err := LoadSaved(e.SavedPath)
	if err != nil || s == nil {
		return "", nil, nil, err
	}
	cfg, _ := config.Parse([]byte(s.Accepted)) // LoadSaved checked it
	fmt.Fprintf(e.Out, "restoring the configuration saved by disable (%s): %d pool(s), %d BGP peer(s)\n", e.SavedPath, len(cfg.Pools), len(cfg.Peers))
	var def []iprange.Range
	if p := cfg.Pool("default"); p != nil {
		def = p.Ranges
	}
	text := s.Accepted
	if s.Edit != "" {
		if _, err := config.Parse([]byte(s.Edit)); err != nil {
			fmt.Fprintf(e.Out, "note: the edit the ConfigMap held at disable does not parse, so it is not restored (it stays in %s; fix it and apply it with kubectl): %v\n", editPath(e.SavedPath), err)
			s.Edit, s.Reason = "", ""
		} else {
			why := "not yet judged by the controller"
			if s.Reason != "" {
				why = "refused by the controller: " + s.Reason
			}
			fmt.Fprintf(e.Out, "restoring the ConfigMap's edit that was not in force at disable (%s): the controller judges it again against the configuration that was\n", why)
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
	text, err := config.SetPool([]byte(cur), "default", rs)
	if err != nil {
		return nil, nil, err
	}
	var moved []allocator.Affected
	if cur != "" && e.Client != nil {
		cfg, err := config.Parse(text)
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

func errorsOf(fs []netcheck.Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Severity == netcheck.Error {
			out = append(out, f.Message)
		}
	}
	return out
}

// readPiped reads a range from a non-terminal stdin, giving up after wait
// if nothing arrives, so that the hook never hangs on an idle stdin.
func readPiped(r io.Reader, wait time.Duration) (string, error) {
	usage := fmt.Errorf("%w: pass one, e.g. microk8s enable metallb:192.168.1.240-192.168.1.250, or run it in a terminal to be asked", ErrUsage)
	if r == nil {
		return "", usage
	}
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(r, 64<<10))
		ch <- result{b, err}
	}()
	select {
	case res := <-ch:
		if s := strings.TrimSpace(string(res.b)); s != "" {
			return s, nil
		}
		return "", usage
	case <-time.After(wait):
		return "", usage
	}
}

// ProbeOn adapts arpprobe to ProbeFunc.
// IPv4 addresses are asked by ARP, IPv6 ones by NDP.
func ProbeOn(ctx context.Context, ifname string, targets []netip.Addr, progress func(sent, total int)) ([]netcheck.Host, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	var v4, v6 []netip.Addr
	for _, t := range targets {
		if t.Is4() {
			v4 = append(v4, t)
		} else {
			v6 = append(v6, t)
		}
	}
	const rounds = 2
	sent := 0
	var out []netcheck.Host
	for _, fam := range [][]netip.Addr{v4, v6} {
		if len(fam) == 0 {
			continue
		}
		base := sent
		hosts, err := arpprobe.Probe(ctx, ifi, fam, arpprobe.Options{Rounds: rounds, Interval: time.Millisecond, Progress: func(n, _ int) {
			sent = base + n
			if progress != nil {
				progress(sent, rounds*len(targets))
			}
		}})
		if err != nil {
			return out, err
		}
		out = append(out, hosts...)
	}
	return out, nil
}

// dryRunExtras are the objects enable creates besides the manifests, so
// that --dry-run's output is a whole install: the memberlist Secret (a new
// key) and the accepted copy of the config. One the cluster already has is
// left out, and said: applying a new key over a running install would
// split the speakers, and the accepted copy is the controller's.
func (e *Enable) dryRunExtras(ctx context.Context, cfgText string, restored *Saved) ([]byte, error) {
	exists := func(get func() error) (bool, error) {
		if e.Client == nil {
			return false, nil
		}
		err := get()
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
	var out []byte
	has, err := exists(func() error {
		_, err := e.Client.CoreV1().Secrets(e.Namespace).Get(ctx, MemberlistSecret, metav1.GetOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read Secret %s/%s: %w", e.Namespace, MemberlistSecret, err)
	}
	if has {
		fmt.Fprintf(e.Out, "note: Secret %s/%s exists: left out, so that applying this keeps the speakers' key\n", e.Namespace, MemberlistSecret)
	} else {
		s, err := NewMemberlistSecret(e.Namespace)
		if err != nil {
			return nil, err
		}
		b, err := manifestYAML(s, "Secret")
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	accepted := cfgText
	if restored != nil {
		accepted = restored.Accepted
	}
	name := k8s.AcceptedName(k8s.DefaultConfigMap)
	has, err = exists(func() error {
		_, err := e.Client.CoreV1().ConfigMaps(e.Namespace).Get(ctx, name, metav1.GetOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read ConfigMap %s/%s: %w", e.Namespace, name, err)
	}
	if has {
		fmt.Fprintf(e.Out, "note: ConfigMap %s/%s exists: left out (it is the controller's)\n", e.Namespace, name)
	} else {
		b, err := manifestYAML(k8s.AcceptedObject(e.Namespace, k8s.DefaultConfigMap, accepted), "ConfigMap")
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}
