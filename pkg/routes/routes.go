// Package routes is the BGP side of what a node advertises, without any
// BGP implementation: the settings of a session (Peer, PeerFrom a
// configured peer), a route with its attributes (Route), and how addresses
// become routes (Aggregate, Merge). Pure: the speaker's decisions
// (pkg/announce) use it without importing sockets, TLS or Prometheus, and
// pkg/bgp runs what it describes.
package routes

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/config"
)

// Peer is one BGP session as this node runs it.
type Peer struct {
	// Name is the BGPPeer's name ("" for a peer of the ConfigMap), which
	// a BGPAdvertisement's peers select.
	Name          string
	Address       netip.Addr
	Port          uint16
	ASN           uint32 // 0: dynamicASN external (any AS but MyASN)
	MyASN         uint32
	SourceAddress netip.Addr // invalid: the kernel picks
	HoldTime      time.Duration
	KeepaliveTime time.Duration
	Password      string
	// PasswordSecret ("namespace/name" or "name"), when set, names the
	// Secret the speaker reads Password from before the session starts.
	PasswordSecret string
	EBGPMultiHop   bool
	// GracefulRestart: RFC 4724 with RestartTime; the router keeps this
	// node's routes while its speaker restarts.
	GracefulRestart bool
	// MaxPrefix > 0 closes the session when the router announces more
	// prefixes (see bgp.Stub).
	MaxPrefix int
	// ConnectTime > 0 replaces the wait between connection attempts.
	ConnectTime time.Duration
	// VRF, when set, binds the session to that VRF device.
	VRF string
	// BFD, when its Profile is set, runs a BFD session beside the BGP
	// session: BFD Down closes it at once.
	BFD BFD
}

// BFD is a peer's BFD profile as its session runs it; the zero BFD is
// none.
type BFD struct {
	Profile          string
	ReceiveInterval  time.Duration
	TransmitInterval time.Duration
	DetectMultiplier uint8
	Passive          bool
}

// Enabled reports whether the peer runs BFD.
func (b BFD) Enabled() bool { return b.Profile != "" }

// SameSession reports whether p and q differ at most in their BFD
// settings: a BFD profile edit is applied to the running BFD session and
// leaves the BGP session as it is.
func (p Peer) SameSession(q Peer) bool {
	p.BFD, q.BFD = BFD{}, BFD{}
	return p == q
}

// Key identifies a session: its address, and its VRF when it has one
// (the same address may be another router in another VRF).
func (p Peer) Key() string {
	if p.VRF != "" {
		return p.Address.String() + "%" + p.VRF
	}
	return p.Address.String()
}

func (p Peer) String() string {
	as := fmt.Sprintf("AS%d", p.ASN)
	if p.ASN == 0 {
		as = "external AS"
	}
	if p.VRF != "" {
		return fmt.Sprintf("%s (%s, vrf %s)", netip.AddrPortFrom(p.Address, p.Port), as, p.VRF)
	}
	return fmt.Sprintf("%s (%s)", netip.AddrPortFrom(p.Address, p.Port), as)
}

// PeerFrom turns a configured peer into this node's session settings,
// with its BFD profile from profiles.
func PeerFrom(c *config.Peer, profiles map[string]*config.BFDProfile) Peer {
	port := c.Port
	if port == 0 {
		port = config.DefaultPeerPort
	}
	hold := c.HoldTime // the parser defaults it; 0 is no keepalives
	keep := c.KeepaliveTime
	if keep == 0 {
		keep = hold / 3
	}
	return Peer{Name: c.Name, Address: c.Address, Port: port, ASN: c.ASN, MyASN: c.MyASN, SourceAddress: c.SourceAddress,
		HoldTime: hold, KeepaliveTime: keep, Password: c.Password, PasswordSecret: secretRef(c), EBGPMultiHop: c.EBGPMultiHop, GracefulRestart: c.GracefulRestart, MaxPrefix: c.MaxPrefix,
		ConnectTime: c.ConnectTime, VRF: c.VRF, BFD: bfdFrom(c.BFDProfile, profiles)}
}

func bfdFrom(name string, profiles map[string]*config.BFDProfile) BFD {
	b := profiles[name]
	if name == "" || b == nil {
		return BFD{}
	}
	return BFD{Profile: name, ReceiveInterval: time.Duration(b.ReceiveInterval) * time.Millisecond,
		TransmitInterval: time.Duration(b.TransmitInterval) * time.Millisecond,
		DetectMultiplier: uint8(min(b.DetectMultiplier, 255)), Passive: b.PassiveMode}
}

func secretRef(c *config.Peer) string {
	if c.PasswordSecret == "" || c.PasswordSecretNamespace == "" {
		return c.PasswordSecret
	}
	return c.PasswordSecretNamespace + "/" + c.PasswordSecret
}

// Route is one advertised prefix with its attributes.
type Route struct {
	Prefix       netip.Prefix
	Communities  []config.Community
	LocalPref    uint32
	HasLocalPref bool
	// Peers limits the sessions the route goes to, by Peer.Name (sorted);
	// none: every session.
	Peers []string
}

// For reports whether the route goes to peer p.
func (r Route) For(p Peer) bool {
	return len(r.Peers) == 0 || slices.Contains(r.Peers, p.Name)
}

// Key identifies a route: its prefix.
func (r Route) Key() string { return r.Prefix.String() }

// Equal reports whether o is r with the same attributes.
func (r Route) Equal(o Route) bool {
	return r.Prefix == o.Prefix && r.LocalPref == o.LocalPref && r.HasLocalPref == o.HasLocalPref && slices.Equal(r.Communities, o.Communities) &&
		slices.Equal(r.Peers, o.Peers)
}

// Aggregate returns the prefix an address is advertised as under adv: the
// address itself (/32, /128) or its aggregate.
func Aggregate(ip netip.Addr, adv config.Advertisement) netip.Prefix {
	bits := adv.AggregationLength
	if ip.Is6() {
		bits = adv.AggregationLengthV6
	}
	if bits == 0 {
		bits = ip.BitLen()
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Merge combines routes for the same prefix (several addresses or
// advertisements aggregating to it): communities are united, the highest
// local preference wins, and the route goes to the peers of any of them
// (every peer when one of them has no peers list). The result is sorted by
// prefix.
func Merge(routes []Route) []Route {
	by := map[string]*Route{}
	for _, r := range routes {
		cur, ok := by[r.Key()]
		if !ok {
			c := r
			c.Communities = slices.Clone(r.Communities)
			c.Peers = slices.Clone(r.Peers)
			by[r.Key()] = &c
			continue
		}
		switch {
		case len(cur.Peers) == 0:
		case len(r.Peers) == 0:
			cur.Peers = nil
		default:
			cur.Peers = append(cur.Peers, r.Peers...)
			slices.Sort(cur.Peers)
			cur.Peers = slices.Compact(cur.Peers)
		}
		for _, c := range r.Communities {
			if !slices.Contains(cur.Communities, c) {
				cur.Communities = append(cur.Communities, c)
			}
		}
		if r.HasLocalPref && (!cur.HasLocalPref || r.LocalPref > cur.LocalPref) {
			cur.LocalPref, cur.HasLocalPref = r.LocalPref, true
		}
	}
	out := make([]Route, 0, len(by))
	for _, k := range slices.Sorted(maps.Keys(by)) {
		r := *by[k]
		slices.SortFunc(r.Communities, func(a, b config.Community) int { return strings.Compare(a.String(), b.String()) })
		out = append(out, r)
	}
	return out
}
