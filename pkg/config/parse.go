package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/microk8s-metallb/metallb/pkg/iprange"
)

// Defaults, as MetalLB v0.12 defines them.
const (
	DefaultPeerPort = 179
	DefaultHoldTime = 90 * time.Second
)

// rawPool keeps the nodes that cross-checks need to point at.
type rawPool struct {
	*Pool
	path      string       // "address-pools[1] (name)", for messages
	addrNodes []*yaml.Node // the node each range came from, parallel to Ranges
	advNodes  []*yaml.Node
	commNodes [][]rawCommunity
}

type rawCommunity struct {
	text string
	node *yaml.Node
}

// Parse decodes and validates a configuration: a v0.12 config (the
// ConfigMap's), metallb.io resources (documents after "---", each with
// apiVersion metallb.io/...), or one config followed by resources (the
// form the controller keeps as its accepted copy). On failure the error is
// an Errors listing every problem with its line.
func Parse(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var v012 *yaml.Node
	var resources []Document
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, Errors{yamlError(err)}
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue
		}
		root := doc.Content[0]
		d := describeRoot(root)
		switch {
		case d.MetalLBResource():
			resources = append(resources, d)
		case d.APIVersion != "" || d.Kind != "":
			return nil, Errors{{Line: root.Line, Msg: fmt.Sprintf("%s is not part of a MetalLB configuration: give the v0.12 config or metallb.io resources", d.What())}}
		case v012 != nil:
			return nil, Errors{{Line: root.Line, Msg: fmt.Sprintf("a second v0.12 config (the first starts on line %d): give one", v012.Line)}}
		default:
			v012 = root
		}
	}
	return build(v012, resources)
}

// ParseDocuments validates the documents of a file as one configuration:
// the v0.12 config of at most one of them (bare, or a ConfigMap's) and
// every metallb.io resource; others are left out.
func ParseDocuments(docs []Document) (*Config, error) {
	var v012 *yaml.Node
	var resources []Document
	for _, d := range docs {
		switch {
		case d.MetalLBResource():
			resources = append(resources, d)
		case d.Config != nil && v012 != nil:
			return nil, Errors{{Line: d.Line, Msg: fmt.Sprintf("%s: a second v0.12 config (the first starts on line %d): check one at a time", d.What(), v012.Line)}}
		case d.Config != nil:
			// Lines padded so that the nodes carry the file's line numbers.
			var doc yaml.Node
			padded := append([]byte(strings.Repeat("\n", d.Offset)), d.Config...)
			if err := yaml.Unmarshal(padded, &doc); err != nil {
				return nil, Errors{yamlError(err)}
			}
			if len(doc.Content) > 0 && doc.Content[0].Tag != "!!null" {
				v012 = doc.Content[0]
			} else {
				v012 = &yaml.Node{Kind: yaml.MappingNode, Line: d.Line}
			}
		}
	}
	return build(v012, resources)
}

// build validates one configuration from its v0.12 root (nil: none) and
// its metallb.io resources.
func build(root *yaml.Node, resources []Document) (*Config, error) {
	cfg := &Config{Communities: map[string]Community{}, BFDProfiles: map[string]*BFDProfile{}}
	d := &decoder{}
	var pools []*rawPool
	if root != nil {
		pools = d.v012(cfg, root)
	}
	l2, bgp := d.resources(cfg, &pools, resources)
	for _, p := range pools {
		cfg.Pools = append(cfg.Pools, p.Pool)
	}
	d.crossCheck(cfg, pools)
	d.resolvePending(cfg)
	d.resolveAdvertisements(cfg, l2, func(i int, names []string) { cfg.L2Advertisements[i].Pools = names })
	d.resolveAdvertisements(cfg, bgp, func(i int, names []string) { cfg.BGPAdvertisements[i].Pools = names })
	d.checkResourceAggregation(cfg, pools, bgp)
	d.checkPeerChoices(cfg)
	if len(d.errs) > 0 {
		sortErrors(d.errs)
		return nil, d.errs
	}
	// The v0.12 pools' implied advertisements come first.
	l2Res, bgpRes := cfg.L2Advertisements, cfg.BGPAdvertisements
	cfg.L2Advertisements, cfg.BGPAdvertisements = nil, nil
	cfg.advertiseV012()
	cfg.L2Advertisements = append(cfg.L2Advertisements, l2Res...)
	cfg.BGPAdvertisements = append(cfg.BGPAdvertisements, bgpRes...)
	cfg.protocols()
	cfg.Warnings = append(cfg.Warnings, warnings(cfg)...)
	return cfg, nil
}

// v0.12 reads the ConfigMap format into cfg and returns its pools.
func (d *decoder) v012(cfg *Config, root *yaml.Node) []*rawPool {
	var pools []*rawPool
	communityNodes := map[string]*yaml.Node{}
	d.mapping(root, "config", map[string]field{
		"address-pools": func(v *yaml.Node) {
			d.list(v, "address-pools", func(i int, item *yaml.Node) {
				pools = append(pools, d.pool(item, i))
			})
		},
		"peers": func(v *yaml.Node) {
			d.list(v, "peers", func(i int, item *yaml.Node) {
				cfg.Peers = append(cfg.Peers, d.peer(item, fmt.Sprintf("peers[%d]", i)))
			})
		},
		"bgp-communities": func(v *yaml.Node) {
			if v.Kind != yaml.MappingNode {
				d.errorf(v, "bgp-communities: want a mapping of alias to community, got %s", describe(v))
				return
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, val := v.Content[i], v.Content[i+1]
				path := "bgp-communities." + k.Value
				if _, dup := communityNodes[k.Value]; dup {
					d.errorf(k, "bgp-communities: alias %q appears twice", k.Value)
					continue
				}
				communityNodes[k.Value] = k
				s := d.str(val, path)
				if s == "" {
					continue
				}
				c, err := parseCommunity(s)
				if err != nil {
					d.errorf(val, "%s: %q: %v", path, s, err)
					continue
				}
				cfg.Communities[k.Value] = c
			}
		},
		"bfd-profiles": func(v *yaml.Node) {
			d.list(v, "bfd-profiles", func(i int, item *yaml.Node) {
				p := d.bfdProfile(item, fmt.Sprintf("bfd-profiles[%d]", i))
				if p.Name == "" {
					return
				}
				if _, dup := cfg.BFDProfiles[p.Name]; dup {
					d.errorf(item, "bfd-profiles[%d]: name %q is used twice", i, p.Name)
					return
				}
				cfg.BFDProfiles[p.Name] = p
			})
		},
	})
	return pools
}

func yamlError(err error) Error {
	// yaml.v3 says "yaml: line 3: mapping values are not allowed in this context".
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return Error{Line: line, Msg: "not valid YAML: " + msg}
}

func sortErrors(es Errors) {
	// Stable insertion sort by line keeps the order of errors on one line.
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Line < es[j-1].Line; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// nameOf peeks at a mapping's "name" so that messages about earlier keys can
// already name the entry.
func nameOf(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

func (d *decoder) pool(n *yaml.Node, i int) *rawPool {
	path := fmt.Sprintf("address-pools[%d]", i)
	if name := nameOf(n); name != "" {
		path += fmt.Sprintf(" (%s)", name)
	}
	p := &rawPool{Pool: &Pool{AutoAssign: true, Line: n.Line}, path: path}
	var protoNode *yaml.Node
	seen := map[string]*yaml.Node{}
	ok := d.mapping(n, path, map[string]field{
		"name":     func(v *yaml.Node) { p.Name = d.str(v, path+".name") },
		"protocol": func(v *yaml.Node) { protoNode = v; p.Protocol = Protocol(d.str(v, path+".protocol")) },
		"addresses": func(v *yaml.Node) {
			seen["addresses"] = v
			d.poolAddresses(v, path+".addresses", p)
		},
		"auto-assign":     func(v *yaml.Node) { p.AutoAssign = d.boolean(v, path+".auto-assign") },
		"avoid-buggy-ips": func(v *yaml.Node) { p.AvoidBuggyIPs = d.boolean(v, path+".avoid-buggy-ips") },
		"bgp-advertisements": func(v *yaml.Node) {
			seen["bgp-advertisements"] = v
			d.list(v, path+".bgp-advertisements", func(j int, item *yaml.Node) {
				adv, comms := d.advertisement(item, fmt.Sprintf("%s.bgp-advertisements[%d]", path, j))
				p.Advertisements = append(p.Advertisements, adv)
				p.advNodes = append(p.advNodes, item)
				p.commNodes = append(p.commNodes, comms)
			})
		},
		"namespaces": func(v *yaml.Node) { p.Namespaces = d.strings(v, path+".namespaces") },
		"service-selectors": func(v *yaml.Node) {
			p.ServiceSelectors = d.selectors(v, path+".service-selectors")
		},
		"priority": func(v *yaml.Node) { p.Priority = int(d.integer(v, path+".priority", 1, math.MaxInt32)) },
		"interfaces": func(v *yaml.Node) {
			seen["interfaces"] = v
			p.Interfaces = d.strings(v, path+".interfaces")
		},
		"node-selectors": func(v *yaml.Node) { p.NodeSelectors = d.selectors(v, path+".node-selectors") },
	})
	if !ok {
		return p
	}
	if p.Name == "" {
		d.errorf(n, "%s: name is required", path)
	}
	switch p.Protocol {
	case Layer2:
		if v := seen["bgp-advertisements"]; v != nil {
			d.errorf(v, "%s: bgp-advertisements apply only to protocol: bgp pools", path)
		}
	case BGP:
		if v := seen["interfaces"]; v != nil {
			d.errorf(v, "%s: interfaces apply only to protocol: layer2 pools", path)
		}
		if len(p.Advertisements) == 0 {
			p.Advertisements = []Advertisement{{AggregationLength: 32, AggregationLengthV6: 128}}
		}
	case "":
		if protoNode == nil {
			d.errorf(n, "%s: protocol is required: layer2 or bgp", path)
		}
	default:
		d.errorf(protoNode, "%s.protocol: %q: want layer2 or bgp", path, p.Protocol)
	}
	if seen["addresses"] == nil {
		d.errorf(n, "%s: addresses is required (e.g. addresses: [192.168.1.200-192.168.1.220])", path)
	} else if emptyList(seen["addresses"]) {
		d.errorf(seen["addresses"], "%s: addresses is empty", path)
	}
	for _, ns := range p.Namespaces {
		if !dnsLabel.MatchString(ns) {
			d.errorf(n, "%s.namespaces: %q is not a valid namespace name", path, ns)
		}
	}
	return p
}

// poolAddresses reads a pool's list of addresses (ranges, CIDRs, single
// addresses) into p, keeping the node of each range for the cross-checks.
func (d *decoder) poolAddresses(v *yaml.Node, path string, p *rawPool) {
	d.list(v, path, func(j int, item *yaml.Node) {
		s := d.str(item, fmt.Sprintf("%s[%d]", path, j))
		if s == "" {
			if item.Kind == yaml.ScalarNode && item.Tag != "!!null" {
				d.errorf(item, "%s[%d] is empty: write a range, a CIDR or an address (e.g. 192.168.1.240-192.168.1.250)", path, j)
			}
			return
		}
		rs, err := iprange.ParseList(s)
		if err != nil {
			for _, e := range unjoin(err) {
				d.errorf(item, "%s[%d]: %s", path, j, strings.TrimPrefix(e.Error(), iprange.ErrSyntax.Error()+": "))
			}
			return
		}
		for _, r := range rs {
			p.Ranges = append(p.Ranges, r)
			p.addrNodes = append(p.addrNodes, item)
		}
	})
}

// emptyList reports whether n is an empty list or nothing at all
// ("addresses: []" or "addresses:").
func emptyList(n *yaml.Node) bool {
	return n.Kind == yaml.SequenceNode && len(n.Content) == 0 || n.Tag == "!!null"
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (d *decoder) advertisement(n *yaml.Node, path string) (Advertisement, []rawCommunity) {
	a := Advertisement{AggregationLength: 32, AggregationLengthV6: 128}
	var comms []rawCommunity
	d.mapping(n, path, map[string]field{
		"aggregation-length": func(v *yaml.Node) { a.AggregationLength = int(d.intOr(v, path+".aggregation-length", 0, 32, 32)) },
		"aggregation-length-v6": func(v *yaml.Node) {
			a.AggregationLengthV6 = int(d.intOr(v, path+".aggregation-length-v6", 0, 128, 128))
		},
		"localpref": func(v *yaml.Node) {
			a.LocalPref = d.uint32(v, path+".localpref", 0, math.MaxUint32)
			a.HasLocalPref = true
		},
		"communities": func(v *yaml.Node) {
			d.list(v, path+".communities", func(i int, item *yaml.Node) {
				if s := d.str(item, fmt.Sprintf("%s.communities[%d]", path, i)); s != "" {
					comms = append(comms, rawCommunity{text: s, node: item})
				}
			})
		},
	})
	return a, comms
}

func (d *decoder) peer(n *yaml.Node, path string) *Peer {
	p := &Peer{Port: DefaultPeerPort, HoldTime: DefaultHoldTime, GracefulRestart: true, Line: n.Line}
	var have = map[string]*yaml.Node{}
	addr := func(v *yaml.Node, key string) netip.Addr {
		have[key] = v
		s := d.str(v, path+"."+key)
		if s == "" {
			return netip.Addr{}
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			d.errorf(v, "%s.%s: %q is not an IP address", path, key, s)
			return netip.Addr{}
		}
		return a.Unmap()
	}
	dur := func(v *yaml.Node, key string) time.Duration {
		have[key] = v
		s := d.str(v, path+"."+key)
		if s == "" {
			return 0
		}
		t, err := time.ParseDuration(s)
		if err != nil {
			d.errorf(v, "%s.%s: %q: want a duration such as 90s or 1m30s", path, key, s)
			return 0
		}
		return t
	}
	ok := d.mapping(n, path, map[string]field{
		"peer-address":   func(v *yaml.Node) { p.Address = addr(v, "peer-address") },
		"peer-asn":       func(v *yaml.Node) { have["peer-asn"] = v; p.ASN = d.uint32(v, path+".peer-asn", 1, math.MaxUint32) },
		"my-asn":         func(v *yaml.Node) { have["my-asn"] = v; p.MyASN = d.uint32(v, path+".my-asn", 1, math.MaxUint32) },
		"peer-port":      func(v *yaml.Node) { p.Port = uint16(d.integer(v, path+".peer-port", 1, 65535)) },
		"source-address": func(v *yaml.Node) { p.SourceAddress = addr(v, "source-address") },
		"hold-time":      func(v *yaml.Node) { p.HoldTime = dur(v, "hold-time") },
		"keepalive-time": func(v *yaml.Node) { p.KeepaliveTime = dur(v, "keepalive-time") },
		"router-id":      func(v *yaml.Node) { p.RouterID = addr(v, "router-id") },
		"password":       func(v *yaml.Node) { have["password"] = v; p.Password = d.str(v, path+".password") },
		"ebgp-multihop":  func(v *yaml.Node) { p.EBGPMultiHop = d.boolean(v, path+".ebgp-multihop") },
		"graceful-restart": func(v *yaml.Node) {
			p.GracefulRestart = d.boolean(v, path+".graceful-restart")
		},
		"max-prefix":     func(v *yaml.Node) { p.MaxPrefix = int(d.integer(v, path+".max-prefix", 1, math.MaxInt32)) },
		"node-selectors": func(v *yaml.Node) { p.NodeSelectors = d.selectors(v, path+".node-selectors") },
		"bfd-profile":    func(v *yaml.Node) { have["bfd-profile"] = v; p.BFDProfile = d.str(v, path+".bfd-profile") },
	})
	if !ok {
		return p
	}
	for _, key := range []string{"peer-address", "peer-asn", "my-asn"} {
		if have[key] == nil {
			d.errorf(n, "%s: %s is required", path, key)
		}
	}
	d.checkPeer(p, have, path, v012PeerKeys)
	return p
}

func (d *decoder) bfdProfile(n *yaml.Node, path string) *BFDProfile {
	if name := nameOf(n); name != "" {
		path += fmt.Sprintf(" (%s)", name)
	}
	p := &BFDProfile{ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3, EchoInterval: 50, MinimumTTL: 254, Line: n.Line}
	var echo *yaml.Node
	ok := d.mapping(n, path, map[string]field{
		"name":              func(v *yaml.Node) { p.Name = d.str(v, path+".name") },
		"receive-interval":  func(v *yaml.Node) { p.ReceiveInterval = d.uint32(v, path+".receive-interval", 10, 60000) },
		"transmit-interval": func(v *yaml.Node) { p.TransmitInterval = d.uint32(v, path+".transmit-interval", 10, 60000) },
		"detect-multiplier": func(v *yaml.Node) { p.DetectMultiplier = d.uint32(v, path+".detect-multiplier", 2, 255) },
		"echo-interval":     func(v *yaml.Node) { p.EchoInterval = d.uint32(v, path+".echo-interval", 10, 60000) },
		"echo-mode":         func(v *yaml.Node) { echo = v; p.EchoMode = d.boolean(v, path+".echo-mode") },
		"passive-mode":      func(v *yaml.Node) { p.PassiveMode = d.boolean(v, path+".passive-mode") },
		"minimum-ttl":       func(v *yaml.Node) { p.MinimumTTL = d.uint32(v, path+".minimum-ttl", 1, 254) },
	})
	if ok && p.Name == "" {
		d.errorf(n, "%s: name is required", path)
	}
	d.checkBFDProfile(p, echo, path, "echo-mode")
	return p
}

// peerKeys are how a format spells a peer's keys.
type peerKeys struct{ address, hold, keepalive, routerID, source, password string }

var (
	v012PeerKeys     = peerKeys{"peer-address", "hold-time", "keepalive-time", "router-id", "source-address", "password"}
	resourcePeerKeys = peerKeys{"peerAddress", "holdTime", "keepaliveTime", "routerID", "sourceAddress", "password"}
)

// checkPeer runs the checks on a peer's timers and addresses that both
// formats share (have holds the value node of each key given, under path)
// and defaults the keepalive time to a third of the hold time.
func (d *decoder) checkPeer(p *Peer, have map[string]*yaml.Node, path string, k peerKeys) {
	// RFC 4271: 0 (no keepalives, no hold timer) or at least 3 s, and it
	// travels in 16 bits.
	if v := have[k.hold]; v != nil && (p.HoldTime != 0 && p.HoldTime < 3*time.Second || p.HoldTime > math.MaxUint16*time.Second) {
		d.errorf(v, "%s.%s: %s: want 0 (no keepalives) or from 3s to 18h12m15s (RFC 4271)", path, k.hold, p.HoldTime)
	}
	switch v := have[k.keepalive]; {
	case v != nil && p.HoldTime == 0 && p.KeepaliveTime != 0:
		d.errorf(v, "%s.%s: %s: with %s 0 no keepalives are sent; remove %s or set a %s", path, k.keepalive, p.KeepaliveTime, k.hold, k.keepalive, k.hold)
	case v != nil && p.KeepaliveTime > p.HoldTime:
		d.errorf(v, "%s.%s: %s is longer than %s %s", path, k.keepalive, p.KeepaliveTime, k.hold, p.HoldTime)
	case v == nil:
		p.KeepaliveTime = p.HoldTime / 3
	}
	if v := have[k.routerID]; v != nil && p.RouterID.IsValid() && !p.RouterID.Is4() {
		d.errorf(v, "%s.%s: %s: a BGP router ID is an IPv4 address", path, k.routerID, p.RouterID)
	}
	if v := have[k.source]; v != nil && p.SourceAddress.IsValid() && p.Address.IsValid() && p.SourceAddress.Is4() != p.Address.Is4() {
		d.errorf(v, "%s.%s: %s and %s %s are of different IP families", path, k.source, p.SourceAddress, k.address, p.Address)
	}
	if v := have[k.password]; v != nil && len(p.Password) > MaxPasswordLen {
		d.errorf(v, "%s.%s: %d bytes: TCP MD5 keys are at most %d bytes", path, k.password, len(p.Password), MaxPasswordLen)
	}
}

// What the speaker's BFD does not build: it runs single-hop sessions
// (RFC 5881) in asynchronous mode.
var (
	ErrBFDMultihop = errors.New("multihop BFD (RFC 5883) is not built: BFD runs single-hop, to a router on the node's link")
	ErrBFDVRF      = errors.New("BFD in a VRF is not built yet: the BGP session runs in the VRF, its BFD session cannot")
	ErrBFDEcho     = errors.New("the BFD echo function is not built: asynchronous mode detects a lost link within receive-interval x detect-multiplier")
)

// checkBFDProfile refuses what the speaker's BFD does not do (echo is the
// profile's key for echo mode, under path).
func (d *decoder) checkBFDProfile(p *BFDProfile, have *yaml.Node, path, echo string) {
	if p.EchoMode && have != nil {
		d.errorf(have, "%s.%s: %v; remove %s (and set the intervals instead)", path, echo, ErrBFDEcho, echo)
	}
}

// checkDeviceName checks a network device name as Linux takes it (a VRF's
// device, for SO_BINDTODEVICE).
func checkDeviceName(name string) error {
	switch {
	case name == "":
		return errors.New("empty: name the VRF device (ip link add NAME type vrf table N), or leave vrf out")
	case len(name) > 15:
		return errors.New("a Linux device name has at most 15 bytes")
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		return errors.New(`not a Linux device name (no "/", ":" or spaces, not "." or "..")`)
	}
	return nil
}
