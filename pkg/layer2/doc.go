// Package layer2 makes a node answer for the addresses it announces in
// layer2 mode: ARP replies for IPv4 (RFC 826) and Neighbor Advertisements for
// IPv6 (RFC 4861), gratuitous ARP / unsolicited NA on takeover, and conflict
// detection when another host claims one of our addresses (an "ARP war").
//
// Responders read each request with the time the kernel received it, and
// leave alone a request that arrived before the address was claimed: the
// previous owner may have answered it, and one request must never get
// answers from two MACs. They read through small interfaces (an AF_PACKET
// socket for ARP and an ICMPv6 socket for NDP in production), so tests
// drive them over in-memory connections without root.
package layer2
