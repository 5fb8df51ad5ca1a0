package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// Protocol is how a pool's addresses are announced.
type Protocol string

// The protocols a pool may use.
const (
	Layer2 Protocol = "layer2"
	BGP    Protocol = "bgp"
	// Both and Unannounced describe IPAddressPools, which advertisements
	// announce: by layer2 and BGP at once, or by nothing.
	Both        Protocol = "layer2+bgp"
	Unannounced Protocol = "none"
)

// Config is a parsed, validated configuration.
type Config struct {
	// Pools in file order.
	Pools []*Pool
	// Peers in file order.
	Peers []*Peer
	// Communities maps bgp-communities aliases to their value.
	Communities map[string]Community
	// BFDProfiles by name.
	BFDProfiles map[string]*BFDProfile
	// L2Advertisements and BGPAdvertisements say which pools are announced,
	// how and from where: a pool that none names gets addresses but is not
	// announced. The v0.12 format implies them from each pool's protocol.
	L2Advertisements  []*L2Advertisement
	BGPAdvertisements []*BGPAdvertisement
	// Warnings are problems that do not stop the config from working but
	// deserve the operator's eye (e.g. a bgp pool with no peers).
	Warnings []string
}

// Pool returns the pool with the given name, or nil.
func (c *Config) Pool(name string) *Pool {
	for _, p := range c.Pools {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// PoolFor returns the pool whose ranges hold ip, or nil (pools never
// overlap, so there is at most one).
func (c *Config) PoolFor(ip netip.Addr) *Pool {
	for _, p := range c.Pools {
		if iprange.ContainsAny(p.Ranges, ip) {
			return p
		}
	}
	return nil
}

// Pool is one entry of address-pools.
type Pool struct {
	Name     string
	Protocol Protocol
	// Ranges in the order written; both families may appear.
	Ranges []iprange.Range
	// AutoAssign: the pool serves Services that do not ask for a pool by name.
	AutoAssign bool
	// AvoidBuggyIPs: never hand out IPv4 addresses ending in .0 or .255.
	AvoidBuggyIPs bool
	// Advertisements (bgp pools only). A bgp pool without any gets one
	// default advertisement (/32, /128, no communities).
	Advertisements []Advertisement

	// Extensions beyond MetalLB v0.12.

	// Namespaces, when not empty, are the only namespaces whose Services may
	// draw from this pool.
	Namespaces []string
	// NamespaceSelectors (IPAddressPool serviceAllocation): a Service's
	// namespace may also be chosen by its labels. With Namespaces, either
	// admits it (as upstream); with neither, every namespace may.
	NamespaceSelectors []Selector
	// ServiceSelectors, when not empty: a Service must match one of them.
	ServiceSelectors []Selector
	// Priority orders the pools a Service may use: 1 first, then 2, ...;
	// pools with no priority (0) come after all pools with one.
	Priority int
	// Interfaces (layer2 only) limit which host interfaces answer ARP/NDP.
	Interfaces []string
	// NodeSelectors limit which nodes may announce this pool's addresses.
	NodeSelectors []Selector

	// Resource: the pool is an IPAddressPool (its protocol comes from the
	// advertisements that select it); Labels are its metadata.labels.
	Resource bool
	Labels   map[string]string

	// Line is where the pool starts in the YAML.
	Line int
}

// Advertisement is one entry of a bgp pool's bgp-advertisements.
type Advertisement struct {
	AggregationLength   int // IPv4 prefix length announced, default 32
	AggregationLengthV6 int // IPv6 prefix length announced, default 128
	// LocalPref is sent on iBGP sessions only; HasLocalPref says it was set.
	LocalPref    uint32
	HasLocalPref bool
	Communities  []Community
}

// Community is a BGP standard community (ASN:value, 16 bits each) or a large
// community (global:local1:local2, 32 bits each).
type Community struct {
	Large bool
	// Standard: Parts[0]=ASN, Parts[1]=value. Large: all three.
	Parts [3]uint32
}

func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("large:%d:%d:%d", c.Parts[0], c.Parts[1], c.Parts[2])
	}
	return fmt.Sprintf("%d:%d", c.Parts[0], c.Parts[1])
}

// Value32 returns a standard community as the 32-bit value BGP carries.
func (c Community) Value32() uint32 { return c.Parts[0]<<16 | c.Parts[1] }

// Peer is one entry of peers.
type Peer struct {
	Name          string // the BGPPeer's name ("" in the v0.12 format)
	Address       netip.Addr
	Port          uint16
	ASN           uint32 // peer-asn
	MyASN         uint32 // my-asn
	SourceAddress netip.Addr
	HoldTime      time.Duration
	KeepaliveTime time.Duration
	RouterID      netip.Addr // invalid: use the node's address
	Password      string
	// PasswordSecret names the Secret (type kubernetes.io/basic-auth, key
	// password) holding the MD5 key instead of Password, in the namespace
	// PasswordSecretNamespace ("": MetalLB's own, the only one read).
	PasswordSecret          string
	PasswordSecretNamespace string
	EBGPMultiHop            bool
	// GracefulRestart (key graceful-restart, default true): a speaker that
	// restarts keeps its routes at the router for the restart time (RFC
	// 4724), instead of withdrawing them.
	GracefulRestart bool
	// MaxPrefix (key max-prefix, 0: none): the session closes (Cease,
	// RFC 4486) when the router announces more prefixes than this, and
	// opens again a minute later.
	MaxPrefix int
	// DynamicASN (BGPPeer dynamicASN, instead of peerASN): "internal"
	// (ASN is MyASN) or "external" (ASN 0: any AS but MyASN, as the
	// router's OPEN says).
	DynamicASN string
	// ConnectTime (BGPPeer connectTime; 0: the speaker's default) is how
	// long the speaker waits between two connection attempts.
	ConnectTime time.Duration
	// VRF (BGPPeer vrf; "": the default VRF) names the VRF device of the
	// node the session is bound to (SO_BINDTODEVICE): the router is
	// reached through that VRF's routing table.
	VRF           string
	NodeSelectors []Selector
	BFDProfile    string
	Line          int
}

// MaxPasswordLen is the longest TCP MD5 key (TCP_MD5SIG_MAXKEYLEN).
const MaxPasswordLen = 80

// IBGP reports whether the session is internal (same AS on both ends).
func (p *Peer) IBGP() bool { return p.ASN == p.MyASN }

// BFDProfile is one entry of bfd-profiles, or a BFDProfile resource: the
// timers of the BFD sessions of the peers that name it. Echo mode is
// refused; MinimumTTL and EchoInterval are kept for the round trip to the
// resources but do nothing (single-hop sessions take TTL 255 only).
type BFDProfile struct {
	Name             string
	ReceiveInterval  uint32 // ms
	TransmitInterval uint32 // ms
	DetectMultiplier uint32
	EchoInterval     uint32 // ms
	EchoMode         bool
	PassiveMode      bool
	MinimumTTL       uint32
	Line             int
}
