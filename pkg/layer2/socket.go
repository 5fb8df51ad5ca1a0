package layer2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// The responders read each request with the time the kernel received it
// (SO_TIMESTAMPNS), not the time the speaker got round to reading it: a
// request that arrived before this node claimed its address belonged to
// the previous owner, which may have answered it, and must not get a
// second answer from this MAC however late it is read.

// enableRxTimestamps asks the kernel to stamp every datagram received on c.
func enableRxTimestamps(c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("enable receive timestamps: %w", err)
	}
	return nil
}

// rxTime returns the SCM_TIMESTAMPNS of a datagram's control messages, or
// the zero time if there is none.
func rxTime(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS {
			continue
		}
		switch len(m.Data) {
		case 16: // 64-bit timespec
			return time.Unix(int64(binary.NativeEndian.Uint64(m.Data)), int64(binary.NativeEndian.Uint64(m.Data[8:])))
		case 8: // 32-bit timespec
			return time.Unix(int64(int32(binary.NativeEndian.Uint32(m.Data))), int64(int32(binary.NativeEndian.Uint32(m.Data[4:]))))
		}
	}
	return time.Time{}
}

// enableRxHopLimit asks the kernel to pass every IPv6 datagram's hop
// limit up with it (IPV6_RECVHOPLIMIT).
func enableRxHopLimit(c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("enable receive hop limits: %w", err)
	}
	return nil
}

// rxHopLimit returns the IPV6_HOPLIMIT of a datagram's control messages,
// false if there is none.
func rxHopLimit(oob []byte) (int, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4 {
			return int(int32(binary.NativeEndian.Uint32(m.Data))), true
		}
	}
	return 0, false
}

// oobSize holds one timestamp control message; ndpOOBSize a hop limit too.
var (
	oobSize    = unix.CmsgSpace(16)
	ndpOOBSize = unix.CmsgSpace(16) + unix.CmsgSpace(4)
)

// arpConn is a packet socket for ARP frames that reports when each frame
// arrived.
type arpConn struct {
	pc     *packet.Conn
	rc     syscall.RawConn
	oob    []byte
	closed atomic.Bool
}

func listenARP(ifi *net.Interface) (*arpConn, error) {
	pc, err := packet.Listen(ifi, packet.Raw, protoARP, nil)
	if err != nil {
		return nil, fmt.Errorf("open ARP socket: %w", err)
	}
	rc, err := pc.SyscallConn()
	if err == nil {
		err = enableRxTimestamps(rc)
	}
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("ARP socket on %s: %w", ifi.Name, err)
	}
	return &arpConn{pc: pc, rc: rc, oob: make([]byte, oobSize)}, nil
}

// ReadFrame reads one frame into b, with the time the kernel received it.
func (c *arpConn) ReadFrame(b []byte) (int, time.Time, error) {
	var n, oobn int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), b, c.oob, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		if c.closed.Load() {
			return 0, time.Time{}, net.ErrClosed
		}
		return 0, time.Time{}, err
	}
	return n, rxTime(c.oob[:oobn]), nil
}

func (c *arpConn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.pc.WriteTo(b, addr) }

func (c *arpConn) Close() error {
	c.closed.Store(true)
	return c.pc.Close()
}

// ndpSocket is an ICMPv6 socket on one interface that sends and receives
// Neighbor Solicitations and Advertisements (hop limit 255, RFC 4861), and
// reports when each message arrived.
type ndpSocket struct {
	c   *net.IPConn
	pc  *ipv6.PacketConn
	ifi *net.Interface
	src netip.Addr // the interface's link-local address
	buf []byte
	oob []byte
}

func listenNDP(ifi *net.Interface) (*ndpSocket, error) {
	src, err := linkLocal(ifi)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenIP("ip6:ipv6-icmp", &net.IPAddr{IP: src.AsSlice(), Zone: ifi.Name})
	if err != nil {
		return nil, fmt.Errorf("open ICMPv6 socket on %s: %w", ifi.Name, err)
	}
	s := &ndpSocket{c: c, pc: ipv6.NewPacketConn(c), ifi: ifi, src: src, buf: make([]byte, max(ifi.MTU, 1280)), oob: make([]byte, ndpOOBSize)}
	if err := s.setup(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("ICMPv6 socket on %s: %w", ifi.Name, err)
	}
	return s, nil
}

// setup sets the hop limits NDP requires, lets only solicitations and
// advertisements through, and turns receive timestamps on.
func (s *ndpSocket) setup() error {
	if err := s.pc.SetHopLimit(ndp.HopLimit); err != nil {
		return err
	}
	if err := s.pc.SetMulticastHopLimit(ndp.HopLimit); err != nil {
		return err
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborSolicitation)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := s.pc.SetICMPFilter(&f); err != nil {
		return err
	}
	rc, err := s.c.SyscallConn()
	if err != nil {
		return err
	}
	if err := enableRxHopLimit(rc); err != nil {
		return err
	}
	return enableRxTimestamps(rc)
}

// linkLocal returns the interface's IPv6 link-local address.
func linkLocal(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv6 link-local address yet", ifi.Name)
}

// ReadFrom reads the next NDP message that did not come from this socket
// and was sent on the link (hop limit 255, RFC 4861 7.1.1: a router would
// have lowered it, so a message from off the link is dropped), with its
// source and the time the kernel received it.
func (s *ndpSocket) ReadFrom() (ndp.Message, netip.Addr, time.Time, error) {
	for {
		n, oobn, _, from, err := s.c.ReadMsgIP(s.buf, s.oob)
		if err != nil {
			return nil, netip.Addr{}, time.Time{}, err
		}
		src, _ := netip.AddrFromSlice(from.IP)
		if src == s.src {
			continue // our own, looped back
		}
		if hl, ok := rxHopLimit(s.oob[:oobn]); !ok || hl != ndp.HopLimit {
			continue
		}
		m, err := ndp.ParseMessage(s.buf[:n])
		if err != nil {
			continue // not NDP we understand
		}
		return m, src.WithZone(s.ifi.Name), rxTime(s.oob[:oobn]), nil
	}
}

// WriteTo sends m to dst from the link-local address.
func (s *ndpSocket) WriteTo(m ndp.Message, dst netip.Addr) error {
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		return err
	}
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: s.src.AsSlice(), IfIndex: s.ifi.Index}
	_, err = s.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: s.ifi.Name})
	return err
}

func (s *ndpSocket) JoinGroup(g netip.Addr) error {
	return s.pc.JoinGroup(s.ifi, &net.IPAddr{IP: g.AsSlice(), Zone: s.ifi.Name})
}

func (s *ndpSocket) LeaveGroup(g netip.Addr) error {
	return s.pc.LeaveGroup(s.ifi, &net.IPAddr{IP: g.AsSlice(), Zone: s.ifi.Name})
}

func (s *ndpSocket) Close() error { return s.c.Close() }
