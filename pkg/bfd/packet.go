package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// State is a session state (RFC 5880 section 4.1, the Sta field).
type State uint8

// The session states.
const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "AdminDown"
	case Down:
		return "Down"
	case Init:
		return "Init"
	case Up:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Diag says why a session last left Up (RFC 5880 section 4.1).
type Diag uint8

// The diagnostic codes this implementation sets or reads.
const (
	DiagNone         Diag = 0
	DiagTimeExpired  Diag = 1 // Control Detection Time Expired
	DiagEchoFailed   Diag = 2
	DiagNeighborDown Diag = 3 // Neighbor Signaled Session Down
	DiagPathDown     Diag = 5
	DiagAdminDown    Diag = 7 // Administratively Down
)

func (d Diag) String() string {
	names := []string{"none", "control detection time expired", "echo function failed", "neighbor signaled session down",
		"forwarding plane reset", "path down", "concatenated path down", "administratively down", "reverse concatenated path down"}
	if int(d) < len(names) {
		return names[d]
	}
	return fmt.Sprintf("diag %d", uint8(d))
}

// PacketLen is the length of a Control packet without authentication.
const PacketLen = 24

// Packet is a BFD Control packet (RFC 5880 section 4.1). Intervals are
// carried in microseconds on the wire.
type Packet struct {
	Diag       Diag
	State      State
	Poll       bool
	Final      bool
	CPI        bool // Control Plane Independent
	Auth       bool // Authentication Present (never set here; refused on receipt)
	Demand     bool
	Multipoint bool
	DetectMult uint8

	MyDiscr, YourDiscr uint32

	DesiredMinTx      time.Duration
	RequiredMinRx     time.Duration
	RequiredMinEchoRx time.Duration
}

// Errors Parse returns for packets RFC 5880 section 6.8.6 says to discard.
var (
	ErrShort         = errors.New("bfd: packet shorter than its length field or than 24 bytes")
	ErrVersion       = errors.New("bfd: version is not 1")
	ErrAuth          = errors.New("bfd: authentication present, and none is configured")
	ErrDetectMult    = errors.New("bfd: detect multiplier is zero")
	ErrMultipoint    = errors.New("bfd: multipoint bit set")
	ErrMyDiscr       = errors.New("bfd: my discriminator is zero")
	ErrYourDiscr     = errors.New("bfd: your discriminator is zero in a state other than Down or AdminDown")
	ErrPollAndFinal  = errors.New("bfd: both poll and final set")
	errIntervalRange = errors.New("bfd: interval out of the field's range")
)

// Parse decodes a Control packet and applies the checks of RFC 5880
// section 6.8.6 that need nothing but the packet.
func Parse(b []byte) (Packet, error) {
	if len(b) < PacketLen {
		return Packet{}, ErrShort
	}
	if v := b[0] >> 5; v != 1 {
		return Packet{}, ErrVersion
	}
	flags := b[1]
	p := Packet{
		Diag:       Diag(b[0] & 0x1f),
		State:      State(flags >> 6),
		Poll:       flags&0x20 != 0,
		Final:      flags&0x10 != 0,
		CPI:        flags&0x08 != 0,
		Auth:       flags&0x04 != 0,
		Demand:     flags&0x02 != 0,
		Multipoint: flags&0x01 != 0,
		DetectMult: b[2],
		MyDiscr:    binary.BigEndian.Uint32(b[4:]),
		YourDiscr:  binary.BigEndian.Uint32(b[8:]),

		DesiredMinTx:      micros(b[12:]),
		RequiredMinRx:     micros(b[16:]),
		RequiredMinEchoRx: micros(b[20:]),
	}
	length := int(b[3])
	switch {
	case length < PacketLen || length > len(b):
		return Packet{}, ErrShort
	case p.Auth:
		return Packet{}, ErrAuth
	case p.DetectMult == 0:
		return Packet{}, ErrDetectMult
	case p.Multipoint:
		return Packet{}, ErrMultipoint
	case p.MyDiscr == 0:
		return Packet{}, ErrMyDiscr
	case p.YourDiscr == 0 && p.State != Down && p.State != AdminDown:
		return Packet{}, ErrYourDiscr
	case p.Poll && p.Final:
		return Packet{}, ErrPollAndFinal
	}
	return p, nil
}

func micros(b []byte) time.Duration {
	return time.Duration(binary.BigEndian.Uint32(b)) * time.Microsecond
}

// Append encodes p (version 1, no authentication) after b. Intervals are
// truncated to whole microseconds; one beyond the field's 71 minutes is an
// error.
func (p Packet) Append(b []byte) ([]byte, error) {
	var flags byte
	for _, f := range []struct {
		on  bool
		bit byte
	}{{p.Poll, 0x20}, {p.Final, 0x10}, {p.CPI, 0x08}, {p.Auth, 0x04}, {p.Demand, 0x02}, {p.Multipoint, 0x01}} {
		if f.on {
			flags |= f.bit
		}
	}
	b = append(b, 1<<5|byte(p.Diag&0x1f), byte(p.State&3)<<6|flags, p.DetectMult, PacketLen)
	b = binary.BigEndian.AppendUint32(b, p.MyDiscr)
	b = binary.BigEndian.AppendUint32(b, p.YourDiscr)
	for _, d := range []time.Duration{p.DesiredMinTx, p.RequiredMinRx, p.RequiredMinEchoRx} {
		us := d / time.Microsecond
		if us < 0 || us > math.MaxUint32 {
			return b, fmt.Errorf("%w: %v", errIntervalRange, d)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(us))
	}
	return b, nil
}
