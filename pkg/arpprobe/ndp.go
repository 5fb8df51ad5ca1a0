package arpprobe

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
)

// ndpConn asks with neighbor solicitations from this host's link-local
// address; the owners answer with neighbor advertisements to it.
type ndpConn struct {
	c   *ndp.Conn
	mac net.HardwareAddr
}

func dialNDP(ifi *net.Interface) (conn, error) {
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, err
	}
	return ndpConn{c: c, mac: ifi.HardwareAddr}, nil
}

func (n ndpConn) Request(target netip.Addr) error {
	dst, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		return fmt.Errorf("solicited-node group of %s: %w", target, err)
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: target, Options: []ndp.Option{
		&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: n.mac},
	}}
	return n.c.WriteTo(ns, nil, dst)
}

func (n ndpConn) Read() (netip.Addr, string, bool, error) {
	m, _, _, err := n.c.ReadFrom()
	if err != nil {
		return netip.Addr{}, "", false, err
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		return netip.Addr{}, "", false, nil
	}
	mac := ""
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			mac = lla.Addr.String()
		}
	}
	return na.TargetAddress, mac, true, nil
}

func (n ndpConn) SetReadDeadline(t time.Time) error { return n.c.SetReadDeadline(t) }
func (n ndpConn) Close() error                      { return n.c.Close() }
