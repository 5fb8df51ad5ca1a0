// Package arpprobe finds which addresses of a range are already in use on
// the local link, by asking for each address (in a few rounds) and
// collecting the answers: ARP requests for IPv4, NDP neighbor solicitations
// to each address's solicited-node group for IPv6 (RFC 4861). It is bounded
// in count and time so that a large range never floods the network or
// stalls the installer.
package arpprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/arp"

	"github.com/microk8s-metallb/metallb/pkg/netcheck"
)

// Options bound a probe.
type Options struct {
	Rounds   int                   // requests per address (default 2)
	Interval time.Duration         // between two requests (default 2ms: 500 packets/s)
	Linger   time.Duration         // wait for late replies after the last request (default 500ms)
	Progress func(sent, total int) // called after each request, if set
	dial     func(*net.Interface) (conn, error)
}

// conn asks who has an address, and reads the answers.
type conn interface {
	Request(netip.Addr) error
	// Read returns the next answer: the address and the MAC that has it;
	// ok is false for anything else read.
	Read() (ip netip.Addr, mac string, ok bool, err error)
	SetReadDeadline(time.Time) error
	Close() error
}

type arpConn struct{ *arp.Client }

func (c arpConn) Read() (netip.Addr, string, bool, error) {
	p, _, err := c.Client.Read()
	if err != nil || p.Operation != arp.OperationReply {
		return netip.Addr{}, "", false, err
	}
	return p.SenderIP, p.SenderHardwareAddr.String(), true, nil
}

// ErrPermission is returned when the process may not open a raw socket
// (it needs CAP_NET_RAW).
var ErrPermission = errors.New("probing needs CAP_NET_RAW (run as root)")

// Probe asks, on ifi, who has each of targets (all of one family), and
// returns the addresses that answered with the MAC that answered, sorted by
// address.
func Probe(ctx context.Context, ifi *net.Interface, targets []netip.Addr, opt Options) ([]netcheck.Host, error) {
	if opt.Rounds <= 0 {
		opt.Rounds = 2
	}
	if opt.Interval <= 0 {
		opt.Interval = 2 * time.Millisecond
	}
	if opt.Linger <= 0 {
		opt.Linger = 500 * time.Millisecond
	}
	proto := "ARP"
	dial := opt.dial
	if dial == nil {
		dial = dialARP
		if len(targets) > 0 && targets[0].Is6() {
			proto, dial = "NDP", dialNDP
		}
	}
	c, err := dial(ifi)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, ErrPermission
		}
		return nil, fmt.Errorf("open %s socket on %s: %w", proto, ifi.Name, err)
	}
	defer c.Close()

	want := make(map[netip.Addr]bool, len(targets))
	for _, t := range targets {
		want[t] = true
	}
	var (
		mu    sync.Mutex
		found = map[netip.Addr]string{}
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			ip, mac, ok, err := c.Read()
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
					return
				}
				continue // a frame that is not an answer
			}
			if !ok || !want[ip] {
				continue
			}
			mu.Lock()
			if _, seen := found[ip]; !seen {
				found[ip] = mac
			}
			mu.Unlock()
		}
	}()

	total := opt.Rounds * len(targets)
	sent := 0
	tick := time.NewTicker(opt.Interval)
	defer tick.Stop()
send:
	for round := 0; round < opt.Rounds; round++ {
		for _, t := range targets {
			mu.Lock()
			_, known := found[t]
			mu.Unlock()
			if !known {
				if err := c.Request(t); err != nil {
					_ = c.SetReadDeadline(time.Now())
					<-done
					return nil, fmt.Errorf("send %s request for %s on %s: %w", proto, t, ifi.Name, err)
				}
			}
			sent++
			if opt.Progress != nil {
				opt.Progress(sent, total)
			}
			select {
			case <-ctx.Done():
				break send
			case <-tick.C:
			}
		}
	}
	linger := time.Now().Add(opt.Linger)
	if ctx.Err() != nil {
		linger = time.Now()
	}
	_ = c.SetReadDeadline(linger)
	<-done

	out := make([]netcheck.Host, 0, len(found))
	for a, mac := range found {
		out = append(out, netcheck.Host{Addr: a, MAC: mac})
	}
	slices.SortFunc(out, func(a, b netcheck.Host) int { return a.Addr.Compare(b.Addr) })
	return out, ctx.Err()
}

func dialARP(ifi *net.Interface) (conn, error) {
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, err
	}
	return arpConn{c}, nil
}
