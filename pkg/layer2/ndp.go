package layer2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
)

// ndpConn is the part of *ndp.Conn the responder uses; tests pass a fake.
type ndpConn interface {
	// ReadFrom reads a message, its source and the time the kernel
	// received it.
	ReadFrom() (ndp.Message, netip.Addr, time.Time, error)
	WriteTo(m ndp.Message, dst netip.Addr) error
	JoinGroup(group netip.Addr) error
	LeaveGroup(group netip.Addr) error
	Close() error
}

var allNodes = netip.MustParseAddr("ff02::1")

// ndpResponder answers Neighbor Solicitations on one interface.
type ndpResponder struct {
	ifname string
	mac    net.HardwareAddr
	conn   ndpConn
	h      Handler
	debug  func(m ndp.Message, src netip.Addr)
}

func newNDPResponder(ifname string, mac net.HardwareAddr, conn ndpConn, h Handler) *ndpResponder {
	return &ndpResponder{ifname: ifname, mac: mac, conn: conn, h: h}
}

// watch joins the solicited-node multicast group of ip, so that the kernel
// hands us the solicitations for it.
func (r *ndpResponder) watch(ip netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return err
	}
	return r.conn.JoinGroup(g)
}

func (r *ndpResponder) unwatch(ip netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return err
	}
	return r.conn.LeaveGroup(g)
}

func (r *ndpResponder) run() error {
	for {
		m, src, at, err := r.conn.ReadFrom()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read NDP on %s: %w", r.ifname, err)
		}
		if r.debug != nil {
			r.debug(m, src)
		}
		if err := r.handle(m, src, at); err != nil {
			return err
		}
	}
}

func (r *ndpResponder) handle(m ndp.Message, src netip.Addr, at time.Time) error {
	switch m := m.(type) {
	case *ndp.NeighborAdvertisement:
		if mac := linkAddr(m.Options, ndp.Target); mac != nil && !equalMAC(mac, r.mac) && r.h.Owns(r.ifname, m.TargetAddress, at) {
			r.h.Conflict(r.ifname, m.TargetAddress, mac)
		}
	case *ndp.NeighborSolicitation:
		if !r.h.Owns(r.ifname, m.TargetAddress, at) {
			return nil
		}
		if mac := linkAddr(m.Options, ndp.Source); mac != nil && equalMAC(mac, r.mac) {
			return nil
		}
		r.h.Count(EventRequest, m.TargetAddress)
		// Duplicate address detection comes from ::, and is answered to
		// all nodes (RFC 4861 §7.2.4).
		// (The source carries the interface as its zone: compare without.)
		dst, solicited := src, true
		if !src.IsValid() || src.WithZone("").IsUnspecified() {
			dst, solicited = allNodes, false
		}
		if err := r.advertise(m.TargetAddress, dst, solicited); err != nil {
			return replyFailed(err)
		}
		r.h.Count(EventResponse, m.TargetAddress)
	}
	return nil
}

// advertise sends a Neighbor Advertisement for ip with our MAC, overriding
// what neighbours cached.
func (r *ndpResponder) advertise(ip, dst netip.Addr, solicited bool) error {
	na := &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: r.mac}},
	}
	if err := r.conn.WriteTo(na, dst); err != nil {
		return fmt.Errorf("write NDP on %s: %w", r.ifname, err)
	}
	return nil
}

// gratuitous sends an unsolicited Neighbor Advertisement to all nodes.
func (r *ndpResponder) gratuitous(ip netip.Addr) error {
	if err := r.advertise(ip, allNodes, false); err != nil {
		return err
	}
	r.h.Count(EventGratuitous, ip)
	return nil
}

func linkAddr(opts []ndp.Option, dir ndp.Direction) net.HardwareAddr {
	for _, o := range opts {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == dir {
			return l.Addr
		}
	}
	return nil
}

func equalMAC(a, b net.HardwareAddr) bool { return string(a) == string(b) }
