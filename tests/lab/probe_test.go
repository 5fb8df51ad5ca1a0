package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// arpProbe is the one ARP probe of the lab tests: from the client's eth0 it
// sees every ARP packet about one address (a reply, or a gratuitous
// announcement) and can ask for it. It answers the three questions the
// tests ask: who answered each request (every), which MAC announced the
// address first since a moment (reset, seen, firstAfter), and whether
// anyone answers at all. Arping, the real tool, is the other probe.
type arpProbe struct {
	ip   netip.Addr
	conn *packet.Conn
	mac  net.HardwareAddr

	mu    sync.Mutex
	first map[string]time.Time // since the last reset: when each MAC first answered or announced ip
	asked []probeResult        // the requests sent by every, with who answered each
}

// probeResult is one ARP probe: the MACs that answered its request.
type probeResult struct {
	at   time.Time
	from netip.Addr // the request's sender address: replies name it
	macs map[string]bool
}

// probeSenders is how many sender addresses the probes take turns among.
const probeSenders = 16

// probeSender is the sender address of the i-th probe: the probes take
// turns among unused lab addresses (198.51.100.150 on), so that every reply
// names the request it answers, and a reply that comes late (a loaded node,
// a loaded client) counts for its own request, not for the next one.
func probeSender(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, 100, byte(150 + i%probeSenders)})
}

// newARPProbe opens the probe for ip; it closes when the test ends.
func newARPProbe(tb testing.TB, ip netip.Addr) *arpProbe {
	tb.Helper()
	p := &arpProbe{ip: ip, first: map[string]time.Time{}}
	if err := In("client", func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		p.mac = ifi.HardwareAddr
		p.conn, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.conn.Close() })
	go p.read()
	return p
}

func (p *arpProbe) read() {
	buf := make([]byte, 1500)
	for {
		n, _, err := p.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var f ethernet.Frame
		var a arp.Packet
		if f.UnmarshalBinary(buf[:n]) != nil || a.UnmarshalBinary(f.Payload) != nil || a.SenderIP != p.ip {
			continue
		}
		reply := a.Operation == arp.OperationReply
		if !reply && a.TargetIP != p.ip {
			continue // a request from the address, not an announcement of it
		}
		mac := a.SenderHardwareAddr.String()
		p.mu.Lock()
		if _, ok := p.first[mac]; !ok {
			p.first[mac] = time.Now()
		}
		if reply {
			for j := len(p.asked) - 1; j >= 0 && j >= len(p.asked)-probeSenders; j-- {
				if p.asked[j].from == a.TargetIP {
					p.asked[j].macs[mac] = true
					break
				}
			}
		}
		p.mu.Unlock()
	}
}

// ask sends one broadcast request for the address from sender.
func (p *arpProbe) ask(sender netip.Addr) {
	req, err := arp.NewPacket(arp.OperationRequest, p.mac, sender, ethernet.Broadcast, p.ip)
	if err != nil {
		return
	}
	b, err := req.MarshalBinary()
	if err != nil {
		return
	}
	f := ethernet.Frame{Destination: ethernet.Broadcast, Source: p.mac, EtherType: ethernet.EtherTypeARP, Payload: b}
	fb, err := f.MarshalBinary()
	if err != nil {
		return
	}
	_, _ = p.conn.WriteTo(fb, &packet.Addr{HardwareAddr: ethernet.Broadcast})
}

// every asks for the address each period until ctx ends, and then sends
// who answered each request (a request's answers count until the
// probeSenders-th next one).
func (p *arpProbe) every(ctx context.Context, period time.Duration) <-chan []probeResult {
	out := make(chan []probeResult, 1)
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		start := len(p.asked)
		for i := 0; ctx.Err() == nil; i++ {
			r := probeResult{at: time.Now(), from: probeSender(i), macs: map[string]bool{}}
			p.mu.Lock()
			p.asked = append(p.asked, r)
			p.mu.Unlock()
			p.ask(r.from)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		time.Sleep(period) // the last request's answers
		p.mu.Lock()
		res := make([]probeResult, len(p.asked)-start)
		copy(res, p.asked[start:])
		p.mu.Unlock()
		out <- res
	}()
	return out
}

// probeARP asks for ip every period from the client until ctx ends, and
// sends who answered each request.
func probeARP(ctx context.Context, tb testing.TB, ip netip.Addr, period time.Duration) <-chan []probeResult {
	return newARPProbe(tb, ip).every(ctx, period)
}

// reset forgets which MACs were seen.
func (p *arpProbe) reset() {
	p.mu.Lock()
	p.first = map[string]time.Time{}
	p.mu.Unlock()
}

// seen reports when mac first answered or announced the address since the
// last reset.
func (p *arpProbe) seen(mac string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.first[mac]
	return t, ok
}

// firstAfter waits for the first answer or announcement since the last
// reset, from any MAC, and returns when it came and from whom.
func (p *arpProbe) firstAfter(timeout time.Duration) (time.Time, string, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		var at time.Time
		var mac string
		for m, t := range p.first {
			if at.IsZero() || t.Before(at) {
				at, mac = t, m
			}
		}
		p.mu.Unlock()
		if !at.IsZero() {
			return at, mac, true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}, "", false
}

// askEvery asks for the address each period until ctx ends (the answers
// are seen by seen and firstAfter).
func (p *arpProbe) askEvery(ctx context.Context, period time.Duration) {
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for i := 0; ; i++ {
			p.ask(probeSender(i))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func countProbes(rs []probeResult, from, to time.Time) (total, unanswered, dual int) {
	for _, r := range rs {
		if r.at.Before(from) || !r.at.Before(to) {
			continue
		}
		total++
		switch {
		case len(r.macs) == 0:
			unanswered++
		case len(r.macs) > 1:
			dual++
		}
	}
	return
}

// holdsOneMAC probes ip every 200 ms for the whole window: each request
// must be answered by mac, and by no other. "Nothing moves" is checked
// across the window, not by one sample after a sleep.
func holdsOneMAC(tb testing.TB, ip, mac string, window time.Duration, when string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	rs := <-newARPProbe(tb, netip.MustParseAddr(ip)).every(ctx, 200*time.Millisecond)
	bad := 0
	var first string
	for _, r := range rs {
		if len(r.macs) != 1 || !r.macs[mac] {
			if bad == 0 {
				first = fmt.Sprintf("at %v: %v", r.at.Format("15:04:05.000"), r.macs)
			}
			bad++
		}
	}
	if bad > 0 || len(rs) < int(window/(400*time.Millisecond)) {
		tb.Fatalf("%s: %d of %d probes over %v not answered by %s alone (the first %s)", when, bad, len(rs), window, mac, first)
	}
}

// waitNDP waits until the client's kernel resolves ip (after a TCP
// connection made it solicit it) to the MAC of owner alone.
func waitNDP(t *testing.T, cl *cluster, ip, owner string, timeout time.Duration) {
	t.Helper()
	var neigh string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_ = Exec(context.Background(), "client", "ip", "-6", "neigh", "flush", ip).Run()
		reply, err := Dial("client", "["+ip+"]:8080", time.Second)
		out, _ := Exec(context.Background(), "client", "ip", "-6", "neigh", "show", ip).CombinedOutput()
		neigh = strings.ToLower(string(out))
		if err == nil && reply == owner && strings.Contains(neigh, cl.MACs[owner]) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("[%s] not resolved to %s (%s): client neighbour entry %q", ip, owner, cl.MACs[owner], strings.TrimSpace(neigh))
}
