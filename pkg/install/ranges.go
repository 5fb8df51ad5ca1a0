package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
	"github.com/microk8s-metallb/metallb/pkg/netcheck"
)

// A rangeSource yields the ranges enable checks, one candidate at a time:
// the hook's arguments, a piped stdin, or the prompt.
type rangeSource interface {
	// next returns the next candidate.
	next(ctx context.Context) ([]iprange.Range, error)
	// retry reports whether, after a candidate failed its checks with
	// err, the source can offer another (only the prompt can).
	retry(err error) bool
}

// source picks where the ranges come from: arguments first, then the
// prompt on a terminal, else stdin (or the saved pool when stdin is idle).
func (e *Enable) source(f *netcheck.Facts, main netcheck.Subnet, dynamic bool, saved []iprange.Range) rangeSource {
	switch {
	case len(e.Args) > 0:
		return &argsSource{words: e.Args, addon: e.addon()}
	case e.Prompt != nil:
		return &promptSource{p: e.Prompt, r: e.report, f: f, main: main, askScope: dynamic && len(f.DHCPScopes) == 0, saved: saved}
	default:
		return &pipedSource{in: e.Stdin, r: e.report, saved: saved, addon: e.addon()}
	}
}

// ranges takes candidates from src and checks each (probing for live
// hosts) until one passes, or src has no other.
func (e *Enable) ranges(ctx context.Context, src rangeSource, f *netcheck.Facts) ([]iprange.Range, error) {
	for {
		rs, err := src.next(ctx)
		if err != nil {
			return nil, err
		}
		err = e.checkAll(ctx, rs, f)
		if err == nil {
			return rs, nil
		}
		if !src.retry(err) {
			return nil, err
		}
	}
}

// argsSource is the hook's positional arguments: one candidate.
type argsSource struct {
	words []string
	addon string // how MicroK8s names this addon, for the example
}

func (s *argsSource) next(context.Context) ([]iprange.Range, error) {
	rs, err := ParseRangeArgs(s.words)
	if err != nil {
		return nil, fmt.Errorf("%w\nexample: microk8s enable %s:192.168.1.240-192.168.1.250 (ranges, CIDRs, comma-separated lists)", err, s.addon)
	}
	return rs, nil
}

func (s *argsSource) retry(error) bool { return false }

// pipedSource reads one candidate from a non-terminal stdin; an idle or
// empty stdin gives the pool disable saved, if any.
type pipedSource struct {
	in    io.Reader
	r     reporter
	saved []iprange.Range
	addon string
}

func (s *pipedSource) next(context.Context) ([]iprange.Range, error) {
	text, err := readPiped(s.in, 500*time.Millisecond, s.addon)
	if errors.Is(err, ErrUsage) && len(s.saved) > 0 {
		s.r.step("using the saved pool \"default\": %s", iprange.Join(s.saved))
		return s.saved, nil
	}
	if err != nil {
		return nil, err
	}
	rs, err := iprange.ParseList(text)
	if err != nil {
		return nil, fmt.Errorf("range read from stdin: %w", err)
	}
	return rs, nil
}

func (s *pipedSource) retry(error) bool { return false }

// promptSource asks on a terminal: the DHCP scope once when it is unknown
// on a DHCP-configured host, then a range, offering a free one, until one
// passes or the user gives up.
type promptSource struct {
	p        Prompter
	r        reporter
	f        *netcheck.Facts
	main     netcheck.Subnet
	askScope bool
	saved    []iprange.Range
}

func (s *promptSource) next(context.Context) ([]iprange.Range, error) {
	if s.askScope {
		s.askScope = false
		if err := s.scope(); err != nil {
			return nil, err
		}
	}
	def := ""
	if r, ok := netcheck.Suggest(s.main, *s.f); ok {
		def = r.String()
	}
	if len(s.saved) > 0 {
		def = iprange.Join(s.saved)
	}
	text, err := s.p.Input("Address range(s) for LoadBalancer Services", def,
		"A range (192.168.1.240-192.168.1.250), a CIDR (192.168.1.240/29), or a comma-separated list. Use free addresses of this host's subnet, outside the DHCP scope.",
		func(in string) error {
			rs, err := iprange.ParseList(in)
			if err != nil {
				return err
			}
			if msgs := errorsOf(netcheck.Check(rs, *s.f)); len(msgs) > 0 {
				if fix, ok := netcheck.Repair(rs, *s.f); ok {
					msgs = append(msgs, suggestionText(fix))
				}
				return errors.New(strings.Join(msgs, "\n"))
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return iprange.ParseList(text)
}

func (s *promptSource) retry(err error) bool {
	if errors.Is(err, ErrAborted) {
		return false
	}
	if !errors.Is(err, errDeclined) {
		fmt.Fprintf(s.r.err, "%v\nChoose another range.\n", err)
	}
	return true
}

// scope asks for the DHCP server's scope, adding what the user enters to
// the facts.
func (s *promptSource) scope() error {
	s.r.step("This host got its address by DHCP, and the DHCP server's scope is unknown.")
	text, err := s.p.Input("DHCP scope of this network (its dynamic range, e.g. 192.168.1.100-192.168.1.199; empty if unknown)", "",
		"Service addresses must not be handed out by the DHCP server too. Look for the \"DHCP range\" or \"address pool\" on your router.",
		func(in string) error {
			if strings.TrimSpace(in) == "" {
				return nil
			}
			_, err := iprange.ParseList(in)
			return err
		})
	if err != nil || strings.TrimSpace(text) == "" {
		return err
	}
	rs, _ := iprange.ParseList(text)
	for _, r := range rs {
		s.f.DHCPScopes = append(s.f.DHCPScopes, netcheck.Sourced{Range: r, Source: "the DHCP scope you entered"})
	}
	return nil
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
func readPiped(r io.Reader, wait time.Duration, addon string) (string, error) {
	usage := fmt.Errorf("%w: pass one, e.g. microk8s enable %s:192.168.1.240-192.168.1.250, or run it in a terminal to be asked", ErrUsage, addon)
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
