// Package layer2 makes a node answer for the addresses it announces in
// layer2 mode: ARP replies for IPv4 (RFC 826) and Neighbor Advertisements for
// IPv6 (RFC 4861), gratuitous ARP / unsolicited NA on takeover, and conflict
// detection when another host claims one of our addresses (an "ARP war").
//
// Responders read and write whole Ethernet frames through an injected
// net.PacketConn (a raw AF_PACKET socket in production), so tests drive them
// over an in-memory connection without root.
package layer2
