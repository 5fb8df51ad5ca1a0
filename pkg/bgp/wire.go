package bgp

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"

	pkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// Wire format helpers for the stub speaker (RFC 4271, 4760, 6793, 4724).
// Messages this side sends are built with GoBGP's packet library; UPDATEs
// a router sends are only scanned (scanUpdate), never decoded into routes.

const (
	headerLen = 19
	maxMsgLen = 4096 // no extended messages (RFC 8654) are negotiated
	asTrans   = 23456
	originIGP = 0
	defaultLP = 100 // LOCAL_PREF sent to iBGP peers when none is configured
)

// rawMsg is one message as read from the wire.
type rawMsg struct {
	typ  uint8
	body []byte
}

// readMsg reads one message into buf (at least maxMsgLen long); the body
// aliases buf.
func readMsg(r io.Reader, buf []byte) (rawMsg, error) {
	if _, err := io.ReadFull(r, buf[:headerLen]); err != nil {
		return rawMsg{}, err
	}
	for _, b := range buf[:16] {
		if b != 0xff {
			return rawMsg{}, &pkt.MessageError{TypeCode: pkt.BGP_ERROR_MESSAGE_HEADER_ERROR,
				SubTypeCode: pkt.BGP_ERROR_SUB_CONNECTION_NOT_SYNCHRONIZED, Message: "bad marker"}
		}
	}
	n, typ := int(binary.BigEndian.Uint16(buf[16:18])), buf[18]
	least, known := minMsgLen[typ]
	if !known {
		return rawMsg{}, &pkt.MessageError{TypeCode: pkt.BGP_ERROR_MESSAGE_HEADER_ERROR,
			SubTypeCode: pkt.BGP_ERROR_SUB_BAD_MESSAGE_TYPE, Data: []byte{typ}, Message: fmt.Sprintf("bad message type %d", typ)}
	}
	// RFC 4271 6.1: shorter than its type allows, a KEEPALIVE that is not
	// exactly a header, or longer than the most a message may be.
	if n < least || n > maxMsgLen || typ == pkt.BGP_MSG_KEEPALIVE && n != headerLen {
		return rawMsg{}, &pkt.MessageError{TypeCode: pkt.BGP_ERROR_MESSAGE_HEADER_ERROR,
			SubTypeCode: pkt.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH, Data: slices.Clone(buf[16:18]), Message: fmt.Sprintf("bad message length %d", n)}
	}
	if _, err := io.ReadFull(r, buf[headerLen:n]); err != nil {
		return rawMsg{}, err
	}
	return rawMsg{typ: typ, body: buf[headerLen:n]}, nil
}

// minMsgLen is the shortest message of each type (RFC 4271 4.2-4.5, RFC
// 2918 for ROUTE-REFRESH); a type not listed is unknown.
var minMsgLen = map[uint8]int{
	pkt.BGP_MSG_OPEN:          29,
	pkt.BGP_MSG_UPDATE:        23,
	pkt.BGP_MSG_NOTIFICATION:  21,
	pkt.BGP_MSG_KEEPALIVE:     headerLen,
	pkt.BGP_MSG_ROUTE_REFRESH: 23,
}

var errMalformed = errors.New("malformed UPDATE")

// scanUpdate walks an UPDATE body without keeping anything: fn sees every
// prefix it withdraws or announces (IPv4 in the classic fields, IPv4 and
// IPv6 unicast in MP_REACH/MP_UNREACH; other families are skipped), and eor
// reports an End-of-RIB marker. No ADD-PATH is negotiated, so every NLRI
// is a length byte and the prefix's bytes.
func scanUpdate(body []byte, fn func(p netip.Prefix, withdrawn bool)) (eor bool, err error) {
	if len(body) < 4 {
		return false, errMalformed
	}
	wl := int(binary.BigEndian.Uint16(body))
	if 2+wl+2 > len(body) {
		return false, errMalformed
	}
	if err := scanNLRI(body[2:2+wl], pkt.AFI_IP, true, fn); err != nil {
		return false, err
	}
	rest := body[2+wl:]
	al := int(binary.BigEndian.Uint16(rest))
	if 2+al > len(rest) {
		return false, errMalformed
	}
	attrs, nlri := rest[2:2+al], rest[2+al:]
	if wl == 0 && al == 0 && len(nlri) == 0 {
		return true, nil // IPv4 unicast End-of-RIB
	}
	for len(attrs) > 0 {
		if len(attrs) < 3 {
			return false, errMalformed
		}
		flags, typ := attrs[0], attrs[1]
		hl, vl := 3, int(attrs[2])
		if pkt.BGPAttrFlag(flags)&pkt.BGP_ATTR_FLAG_EXTENDED_LENGTH != 0 {
			if len(attrs) < 4 {
				return false, errMalformed
			}
			hl, vl = 4, int(binary.BigEndian.Uint16(attrs[2:]))
		}
		if hl+vl > len(attrs) {
			return false, errMalformed
		}
		v := attrs[hl : hl+vl]
		attrs = attrs[hl+vl:]
		switch typ {
		case uint8(pkt.BGP_ATTR_TYPE_MP_REACH_NLRI):
			if len(v) < 5 {
				return false, errMalformed
			}
			afi, safi, nhl := binary.BigEndian.Uint16(v), v[2], int(v[3])
			if 4+nhl+1 > len(v) {
				return false, errMalformed
			}
			if safi == pkt.SAFI_UNICAST {
				if err := scanNLRI(v[4+nhl+1:], afi, false, fn); err != nil {
					return false, err
				}
			}
		case uint8(pkt.BGP_ATTR_TYPE_MP_UNREACH_NLRI):
			if len(v) < 3 {
				return false, errMalformed
			}
			if len(v) == 3 && wl == 0 && len(nlri) == 0 && len(attrs) == 0 && al == hl+vl {
				return true, nil // End-of-RIB of another family
			}
			if v[2] == pkt.SAFI_UNICAST {
				if err := scanNLRI(v[3:], binary.BigEndian.Uint16(v), true, fn); err != nil {
					return false, err
				}
			}
		}
	}
	return false, scanNLRI(nlri, pkt.AFI_IP, false, fn)
}

func scanNLRI(b []byte, afi uint16, withdrawn bool, fn func(netip.Prefix, bool)) error {
	max := 32
	if afi == pkt.AFI_IP6 {
		max = 128
	} else if afi != pkt.AFI_IP {
		return nil
	}
	for len(b) > 0 {
		bits := int(b[0])
		n := (bits + 7) / 8
		if bits > max || 1+n > len(b) {
			return errMalformed
		}
		if fn != nil {
			var p netip.Prefix
			if afi == pkt.AFI_IP {
				var a [4]byte
				copy(a[:], b[1:1+n])
				p = netip.PrefixFrom(netip.AddrFrom4(a), bits)
			} else {
				var a [16]byte
				copy(a[:], b[1:1+n])
				p = netip.PrefixFrom(netip.AddrFrom16(a), bits)
			}
			fn(p.Masked(), withdrawn)
		}
		b = b[1+n:]
	}
	return nil
}

// twoOctetAS is an AS number as the 2-octet fields carry it: AS_TRANS for
// one that does not fit (RFC 6793).
func twoOctetAS(asn uint32) uint16 {
	if asn > 0xffff {
		return asTrans
	}
	return uint16(asn)
}

// routeFamily is the family of the routes a session carries: the peer
// address's.
func routeFamily(a netip.Addr) pkt.RouteFamily {
	if a.Is4() {
		return pkt.RF_IPv4_UC
	}
	return pkt.RF_IPv6_UC
}

// openMsg is the OPEN this side sends to p.
func openMsg(p Peer, routerID netip.Addr, restarting bool) *pkt.BGPMessage {
	rf := routeFamily(p.Address)
	caps := []pkt.ParameterCapabilityInterface{
		pkt.NewCapMultiProtocol(rf),
		pkt.NewCapRouteRefresh(),
		pkt.NewCapFourOctetASNumber(p.MyASN),
	}
	if p.GracefulRestart {
		// F (forwarding kept) is set when restarting: kube-proxy kept
		// forwarding to the service while the speaker was away.
		caps = append(caps, pkt.NewCapGracefulRestart(restarting, false, uint16(RestartTime.Seconds()),
			[]*pkt.CapGracefulRestartTuple{pkt.NewCapGracefulRestartTuple(rf, restarting)}))
	}
	return pkt.NewBGPOpenMessage(twoOctetAS(p.MyASN), uint16(p.HoldTime.Seconds()), routerID.String(),
		[]pkt.OptionParameterInterface{pkt.NewOptionParameterCapability(caps)})
}

// peerCaps is what the router's OPEN says.
type peerCaps struct {
	asn       uint32
	routerID  netip.Addr
	holdTime  uint16
	as4       bool
	gr        bool
	families  []pkt.RouteFamily // nil: no MP capability (IPv4 unicast only)
	refreshOK bool
}

func (c peerCaps) carries(rf pkt.RouteFamily) bool {
	if c.families == nil {
		return rf == pkt.RF_IPv4_UC
	}
	return slices.Contains(c.families, rf)
}

// parseOpen reads the router's OPEN and checks it against p; a returned
// *pkt.MessageError is what to send back in a NOTIFICATION.
func parseOpen(body []byte, p Peer, routerID netip.Addr) (peerCaps, error) {
	m, err := pkt.ParseBGPBody(&pkt.BGPHeader{Type: pkt.BGP_MSG_OPEN, Len: uint16(headerLen + len(body))}, body)
	if err != nil {
		return peerCaps{}, err
	}
	o := m.Body.(*pkt.BGPOpen)
	c := peerCaps{asn: uint32(o.MyAS), holdTime: o.HoldTime}
	c.routerID, _ = netip.AddrFromSlice(o.ID.To4())
	for _, op := range o.OptParams {
		pc, ok := op.(*pkt.OptionParameterCapability)
		if !ok {
			continue
		}
		for _, cp := range pc.Capability {
			switch v := cp.(type) {
			case *pkt.CapFourOctetASNumber:
				c.as4, c.asn = true, v.CapValue
			case *pkt.CapGracefulRestart:
				c.gr = true
			case *pkt.CapMultiProtocol:
				c.families = append(c.families, v.CapValue)
			case *pkt.CapRouteRefresh:
				c.refreshOK = true
			}
		}
	}
	if _, err := pkt.ValidateOpenMsg(o, p.ASN, p.MyASN, routerID.AsSlice()); err != nil {
		return c, err
	}
	if p.ASN == 0 && c.asn == p.MyASN { // dynamicASN external: any AS but ours
		return c, pkt.NewMessageError(pkt.BGP_ERROR_OPEN_MESSAGE_ERROR, pkt.BGP_ERROR_SUB_BAD_PEER_AS, nil,
			fmt.Sprintf("dynamicASN external, and the router is in this side's AS %d", p.MyASN))
	}
	return c, nil
}

// negotiated returns the session's hold time and keepalive interval: the
// smaller hold time of both sides (0: neither keepalives nor hold timer,
// RFC 4271 4.2), and this side's keepalive, at most a third of it.
func negotiated(p Peer, theirs uint16) (hold, keepalive int64) {
	h := min(int64(p.HoldTime.Seconds()), int64(theirs))
	if h == 0 {
		return 0, 0
	}
	k := int64(p.KeepaliveTime.Seconds())
	if k <= 0 || k > h/3 {
		k = h / 3
	}
	return h, max(k, 1)
}

// maxMsg is BGP's largest message (RFC 4271; no extended messages).
const maxMsg = 4096

// sameAttrs reports whether a and b carry the same path attributes, so
// that one UPDATE may announce both.
func sameAttrs(a, b Route) bool { return compareAttrs(a, b) == 0 }

// updateMsgs are the UPDATEs that announce rs (all of one family) to a
// peer, with nextHop this side's address on the session: routes with the
// same attributes share a message, as many as fit in one.
func updateMsgs(p Peer, c peerCaps, rs []Route, nextHop netip.Addr) ([]*pkt.BGPMessage, error) {
	var out []*pkt.BGPMessage
	for len(rs) > 0 {
		n := 1
		for n < len(rs) && sameAttrs(rs[0], rs[n]) {
			n++
		}
		msgs, err := packed(p, c, rs[:n], nextHop)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
		rs = rs[n:]
	}
	return out, nil
}

// packed announces routes of equal attributes in as few UPDATEs as fit
// within maxMsg: a message too big is split in two.
func packed(p Peer, c peerCaps, rs []Route, nextHop netip.Addr) ([]*pkt.BGPMessage, error) {
	m := updateMsg(p, c, rs, nextHop)
	b, err := m.Serialize() // the encoder refuses a message over maxMsg
	switch {
	case err == nil && len(b) <= maxMsg:
		return []*pkt.BGPMessage{m}, nil
	case len(rs) == 1:
		if err == nil {
			err = fmt.Errorf("%d bytes", len(b))
		}
		return nil, fmt.Errorf("encode the UPDATE for %s: %w", rs[0].Prefix, err)
	}
	lo, err := packed(p, c, rs[:len(rs)/2], nextHop)
	if err != nil {
		return nil, err
	}
	hi, err := packed(p, c, rs[len(rs)/2:], nextHop)
	return append(lo, hi...), err
}

// updateMsg is the UPDATE that announces rs, which share rs[0]'s
// attributes, to a peer, with nextHop this side's address on the session.
func updateMsg(p Peer, c peerCaps, rs []Route, nextHop netip.Addr) *pkt.BGPMessage {
	r := rs[0]
	attrs := []pkt.PathAttributeInterface{pkt.NewPathAttributeOrigin(originIGP)}
	ibgp := p.ASN == p.MyASN
	switch {
	case ibgp:
		attrs = append(attrs, pkt.NewPathAttributeAsPath(nil))
	case c.as4:
		attrs = append(attrs, pkt.NewPathAttributeAsPath([]pkt.AsPathParamInterface{
			pkt.NewAs4PathParam(pkt.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{p.MyASN})}))
	default: // a 2-octet AS router: AS_TRANS and the real path in AS4_PATH (RFC 6793)
		attrs = append(attrs, pkt.NewPathAttributeAsPath([]pkt.AsPathParamInterface{
			pkt.NewAsPathParam(pkt.BGP_ASPATH_ATTR_TYPE_SEQ, []uint16{twoOctetAS(p.MyASN)})}))
	}
	v4 := r.Prefix.Addr().Is4()
	if v4 {
		attrs = append(attrs, pkt.NewPathAttributeNextHop(nextHop.String()))
	}
	if ibgp {
		lp := uint32(defaultLP)
		if r.HasLocalPref {
			lp = r.LocalPref
		}
		attrs = append(attrs, pkt.NewPathAttributeLocalPref(lp))
	}
	var std []uint32
	var large []*pkt.LargeCommunity
	for _, cm := range r.Communities {
		if cm.Large {
			large = append(large, pkt.NewLargeCommunity(cm.Parts[0], cm.Parts[1], cm.Parts[2]))
		} else {
			std = append(std, cm.Parts[0]<<16|cm.Parts[1])
		}
	}
	if len(std) > 0 {
		attrs = append(attrs, pkt.NewPathAttributeCommunities(std))
	}
	if !v4 {
		var nlri []pkt.AddrPrefixInterface
		for _, x := range rs {
			nlri = append(nlri, pkt.NewIPv6AddrPrefix(uint8(x.Prefix.Bits()), x.Prefix.Addr().String()))
		}
		attrs = append(attrs, pkt.NewPathAttributeMpReachNLRI(nextHop.String(), nlri))
	}
	if !ibgp && !c.as4 && p.MyASN > 0xffff {
		attrs = append(attrs, pkt.NewPathAttributeAs4Path([]*pkt.As4PathParam{
			pkt.NewAs4PathParam(pkt.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{p.MyASN})}))
	}
	if len(large) > 0 {
		attrs = append(attrs, pkt.NewPathAttributeLargeCommunities(large))
	}
	if v4 {
		var nlri []*pkt.IPAddrPrefix
		for _, x := range rs {
			nlri = append(nlri, pkt.NewIPAddrPrefix(uint8(x.Prefix.Bits()), x.Prefix.Addr().String()))
		}
		return pkt.NewBGPUpdateMessage(nil, attrs, nlri)
	}
	return pkt.NewBGPUpdateMessage(nil, attrs, nil)
}

// withdrawMsgs are the UPDATEs that withdraw prefixes (all of one family),
// as many per message as fit.
func withdrawMsgs(prefixes []netip.Prefix) []*pkt.BGPMessage {
	const per = 200 // 200 IPv6 /128s are 3,400 bytes: within 4,096
	var out []*pkt.BGPMessage
	for chunk := range slices.Chunk(prefixes, per) {
		if chunk[0].Addr().Is4() {
			var w []*pkt.IPAddrPrefix
			for _, p := range chunk {
				w = append(w, pkt.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String()))
			}
			out = append(out, pkt.NewBGPUpdateMessage(w, nil, nil))
			continue
		}
		var w []pkt.AddrPrefixInterface
		for _, p := range chunk {
			w = append(w, pkt.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String()))
		}
		out = append(out, pkt.NewBGPUpdateMessage(nil, []pkt.PathAttributeInterface{pkt.NewPathAttributeMpUnreachNLRI(w)}, nil))
	}
	return out
}

// compareAttrs orders routes by their attributes (local preference, then
// communities), so that equal ones sort together.
func compareAttrs(a, b Route) int {
	if c := cmp.Compare(a.LocalPref, b.LocalPref); c != 0 {
		return c
	}
	if a.HasLocalPref != b.HasLocalPref {
		if a.HasLocalPref {
			return 1
		}
		return -1
	}
	return slices.CompareFunc(a.Communities, b.Communities, func(x, y config.Community) int {
		if x.Large != y.Large {
			if x.Large {
				return 1
			}
			return -1
		}
		return slices.Compare(x.Parts[:], y.Parts[:])
	})
}
