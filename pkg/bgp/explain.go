package bgp

// What the logs say about a session: NOTIFICATIONs by name, and why a
// session ended or a connection failed, in an operator's terms.

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	pkt "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// notifyError is a NOTIFICATION, sent or received.
type notifyError struct {
	sent          bool
	code, subcode uint8
	detail        string
}

func (e *notifyError) Error() string {
	dir := "received"
	if e.sent {
		dir = "sent"
	}
	s := fmt.Sprintf("notification-%s: %s", dir, notificationText(e.code, e.subcode))
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

// notifications names NOTIFICATION codes and subcodes (RFC 4271, 4486,
// 9003); subcode 0 names the code.
var notifications = map[[2]uint8]string{
	{pkt.BGP_ERROR_MESSAGE_HEADER_ERROR, 0}:                                      "message header error",
	{pkt.BGP_ERROR_OPEN_MESSAGE_ERROR, 0}:                                        "OPEN message error",
	{pkt.BGP_ERROR_OPEN_MESSAGE_ERROR, pkt.BGP_ERROR_SUB_BAD_PEER_AS}:            "OPEN: bad peer AS (the AS numbers on the two sides do not match: check peer-asn and my-asn)",
	{pkt.BGP_ERROR_OPEN_MESSAGE_ERROR, pkt.BGP_ERROR_SUB_BAD_BGP_IDENTIFIER}:     "OPEN: bad BGP identifier (two speakers use the same router ID: set router-id)",
	{pkt.BGP_ERROR_OPEN_MESSAGE_ERROR, pkt.BGP_ERROR_SUB_UNACCEPTABLE_HOLD_TIME}: "OPEN: unacceptable hold time",
	{pkt.BGP_ERROR_OPEN_MESSAGE_ERROR, pkt.BGP_ERROR_SUB_UNSUPPORTED_CAPABILITY}: "OPEN: unsupported capability",
	{pkt.BGP_ERROR_UPDATE_MESSAGE_ERROR, 0}:                                      "UPDATE message error",
	{pkt.BGP_ERROR_HOLD_TIMER_EXPIRED, 0}:                                        "hold timer expired",
	{pkt.BGP_ERROR_FSM_ERROR, 0}:                                                 "finite state machine error",
	{pkt.BGP_ERROR_CEASE, 0}:                                                     "cease",
	{pkt.BGP_ERROR_CEASE, pkt.BGP_ERROR_SUB_MAXIMUM_NUMBER_OF_PREFIXES_REACHED}:  "cease: maximum number of prefixes reached",
	{pkt.BGP_ERROR_CEASE, pkt.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN}:             "cease: administrative shutdown",
	{pkt.BGP_ERROR_CEASE, pkt.BGP_ERROR_SUB_PEER_DECONFIGURED}:                   "cease: peer de-configured",
	{pkt.BGP_ERROR_CEASE, pkt.BGP_ERROR_SUB_ADMINISTRATIVE_RESET}:                "cease: administrative reset",
	{pkt.BGP_ERROR_CEASE, pkt.BGP_ERROR_SUB_CONNECTION_REJECTED}:                 "cease: connection rejected",
	{pkt.BGP_ERROR_CEASE, pkt.BGP_ERROR_SUB_OTHER_CONFIGURATION_CHANGE}:          "cease: other configuration change",
	{pkt.BGP_ERROR_CEASE, pkt.BGP_ERROR_SUB_HARD_RESET}:                          "cease: hard reset",
}

// notificationText names a NOTIFICATION's code and subcode.
func notificationText(code, sub uint8) string {
	if s, ok := notifications[[2]uint8{code, sub}]; ok {
		return s
	}
	if s, ok := notifications[[2]uint8{code, 0}]; ok {
		return fmt.Sprintf("%s (subcode %d)", s, sub)
	}
	return fmt.Sprintf("code %d subcode %d", code, sub)
}

// explainDown says why a session ended, in operator's terms.
func explainDown(err error) string {
	if err == nil {
		return "closed"
	}
	if errors.Is(err, errBFDDown) {
		return "BFD saw the path to the router go (no BFD packet within the detection time, or the router's BFD said Down): the session closed at once and connects again"
	}
	var ne *notifyError
	if errors.As(err, &ne) {
		if ne.sent {
			return "this side closed the session with a NOTIFICATION (" + err.Error() + ")"
		}
		return "the peer closed the session with a NOTIFICATION (" + err.Error() + ")"
	}
	return "the TCP connection broke (" + err.Error() + ")"
}

// explainConnect says why a TCP connection to a peer failed, in operator's
// terms.
func explainConnect(err error, md5 bool) string {
	var errno syscall.Errno
	switch {
	case isTimeout(err):
		if md5 {
			return "no answer to the TCP handshake: with a password set this is usually a TCP MD5 mismatch (the router silently drops segments whose signature is wrong or missing); check that both sides use the same password"
		}
		return "no answer to the TCP handshake: the router is down, unreachable, or filters port 179 from this address"
	case errors.As(err, &errno) && errno == syscall.ECONNREFUSED, err != nil && strings.Contains(err.Error(), "connection refused"):
		return "connection refused: the router does not accept BGP from this address (check its neighbor configuration and port)"
	case err != nil && strings.Contains(err.Error(), "no route to host"):
		return "no route to the peer: set ebgp-multihop or source-address, or fix routing"
	}
	return "the TCP connection failed"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || err != nil && strings.Contains(err.Error(), "i/o timeout")
}
