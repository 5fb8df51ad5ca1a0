package lab

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/microk8s-metallb/metallb/pkg/election"
)

// TestSpeakersSurviveMalformedFrames sends the speakers 10,000 malformed
// ARP and NDP frames from the client (truncated, wrong lengths and
// opcodes, odd sender addresses, trailing junk, bad and zero-length NDP
// options, solicitations from off-link sources a reply cannot reach, and
// forged claims of the addresses), with enough well-formed requests among
// them that the parsers are seen to run. Throughout and after, the owners
// answer ARP and NDP for their addresses alone, no speaker exits, panics
// or stops a responder.
func TestSpeakersSurviveMalformedFrames(t *testing.T) {
	cl := startCluster(t)
	cl.addBackend(t, "web-0", "web", "node-a")
	ip4 := cl.createService(t, "web4", "web", false, corev1.IPv4Protocol)
	ip6 := cl.createService(t, "web6", "web", false, corev1.IPv6Protocol)
	DeliverVIP(t, ip6)
	owner4 := election.Owner(netip.MustParseAddr(ip4), Nodes)
	owner6 := election.Owner(netip.MustParseAddr(ip6), Nodes)
	waitOneMAC(t, ip4, cl.MACs[owner4], 30*time.Second)
	waitNDP(t, cl, ip6, owner6, 30*time.Second)
	before4, before6 := requestsReceived(t, owner4, ip4), requestsReceived(t, owner6, ip6)

	const total = 10000
	client, err := net.ParseMAC(cl.MACs["client"])
	if err != nil {
		t.Fatal(err)
	}
	g := frameGen{rnd: rand.New(rand.NewPCG(1, 2)), client: client,
		vip4: netip.MustParseAddr(ip4), vip6: netip.MustParseAddr(ip6)}
	frames := make([][]byte, total)
	valid4, valid6 := 0, 0
	for i := range frames {
		var ok bool
		if i%2 == 0 {
			frames[i], ok = g.arp()
			if ok {
				valid4++
			}
		} else {
			frames[i], ok = g.ndp()
			if ok {
				valid6++
			}
		}
	}

	// Send them in bursts of 100 every 10 ms (10,000 frames/s), probing
	// ARP from the client's own stack across the whole window.
	ctx, cancel := context.WithCancel(context.Background())
	probes := make(chan [2]int, 1)
	go func() {
		var n, miss int
		for ctx.Err() == nil {
			macs, _ := Arping(t, ctx, ip4, 1)
			if ctx.Err() != nil {
				break
			}
			n++
			if len(macs) != 1 || macs[cl.MACs[owner4]] == 0 {
				miss++
			}
		}
		probes <- [2]int{n, miss}
	}()
	start := time.Now()
	err = In("client", func() error { return sendFrames(frames, 100, 10*time.Millisecond) })
	sent := time.Since(start)
	time.Sleep(2 * time.Second) // two more probes after the last frame
	cancel()
	p := <-probes
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d frames sent in %v (at least %d well-formed ARP requests and %d NDP solicitations for the addresses among them); ARP probes %d, %d not answered by %s alone",
		total, sent.Round(time.Millisecond), valid4, valid6, p[0], p[1], owner4)

	for _, n := range Nodes {
		if err := cl.speakers[n].Process.Signal(unix.Signal(0)); err != nil {
			t.Errorf("the speaker of %s exited", n)
		}
		log, err := os.ReadFile(cl.logs[n])
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"panic", "responder stopped"} {
			if strings.Contains(string(log), bad) {
				t.Errorf("the speaker of %s logged %q", n, bad)
			}
		}
	}
	if p[1] > 0 {
		t.Errorf("%d of %d ARP probes during the frames not answered by %s alone", p[1], p[0], owner4)
	}
	waitOneMAC(t, ip4, cl.MACs[owner4], 10*time.Second)
	waitNDP(t, cl, ip6, owner6, 10*time.Second)
	// The well-formed requests reached the parsers (some may be dropped by
	// a full socket buffer; most must arrive).
	got4, got6 := requestsReceived(t, owner4, ip4)-before4, requestsReceived(t, owner6, ip6)-before6
	t.Logf("requests counted by the owners: ARP %d of %d, NDP %d of %d", got4, valid4, got6, valid6)
	if got4 < valid4/2 || got6 < valid6/2 {
		t.Errorf("the owners counted %d of %d ARP and %d of %d NDP requests: the frames did not reach them", got4, valid4, got6, valid6)
	}
}

// requestsReceived reads the requests for ip that node's speaker counted.
func requestsReceived(t *testing.T, node, ip string) int {
	t.Helper()
	addr := NodeAddr(node) + ":7473"
	body, err := HTTPGet("client", addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^metallb_layer2_requests_received\{[^}]*ip="` + regexp.QuoteMeta(ip) + `"[^}]*\} (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	return int(n)
}

// sendFrames writes frames on the calling namespace's eth0 from a packet
// socket, burst at a time, pausing between bursts.
func sendFrames(frames [][]byte, burst int, pause time.Duration) error {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	for i, f := range frames {
		copy(to.Addr[:], f[:6])
		if err := unix.Sendto(fd, f, 0, to); err != nil {
			return fmt.Errorf("frame %d (%d bytes): %w", i, len(f), err)
		}
		if (i+1)%burst == 0 {
			time.Sleep(pause)
		}
	}
	return nil
}

// frameGen builds malformed ARP and NDP frames from the client. Sender
// addresses are unused ones of the lab's ranges: nothing on the bridge
// learns an address from outside them, or a false MAC for a real host.
type frameGen struct {
	rnd        *rand.Rand
	client     net.HardwareAddr
	vip4, vip6 netip.Addr
	n4, n6     int
}

func (g *frameGen) mac() net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	for i := range m {
		m[i] = byte(g.rnd.UintN(256))
	}
	return m
}

// labIPv4 is an address of the lab's subnet that no host has: a request
// from a host's own address with another MAC would rewrite the neighbour
// caches of every node (ARP spoofing, which any host on a LAN can do and
// no speaker can prevent), which is not what this test is about.
func (g *frameGen) labIPv4() [4]byte { return [4]byte{198, 51, 100, byte(150 + g.rnd.IntN(50))} }

// arp returns an ARP frame, and whether it is a well-formed request for
// the address from another host (which the owner answers and counts).
func (g *frameGen) arp() ([]byte, bool) {
	g.n4++
	f := make([]byte, 14+28)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], g.client)
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	p := f[14:]
	binary.BigEndian.PutUint16(p[0:], 1)
	binary.BigEndian.PutUint16(p[2:], 0x0800)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], 1)
	sender := g.mac()
	sender[0] = sender[0]&^1 | 2 // unicast, locally administered
	copy(p[8:14], sender)
	spa := g.labIPv4()
	copy(p[14:18], spa[:])
	tpa := g.vip4.As4()
	copy(p[24:28], tpa[:])
	valid := false
	switch g.n4 % 8 {
	case 0: // truncated anywhere in the packet (a runt: no padding)
		f = f[:14+g.rnd.IntN(28)]
	case 1: // hardware and protocol lengths that do not fit
		p[4], p[5] = byte(g.rnd.UintN(256)), byte(g.rnd.UintN(256))
		f = append(f, make([]byte, g.rnd.IntN(600))...)
	case 2: // any opcode, hardware and protocol type
		binary.BigEndian.PutUint16(p[6:], uint16(g.rnd.UintN(1<<16)))
		binary.BigEndian.PutUint16(p[0:], uint16(g.rnd.UintN(3)))
		binary.BigEndian.PutUint16(p[2:], []uint16{0x0800, 0x86dd, 0}[g.rnd.IntN(3)])
	case 3: // multicast, zero and broadcast sender MACs
		copy(p[8:14], [][]byte{{1, 0, 0x5e, 0, 0, 1}, make([]byte, 6), {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}[g.rnd.IntN(3)])
	case 4: // another MAC claims the address (a gratuitous request or reply)
		copy(p[14:18], tpa[:])
		binary.BigEndian.PutUint16(p[6:], uint16(1+g.rnd.IntN(2)))
	case 5: // trailing junk up to a full frame
		junk := make([]byte, g.rnd.IntN(1500-28))
		for i := range junk {
			junk[i] = byte(g.rnd.UintN(256))
		}
		f = append(f, junk...)
		valid = true
	case 6: // a zero or unspecified sender address
		copy(p[14:18], []byte{0, 0, 0, 0})
	default:
		valid = true
	}
	return f, valid
}

// ndp returns an IPv6 frame carrying ICMPv6 with a correct checksum (the
// kernel drops any other before the speaker sees it), and whether it is a
// well-formed solicitation for the address that the owner counts.
func (g *frameGen) ndp() ([]byte, bool) {
	g.n6++
	src := netip.MustParseAddr("fe80::64")
	if g.n6%3 == 0 {
		src = netip.MustParseAddr("2001:db8::64")
	}
	snm := g.vip6.As16()
	dst := netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: snm[13], 14: snm[14], 15: snm[15]})
	hop := byte(255)
	typ, code := byte(135), byte(0)
	target := snm
	opts := append([]byte{1, 1}, g.client...)
	valid := false
	switch g.n6 % 8 {
	case 0: // an option of length 0 (RFC 4861: drop) and one past the end
		opts = append([]byte{byte(1 + g.rnd.IntN(20)), 0}, opts...)
		if g.rnd.IntN(2) == 0 {
			opts = []byte{1, byte(2 + g.rnd.IntN(250)), 0, 0, 0, 0, 0, 0}
		}
	case 1: // truncated inside the target address (below)
	case 2: // from off the link: a reply cannot reach it
		src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: byte(1 + g.rnd.IntN(250))})
		valid = true
	case 3: // hop limit not 255 (a router forwarded it)
		hop = byte(g.rnd.IntN(255))
	case 4: // an advertisement from another MAC claiming the address
		typ = 136
		opts = append([]byte{2, 1}, g.mac()...)
	case 5: // other types and codes, random options
		typ, code = byte(133+g.rnd.IntN(5)), byte(g.rnd.IntN(3))
		opts = make([]byte, 8*g.rnd.IntN(8))
		for i := range opts {
			opts[i] = byte(g.rnd.UintN(256))
		}
	case 6: // duplicate address detection, from ::
		src, opts = netip.IPv6Unspecified(), nil
		valid = true
	default:
		valid = true
	}
	icmp := []byte{typ, code, 0, 0, 0, 0, 0, 0}
	if g.n6%8 == 1 {
		icmp = append(icmp, target[:g.rnd.IntN(16)]...)
	} else {
		icmp = append(icmp, target[:]...)
		icmp = append(icmp, opts...)
	}
	s, d := src.As16(), dst.As16()
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(s, d, icmp))
	ip := make([]byte, 40, 40+len(icmp))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(icmp)))
	ip[6], ip[7] = 58, hop
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	f := []byte{0x33, 0x33, d[12], d[13], d[14], d[15]}
	f = append(f, g.client...)
	f = append(f, 0x86, 0xdd)
	f = append(append(f, ip...), icmp...)
	return f, valid
}

func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:], uint32(len(msg)))
	l[7] = 58
	add(l[:])
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
