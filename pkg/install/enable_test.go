package install

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/image"
	"github.com/microk8s-metallb/metallb/pkg/iprange"
	"github.com/microk8s-metallb/metallb/pkg/netcheck"
)

// fakeHost is a DHCP-configured host at 192.0.2.10/24 behind 192.0.2.1.
type fakeHost struct{}

func (fakeHost) Subnets() ([]netcheck.Subnet, error) {
	return []netcheck.Subnet{{Interface: "eth0", Prefix: netip.MustParsePrefix("192.0.2.10/24"), Dynamic: true}}, nil
}
func (fakeHost) Gateways() ([]netip.Addr, string, error) {
	return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, "eth0", nil
}
func (fakeHost) Leases() []netcheck.Lease       { return nil }
func (fakeHost) DHCPScopes() []netcheck.Sourced { return nil }
func (fakeHost) ClusterCIDRs() (svc, pod []netcheck.Sourced, err error) {
	return nil, nil, nil
}

// script answers prompts in order and records what was asked.
type script struct {
	answers []string
	asked   []string
}

func (s *script) next(q string) (string, error) {
	s.asked = append(s.asked, q)
	if len(s.answers) == 0 {
		return "", ErrAborted
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a, nil
}

func (s *script) Input(message, def, _ string, validate func(string) error) (string, error) {
	for {
		a, err := s.next(message + " [" + def + "]")
		if err != nil {
			return "", err
		}
		if a == "" {
			a = def
		}
		if err := validate(a); err != nil {
			s.asked = append(s.asked, "invalid: "+err.Error())
			continue
		}
		return a, nil
	}
}

func (s *script) Confirm(message string, def bool) (bool, error) {
	a, err := s.next(message)
	return a == "y", err
}

func TestPromptAsksForTheDHCPScopeAndAvoidsIt(t *testing.T) {
	p := &script{answers: []string{"192.0.2.200-192.0.2.254", "192.0.2.210", "", "y"}}
	var out bytes.Buffer
	e := &Enable{Prompt: p, Out: &out, Host: fakeHost{}, DryRun: true, NoProbe: true, Yes: true,
		Image: fixedImage("localhost/microk8s-metallb:test")}
	if err := e.Run(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := []string{
		"DHCP scope of this network (its dynamic range, e.g. 192.168.1.100-192.168.1.199; empty if unknown) []",
		// The suggestion avoids the scope the user gave.
		"Address range(s) for LoadBalancer Services [192.0.2.189-192.0.2.199]",
		"invalid: 192.0.2.210 overlaps the DHCP scope 192.0.2.200-192.0.2.254 (the DHCP scope you entered) on 192.0.2.210: the DHCP server may lease these addresses to other hosts; choose addresses outside the scope, or shrink the scope on the DHCP server\nsuggestion: 192.0.2.189-192.0.2.199 passes every check",
		"Address range(s) for LoadBalancer Services [192.0.2.189-192.0.2.199]",
		"Install now?",
	}
	if diff := cmp.Diff(want, p.asked); diff != "" {
		t.Errorf("questions (-want +got):\n%s", diff)
	}
	if !strings.Contains(out.String(), "      - 192.0.2.189-192.0.2.199\n") {
		t.Errorf("the dry run does not hold the accepted range:\n%s", out.String())
	}
}

func TestPromptNoAtTheEndAppliesNothing(t *testing.T) {
	p := &script{answers: []string{"", "", "n"}}
	var out bytes.Buffer
	imageCalled := false
	e := &Enable{Prompt: p, Out: &out, Host: fakeHost{}, DryRun: true, NoProbe: true, Yes: true,
		Image: ImageFunc(func(context.Context, []image.Node, bool) (string, error) { imageCalled = true; return "x", nil })}
	if err := e.Run(context.Background()); !errors.Is(err, ErrAborted) {
		t.Fatalf("err = %v, want ErrAborted", err)
	}
	if imageCalled || strings.Contains(out.String(), "kind:") {
		t.Error("something was done after the user said no")
	}
}

func TestWarningsNeedYesWithoutATerminal(t *testing.T) {
	var out bytes.Buffer
	e := &Enable{Args: []string{"203.0.113.10-203.0.113.20"}, Out: &out, Host: fakeHost{}, DryRun: true, NoProbe: true,
		Image: fixedImage("x")}
	err := e.Run(context.Background())
	if err == nil || err.Error() != "1 warning(s) above: re-run with --yes to install anyway, or choose another range" {
		t.Fatalf("err = %v", err)
	}
	e.Yes = true
	out.Reset()
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs, _ := iprange.ParseList("203.0.113.10-203.0.113.20")
	if !strings.Contains(out.String(), "- "+rs[0].String()) {
		t.Errorf("dry run:\n%s", out.String())
	}
}

func TestWarningsAskOnATerminalWithArgs(t *testing.T) {
	p := &script{answers: []string{"y"}}
	var out bytes.Buffer
	e := &Enable{Args: []string{"203.0.113.10-203.0.113.20"}, Prompt: p, Out: &out, Host: fakeHost{}, DryRun: true, NoProbe: true,
		Image: fixedImage("x")}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Use this range despite the warning(s)?"}, p.asked); diff != "" {
		t.Errorf("questions (-want +got):\n%s", diff)
	}
}

// --dry-run writes a whole install on Out and nothing else (the memberlist
// Secret and the accepted copy included), its findings on Err; it sends no
// probe unless asked (--probe), and a skipped probe needs no --yes.
func TestDryRunIsAWholeManifest(t *testing.T) {
	var out, errb bytes.Buffer
	probed := false
	e := &Enable{Args: []string{"192.0.2.200-192.0.2.210"}, DHCPRange: "192.0.2.100-192.0.2.150", Out: &out, Err: &errb,
		Host: fakeHost{}, DryRun: true,
		Probe: func(context.Context, string, []netip.Addr, func(int, int)) ([]netcheck.Host, error) {
			probed = true
			return nil, nil
		},
		Image: fixedImage("x")}
	if err := e.Run(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if probed {
		t.Error("--dry-run probed without --probe")
	}
	if !strings.Contains(errb.String(), "note: addresses in use were not probed (--dry-run sends nothing; add --probe to probe)") {
		t.Errorf("stderr lacks the note on the probe:\n%s", errb.String())
	}
	objs, err := Decode(out.Bytes())
	if err != nil {
		t.Fatalf("stdout is not manifests: %v\n%s", err, out.String())
	}
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()+"/"+o.GetName()] = true
	}
	for _, want := range []string{"Namespace/metallb-system", "ConfigMap/config", "ConfigMap/config-accepted", "Secret/memberlist", "Deployment/metallb-controller", "DaemonSet/metallb-speaker"} {
		if !kinds[want] {
			t.Errorf("stdout lacks %s (has %v)", want, kinds)
		}
	}
	e.ProbeDryRun = true
	out.Reset()
	if err := e.Run(context.Background()); err != nil || !probed {
		t.Errorf("with --probe: err %v, probed %v", err, probed)
	}
}

// fixedImage is an Imager that delivers nothing and names ref.
func fixedImage(ref string) Imager {
	return ImageFunc(func(context.Context, []image.Node, bool) (string, error) { return ref, nil })
}

// The quick start for BGP: the pool is announced by BGP to the router
// given, and a range off this host's subnets is no warning (routers
// deliver it).
func TestEnableBGPQuickStart(t *testing.T) {
	var out bytes.Buffer
	peer := &config.QuickPeer{Address: netip.MustParseAddr("192.0.2.1"), PeerASN: 64501, MyASN: 64500}
	e := &Enable{Args: []string{"203.0.113.10-203.0.113.20"}, Out: &out, Err: io.Discard, Host: fakeHost{}, DryRun: true, NoProbe: true,
		BGP: peer, Image: fixedImage("x")}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"protocol: bgp", "- 203.0.113.10-203.0.113.20", "peer-address: 192.0.2.1", "peer-asn: 64501", "my-asn: 64500"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the dry run lacks %q:\n%s", want, out.String())
		}
	}
}
