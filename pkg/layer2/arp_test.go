package layer2

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// memConn is an in-memory frameConn: tests push frames in and read what
// the responder wrote.
type memConn struct {
	in     chan []byte
	mu     sync.Mutex
	out    [][]byte
	closed chan struct{}
	once   sync.Once
	err    error // what every write fails with, if set
}

func newMemConn() *memConn { return &memConn{in: make(chan []byte, 16), closed: make(chan struct{})} }

func (c *memConn) ReadFrame(b []byte) (int, time.Time, error) {
	select {
	case f := <-c.in:
		return copy(b, f), time.Now(), nil
	case <-c.closed:
		return 0, time.Time{}, net.ErrClosed
	}
}

func (c *memConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.out = append(c.out, append([]byte(nil), b...))
	return len(b), nil
}

func (c *memConn) written() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out
}

func (c *memConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// fakeHandler owns a fixed set of addresses and records what it is told.
type fakeHandler struct {
	mu        sync.Mutex
	owned     map[netip.Addr]bool
	conflicts []string
	counts    map[string]int
}

func newFakeHandler(ips ...string) *fakeHandler {
	h := &fakeHandler{owned: map[netip.Addr]bool{}, counts: map[string]int{}}
	for _, ip := range ips {
		h.owned[netip.MustParseAddr(ip)] = true
	}
	return h
}

func (h *fakeHandler) Owns(_ string, ip netip.Addr, _ time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.owned[ip]
}
func (h *fakeHandler) Conflict(_ string, ip netip.Addr, mac net.HardwareAddr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conflicts = append(h.conflicts, ip.String()+" "+mac.String())
}
func (h *fakeHandler) Count(ev string, _ netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[ev]++
}

var (
	ourMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xc}
	rogueMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbad & 0xff}
)

func arpFrame(t *testing.T, op arp.Operation, srcMAC net.HardwareAddr, srcIP string, dstMAC net.HardwareAddr, dstIP string) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, srcMAC, netip.MustParseAddr(srcIP), dstMAC, netip.MustParseAddr(dstIP))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := p.MarshalBinary()
	dst := ethernet.Broadcast
	if op == arp.OperationReply {
		dst = dstMAC
	}
	f := ethernet.Frame{Destination: dst, Source: srcMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, _ := f.MarshalBinary()
	return fb
}

// decode describes a written frame as "op senderMAC senderIP -> targetMAC targetIP (eth dst)".
func decode(t *testing.T, b []byte) string {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(p.Operation.String(), "Operation") + " " + p.SenderHardwareAddr.String() + " " + p.SenderIP.String() +
		" -> " + p.TargetHardwareAddr.String() + " " + p.TargetIP.String() + " (to " + f.Destination.String() + ")"
}

func TestARPResponder(t *testing.T) {
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	tests := []struct {
		name      string
		frame     func(t *testing.T) []byte
		wantOut   []string
		conflicts []string
	}{
		{
			name: "request for our address is answered",
			frame: func(t *testing.T) []byte {
				return arpFrame(t, arp.OperationRequest, clientMAC, "198.51.100.9", zero, "198.51.100.200")
			},
			wantOut: []string{"Reply 02:00:00:00:00:01 198.51.100.200 -> 02:00:00:00:00:0c 198.51.100.9 (to 02:00:00:00:00:0c)"},
		},
		{
			name: "request for another address is ignored",
			frame: func(t *testing.T) []byte {
				return arpFrame(t, arp.OperationRequest, clientMAC, "198.51.100.9", zero, "198.51.100.201")
			},
		},
		{
			name: "RFC 5227 probe (sender 0.0.0.0) is answered",
			frame: func(t *testing.T) []byte {
				return arpFrame(t, arp.OperationRequest, clientMAC, "0.0.0.0", zero, "198.51.100.200")
			},
			wantOut: []string{"Reply 02:00:00:00:00:01 198.51.100.200 -> 02:00:00:00:00:0c 0.0.0.0 (to 02:00:00:00:00:0c)"},
		},
		{
			name: "another MAC replying for our address is a conflict",
			frame: func(t *testing.T) []byte {
				return arpFrame(t, arp.OperationReply, rogueMAC, "198.51.100.200", clientMAC, "198.51.100.9")
			},
			conflicts: []string{"198.51.100.200 02:00:00:00:00:ad"},
		},
		{
			name: "another MAC announcing our address is a conflict",
			frame: func(t *testing.T) []byte {
				return arpFrame(t, arp.OperationRequest, rogueMAC, "198.51.100.200", ethernet.Broadcast, "198.51.100.200")
			},
			conflicts: []string{"198.51.100.200 02:00:00:00:00:ad"},
		},
		{
			name: "our own frames are ignored",
			frame: func(t *testing.T) []byte {
				return arpFrame(t, arp.OperationRequest, ourMAC, "198.51.100.200", ethernet.Broadcast, "198.51.100.200")
			},
		},
		{
			name:  "garbage is ignored",
			frame: func(*testing.T) []byte { return []byte{1, 2, 3} },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := newMemConn()
			h := newFakeHandler("198.51.100.200")
			r := newARPResponder("eth0", ourMAC, conn, h)
			if err := r.handle(tc.frame(t), time.Now()); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range conn.written() {
				got = append(got, decode(t, b))
			}
			if diff := cmp.Diff(tc.wantOut, got); diff != "" {
				t.Errorf("written (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.conflicts, h.conflicts); diff != "" {
				t.Errorf("conflicts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestARPGratuitousAndRun(t *testing.T) {
	conn := newMemConn()
	h := newFakeHandler("198.51.100.200")
	r := newARPResponder("eth0", ourMAC, conn, h)
	if err := r.gratuitous(netip.MustParseAddr("198.51.100.200")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- r.run() }()
	conn.in <- arpFrame(t, arp.OperationRequest, clientMAC, "198.51.100.9", net.HardwareAddr{0, 0, 0, 0, 0, 0}, "198.51.100.200")
	deadline := time.Now().Add(2 * time.Second)
	for len(conn.written()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w := conn.written()
	if len(w) != 2 {
		t.Fatalf("wrote %d frames, want 2", len(w))
	}
	if got, want := decode(t, w[0]), "Request 02:00:00:00:00:01 198.51.100.200 -> ff:ff:ff:ff:ff:ff 198.51.100.200 (to ff:ff:ff:ff:ff:ff)"; got != want {
		t.Errorf("gratuitous = %q, want %q", got, want)
	}
	if diff := cmp.Diff(map[string]int{EventGratuitous: 1, EventRequest: 1, EventResponse: 1}, h.counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

// FuzzARPHandle feeds arbitrary frames to the responder: it must never
// panic, and only ever answer with well-formed ARP replies.
func FuzzARPHandle(f *testing.F) {
	f.Add(arpFrameBytes(arp.OperationRequest, clientMAC, "198.51.100.9", "198.51.100.200"))
	f.Add(arpFrameBytes(arp.OperationReply, rogueMAC, "198.51.100.200", "198.51.100.9"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		conn := newMemConn()
		r := newARPResponder("eth0", ourMAC, conn, newFakeHandler("198.51.100.200"))
		if err := r.handle(frame, time.Now()); err != nil {
			t.Fatal(err)
		}
		for _, b := range conn.written() {
			var fr ethernet.Frame
			if err := fr.UnmarshalBinary(b); err != nil {
				t.Fatalf("wrote a bad frame: %v", err)
			}
			var p arp.Packet
			if err := p.UnmarshalBinary(fr.Payload); err != nil || p.Operation != arp.OperationReply || p.SenderIP != netip.MustParseAddr("198.51.100.200") {
				t.Fatalf("wrote %+v (%v)", p, err)
			}
		}
	})
}

func arpFrameBytes(op arp.Operation, srcMAC net.HardwareAddr, srcIP, dstIP string) []byte {
	p, _ := arp.NewPacket(op, srcMAC, netip.MustParseAddr(srcIP), net.HardwareAddr{0, 0, 0, 0, 0, 0}, netip.MustParseAddr(dstIP))
	pb, _ := p.MarshalBinary()
	f := ethernet.Frame{Destination: ethernet.Broadcast, Source: srcMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, _ := f.MarshalBinary()
	return fb
}
