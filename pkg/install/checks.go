package install

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/arpprobe"
	"github.com/microk8s-metallb/metallb/pkg/iprange"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/netcheck"
)

var errDeclined = errors.New("warnings declined")

// checkAll probes rs for live hosts, then runs every check: errors stop,
// warnings need --yes or a yes at the prompt. When rs fails, one range
// that passes every check is suggested.
func (e *Enable) checkAll(ctx context.Context, rs []iprange.Range, f *netcheck.Facts) error {
	warnings, err := e.probe(ctx, rs, f)
	if err != nil {
		return err
	}
	findings := netcheck.Check(rs, *f)
	for _, w := range warnings {
		findings = append(findings, netcheck.Finding{Severity: netcheck.Warning, Message: w})
	}
	var nerr, nwarn int
	for _, x := range findings {
		e.report.finding(x)
		if x.Severity == netcheck.Error {
			nerr++
		} else {
			nwarn++
		}
	}
	if nerr > 0 {
		if fix, ok := netcheck.Repair(rs, *f); ok {
			e.report.suggestion(fix)
		}
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
// hosts in f.InUse. Addresses our own Services hold already answer (from
// the speakers) and are not probed. It returns warnings about what it
// could not probe; a probe the operator chose to skip is only noted.
func (e *Enable) probe(ctx context.Context, rs []iprange.Range, f *netcheck.Facts) ([]string, error) {
	switch {
	case e.NoProbe || e.Probe == nil:
		e.report.note("addresses in use were not probed (--no-probe): make sure no host uses %s", iprange.Join(rs))
		return nil, nil
	case e.DryRun && !e.ProbeDryRun:
		e.report.note("addresses in use were not probed (--dry-run sends nothing; add --probe to probe): make sure no host uses %s", iprange.Join(rs))
		return nil, nil
	}
	ours := map[netip.Addr]bool{} // our Services' addresses: the speakers answer for them
	if e.Client != nil {
		svcs, err := k8s.ListServices(ctx, e.Client)
		if err != nil {
			return nil, err
		}
		for _, svc := range svcs {
			for _, ip := range k8s.IngressIPs(svc) {
				ours[ip] = true
			}
		}
	}
	plan, warnings := netcheck.Probes(rs, *f, ours, e.ProbeMax)
	for _, t := range plan {
		update, end := e.report.progress(fmt.Sprintf("probing %d address(es) on %s for hosts already using them", len(t.Addrs), t.Interface))
		hosts, err := e.Probe(ctx, t.Interface, t.Addrs, update)
		end()
		if errors.Is(err, arpprobe.ErrPermission) {
			warnings = append(warnings, fmt.Sprintf("addresses in use were not probed: %v, or pass --no-probe", err))
			continue
		}
		if err != nil {
			return nil, err
		}
		f.InUse = append(f.InUse, hosts...)
	}
	return warnings, nil
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
