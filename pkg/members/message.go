package members

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The hand-over messages are signed by their sender. memberlist's key
// (the Secret) encrypts them, but every speaker holds it, and an encrypted
// datagram recorded on the LAN can be sent again later: memberlist has no
// replay protection. So each speaker makes a signing key at every start
// and publishes its public half and a boot ID in its memberlist metadata.
// A message counts only if it names the sender's current boot ID, carries
// a counter not seen before in that boot, and is signed with the key the
// named sender publishes now.
//
// Wire format: kind byte, then the text "from boot seq [ip ...]", then the
// 64-byte ed25519 signature of everything before it.

// message is a release or a goodbye, decoded.
type message struct {
	kind byte
	from string
	boot string
	seq  uint64
	ips  []netip.Addr
}

// Errors of open and of the checks against the sender.
var (
	errShort     = errors.New("too short")
	errKind      = errors.New("unknown kind")
	errFields    = errors.New("malformed fields")
	errSignature = errors.New("bad signature")
)

// seal encodes m and signs it with key.
func seal(m message, key ed25519.PrivateKey) []byte {
	var b strings.Builder
	b.WriteByte(m.kind)
	b.WriteString(m.from)
	b.WriteByte(' ')
	b.WriteString(m.boot)
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(m.seq, 10))
	for _, ip := range m.ips {
		b.WriteByte(' ')
		b.WriteString(ip.String())
	}
	body := []byte(b.String())
	return append(body, ed25519.Sign(key, body)...)
}

// open decodes a message without checking its signature: it returns the
// signed part and the signature for verify.
func open(b []byte) (m message, signed, sig []byte, err error) {
	if len(b) < 2+ed25519.SignatureSize {
		return m, nil, nil, errShort
	}
	signed, sig = b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
	m.kind = signed[0]
	if m.kind != msgRelease && m.kind != msgBye && m.kind != msgCheck {
		return m, nil, nil, errKind
	}
	f := strings.Split(string(signed[1:]), " ")
	if len(f) < 3 || f[0] == "" || f[1] == "" {
		return m, nil, nil, errFields
	}
	m.from, m.boot = f[0], f[1]
	if m.seq, err = strconv.ParseUint(f[2], 10, 64); err != nil {
		return m, nil, nil, errFields
	}
	if m.kind == msgBye && len(f) > 3 || m.kind == msgCheck && len(f) != 4 {
		return m, nil, nil, errFields
	}
	for _, s := range f[3:] {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return m, nil, nil, errFields
		}
		m.ips = append(m.ips, ip)
	}
	return m, signed, sig, nil
}

// identity is what a speaker publishes in its memberlist metadata.
type identity struct {
	boot string
	pub  ed25519.PublicKey
}

// meta encodes the identity: "boot=<hex> key=<base64>".
func (id identity) meta() []byte {
	return []byte("boot=" + id.boot + " key=" + base64.StdEncoding.EncodeToString(id.pub))
}

// parseMeta decodes a peer's metadata; a speaker of an older version
// publishes no key, and its messages are not trusted.
func parseMeta(b []byte) (identity, error) {
	var id identity
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "boot":
			id.boot = v
		case "key":
			pub, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(pub) != ed25519.PublicKeySize {
				return identity{}, fmt.Errorf("metadata key: not an ed25519 public key")
			}
			id.pub = pub
		}
	}
	if id.boot == "" || id.pub == nil {
		return identity{}, errors.New("metadata without boot ID and key (a speaker of an older version)")
	}
	return id, nil
}

// window is the anti-replay window of one sender's boot (as in IPsec,
// RFC 4303): the highest counter seen and a bitmap of the 64 before it,
// so a datagram overtaken by its TCP copy, or the other way round, still
// counts once, and a replay never does.
type window struct {
	boot    string
	highest uint64
	seen    uint64 // bit i: highest-i seen
}

// accept says whether seq of boot is new, and records it.
func (w *window) accept(boot string, seq uint64) bool {
	if boot != w.boot {
		*w = window{boot: boot}
	}
	switch {
	case seq == 0:
		return false
	case seq > w.highest:
		shift := seq - w.highest
		if shift >= 64 {
			w.seen = 0
		} else {
			w.seen <<= shift
		}
		w.seen |= 1
		w.highest = seq
		return true
	case w.highest-seq >= 64:
		return false
	}
	bit := uint64(1) << (w.highest - seq)
	if w.seen&bit != 0 {
		return false
	}
	w.seen |= bit
	return true
}
