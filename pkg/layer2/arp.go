package layer2

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// Handler is what a responder asks of its owner.
type Handler interface {
	// Owns reports whether this node answers on this interface for ip in
	// a request that the kernel received at the time given (zero: now).
	// It does not for a request that arrived before it claimed ip: that
	// one was the previous owner's.
	Owns(ifname string, ip netip.Addr, at time.Time) bool
	// Conflict reports another MAC answering for, or announcing, ip.
	Conflict(ifname string, ip netip.Addr, mac net.HardwareAddr)
	// Count records one request received, response sent or gratuitous sent.
	Count(event string, ip netip.Addr)
}

// Counter names passed to Handler.Count.
const (
	EventRequest    = "request"
	EventResponse   = "response"
	EventGratuitous = "gratuitous"
)

// frameConn is the part of a packet socket the ARP responder uses; tests
// pass a fake.
type frameConn interface {
	// ReadFrame reads one frame and the time the kernel received it.
	ReadFrame(b []byte) (int, time.Time, error)
	WriteTo(b []byte, addr net.Addr) (int, error)
}

// arpResponder answers ARP on one interface.
type arpResponder struct {
	ifname string
	mac    net.HardwareAddr
	conn   frameConn
	h      Handler
}

func newARPResponder(ifname string, mac net.HardwareAddr, conn frameConn, h Handler) *arpResponder {
	return &arpResponder{ifname: ifname, mac: mac, conn: conn, h: h}
}

// run reads frames until the connection is closed.
func (r *arpResponder) run() error {
	buf := make([]byte, 1500)
	for {
		n, at, err := r.conn.ReadFrame(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read ARP on %s: %w", r.ifname, err)
		}
		if err := r.handle(buf[:n], at); err != nil {
			return err
		}
	}
}

// handle processes one frame: answers requests for our addresses, and
// reports other MACs claiming them; at is when the kernel received it.
func (r *arpResponder) handle(frame []byte, at time.Time) error {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return nil
	}
	if bytes.Equal(p.SenderHardwareAddr, r.mac) {
		return nil // our own
	}
	// Someone else announcing or answering for an address we own.
	if p.SenderIP.IsValid() && !p.SenderIP.IsUnspecified() && r.h.Owns(r.ifname, p.SenderIP, at) {
		r.h.Conflict(r.ifname, p.SenderIP, p.SenderHardwareAddr)
		if p.Operation == arp.OperationReply || p.SenderIP == p.TargetIP {
			return nil
		}
	}
	if p.Operation != arp.OperationRequest || !r.h.Owns(r.ifname, p.TargetIP, at) {
		return nil
	}
	r.h.Count(EventRequest, p.TargetIP)
	reply, err := arp.NewPacket(arp.OperationReply, r.mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
	if err != nil {
		return nil
	}
	if err := r.write(reply, p.SenderHardwareAddr); err != nil {
		return replyFailed(err)
	}
	r.h.Count(EventResponse, p.TargetIP)
	return nil
}

// replyFailed decides about a reply that could not be sent: only an
// interface that is gone stops its responder (and is opened again when
// it is back). A reply the requester's own addresses make impossible
// (one sent from off the link, say) is dropped, as the kernel drops its
// own: a request must never take the responder down for everyone else.
func replyFailed(err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ENETDOWN) ||
		errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EBADF) {
		return err
	}
	return nil
}

// gratuitous broadcasts an ARP request for ip from ip (RFC 5227 §3's
// announcement), so that neighbours update their caches at once.
func (r *arpResponder) gratuitous(ip netip.Addr) error {
	p, err := arp.NewPacket(arp.OperationRequest, r.mac, ip, ethernet.Broadcast, ip)
	if err != nil {
		return err
	}
	if err := r.write(p, ethernet.Broadcast); err != nil {
		return err
	}
	r.h.Count(EventGratuitous, ip)
	return nil
}

func (r *arpResponder) write(p *arp.Packet, dst net.HardwareAddr) error {
	pb, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	f := ethernet.Frame{Destination: dst, Source: r.mac, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	if _, err := r.conn.WriteTo(fb, &packet.Addr{HardwareAddr: dst}); err != nil {
		return fmt.Errorf("write ARP on %s: %w", r.ifname, err)
	}
	return nil
}
