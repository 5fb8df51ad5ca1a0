// Package bfd tells a BGP session within a fraction of a second that the
// path to its router is gone: Bidirectional Forwarding Detection in
// asynchronous mode (RFC 5880) over single-hop UDP (RFC 5881), without
// the echo function or authentication.
//
// Session (session.go) is the protocol as a pure state machine: packets
// and the time in, packets and state changes out, no clock and no socket,
// so the RFC's rules are tested on a virtual clock. Packet (packet.go) is
// the 24-byte Control packet codec. Server (server.go) is the thin socket
// adapter: it owns the UDP sockets and one goroutine per session.
package bfd
