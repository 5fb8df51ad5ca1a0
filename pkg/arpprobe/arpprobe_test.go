package arpprobe

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"

	"github.com/microk8s-metallb/metallb/pkg/netcheck"
)

// fakeLink answers requests for the addresses in hosts, after a delay, and
// also delivers a stray request and a reply for an address nobody asked for.
type fakeLink struct {
	hosts    map[netip.Addr]net.HardwareAddr
	mu       sync.Mutex
	queue    chan *arp.Packet
	deadline time.Time
	requests int
}

func (f *fakeLink) Request(ip netip.Addr) error {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if mac, ok := f.hosts[ip]; ok {
		f.queue <- &arp.Packet{Operation: arp.OperationReply, SenderIP: ip, SenderHardwareAddr: mac}
	}
	f.queue <- &arp.Packet{Operation: arp.OperationRequest, SenderIP: ip}
	return nil
}

func (f *fakeLink) Read() (netip.Addr, string, bool, error) {
	for {
		f.mu.Lock()
		d := f.deadline
		f.mu.Unlock()
		select {
		case p := <-f.queue:
			return p.SenderIP, p.SenderHardwareAddr.String(), p.Operation == arp.OperationReply, nil
		case <-time.After(time.Millisecond):
			if !d.IsZero() && time.Now().After(d) {
				return netip.Addr{}, "", false, os.ErrDeadlineExceeded
			}
		}
	}
}

func (f *fakeLink) SetReadDeadline(t time.Time) error {
	f.mu.Lock()
	f.deadline = t
	f.mu.Unlock()
	return nil
}

func (f *fakeLink) Close() error { return nil }

func TestProbeFindsOnlyAskedAddressesThatAnswer(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 7}
	link := &fakeLink{
		hosts: map[netip.Addr]net.HardwareAddr{
			netip.MustParseAddr("192.0.2.7"):  mac,
			netip.MustParseAddr("192.0.2.99"): mac, // not a target
		},
		queue: make(chan *arp.Packet, 100),
	}
	link.queue <- &arp.Packet{Operation: arp.OperationReply, SenderIP: netip.MustParseAddr("192.0.2.99"), SenderHardwareAddr: mac}
	var targets []netip.Addr
	for i := 1; i <= 10; i++ {
		targets = append(targets, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	var progress []int
	got, err := Probe(context.Background(), &net.Interface{Name: "eth0"}, targets, Options{
		Interval: time.Microsecond, Linger: 20 * time.Millisecond,
		Progress: func(sent, total int) { progress = append(progress, sent) },
		dial:     func(*net.Interface) (conn, error) { return link, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netcheck.Host{{Addr: netip.MustParseAddr("192.0.2.7"), MAC: mac.String()}}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("found (-want +got):\n%s", diff)
	}
	if len(progress) != 20 || progress[19] != 20 {
		t.Errorf("progress = %v, want 1..20", progress)
	}
}

func TestProbeWithoutPermission(t *testing.T) {
	_, err := Probe(context.Background(), &net.Interface{Name: "eth0"}, nil, Options{
		dial: func(*net.Interface) (conn, error) { return nil, os.ErrPermission },
	})
	if err != ErrPermission {
		t.Errorf("err = %v, want ErrPermission", err)
	}
}
